#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "autograd/grad_mode.h"
#include "core/error.h"

namespace tilegrad::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

namespace {

using nlohmann::json;

struct DTypeName {
  DType dt;
  std::string_view name;
};
constexpr DTypeName kDTypes[] = {{DType::f64, "F64"}, {DType::f32, "F32"}, {DType::bf16, "BF16"},
                                 {DType::f16, "F16"}, {DType::i32, "I32"}, {DType::i64, "I64"},
                                 {DType::u8, "U8"}};
// Dtypes of the format that tilegrad has no type for: recognised, so the error can say so.
constexpr std::string_view kForeignDTypes[] = {
    "BOOL",    "I8",      "I16", "U16",     "U32",     "U64",         "C64",        "F8_E4M3",
    "F8_E5M2", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"};

// A file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string where(const std::filesystem::path& path) {
  return "safetensors file '" + path.string() + "'";
}

// Reads exactly n bytes at `offset`; a short file is an error, not a short read.
void read_exact(int fd, void* dst, uint64_t n, uint64_t offset, const std::filesystem::path& path,
                const std::string& what) {
  auto* p = static_cast<char*>(dst);
  uint64_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(detail::cat(where(path), ": reading ", what, " failed: ", std::strerror(errno)));
    }
    if (r == 0) {
      throw Error(detail::cat(where(path), ": unexpected end of file while reading ", what,
                              " (the file shrank while being read?)"));
    }
    done += static_cast<uint64_t>(r);
  }
}

Fd open_for_reading(const std::filesystem::path& path, uint64_t& size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    throw Error(detail::cat("cannot open ", where(path), ": ", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    throw Error(detail::cat("cannot stat ", where(path), ": ", std::strerror(errno)));
  }
  TG_CHECK(S_ISREG(st.st_mode), where(path), " is not a regular file");
  size = static_cast<uint64_t>(st.st_size);
  return fd;
}

uint64_t checked_uint(const json& v, const std::filesystem::path& path, const std::string& name,
                      const char* field) {
  TG_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), where(path),
           ": tensor '", name, "': ", field, " must hold non-negative integers, got ", v.dump());
  return v.get<uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& name, const json& e,
                             const std::filesystem::path& path) {
  TG_CHECK(e.is_object(), where(path), ": tensor '", name, "' must be an object, got ", e.dump());
  for (const auto& [key, value] : e.items()) {
    TG_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where(path), ": tensor '",
             name, "' has an unknown field '", key, "'");
  }
  TG_CHECK(e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"), where(path),
           ": tensor '", name, "' needs 'dtype', 'shape' and 'data_offsets'");
  SafetensorsEntry out;
  out.name = name;
  const json& dt = e.at("dtype");
  TG_CHECK(dt.is_string(), where(path), ": tensor '", name, "': dtype must be a string");
  const std::string dts = dt.get<std::string>();
  const std::optional<DType> parsed = dtype_from_safetensors(dts);
  if (!parsed) {
    const bool foreign = std::find(std::begin(kForeignDTypes), std::end(kForeignDTypes), dts) !=
                         std::end(kForeignDTypes);
    throw Error(detail::cat(where(path), ": tensor '", name, "' has ",
                            foreign ? "dtype '" + dts + "', which tilegrad does not support"
                                    : "unknown dtype '" + dts + "'",
                            " (supported: F64, F32, BF16, F16, I32, I64, U8)"));
  }
  out.dtype = *parsed;
  const json& shape = e.at("shape");
  TG_CHECK(shape.is_array(), where(path), ": tensor '", name, "': shape must be an array");
  // The element count, guarded against overflow: a hostile shape must not wrap around to match a
  // small byte range.
  uint64_t count = 1;
  bool overflow = false, has_zero = false;
  for (const json& d : shape) {
    const uint64_t n = checked_uint(d, path, name, "shape");
    TG_CHECK(n <= static_cast<uint64_t>(INT64_MAX), where(path), ": tensor '", name,
             "': dimension ", n, " is too large");
    out.shape.push_back(static_cast<int64_t>(n));
    has_zero = has_zero || n == 0;
    if (!overflow && n != 0 && count > UINT64_MAX / n) overflow = true;
    if (!overflow) count *= n;
  }
  if (has_zero) {  // any zero dimension makes the tensor empty, whatever the others
    overflow = false;
    count = 0;
  }
  const json& off = e.at("data_offsets");
  TG_CHECK(off.is_array() && off.size() == 2, where(path), ": tensor '", name,
           "': data_offsets must be [begin, end], got ", off.dump());
  out.begin = checked_uint(off[0], path, name, "data_offsets");
  out.end = checked_uint(off[1], path, name, "data_offsets");
  TG_CHECK(out.begin <= out.end, where(path), ": tensor '", name, "': data_offsets [", out.begin,
           ", ", out.end, "] end before they begin");
  const uint64_t itemsize = dtype_size(out.dtype);
  TG_CHECK(!overflow && count <= UINT64_MAX / itemsize && count * itemsize == out.end - out.begin,
           where(path), ": tensor '", name, "': shape ", shape_str(out.shape), " of ", dts,
           " needs ", overflow ? std::string("more than 2^64") : std::to_string(count * itemsize),
           " bytes but data_offsets [", out.begin, ", ", out.end, "] hold ", out.end - out.begin);
  return out;
}

