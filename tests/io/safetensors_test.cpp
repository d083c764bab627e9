// safetensors: reading a file the reference implementation wrote (values from formulas written out
// here independently), writing the same tensors byte-identically, a file for the reference reader
// (tests/io/make_safetensors_vectors.py --check), round trips of every dtype and of odd, 0-d and
// empty shapes, alignment, loading into existing tensors, and one clear error per kind of damage.
#include <cstring>

#include "io/io_testing.h"
#include "io/safetensors.h"
#include "testing.h"

namespace tgtest {
namespace {

namespace fs = std::filesystem;

fs::path reference_file() {
  return fs::path(__FILE__).parent_path() / "reference.safetensors";
}

// The tensor's bytes in row-major order.
std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data()), static_cast<size_t>(c.nbytes()));
}

std::vector<double> iota_affine(int64_t n, double scale, double shift) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = (static_cast<double>(i) + shift) * scale;
  return v;
}

// The tensors of make_safetensors_vectors.py, from the same formulas, in a scrambled order.
NamedTensors formula_tensors() {
  NamedTensors v;
  v.push_back({"u8.vec", from_vector(std::vector<int64_t>{0, 1, 127, 128, 255}, {5}, {DType::u8})});
  v.push_back({"f16.mat", from_vector(iota_affine(10, 0.125, -4), {2, 5}, {DType::f16})});
  v.push_back({"f64.odd", from_vector(iota_affine(15, 0.5, -6.5), {3, 5}, {DType::f64})});
  v.push_back({"f32.scalar", from_vector(std::vector<double>{3.5}, {}, {DType::f32})});
  v.push_back({"bf16.vec", from_vector(iota_affine(7, 0.25, -3), {7}, {DType::bf16})});
  v.push_back(
      {"i32.col", from_vector(std::vector<int64_t>{-7, 0, 2147483647}, {3, 1}, {DType::i32})});
  v.push_back({"transformer.h.0.attn.c_attn.weight",
               from_vector(iota_affine(24, 0.125, -7), {2, 3, 4}, {DType::f32})});
  v.push_back({"u8.empty", empty({0}, {DType::u8})});
  v.push_back({"i64.vec",
               from_vector(std::vector<int64_t>{-(int64_t{1} << 40), -1, 0, (int64_t{1} << 62) + 5},
                           {4}, {DType::i64})});
  v.push_back({"f32.empty", empty({0, 3}, {DType::f32})});
  return v;
}

void expect_same_tensors(const NamedTensors& got, const NamedTensors& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const NamedTensor& w : want) {
    const Tensor* g = find_tensor(got, w.name);
    ASSERT_NE(g, nullptr) << w.name;
    EXPECT_EQ(g->dtype(), w.tensor.dtype()) << w.name;
    EXPECT_EQ(g->shape(), w.tensor.shape()) << w.name;
    EXPECT_EQ(bytes_of(*g), bytes_of(w.tensor)) << w.name;
  }
}

TEST(SafetensorsReference, ReadsTheReferenceFile) {
  const io::SafetensorsFile f = io::read_safetensors(reference_file());
  expect_same_tensors(f.tensors, formula_tensors());
  EXPECT_EQ(f.metadata, (io::Metadata{{"format", "pt"}}));
  // Values by formula once more, as numbers (catches a wrong formula on both sides of bytes_of).
  EXPECT_EQ(find_tensor(f.tensors, "bf16.vec")->to_vector<double>(),
            (std::vector<double>{-0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75}));
  EXPECT_EQ(find_tensor(f.tensors, "i64.vec")->to_vector<int64_t>()[3], (int64_t{1} << 62) + 5);
  EXPECT_EQ(find_tensor(f.tensors, "f32.scalar")->item(), 3.5);
  EXPECT_EQ(find_tensor(f.tensors, "f64.odd")->to_vector<double>()[14], 3.75);
  // In data order: the reference writer sorts by dtype, largest elements first.
  std::vector<std::string> names;
  for (const NamedTensor& t : f.tensors) names.push_back(t.name);
  EXPECT_EQ(names.front(), "i64.vec");
  EXPECT_EQ(names.back(), "u8.vec");
  EXPECT_EQ(f.digest.bytes, fs::file_size(reference_file()));
}

TEST(SafetensorsReference, WriterIsByteIdenticalToTheReference) {
  const io::SafetensorsFile f = io::read_safetensors(reference_file());
  TempDir dir("st");
  io::write_safetensors(dir / "again.safetensors", f.tensors, f.metadata);
  const std::string ours = slurp(dir / "again.safetensors"), theirs = slurp(reference_file());
  EXPECT_EQ(ours.size(), theirs.size());
  EXPECT_TRUE(ours == theirs) << "first difference at byte "
                              << std::mismatch(ours.begin(), ours.end(), theirs.begin()).first -
                                     ours.begin();
}

