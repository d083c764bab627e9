// Batches: every row is a window of the file with y one token ahead of x; the same seed gives the
// same batches, another seed others; a sampler rebuilt from a stored generator state continues
// the sequence exactly; window starts cover the whole valid range; too-short files are refused;
// the batches feed embedding and cross_entropy as they are.
#include "data/batch_sampler.h"

#include <set>

#include "data/data_testing.h"

namespace tgtest {
namespace {

// A token file whose token at position i is i % vocab, so a window's start can be read off x.
std::shared_ptr<const data::TokenFile> ramp_file(const ScratchDir& dir, int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>(i % vocab);
  data::write_token_file(dir / "ramp.bin", ids);
  return std::make_shared<const data::TokenFile>(data::TokenFile::open(dir / "ramp.bin", vocab));
}

void expect_same(const data::Batch& a, const data::Batch& b) {
  EXPECT_EQ(a.x.to_vector<int64_t>(), b.x.to_vector<int64_t>());
  EXPECT_EQ(a.y.to_vector<int64_t>(), b.y.to_vector<int64_t>());
}

TEST(BatchSampler, RowsAreWindowsWithTargetsOneAhead) {
  ScratchDir dir;
  const auto file = ramp_file(dir, 5000, 65536);  // token i is i
  const int64_t B = 6, T = 17;
  data::BatchSampler s(file, B, T, Generator(123));
  for (int step = 0; step < 20; ++step) {
    const std::vector<int64_t> starts = s.peek_offsets();
    const data::Batch batch = s.next();
    ASSERT_EQ(batch.x.shape(), (Shape{B, T}));
    ASSERT_EQ(batch.y.shape(), (Shape{B, T}));
    EXPECT_EQ(batch.x.dtype(), DType::i64);
    EXPECT_EQ(batch.y.dtype(), DType::i64);
    const auto x = batch.x.to_vector<int64_t>(), y = batch.y.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      const int64_t start = x[static_cast<size_t>(b * T)];
      EXPECT_EQ(start, starts[static_cast<size_t>(b)]);
      EXPECT_GE(start, 0);
      EXPECT_LE(start + T, 4999);  // the target of the last position is still in the file
      for (int64_t t = 0; t < T; ++t) {
        EXPECT_EQ(x[static_cast<size_t>(b * T + t)], start + t);
        EXPECT_EQ(y[static_cast<size_t>(b * T + t)], start + t + 1);
      }
    }
  }
}

TEST(BatchSampler, SameSeedSameBatchesOtherSeedOthers) {
  ScratchDir dir;
  const auto file = ramp_file(dir, 100000, 65536);
  data::BatchSampler a(file, 4, 8, Generator(7)), b(file, 4, 8, Generator(7)),
      c(file, 4, 8, Generator(8));
  for (int step = 0; step < 5; ++step) {
    const data::Batch ba = a.next(), bb = b.next(), bc = c.next();
    expect_same(ba, bb);
    EXPECT_NE(ba.x.to_vector<int64_t>(), bc.x.to_vector<int64_t>());
  }
}

TEST(BatchSampler, ResumesBitExactlyFromAStoredGeneratorState) {
  ScratchDir dir;
  const auto file = ramp_file(dir, 100000, 65536);
  const int64_t B = 5;
  data::BatchSampler run(file, B, 32, Generator(2024));
  std::vector<data::Batch> uninterrupted;
  Generator saved;
  for (int step = 0; step < 8; ++step) {
    if (step == 3) saved = run.generator();  // what a checkpoint after 3 steps stores
    uninterrupted.push_back(run.next());
  }
  EXPECT_EQ(saved.seed(), 2024u);
  EXPECT_EQ(saved.offset(), 3 * data::BatchSampler::draws_per_batch(B));
  data::BatchSampler resumed(file, B, 32, Generator(saved.seed(), saved.offset()));
  for (int step = 3; step < 8; ++step) expect_same(resumed.next(), uninterrupted[step]);
  EXPECT_EQ(resumed.generator().offset(), run.generator().offset());
}

TEST(BatchSampler, StartsCoverTheWholeRange) {
  ScratchDir dir;
  // 12 tokens, T = 4: starts 0..7 are valid (start 7 reads tokens 7..11).
  const auto file = ramp_file(dir, 12, 256);
  data::BatchSampler s(file, 4, 4, Generator(99));
  std::set<int64_t> seen;
  for (int step = 0; step < 200; ++step) {
    for (const int64_t start : s.peek_offsets()) seen.insert(start);
    s.next();
  }
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(BatchSampler, FileOfExactlyOneWindow) {
  ScratchDir dir;
  const auto file = ramp_file(dir, 9, 256);
  data::BatchSampler s(file, 3, 8, Generator(1));
  const data::Batch b = s.next();
  EXPECT_EQ(b.x.to_vector<int64_t>()[0], 0);
  EXPECT_EQ(b.y.to_vector<int64_t>().back(), 8);
}

TEST(BatchSampler, TooShortFileIsAClearError) {
  ScratchDir dir;
  const auto file = ramp_file(dir, 8, 256);
  EXPECT_EQ(error_of([&] { data::BatchSampler(file, 2, 8, Generator(1)); }),
            "token file " + (dir / "ramp.bin").string() +
                ": 8 tokens, too short for one window of block_size + 1 = 9 tokens");
  EXPECT_NE(error_of([&] { data::BatchSampler(file, 0, 4, Generator(1)); }).find("batch size"),
            std::string::npos);
  EXPECT_NE(error_of([&] { data::BatchSampler(file, 2, 0, Generator(1)); }).find("block size"),
            std::string::npos);
}

TEST(BatchSampler, BatchesFeedEmbeddingAndCrossEntropy) {
  ScratchDir dir;
  const int64_t V = 50, C = 8, B = 3, T = 10;
  const auto file = ramp_file(dir, 1000, V);
  data::BatchSampler s(file, B, T, Generator(5));
  const data::Batch batch = s.next();
  const Tensor wte = rnd({V, C}, 1);
  const Tensor h = embedding(wte, batch.x);  // [B, T, C]
  ASSERT_EQ(h.shape(), (Shape{B, T, C}));
  const Tensor logits = matmul(h, wte.transpose(0, 1));  // [B, T, V]
  const Tensor loss = cross_entropy(logits, batch.y);
  EXPECT_TRUE(std::isfinite(loss.item()));
}

}  // namespace
}  // namespace tgtest