json parse_header_json(const std::string& text, const std::filesystem::path& path) {
  TG_CHECK(!text.empty() && text[0] == '{', where(path),
           ": the header does not start with '{' (not a safetensors file?)");
  // nlohmann keeps the last of duplicate keys silently; a duplicate tensor name must be an error.
  std::vector<std::set<std::string>> keys;
  auto reject_duplicates = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (ev == json::parse_event_t::key) {
      const std::string k = parsed.get<std::string>();
      TG_CHECK(keys.back().insert(k).second, where(path), ": the header names '", k, "' twice");
    }
    return true;
  };
  try {
    return json::parse(text, reject_duplicates);
  } catch (const json::exception& e) {
    throw Error(detail::cat(where(path), ": the header is not valid JSON: ", e.what()));
  }
}

}  // namespace

std::string_view safetensors_dtype(DType dt) {
  for (const DTypeName& d : kDTypes) {
    if (d.dt == dt) return d.name;
  }
  TG_ASSERT(false, "dtype without a safetensors name");
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  for (const DTypeName& d : kDTypes) {
    if (d.name == s) return d.dt;
  }
  return std::nullopt;
}

namespace {

SafetensorsHeader read_header(int fd, uint64_t file_size, const std::filesystem::path& path,
                              Fnv1a64* hash) {
  TG_CHECK(file_size >= 8, where(path), " is ", file_size,
           " bytes, too short for the 8-byte header length (truncated?)");
  unsigned char len_bytes[8];
  read_exact(fd, len_bytes, 8, 0, path, "the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  TG_CHECK(n <= kMaxSafetensorsHeader, where(path), ": header length ", n, " exceeds the limit of ",
           kMaxSafetensorsHeader, " bytes (corrupt or not a safetensors file)");
  TG_CHECK(n <= file_size - 8, where(path), ": header length ", n, " runs past the end of the ",
           file_size, "-byte file (truncated?)");
  std::string text(n, '\0');
  read_exact(fd, text.data(), n, 8, path, "the header");
  if (hash) {
    hash->update(len_bytes, 8);
    hash->update(text.data(), text.size());
  }
  const json j = parse_header_json(text, path);
  TG_CHECK(j.is_object(), where(path), ": the header must be a JSON object");
  SafetensorsHeader h;
  h.header_bytes = n;
  h.file_bytes = file_size;
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      TG_CHECK(value.is_object(), where(path), ": __metadata__ must be an object");
      for (const auto& [mk, mv] : value.items()) {
        TG_CHECK(mv.is_string(), where(path), ": __metadata__ value of '", mk,
                 "' must be a string, got ", mv.dump());
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(key, value, path));
  }
  // The offsets must tile [0, data size) exactly: sorted by position, each tensor starts where
  // the previous one ended.
  const uint64_t data_bytes = file_size - 8 - n;
  std::stable_sort(h.entries.begin(), h.entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  uint64_t expected = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry& e : h.entries) {
    TG_CHECK(e.end <= data_bytes, where(path), ": tensor '", e.name, "' has data_offsets [",
             e.begin, ", ", e.end, "] past the end of the ", data_bytes,
             "-byte data section (truncated file?)");
    TG_CHECK(e.begin >= expected, where(path), ": tensor '", e.name, "' at [", e.begin, ", ", e.end,
             ") overlaps tensor '", prev ? prev->name : "", "' at [", prev ? prev->begin : 0, ", ",
             expected, ")");
    TG_CHECK(e.begin == expected, where(path), ": ", e.begin - expected, " bytes before tensor '",
             e.name, "' at [", e.begin, ", ", e.end,
             ") belong to no tensor (data_offsets must cover the data section without holes)");
    expected = e.end;
    prev = &e;
  }
  TG_CHECK(expected == data_bytes, where(path), ": the last ", data_bytes - expected, " of the ",
           data_bytes, " data bytes belong to no tensor");
  return h;
}

}  // namespace