TEST(SafetensorsReference, WritesFileForPython) {
  // Leaves its file for `make_safetensors_vectors.py --check <file>` (see docs/CHECKPOINTS.md).
  NamedTensors t = formula_tensors();
  t[2].tensor = noncontiguous(t[2].tensor);  // f64.odd from a strided view
  ASSERT_FALSE(t[2].tensor.is_contiguous());
  const fs::path out = fs::temp_directory_path() / "tilegrad-interop.safetensors";
  io::write_safetensors(out, t, {{"format", "pt"}, {"writer", "tilegrad"}});
  expect_same_tensors(io::read_safetensors(out).tensors, formula_tensors());
}

TEST(Safetensors, RoundTripsEveryDtypeAndShape) {
  const DType dtypes[] = {DType::f64, DType::f32, DType::bf16, DType::f16,
                          DType::i32, DType::i64, DType::u8};
  const Shape shapes[] = {{}, {0}, {1}, {7}, {3, 5}, {2, 0, 4}, {1, 1, 1}, {3, 1, 2, 5}, {4099}};
  NamedTensors tensors;
  uint64_t seed = 1;
  for (DType dt : dtypes) {
    for (const Shape& s : shapes) {
      Tensor t;
      if (is_floating(dt)) {
        t = rnd(s, seed++, dt, -100.0, 100.0);
      } else {
        Generator gen(seed++);
        t = randint(s, 0, dt == DType::u8 ? 256 : 1000000, gen, {dt});
      }
      tensors.push_back({detail::cat(dtype_name(dt), shape_str(s)), t});
    }
  }
  TempDir dir("st");
  const io::Metadata meta{{"a", "1"}, {"b", "two words"}, {"unicode", "h\xc3\xa9llo"}};
  const io::FileDigest d = io::write_safetensors(dir / "all.safetensors", tensors, meta);
  const io::SafetensorsFile back = io::read_safetensors(dir / "all.safetensors");
  expect_same_tensors(back.tensors, tensors);
  EXPECT_EQ(back.metadata, meta);
  EXPECT_EQ(back.digest.bytes, d.bytes);
  EXPECT_EQ(back.digest.fnv1a64, d.fnv1a64);
  EXPECT_EQ(d.bytes, fs::file_size(dir / "all.safetensors"));
  // Every tensor starts at a multiple of its element size, the data section at a multiple of 8.
  const io::SafetensorsHeader h = io::read_safetensors_header(dir / "all.safetensors");
  EXPECT_EQ(h.data_start() % 8, 0u);
  for (const io::SafetensorsEntry& e : h.entries) {
    EXPECT_EQ((h.data_start() + e.begin) % dtype_size(e.dtype), 0u) << e.name;
  }
}

TEST(Safetensors, EmptyFileHoldsOnlyAHeader) {
  TempDir dir("st");
  io::write_safetensors(dir / "none.safetensors", {});
  EXPECT_EQ(slurp(dir / "none.safetensors"), std::string("\x08\0\0\0\0\0\0\0{}      ", 16));
  EXPECT_TRUE(io::read_safetensors(dir / "none.safetensors").tensors.empty());
}

TEST(Safetensors, LoadsIntoExistingTensors) {
  TempDir dir("st");
  const Tensor w = rnd({3, 4}, 1, DType::f32), b = rnd({4}, 2, DType::f32);
  io::write_safetensors(dir / "m.safetensors", {{"w", w}, {"b", b}});
  // Targets that require grad (parameters), one of another float dtype.
  const Tensor tw = zeros({3, 4}, {DType::f32}), tb = zeros({4}, {DType::bf16});
  tw.set_requires_grad();
  const uint64_t version = tw.storage()->version();
  const std::string mismatch = error_of([&] {
    io::load_safetensors_into(dir / "m.safetensors", {{"w", tw}, {"b", tb}});
  });
  EXPECT_NE(mismatch.find("'b' is [4] F32 in the file but [4] bfloat16 here"), std::string::npos)
      << mismatch;
  EXPECT_EQ(max_abs(tw), 0.0);  // nothing written when anything mismatches
  io::load_safetensors_into(dir / "m.safetensors", {{"w", tw}, {"b", tb}},
                            {.allow_dtype_conversion = true});
  EXPECT_EQ(bytes_of(tw), bytes_of(w));
  EXPECT_GT(tw.storage()->version(), version);
  EXPECT_EQ(bytes_of(tb), bytes_of(b.to(DType::bf16)));
}

