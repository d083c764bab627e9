// Gradient accumulation through the real engine: two micro-batch backwards into .grad and a step
// with accumulation_steps = 2 equal one full-batch step; zero_grad returns the gradient bytes to
// the allocator (the tracker's gradient category drops to zero) and the next backward starts
// afresh.
#include "optim/optim_testing.h"
#include "optim/sgd.h"

namespace tgtest {
namespace {

// mean((x W)²): a scalar whose gradient in W depends on every row of x.
Tensor loss_of(const Tensor& x, const Tensor& w) {
  const Tensor y = matmul(x, w);
  return mean(y * y);
}

TEST(GradAccumulation, MicroBatchesEqualTheFullBatch) {
  const Tensor x = rnd({8, 5}, 1, DType::f32);
  const Tensor w_full = param({5, 3}, 2), w_acc = w_full.detach().clone();
  w_acc.set_requires_grad();
  optim::SGD full({{"w", w_full}}, {.lr = 0.5});
  optim::SGD acc({{"w", w_acc}}, {.lr = 0.5});
  for (int step = 0; step < 3; ++step) {
    loss_of(x, w_full).backward();
    full.step();
    full.zero_grad();
    // Two halves of the batch, each a mean over its 4 rows: their sum is twice the full mean.
    loss_of(x.slice(0, 0, 4), w_acc).backward();
    loss_of(x.slice(0, 4, 8), w_acc).backward();
    const optim::StepResult r = acc.step({.accumulation_steps = 2});
    acc.zero_grad();
    EXPECT_GT(r.grad_norm, 0.0);
  }
  EXPECT_LE(max_abs_diff(w_full, w_acc), 1e-6);
  // Without the averaging the step would be twice as long: a detectable difference.
  const Tensor w_wrong = w_full.detach().clone();
  w_wrong.set_requires_grad();
  optim::SGD wrong({{"w", w_wrong}}, {.lr = 0.5});
  loss_of(x.slice(0, 0, 4), w_wrong).backward();
  loss_of(x.slice(0, 4, 8), w_wrong).backward();
  loss_of(x, w_full).backward();
  wrong.step();
  full.step();
  EXPECT_GT(max_abs_diff(w_full, w_wrong), 1e-3);
}

TEST(GradAccumulation, ZeroGradFreesTheGradientBuffers) {
  const Tensor x = rnd({16, 32}, 1, DType::f32);
  const Tensor w = param({32, 24}, 2);
  optim::SGD opt({{"w", w}}, {.lr = 0.1});
  MemoryScope scope;
  for (int step = 0; step < 3; ++step) {
    loss_of(x, w).backward();
    loss_of(x, w).backward();  // accumulates into the same buffer
    EXPECT_EQ(scope.delta().live_of(Category::gradient), w.nbytes());
    opt.step();
    opt.zero_grad();
    EXPECT_FALSE(w.grad().defined());
    EXPECT_EQ(scope.delta().live_of(Category::gradient), 0);
  }
  EXPECT_EQ(scope.delta().live_total, 0);
}

}  // namespace
}  // namespace tgtest
