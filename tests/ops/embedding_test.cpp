// Embedding: gathered values, gradients (repeated indices, non-contiguous operands) against finite
// differences and a loop reference, index validation, and a backward that is bitwise independent of
// the thread count.
#include <omp.h>

#include <cstring>
#include <string>

#include "testing.h"

namespace tgtest {
namespace {

// Indices with repeats (row 3 three times, row 0 twice) and unused rows, in the given dtype.
Tensor repeated_indices(DType dt) {
  return from_vector(std::vector<int64_t>{3, 0, 3, 6, 3, 0}, {2, 3}, {dt});
}

// out[p, c] == w[idx[p], c] exactly, for every position p.
void expect_gathered(const Tensor& out, const Tensor& w, const Tensor& idx) {
  const int64_t C = w.size(1);
  ASSERT_EQ(out.numel(), idx.numel() * C);
  const auto vw = w.to_vector<double>(), vo = out.to_vector<double>();
  const auto vi = idx.to_vector<int64_t>();
  for (size_t p = 0; p < vi.size(); ++p) {
    for (int64_t c = 0; c < C; ++c) {
      EXPECT_EQ(vo[p * C + c], vw[vi[p] * C + c]) << "position " << p << " column " << c;
    }
  }
}

TEST(Embedding, GathersRowsForInt32AndInt64Indices) {
  for (DType idt : {DType::i32, DType::i64}) {
    SCOPED_TRACE(dtype_name(idt));
    const Tensor w = rnd({7, 5}, 1);
    const Tensor idx = repeated_indices(idt);
    const Tensor out = embedding(w, idx);
    ASSERT_EQ(out.shape(), (Shape{2, 3, 5}));
    EXPECT_EQ(out.dtype(), DType::f64);
    expect_gathered(out, w, idx);
  }
}

TEST(Embedding, IndexShapesFromScalarToRank3) {
  const Tensor w = rnd({11, 3}, 2);
  const Tensor scalar = from_vector(std::vector<int64_t>{10}, {});
  EXPECT_EQ(embedding(w, scalar).shape(), (Shape{3}));
  expect_gathered(embedding(w, scalar), w, scalar);
  const Tensor cube = from_vector(std::vector<int64_t>{0, 10, 5, 5, 1, 2, 9, 4}, {2, 2, 2});
  EXPECT_EQ(embedding(w, cube).shape(), (Shape{2, 2, 2, 3}));
  expect_gathered(embedding(w, cube), w, cube);
  const Tensor none = from_vector(std::vector<int64_t>{}, {0, 4});
  EXPECT_EQ(embedding(w, none).shape(), (Shape{0, 4, 3}));
}

TEST(Embedding, LowPrecisionWeightsAreGatheredExactly) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor w = rnd({9, 4}, 3).to(dt);
    const Tensor idx = from_vector(std::vector<int64_t>{8, 1, 1}, {3}, {DType::i32});
    const Tensor out = embedding(w, idx);
    EXPECT_EQ(out.dtype(), dt);
    expect_gathered(out, w, idx);
  }
}

TEST(Embedding, GradientWithRepeatedIndicesMatchesFiniteDifferences) {
  for (DType idt : {DType::i32, DType::i64}) {
    SCOPED_TRACE(dtype_name(idt));
    const Tensor w = rnd({7, 5}, 4).set_requires_grad(true);
    const Tensor idx = repeated_indices(idt);
    expect_gradcheck([&](const std::vector<Tensor>& x) { return embedding(x[0], idx); }, {w});
  }
}

TEST(Embedding, GradientSumsRowsPerIndex) {
  // gweight[v] = Σ over positions p with idx[p] == v of gout[p]; other rows are exactly zero.
  const int64_t V = 7, C = 5;
  const Tensor w = rnd({V, C}, 5).set_requires_grad(true);
  const Tensor idx = repeated_indices(DType::i64);
  const Tensor gout = rnd({2, 3, C}, 6);
  embedding(w, idx).backward(gout);
  const auto vi = idx.to_vector<int64_t>();
  const auto vg = gout.to_vector<double>();
  std::vector<double> ref(static_cast<size_t>(V * C), 0.0);
  for (size_t p = 0; p < vi.size(); ++p) {
    for (int64_t c = 0; c < C; ++c) ref[vi[p] * C + c] += vg[p * C + c];
  }
  const auto got = w.grad().to_vector<double>();
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-15) << i;
  for (int64_t c = 0; c < C; ++c) EXPECT_EQ(got[1 * C + c], 0.0);  // row 1 is never looked up
}