TEST(Safetensors, LoadingAnotherModelListsTheDifferences) {
  TempDir dir("st");
  io::write_safetensors(dir / "m.safetensors", {{"transformer.wte.weight", zeros({65, 8})},
                                                {"transformer.h.0.ln_1.weight", ones({8})},
                                                {"transformer.h.1.ln_1.weight", ones({8})}});
  const Tensor wte = zeros({50, 8}), ln = zeros({8}), head = zeros({8});
  const std::string msg = error_of([&] {
    io::load_safetensors_into(dir / "m.safetensors", {{"transformer.wte.weight", wte},
                                                      {"transformer.h.0.ln_1.weight", ln},
                                                      {"lm_head.bias", head}});
  });
  EXPECT_NE(msg.find("3 problems"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'transformer.wte.weight' is [65, 8] F32 in the file but [50, 8] float32"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("unexpected tensor 'transformer.h.1.ln_1.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing tensor 'lm_head.bias'"), std::string::npos) << msg;
  EXPECT_EQ(max_abs(ln), 0.0);
}

TEST(Safetensors, WriterRejectsBadNames) {
  TempDir dir("st");
  const Tensor t = ones({2});
  EXPECT_NE(error_of([&] {
              io::write_safetensors(dir / "x", {{"a", t}, {"a", t}});
            }).find("'a' appears twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              io::write_safetensors(dir / "x", {{"__metadata__", t}});
            }).find("reserved"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              io::write_safetensors(dir / "x", {{"", t}});
            }).find("empty name"),
            std::string::npos);
  EXPECT_TRUE(dir.entries().empty());
}

// --- malformed files ---

// A file from a header given as text (padded to 8 bytes unless `raw_len` overrides the length
// field) and a data section of `data_bytes` bytes.
std::string make_file(const std::string& header, size_t data_bytes,
                      std::optional<uint64_t> raw_len = std::nullopt) {
  std::string h = header;
  if (!raw_len) h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t n = raw_len.value_or(h.size());
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  out += h;
  for (size_t i = 0; i < data_bytes; ++i) out += static_cast<char>(i * 37 + 1);
  return out;
}

std::string read_error(const std::string& bytes) {
  TempDir dir("st");
  spit(dir / "bad.safetensors", bytes);
  const std::string msg = error_of([&] { io::read_safetensors(dir / "bad.safetensors"); });
  EXPECT_NE(msg.find("bad.safetensors"), std::string::npos)
      << "error does not name the file: " << msg;
  return msg;
}

#define EXPECT_ERROR_HAS(bytes, text)                        \
  do {                                                       \
    const std::string m_ = read_error(bytes);                \
    EXPECT_NE(m_.find(text), std::string::npos)              \
        << "expected '" << (text) << "' in: '" << m_ << "'"; \
  } while (0)

TEST(SafetensorsMalformed, TruncatedFiles) {
  EXPECT_ERROR_HAS(std::string("\x10\0\0", 3), "too short for the 8-byte header length");
  const std::string good =
      make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16);
  EXPECT_ERROR_HAS(good.substr(0, good.size() - 4), "past the end of the 12-byte data section");
  EXPECT_ERROR_HAS(good.substr(0, 20), "runs past the end of the 20-byte file");
  EXPECT_ERROR_HAS(std::string(), "is 0 bytes");
}

TEST(SafetensorsMalformed, HeaderTooLargeOrNotJson) {
  EXPECT_ERROR_HAS(make_file("{}", 0, uint64_t{1} << 40), "exceeds the limit");
  EXPECT_ERROR_HAS(make_file("{}", 0, io::kMaxSafetensorsHeader + 1), "exceeds the limit");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32",)", 0), "not valid JSON");
  EXPECT_ERROR_HAS(make_file("[1, 2]", 0), "does not start with '{'");
  EXPECT_ERROR_HAS(make_file(R"({"a":[1]})", 0), "tensor 'a' must be an object");
}

TEST(SafetensorsMalformed, BadOffsets) {
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
                   "end before they begin");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
                   "data_offsets must be [begin, end]");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8),
                   "non-negative integers");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12),
                   "tensor 'b' at [4, 12) overlaps tensor 'a' at [0, 8)");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                             12),
                   "4 bytes before tensor 'b' at [8, 12) belong to no tensor");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12),
                   "the last 4 of the 12 data bytes belong to no tensor");
  // The same bytes claimed twice, one entry starting inside the other.
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})",
                             8),
                   "overlaps");
}

TEST(SafetensorsMalformed, ShapeDtypeAndNames) {
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                   "shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                   "shape must hold non-negative integers");
  EXPECT_ERROR_HAS(
      make_file(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776,1099511627776],)"
                R"("data_offsets":[0,8]}})",
                8),
      "more than 2^64");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8),
                   "unknown dtype 'F33'");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}})", 8),
                   "dtype 'BOOL', which tilegrad does not support");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                             8),
                   "names 'a' twice");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8],"x":1}})", 8),
                   "unknown field 'x'");
  EXPECT_ERROR_HAS(make_file(R"({"a":{"dtype":"U8","data_offsets":[0,8]}})", 8),
                   "needs 'dtype', 'shape' and 'data_offsets'");
  EXPECT_ERROR_HAS(make_file(R"({"__metadata__":{"k":1}})", 0),
                   "__metadata__ value of 'k' must be a string");
}

TEST(SafetensorsMalformed, MissingFile) {
  const std::string msg = error_of([] { io::read_safetensors("/nonexistent/x.safetensors"); });
  EXPECT_NE(msg.find("cannot open safetensors file '/nonexistent/x.safetensors'"),
            std::string::npos)
      << msg;
}

}  // namespace
}  // namespace tgtest
