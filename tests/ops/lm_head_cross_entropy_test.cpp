// The chunked LM-head cross-entropy against the plain composition cross_entropy(x · wᵀ, y): the
// same loss and gradients for any chunk size (ragged last chunks, ignored rows, float32 and
// float64), memory that never holds the [N, V] logits, and clear errors on bad input.
#include <algorithm>

#include "ops/lm_head_cross_entropy.h"
#include "testing.h"

namespace tgtest {
namespace {

struct Result {
  std::vector<double> loss, dx, dw;
};

Tensor targets_for(int64_t N, int64_t V, uint64_t seed, bool with_ignored) {
  Generator gen(seed);
  std::vector<int64_t> y = randint({N}, 0, V, gen).to_vector<int64_t>();
  if (with_ignored) {
    for (size_t i = 0; i < y.size(); i += 5) y[i] = -100;  // every fifth row is padding
  }
  return from_vector(y, {N}, {DType::i64});
}

Result run(const Tensor& x0, const Tensor& w0, const Tensor& y, int64_t chunk) {
  const Tensor x = x0.detach().set_requires_grad(true);
  const Tensor w = w0.detach().set_requires_grad(true);
  const Tensor loss = chunk < 0 ? cross_entropy(matmul(x, transpose(w, 0, 1)), y)
                                : lm_head_cross_entropy(x, w, y, chunk);
  loss.backward();
  return {loss.to_vector<double>(), x.grad().to_vector<double>(), w.grad().to_vector<double>()};
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TEST(LmHeadCrossEntropy, EqualsThePlainHeadForAnyChunkSize) {
  const int64_t N = 37, C = 19;  // odd sizes: chunks of 5 and 16 end ragged
  // V = 53 runs on a zero-padded copy of w; V = 128 is aligned and runs on w itself.
  for (const int64_t V : {int64_t{53}, int64_t{128}}) {
    SCOPED_TRACE(testing::Message() << "V " << V);
    const Tensor x = rnd({N, C}, 11), w = rnd({V, C}, 12);
    for (bool ignored : {false, true}) {
      const Tensor y = targets_for(N, V, 13, ignored);
      const Result ref = run(x, w, y, -1);
      EXPECT_GT(ref.loss[0], 1.0);  // about log V: not a degenerate case
      for (int64_t chunk : {1, 5, 16, 37, 1000, 0}) {
        const Result r = run(x, w, y, chunk);
        EXPECT_LT(max_abs_diff(r.loss, ref.loss), 1e-13) << "chunk " << chunk;
        EXPECT_LT(max_abs_diff(r.dx, ref.dx), 1e-14) << "chunk " << chunk;
        EXPECT_LT(max_abs_diff(r.dw, ref.dw), 1e-14) << "chunk " << chunk;
      }
    }
  }
}

TEST(LmHeadCrossEntropy, Float32AgreesWithTheFloat64Reference) {
  const int64_t N = 64, C = 24, V = 101;
  const Tensor x = rnd({N, C}, 21), w = rnd({V, C}, 22);
  const Tensor y = targets_for(N, V, 23, true);
  const Result ref = run(x, w, y, -1);
  const Result r = run(x.to(DType::f32), w.to(DType::f32), y, 7);
  EXPECT_LT(max_abs_diff(r.loss, ref.loss), 1e-5);
  EXPECT_LT(max_abs_diff(r.dx, ref.dx), 1e-6);
  EXPECT_LT(max_abs_diff(r.dw, ref.dw), 1e-6);
}

TEST(LmHeadCrossEntropy, AllRowsIgnoredGiveZeroLossAndZeroGradients) {
  const Tensor x = rnd({6, 4}, 31), w = rnd({9, 4}, 32);
  const Tensor y = from_vector(std::vector<int64_t>(6, -100), {6}, {DType::i64});
  const Result r = run(x, w, y, 4);
  EXPECT_EQ(r.loss[0], 0.0);
  EXPECT_EQ(max_abs_diff(r.dx, std::vector<double>(r.dx.size(), 0.0)), 0.0);
  EXPECT_EQ(max_abs_diff(r.dw, std::vector<double>(r.dw.size(), 0.0)), 0.0);
}

// The tracker's view of one forward + backward: the peak above the start, and the largest single
// allocation. Chunked, nothing of N x V elements is ever allocated; the plain head allocates the
// logits and their gradient.
TEST(LmHeadCrossEntropy, NeverAllocatesTheFullLogits) {
  const int64_t N = 2048, C = 16, V = 1000, chunk = 128;
  const Tensor x0 = rnd({N, C}, 41, DType::f32), w0 = rnd({V, C}, 42, DType::f32);
  const Tensor y = targets_for(N, V, 43, false);
  auto measure = [&](int64_t c) {
    const Tensor x = x0.detach().set_requires_grad(true);
    const Tensor w = w0.detach().set_requires_grad(true);
    MemoryScope scope(/*record_timeline=*/true);
    {
      const Tensor loss = c < 0 ? cross_entropy(matmul(x, transpose(w, 0, 1)), y)
                                : lm_head_cross_entropy(x, w, y, c);
      loss.backward();
    }
    int64_t largest = 0;
    for (const MemoryEvent& e : scope.events()) {
      if (e.alloc) largest = std::max(largest, e.bytes);
    }
    return std::pair{scope.peak_delta(), largest};
  };
  const int64_t full = N * V * 4;  // one float32 [N, V] tensor
  const auto [plain_peak, plain_largest] = measure(-1);
  const auto [chunked_peak, chunked_largest] = measure(chunk);
  EXPECT_GE(plain_largest, full);
  EXPECT_GE(plain_peak, full);
  // Chunk rows are padded to an aligned stride (lm_head_padded_vocab).
  const int64_t Vp = lm_head_padded_vocab(V);
  EXPECT_LE(chunked_largest, chunk * Vp * 4);
  // One chunk buffer (the gradient overwrites the logits), the padded copy of w, dx, dw (at Vp),
  // the per-row losses and logsumexps: far below one [N, V] tensor.
  EXPECT_LE(chunked_peak, chunk * Vp * 4 + (Vp * C + N * C + Vp * C + 2 * N) * 4 + 4096);
  EXPECT_LT(chunked_peak * 4, plain_peak);
}

TEST(LmHeadCrossEntropy, BadInputIsAClearError) {
  const Tensor x = rnd({4, 3}, 51), w = rnd({5, 3}, 52);
  const Tensor y = from_vector(std::vector<int64_t>{0, 1, 2, 3}, {4}, {DType::i64});
  EXPECT_NE(error_of([&] {
              lm_head_cross_entropy(x, rnd({5, 2}, 53), y);
            }).find("[V, C]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { lm_head_cross_entropy(x, w.to(DType::f32), y); }).find("dtype"),
            std::string::npos);
  const Tensor bad = from_vector(std::vector<int64_t>{0, 1, 5, 3}, {4}, {DType::i64});
  const std::string msg = error_of([&] { lm_head_cross_entropy(x, w, bad); });
  EXPECT_NE(msg.find("target 5 at position 2"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { lm_head_cross_entropy(x, w, y, -1); }).find("chunk_rows"),
            std::string::npos);
  EXPECT_NE(error_of([&] { lm_head_cross_entropy(x, w, slice(y, 0, 0, 3)); }).find("[N]"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
