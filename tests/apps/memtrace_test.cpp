// The memtrace experiment at a small size: exact per-layer bytes with lazy and eager gradient
// buffers, what the backward frees step by step and what is left at its end, the number of matmuls
// the engine runs, and the timeline's consistency with the step readings.
#include <gtest/gtest.h>

#include "apps/memtrace_experiment.h"
#include "core/error.h"

namespace {

using tilegrad::Category;
using tilegrad::DType;
using tilegrad::apps::MemtraceConfig;
using tilegrad::apps::MemtraceResult;
using tilegrad::apps::run_memtrace;

constexpr int64_t L = 5, B = 400, D = 100;
constexpr int64_t kAct = B * D * 8;  // one x_i in f64: 320,000 bytes
constexpr int64_t kW = D * D * 8;    // one W_i (and its gradient): 80,000 bytes
constexpr int64_t kScalar = 8;       // the loss, and its seed gradient

MemtraceConfig small(bool eager) {
  MemtraceConfig c;
  c.layers = L;
  c.batch = B;
  c.dim = D;
  c.dtype = DType::f64;
  c.eager_grads = eager;
  return c;
}

// What must be live when the backward has finished, counted from before the setup, in either mode:
//   parameters  L·W        the weights
//   other       act        the input x_0 (held by the experiment; it never requires grad)
//   gradient    L·W        one .grad per weight; every activation gradient has been consumed
//                          and freed, and so has the seed
//   activation  act + 8    x_L, still held as the forward's result (no node saved it: sum keeps
//                          nothing), and the scalar loss; x_1..x_{L-1} were saved only by the node
//                          of the next layer and were freed when that node ran
constexpr int64_t kFinalParameter = L * kW;
constexpr int64_t kFinalOther = kAct;
constexpr int64_t kFinalGradient = L * kW;
constexpr int64_t kFinalActivation = kAct + kScalar;
constexpr int64_t kFinal = kFinalParameter + kFinalOther + kFinalGradient + kFinalActivation;

void expect_final_state(const MemtraceResult& r) {
  ASSERT_FALSE(r.backward.empty());
  const auto& end = r.backward.back().mem;
  EXPECT_EQ(end.of(Category::parameter), kFinalParameter);
  EXPECT_EQ(end.of(Category::other), kFinalOther);
  EXPECT_EQ(end.of(Category::gradient), kFinalGradient);
  EXPECT_EQ(end.of(Category::activation), kFinalActivation);
  EXPECT_EQ(end.live, kFinal);
  EXPECT_EQ(r.stats.live_total, kFinal);
}

// Forward: 5 matmuls. Backward: layers 2..5 compute dx (g·Wᵀ) and dW (xᵀ·g); layer 1 only dW,
// because x_0 does not require grad, so 2·(L-1) + 1 = 9.
void expect_matmul_counts(const MemtraceResult& r) {
  EXPECT_EQ(r.forward_matmul_calls, L);
  EXPECT_EQ(r.backward_matmul_calls, 2 * (L - 1) + 1);
  EXPECT_EQ(r.matmul_calls, 14);
}

// The engine runs the sum node, then per layer from the last: the matmul node, then the
// AccumulateGrad of its weight (the newest ready node runs first, and the accumulator of W_i was
// created just after the matmul node of layer i).
void expect_backward_order(const MemtraceResult& r) {
  ASSERT_EQ(r.backward.size(), static_cast<size_t>(2 * L + 1));
  EXPECT_EQ(r.backward[0].node, "sum");
  EXPECT_EQ(r.backward[0].layer, 0);
  for (int64_t i = 0; i < L; ++i) {
    const auto& mm = r.backward[static_cast<size_t>(1 + 2 * i)];
    const auto& acc = r.backward[static_cast<size_t>(2 + 2 * i)];
    EXPECT_EQ(mm.node, "matmul");
    EXPECT_EQ(mm.layer, L - i);
    EXPECT_EQ(acc.node, "AccumulateGrad");
    EXPECT_EQ(acc.layer, L - i);
  }
  for (size_t i = 0; i < r.backward.size(); ++i) EXPECT_EQ(r.backward[i].step, int64_t(i) + 1);
}

TEST(Memtrace, LazyGradientsEachLayerHoldsOneActivation) {
  const MemtraceResult r = run_memtrace(small(false));

  // Setup: the weights (parameter) and the input (other), nothing else.
  EXPECT_EQ(r.setup.of(Category::parameter), L * kW);
  EXPECT_EQ(r.setup.of(Category::other), kAct);
  EXPECT_EQ(r.setup.live, L * kW + kAct);

  ASSERT_EQ(r.forward.size(), static_cast<size_t>(L + 1));
  for (int64_t i = 0; i < L; ++i) {
    const auto& s = r.forward[static_cast<size_t>(i)];
    EXPECT_EQ(s.layer, i + 1);
    EXPECT_EQ(s.mem.delta, kAct) << "layer " << i + 1;  // x_i, saved by the next layer's node
    EXPECT_EQ(s.mem.of(Category::gradient), 0) << "no gradient exists before the backward";
  }
  EXPECT_EQ(r.forward.back().label, "sum");
  EXPECT_EQ(r.forward.back().mem.delta, kScalar);
  EXPECT_EQ(r.bytes_per_layer, 320'000);

  expect_backward_order(r);
  // The seed (8 bytes) stays alive through the sum step: sum's backward is a broadcast view of it.
  EXPECT_EQ(r.backward[0].mem.delta, kScalar);
  // Layer L: its gradient (the seed) is freed, dx (act) and dW (W) are created, x_{L-1} is freed.
  EXPECT_EQ(r.backward[1].mem.delta, kAct + kW - kScalar - kAct);
  // Layers L-1..1: dx replaces the consumed incoming gradient and x_{i-1} is freed, plus dW
  // (act + W - act - act). Layer 1 computes no dx, but frees no x_0 either (the experiment holds
  // the input), so its delta is the same: W - act.
  for (int64_t i = 1; i < L; ++i) {
    EXPECT_EQ(r.backward[static_cast<size_t>(1 + 2 * i)].mem.delta, kW - kAct)
        << "matmul of layer " << L - i;
  }
  // AccumulateGrad takes the dW buffer as .grad without copying.
  for (int64_t i = 0; i < L; ++i) {
    EXPECT_EQ(r.backward[static_cast<size_t>(2 + 2 * i)].mem.delta, 0);
  }
  expect_final_state(r);
  expect_matmul_counts(r);

  // The peak is reached in the backward, above the forward's end.
  EXPECT_GE(r.peak_bytes, r.forward.back().mem.live);
  EXPECT_EQ(r.peak_bytes - r.peak_bytes_above_setup, r.setup.live);
}

TEST(Memtrace, EagerGradientsDoubleEveryLayer) {
  const MemtraceResult r = run_memtrace(small(true));

  // The weights' gradient buffers exist from the setup on.
  EXPECT_EQ(r.setup.of(Category::gradient), L * kW);
  EXPECT_EQ(r.setup.live, 2 * L * kW + kAct);

  ASSERT_EQ(r.forward.size(), static_cast<size_t>(L + 1));
  for (int64_t i = 0; i < L; ++i) {
    const auto& s = r.forward[static_cast<size_t>(i)];
    EXPECT_EQ(s.mem.delta, 2 * kAct) << "layer " << i + 1;  // x_i and its zero gradient buffer
    EXPECT_EQ(s.mem.of(Category::gradient), L * kW + (i + 1) * kAct);
  }
  EXPECT_EQ(r.forward.back().mem.delta, 2 * kScalar);  // the loss and its gradient buffer
  EXPECT_EQ(r.bytes_per_layer, 640'000);

  expect_backward_order(r);
  expect_final_state(r);
  expect_matmul_counts(r);
}

TEST(Memtrace, TimelineAddsUpToTheStepReadings) {
  MemtraceConfig c = small(false);
  c.record_timeline = true;
  const MemtraceResult r = run_memtrace(c);
  ASSERT_FALSE(r.timeline.empty());
  int64_t net = 0;
  for (const auto& e : r.timeline) net += e.alloc ? e.bytes : -e.bytes;
  // The timeline starts after the setup and ends with the backward.
  EXPECT_EQ(net, r.backward.back().mem.live - r.setup.live);
  EXPECT_EQ(r.timeline.back().live_after, r.backward.back().mem.live);
  bool saw_matmul = false;
  for (const auto& e : r.timeline) saw_matmul = saw_matmul || e.op == "matmul";
  EXPECT_TRUE(saw_matmul);

  // Without the flag nothing is recorded.
  EXPECT_TRUE(run_memtrace(small(false)).timeline.empty());
}

// Through the chain rematerializer: the same matmuls forward, one more backward matmul per
// recomputed step exactly as the planner predicts, the same backward order and final state, and
// after the forward only the x's the schedule stores at the loss (plus the loss) are activations.
TEST(Memtrace, RematPoliciesRecomputeWhatThePlannerPredicts) {
  struct Case {
    const char* policy;
    int64_t stored;  // x_1..x_L stored at the loss
  };
  // every:2 keeps its checkpoints x_2, x_4 and the last segment x_5; revolve:1 its one slot (x_4,
  // from which B_5 and the binomial sweep start) and x_5; naive:2 the checkpoint x_2 and x_5 (the
  // loss needs it).
  for (const Case& k : {Case{"every:2", 3}, Case{"revolve:1", 2}, Case{"naive:2", 2}}) {
    SCOPED_TRACE(k.policy);
    MemtraceConfig c = small(false);
    c.remat = k.policy;
    const MemtraceResult r = run_memtrace(c);
    EXPECT_EQ(r.remat_policy, k.policy);
    EXPECT_GT(r.predicted_recomputed_steps, 0);
    EXPECT_EQ(r.extra_backward_matmul_calls, r.predicted_recomputed_steps);
    EXPECT_EQ(r.recomputed_steps, r.predicted_recomputed_steps);
    EXPECT_EQ(r.forward_matmul_calls, L);
    ASSERT_EQ(r.forward.size(), static_cast<size_t>(L + 1));
    EXPECT_EQ(r.forward.back().mem.of(Category::activation), k.stored * kAct + kScalar);
    expect_backward_order(r);
    expect_final_state(r);
  }
  MemtraceConfig none = small(false);
  const MemtraceResult r = run_memtrace(none);
  EXPECT_EQ(r.remat_policy, "none");
  EXPECT_EQ(r.predicted_recomputed_steps, 0);
  EXPECT_EQ(r.extra_backward_matmul_calls, 0);
  EXPECT_EQ(r.recomputed_steps, 0);
}

TEST(Memtrace, RejectsUnknownRematPolicies) {
  MemtraceConfig c = small(false);
  c.remat = "sometimes";
  EXPECT_THROW(run_memtrace(c), tilegrad::Error);
  c.remat = "naive:5";  // L = 5: the checkpoint must be one of x_0..x_4
  EXPECT_THROW(run_memtrace(c), tilegrad::Error);
}

TEST(Memtrace, RejectsInvalidConfigurations) {
  MemtraceConfig c = small(false);
  c.layers = 0;
  EXPECT_THROW(run_memtrace(c), tilegrad::Error);
  c = small(false);
  c.batch = 0;
  EXPECT_THROW(run_memtrace(c), tilegrad::Error);
  c = small(false);
  c.dim = -3;
  EXPECT_THROW(run_memtrace(c), tilegrad::Error);
  c = small(false);
  c.dtype = DType::i64;
  EXPECT_THROW(run_memtrace(c), tilegrad::Error);
}

}  // namespace
