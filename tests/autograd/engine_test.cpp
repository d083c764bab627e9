// The backward engine: lazily allocated gradients, freed as soon as consumed; saved tensors
// released after their node runs; retain_graph; no_grad; hooks; in-place detection; long chains.
#include <cmath>
#include <numeric>

#include "testing.h"

namespace tgtest {
namespace {

int64_t live(Category c) {
  return tracker().stats().live_of(c);
}

TEST(Engine, GradientBuffersAreCreatedOnlyInTheBackward) {
  const Tensor w = rnd({8, 8}, 1).set_requires_grad(true);
  const Tensor x = rnd({4, 8}, 2);
  MemoryScope scope;
  Tensor y = tanh(matmul(x, w));
  EXPECT_EQ(scope.delta().live_of(Category::gradient), 0);  // nothing before the backward
  EXPECT_FALSE(w.grad().defined());
  sum(y).backward();
  ASSERT_TRUE(w.grad().defined());
  // After the backward only the leaf's gradient remains in the gradient category.
  EXPECT_EQ(scope.delta().live_of(Category::gradient), 8 * 8 * 8);
}

// A chain h_i = tanh(h_{i-1} W_i): at each backward step the engine holds exactly one activation
// gradient (of the layer being processed) plus the leaf gradients finished so far, and the saved
// activations of the finished layers are gone.
TEST(Engine, ChainFreesGradientsAndSavedTensorsStepByStep) {
  constexpr int L = 6;
  constexpr int64_t B = 5, C = 7, act = B * C * 8, wbytes = C * C * 8;
  std::vector<Tensor> ws;
  for (int i = 0; i < L; ++i) ws.push_back(rnd({C, C}, 10 + i).set_requires_grad(true));
  Tensor h = rnd({B, C}, 3);
  MemoryScope scope;
  for (int i = 0; i < L; ++i) h = tanh(matmul(h, ws[i]));
  // Per layer one activation stays alive: matmul saves its input h_{i-1} (for dW) and tanh saves
  // its output h_i; the matmul output z_i is read by nobody's backward (tanh' reads y), so it is
  // freed as soon as tanh has run.
  EXPECT_EQ(scope.delta().live_of(Category::activation), L * act);
  Tensor loss = sum(h);
  h = Tensor();
  std::vector<int64_t> grad_live, act_live;
  BackwardOptions opts;
  opts.on_node_done = [&](const Node&) {
    const MemoryStats d = scope.delta();
    grad_live.push_back(d.live_of(Category::gradient));
    act_live.push_back(d.live_of(Category::activation));
  };
  run_backward(loss, Tensor(), opts);
  // Nodes: sum, then (tanh, matmul, AccumulateGrad) for each layer from the top.
  ASSERT_EQ(grad_live.size(), 1u + 3u * L);
  int64_t max_grad = 0;
  for (int64_t g : grad_live) max_grad = std::max(max_grad, g);
  // Never more than one activation gradient + one dW in flight, on top of finished weight grads.
  EXPECT_LE(max_grad, L * wbytes + act + wbytes);
  EXPECT_EQ(grad_live.back(), L * wbytes);  // only the leaves' .grad remain
  EXPECT_EQ(act_live.back(), 8);            // the loss scalar itself (still referenced)
  // Saved activations go down monotonically.
  for (size_t i = 1; i < act_live.size(); ++i) EXPECT_LE(act_live[i], act_live[i - 1]);
}

TEST(Engine, RetainGraphAllowsASecondBackwardAndAccumulates) {
  const Tensor x = rnd({3, 4}, 4).set_requires_grad(true);
  const Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  const auto g1 = x.grad().to_vector<double>();
  y.backward();
  const auto g2 = x.grad().to_vector<double>();
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_DOUBLE_EQ(g2[i], 2 * g1[i]);
}

TEST(Engine, BackwardTwiceWithoutRetainGraphThrowsAndLosesNothing) {
  const Tensor x = rnd({3, 4}, 5).set_requires_grad(true);
  const Tensor y = sum(mul(x, x));
  y.backward();
  const auto g = x.grad().to_vector<double>();
  try {
    y.backward();
    FAIL() << "second backward did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }
  EXPECT_EQ(x.grad().to_vector<double>(), g);
}

TEST(Engine, SavedTensorsAreReleasedUnlessRetained) {
  const Tensor x = rnd({64, 64}, 6).set_requires_grad(true);
  Tensor y = exp(x);  // exp saves its output: one 32 KB activation held by the graph
  Tensor loss = sum(y);
  const int64_t saved = y.grad_fn()->saved_bytes();
  EXPECT_EQ(saved, 64 * 64 * 8);
  y = Tensor();
  const int64_t before = live(Category::activation);
  loss.backward();
  EXPECT_EQ(before - live(Category::activation), 64 * 64 * 8);
}

TEST(Engine, NoGradRecordsNothing) {
  const Tensor x = rnd({3, 3}, 7).set_requires_grad(true);
  NoGradGuard guard;
  const Tensor y = exp(matmul(x, x));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_THROW(y.backward(), Error);
}

TEST(Engine, ResultRequiresGradIffAnInputDoes) {
  const Tensor a = rnd({2, 2}, 8);
  Tensor b = rnd({2, 2}, 9);
  EXPECT_FALSE(add(a, b).requires_grad());
  b.set_requires_grad(true);
  EXPECT_TRUE(add(a, b).requires_grad());
  EXPECT_FALSE(add(a, b).is_leaf());
  EXPECT_TRUE(b.is_leaf());
}

TEST(Engine, LeafUsedTwiceAccumulatesAndTheFinalHookSeesTheWholeGradient) {
  const Tensor x = rnd({5}, 10).set_requires_grad(true);
  int calls = 0;
  std::vector<double> seen;
  x.register_grad_final_hook([&](const Tensor& leaf) {
    ++calls;
    seen = leaf.grad().to_vector<double>();
  });
  const Tensor y = sum(add(mul(x, 3.0), exp(x)));
  y.backward();
  EXPECT_EQ(calls, 1);
  const auto vx = x.to_vector<double>();
  for (size_t i = 0; i < vx.size(); ++i) EXPECT_NEAR(seen[i], 3.0 + std::exp(vx[i]), 1e-14);
  // Leaf gradients accumulate across backwards.
  sum(mul(x, 2.0)).backward();
  EXPECT_EQ(calls, 2);
  EXPECT_NEAR(x.grad().to_vector<double>()[0], 5.0 + std::exp(vx[0]), 1e-14);
}

TEST(Engine, InPlaceChangeOfASavedTensorIsDetected) {
  const Tensor x = rnd({4}, 11).set_requires_grad(true);
  Tensor y = exp(x);  // saves y
  const Tensor loss = sum(y);
  {
    NoGradGuard g;
    y.mul_(2.0);
  }
  try {
    loss.backward();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("modified in place"), std::string::npos) << e.what();
  }
}

TEST(Engine, InPlaceOnALeafThatRequiresGradIsRefused) {
  const Tensor x = rnd({4}, 12).set_requires_grad(true);
  EXPECT_THROW(x.add_(x), Error);
  EXPECT_THROW(x.fill_(1.0), Error);
  NoGradGuard g;
  EXPECT_NO_THROW(x.mul_(0.5));  // optimizer-style updates happen under no_grad
}

TEST(Engine, BackwardOnATensorThatDoesNotRequireGradThrows) {
  const Tensor x = rnd({2, 3}, 13);
  try {
    sum(x).backward();
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("backward"), std::string::npos);
    EXPECT_NE(m.find("does not require grad"), std::string::npos);
  }
  // A non-scalar root needs an explicit gradient.
  const Tensor w = rnd({2, 3}, 14).set_requires_grad(true);
  EXPECT_THROW(exp(w).backward(), Error);
  EXPECT_THROW(exp(w).backward(rnd({3, 2}, 15)), Error);
  EXPECT_NO_THROW(exp(w).backward(rnd({2, 3}, 16)));
}

TEST(Engine, SetRequiresGradOnlyOnFloatLeaves) {
  EXPECT_THROW(arange(3, {DType::i64}).set_requires_grad(true), Error);
  const Tensor x = rnd({2}, 17).set_requires_grad(true);
  EXPECT_THROW(exp(x).set_requires_grad(false), Error);
}

TEST(Engine, TenThousandNodeChain) {
  const Tensor x = rnd({16}, 18).set_requires_grad(true);
  Tensor h = x;
  for (int i = 0; i < 10000; ++i) h = add(mul(h, 1.0001), 0.001);
  const Tensor loss = sum(h);
  loss.backward();  // must neither recurse nor overflow the stack
  const double expected = std::pow(1.0001, 10000);
  for (double g : x.grad().to_vector<double>()) EXPECT_NEAR(g, expected, 1e-9 * expected);
}

TEST(Engine, DestroyingAHundredThousandNodeGraphDoesNotRecurse) {
  const Tensor x = rnd({1}, 19).set_requires_grad(true);
  {
    Tensor h = x;
    for (int i = 0; i < 100000; ++i) h = mul(h, 1.0);
  }  // the whole graph is freed here
  SUCCEED();
}

TEST(Engine, EagerGradientBuffersAreAllocatedWithTheTensor) {
  Tensor w = rnd({6, 6}, 20);
  const Tensor x = rnd({3, 6}, 21);
  MemoryScope scope;
  EagerGradScope eager;
  w.set_requires_grad(true);
  EXPECT_EQ(scope.delta().live_of(Category::gradient), 6 * 6 * 8);
  Tensor y = matmul(x, w);
  EXPECT_EQ(scope.delta().live_of(Category::gradient), 6 * 6 * 8 + 3 * 6 * 8);
  sum(y).backward();
  // Gradients agree with the lazy path.
  const auto eager_grad = w.grad().to_vector<double>();
  Tensor w2 = w.detach();
  {
    EagerGradScope lazy(false);
    w2.set_requires_grad(true);
    sum(matmul(x, w2)).backward();
  }
  EXPECT_EQ(w2.grad().to_vector<double>(), eager_grad);
}

TEST(Engine, BranchingGraphGradients) {
  // Residual and diamond structures with shared inputs.
  const Tensor a = rnd({3, 4}, 22).set_requires_grad(true);
  const Tensor w = rnd({4, 4}, 23).set_requires_grad(true);
  expect_gradcheck(
      [](const std::vector<Tensor>& v) {
        const Tensor h = tanh(matmul(v[0], v[1]));
        const Tensor r = add(v[0], h);      // residual
        return mul(sigmoid(r), add(r, h));  // diamond: r and h used twice
      },
      {a, w});
}

}  // namespace
}  // namespace tgtest