TEST(Embedding, NonContiguousWeightAndIndices) {
  const Tensor w = noncontiguous(rnd({6, 4}, 7)).set_requires_grad(true);
  const Tensor idx = noncontiguous(from_vector(std::vector<int64_t>{5, 2, 2, 0, 5, 5}, {3, 2}));
  ASSERT_FALSE(w.is_contiguous());
  ASSERT_FALSE(idx.is_contiguous());
  expect_gathered(embedding(w, idx), w, idx);
  expect_gradcheck([&](const std::vector<Tensor>& x) { return embedding(x[0], idx); }, {w});
}

TEST(Embedding, OutOfRangeIndexThrowsBeforeWriting) {
  const int64_t V = 7;
  for (DType idt : {DType::i32, DType::i64}) {
    for (int64_t bad : {int64_t{-1}, V, int64_t{-7}, int64_t{1000}}) {
      SCOPED_TRACE(std::string(dtype_name(idt)) + " " + std::to_string(bad));
      const Tensor w = rnd({V, 3}, 8).set_requires_grad(true);
      const auto before = w.to_vector<double>();
      const Tensor idx = from_vector(std::vector<int64_t>{1, 6, 0, bad, 2}, {5}, {idt});
      const std::string msg = error_of([&] { embedding(w, idx); });
      ASSERT_FALSE(msg.empty()) << "no error";
      EXPECT_NE(msg.find("embedding"), std::string::npos) << msg;
      EXPECT_NE(msg.find("index " + std::to_string(bad)), std::string::npos) << msg;
      EXPECT_NE(msg.find("position 3"), std::string::npos) << msg;
      EXPECT_NE(msg.find("[0, 7)"), std::string::npos) << msg;
      EXPECT_EQ(w.to_vector<double>(), before);
      EXPECT_FALSE(w.grad().defined());
    }
  }
}

TEST(Embedding, RejectsBadArguments) {
  const Tensor w = rnd({4, 3}, 9);
  const Tensor idx = from_vector(std::vector<int64_t>{1, 2}, {2});
  EXPECT_NE(error_of([&] { embedding(w, idx.to(DType::f32)); }).find("embedding"),
            std::string::npos);
  EXPECT_NE(error_of([&] { embedding(w.reshape({12}), idx); }).find("embedding"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              embedding(idx.reshape({1, 2}), idx);
            }).find("embedding"),
            std::string::npos);  // integer weight
  EXPECT_NE(error_of([&] { embedding(rnd({0, 3}, 9), idx); }).find("embedding"), std::string::npos);
}

TEST(Embedding, BackwardIsBitwiseIndependentOfThreadCount) {
  // Many positions on few rows, so each row sums hundreds of float gradients: any change in the
  // order of those additions would show in the low bits. Large enough for the parallel paths.
  const int64_t V = 37, C = 300, n = 40000;
  Generator gen(10);
  const Tensor idx = randint({n}, 0, V, gen);
  const Tensor w = rnd({V, C}, 11, DType::f32).set_requires_grad(true);
  const Tensor gout = rnd({n, C}, 12, DType::f32);
  const int saved_threads = omp_get_max_threads();
  std::vector<std::vector<float>> grads;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    w.set_grad(Tensor());
    embedding(w, idx).backward(gout);
    grads.push_back(w.grad().to_vector<float>());
  }
  omp_set_num_threads(saved_threads);
  for (size_t k = 1; k < grads.size(); ++k) {
    ASSERT_EQ(grads[k].size(), grads[0].size());
    EXPECT_EQ(std::memcmp(grads[k].data(), grads[0].data(), grads[0].size() * sizeof(float)), 0)
        << "threads run " << k;
  }
  // And the sums are right: compare with a float64 loop (float sums of ~1000 terms in [-1, 1)).
  const auto vi = idx.to_vector<int64_t>();
  const auto vg = gout.to_vector<double>();
  std::vector<double> ref(static_cast<size_t>(V * C), 0.0);
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t c = 0; c < C; ++c) ref[vi[p] * C + c] += vg[p * C + c];
  }
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(grads[0][i] - ref[i]));
  EXPECT_LT(worst, 1e-3);
}