SafetensorsHeader read_safetensors_header(const std::filesystem::path& path) {
  uint64_t size = 0;
  Fd fd = open_for_reading(path, size);
  return read_header(fd.get(), size, path, nullptr);
}

SafetensorsFile read_safetensors(const std::filesystem::path& path, Category category) {
  uint64_t size = 0;
  Fd fd = open_for_reading(path, size);
  Fnv1a64 hash;
  const SafetensorsHeader h = read_header(fd.get(), size, path, &hash);
  SafetensorsFile out;
  out.metadata = h.metadata;
  for (const SafetensorsEntry& e : h.entries) {
    Tensor t = empty(e.shape, {e.dtype, Device::cpu(), category});
    read_exact(fd.get(), t.data(), e.end - e.begin, h.data_start() + e.begin, path,
               "tensor '" + e.name + "'");
    hash.update(t.data(), e.end - e.begin);
    out.tensors.push_back({e.name, std::move(t)});
  }
  out.digest = {size, hash.h};
  return out;
}

namespace {

// Throws unless the file holds exactly the targets' names with matching shapes and dtypes.
std::map<std::string, const Tensor*> match_targets(const SafetensorsHeader& h,
                                                   const NamedTensors& targets,
                                                   const LoadIntoOptions& options,
                                                   const std::filesystem::path& path) {
  std::map<std::string, const Tensor*> by_name;
  for (const NamedTensor& t : targets) {
    TG_CHECK(by_name.emplace(t.name, &t.tensor).second, "loading ", where(path), ": target name '",
             t.name, "' appears twice");
    TG_CHECK(t.tensor.defined() && t.tensor.device().is_cpu(), "loading ", where(path),
             ": target '", t.name, "' must be a defined cpu tensor");
  }
  std::vector<std::string> problems;
  std::set<std::string> in_file;
  for (const SafetensorsEntry& e : h.entries) {
    in_file.insert(e.name);
    const auto it = by_name.find(e.name);
    if (it == by_name.end()) {
      problems.push_back("unexpected tensor '" + e.name + "'");
      continue;
    }
    const Tensor& t = *it->second;
    const bool convertible =
        options.allow_dtype_conversion && is_floating(e.dtype) && is_floating(t.dtype());
    if (e.shape != t.shape() || (e.dtype != t.dtype() && !convertible)) {
      problems.push_back(detail::cat("'", e.name, "' is ", shape_str(e.shape), " ",
                                     safetensors_dtype(e.dtype), " in the file but ",
                                     shape_str(t.shape()), " ", dtype_name(t.dtype()), " here"));
    }
  }
  for (const NamedTensor& t : targets) {
    if (!in_file.count(t.name)) problems.push_back("missing tensor '" + t.name + "'");
  }
  if (!problems.empty()) {
    std::string msg = detail::cat(where(path), " does not match (", problems.size(),
                                  " problems; a checkpoint of another model or config?): ");
    constexpr size_t kShown = 6;
    for (size_t i = 0; i < problems.size() && i < kShown; ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > kShown)
      msg += detail::cat("; ... (+", problems.size() - kShown, " more)");
    throw Error(msg);
  }
  return by_name;
}

}  // namespace