TEST(Embedding, Bf16GradientAccumulatesInFloat) {
  // 1024 gradients of 1/256 on one row. Summed in bf16 the total would stall once 1/256 drops to
  // half an ulp or less (at 1 or 2); summed in float it is exactly 4, which bf16 represents.
  const int64_t n = 1024;
  const Tensor w = zeros({2, 1}, {DType::bf16}).set_requires_grad(true);
  const Tensor idx = zeros({n}, {DType::i64});
  const Tensor gout = full({n, 1}, 1.0 / 256, {DType::bf16});
  embedding(w, idx).backward(gout);
  EXPECT_EQ(w.grad().to_vector<double>()[0], 4.0);  // 1024 / 256, exact in bf16
  EXPECT_EQ(w.grad().to_vector<double>()[1], 0.0);
}

// A tied weight whose other gradient arrives first (GPT's wte: the head's backward runs before the
// embedding's): the embedding's sums go into that gradient in place. The result has the values of
// the two gradients added separately, and the backward holds one [V, C] gradient, not two or three.
TEST(Embedding, TiedWeightAddsIntoTheGradientAlreadyThere) {
  const int64_t V = 37, C = 16, n = 24;
  Generator gen(91);
  const Tensor idx = randint({n}, 0, V / 2, gen);  // repeats, and rows V / 2 .. V - 1 unused
  const Tensor y = randint({n}, 0, V, gen);
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const Tensor w0 = rnd({V, C}, 90, dt, -1, 1);
    auto loss_of = [&](const Tensor& w_emb, const Tensor& w_head) {
      return lm_head_cross_entropy(tanh(embedding(w_emb, idx)), w_head, y);
    };
    Tensor w = w0.detach();
    w.set_requires_grad(true);
    const Tensor loss = loss_of(w, w);
    MemoryScope scope;
    const int64_t base = scope.snapshot().live_of(Category::gradient);
    loss.backward();
    const int64_t grad_peak = scope.snapshot().peak_of(Category::gradient) - base;
    // The same two gradients from two separate weights, added afterwards.
    Tensor w1 = w0.detach(), w2 = w0.detach();
    w1.set_requires_grad(true);
    w2.set_requires_grad(true);
    loss_of(w1, w2).backward();
    const Tensor want = add(w2.grad(), w1.grad());
    ASSERT_EQ(w.grad().dtype(), dt);
    EXPECT_EQ(w.grad().to(DType::f64).to_vector<double>(), want.to(DType::f64).to_vector<double>());
    // One [V, C] gradient, the head's, which becomes w's (the head computed its other gradient in
    // the forward); added separately, the embedding's own [V, C] would be live beside it.
    EXPECT_EQ(grad_peak, V * C * static_cast<int64_t>(dtype_size(dt)));
  }
}

TEST(Embedding, ForwardModeMatchesReverseMode) {
  const Tensor w = rnd({6, 4}, 13);
  const Tensor idx = from_vector(std::vector<int64_t>{5, 0, 0, 3}, {2, 2}, {DType::i32});
  expect_jvp_matches_vjp([&](const std::vector<Tensor>& x) { return embedding(x[0], idx); }, {w});
  // The tangent is the lookup of the weight's tangent.
  const Tensor v = rnd({6, 4}, 14);
  auto [y, t] = jvp([&](const Tensor& x) { return embedding(x, idx); }, w, v);
  expect_gathered(t, v, idx);
}

TEST(Embedding, SavesOnlyTheIndices) {
  const Tensor w = rnd({50, 8}, 15).set_requires_grad(true);
  const Tensor idx = from_vector(std::vector<int64_t>{1, 2, 3}, {3});
  const Tensor out = embedding(w, idx);
  ASSERT_TRUE(out.grad_fn() != nullptr);
  EXPECT_EQ(out.grad_fn()->saved_bytes(), idx.nbytes());
}

}  // namespace
}  // namespace tgtest