void check_loadable(const std::filesystem::path& path, const NamedTensors& targets,
                    const LoadIntoOptions& options) {
  match_targets(read_safetensors_header(path), targets, options, path);
}

FileDigest load_safetensors_into(const std::filesystem::path& path, const NamedTensors& targets,
                                 const LoadIntoOptions& options) {
  uint64_t size = 0;
  Fd fd = open_for_reading(path, size);
  Fnv1a64 hash;
  const SafetensorsHeader h = read_header(fd.get(), size, path, &hash);
  // Compare everything first, so that a file for another model changes nothing.
  const std::map<std::string, const Tensor*> by_name = match_targets(h, targets, options, path);
  NoGradGuard no_grad;  // parameters require grad; filling them is not part of any graph
  for (const SafetensorsEntry& e : h.entries) {
    const Tensor& t = *by_name.at(e.name);
    const uint64_t n = e.end - e.begin;
    const std::string what = "tensor '" + e.name + "'";
    if (t.dtype() == e.dtype && t.is_contiguous()) {
      read_exact(fd.get(), t.data(), n, h.data_start() + e.begin, path, what);
      hash.update(t.data(), n);
      t.storage()->bump_version();
    } else {
      const Tensor tmp = empty(e.shape, {e.dtype, Device::cpu(), Category::workspace});
      read_exact(fd.get(), tmp.data(), n, h.data_start() + e.begin, path, what);
      hash.update(tmp.data(), n);
      t.copy_(tmp);
    }
  }
  return {size, hash.h};
}

FileDigest write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                             const Metadata& metadata, const AtomicWriteOptions& options) {
  std::set<std::string> names;
  for (const NamedTensor& t : tensors) {
    TG_CHECK(!t.name.empty(), "writing ", where(path), ": a tensor has an empty name");
    TG_CHECK(t.name != "__metadata__", "writing ", where(path),
             ": '__metadata__' is reserved and cannot name a tensor");
    TG_CHECK(names.insert(t.name).second, "writing ", where(path), ": tensor name '", t.name,
             "' appears twice");
    TG_CHECK(t.tensor.defined(), "writing ", where(path), ": tensor '", t.name, "' is undefined");
    TG_CHECK(t.tensor.device().is_cpu(), "writing ", where(path), ": tensor '", t.name, "' is on ",
             t.tensor.device().str(), "; copy it to the cpu first");
  }
  // Decreasing element size keeps every tensor aligned to its element size; stable, so the
  // caller's order survives within a size.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors[a].tensor.itemsize() > tensors[b].tensor.itemsize();
  });
  // The reference writer's header: "__metadata__" first (when there is any), then the tensors in
  // data order, each {"dtype", "shape", "data_offsets"}, compact, padded with spaces to 8 bytes.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const Tensor& t = tensors[i].tensor;
    const uint64_t n = static_cast<uint64_t>(t.nbytes());
    header[tensors[i].name] = {{"dtype", safetensors_dtype(t.dtype())},
                               {"shape", t.shape()},
                               {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::cat("writing ", where(path),
                            ": cannot encode the header (names and "
                            "metadata must be valid UTF-8): ",
                            e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(text.size() >> (8 * i));

  AtomicFile file(path, options);
  file.write(len_bytes, 8);
  file.write(text);
  for (size_t i : order) {
    const Tensor& t = tensors[i].tensor;
    if (t.numel() == 0) continue;
    if (t.is_contiguous()) {
      file.write(t.data(), static_cast<size_t>(t.nbytes()));
    } else {
      NoGradGuard no_grad;
      CategoryScope scratch(Category::workspace);
      const Tensor packed = t.contiguous();
      file.write(packed.data(), static_cast<size_t>(packed.nbytes()));
    }
  }
  return file.commit();
}

}  // namespace tilegrad::io
