// Tests of the chain rematerializer (remat/executor.h) on the engine: for every planner's policy
// the gradients are bitwise those of a plain backward, the backward runs exactly the planner's
// recomputed forward steps on top of a plain backward's matmuls, the forward leaves exactly the
// schedule's stored x's live, and a schedule for another chain is refused before anything runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "memory/tracker.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/matmul.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"
#include "remat/executor.h"
#include "remat/plan.h"

namespace {

using namespace tilegrad::remat;  // NOLINT: the tests read better with the planner names
using tilegrad::Category;
using tilegrad::DType;
using tilegrad::Error;
using tilegrad::Generator;
using tilegrad::MemoryScope;
using tilegrad::OpCounter;
using tilegrad::Tensor;

constexpr int64_t B = 6, D = 5;

enum class Layers { matmul, tanh_dropout };

// The memtrace chain x_i = matmul(x_{i-1}, W_i) at a small size, or a non-linear one:
// x_i = tanh(matmul(x_{i-1}, W_i)), with dropout after the tanh in layer 3. The dropout draws from
// stream kSeed at an offset fixed per layer (i·B·D, beyond what any other layer could use), so
// recomputing F_3 replays the forward's mask; a Generator's advancing offset would not.
struct Chain {
  std::vector<Tensor> weights;
  Tensor x0;
  std::vector<LayerFn> layers;
};

constexpr uint64_t kSeed = 1234;

Chain make_chain(int L, DType dt, Layers kind) {
  Chain c;
  Generator gen(7);
  for (int i = 0; i < L; ++i) {
    Tensor w = tilegrad::randn({D, D}, gen, 0.0, 1.0 / std::sqrt(double(D)), {dt});
    w.set_category(Category::parameter);
    w.set_requires_grad(true);
    c.weights.push_back(w);
    const int layer = i + 1;
    if (kind == Layers::matmul) {
      c.layers.push_back([w](const Tensor& x) { return tilegrad::matmul(x, w); });
    } else {
      c.layers.push_back([w, layer](const Tensor& x) {
        Tensor y = tilegrad::tanh(tilegrad::matmul(x, w));
        if (layer == 3) y = tilegrad::dropout_at(y, 0.3, kSeed, uint64_t(layer) * B * D);
        return y;
      });
    }
  }
  c.x0 = tilegrad::randn({B, D}, gen, 0.0, 1.0, {dt});
  return c;
}

ChainSpec spec_of(int L, DType dt) {
  return ChainSpec::uniform_chain(L, B * D * int64_t(tilegrad::dtype_size(dt)), 2 * B * D * D);
}

struct ChainRun {
  std::vector<std::vector<unsigned char>> grads;  // raw bytes of each W_i.grad
  int64_t forward_matmuls = 0;
  int64_t backward_matmuls = 0;
  int64_t recomputed = 0;
  int64_t activation_after_forward = 0;  // live activation bytes after x_L and the loss exist
  std::vector<bool> stored_at_loss;
};

std::vector<unsigned char> bytes_of(const Tensor& t) {
  std::vector<unsigned char> out(size_t(t.nbytes()));
  if (t.dtype() == DType::f64) {
    const std::vector<double> v = t.to_vector<double>();
    std::memcpy(out.data(), v.data(), out.size());
  } else {
    const std::vector<float> v = t.to_vector<float>();
    std::memcpy(out.data(), v.data(), out.size());
  }
  return out;
}

// A plain forward and backward when `policy` is empty; otherwise through the executor.
ChainRun run_chain(int L, DType dt, Layers kind, const std::string& policy) {
  Chain c = make_chain(L, dt, kind);
  ChainRun r;
  Tensor x, loss;
  MemoryScope scope;  // opened after the weights and x_0 exist
  {
    OpCounter fwd;
    if (policy.empty()) {
      x = c.x0;
      for (const LayerFn& f : c.layers) x = f(x);
    } else {
      ChainRematerializer ex(c.layers, plan_executable(spec_of(L, dt), policy).schedule);
      x = ex.forward(c.x0);
      r.stored_at_loss = ex.stored_at_loss();
      // The executor object may go; the handles in the graph keep its state.
    }
    loss = tilegrad::sum(x);
    r.forward_matmuls = fwd.calls("matmul");
  }
  r.activation_after_forward = scope.delta().live[static_cast<int>(Category::activation)];
  {
    OpCounter bwd;
    tilegrad::run_backward(loss, Tensor());
    r.backward_matmuls = bwd.calls("matmul");
  }
  for (const Tensor& w : c.weights) r.grads.push_back(bytes_of(w.grad()));
  return r;
}

std::vector<std::string> policies(int L, DType dt) {
  const int64_t a = B * D * int64_t(tilegrad::dtype_size(dt));
  // Budgets from revolve:1's peak (4 activations' worth, the smallest that reverses a chain
  // without recomputing from x_0 every time) to the keep-all peak, L+2.
  return {"none",
          "every:2",
          "every:3",
          "sqrt",
          "chen:" + std::to_string(2 * a),
          "chen:" + std::to_string(a),
          "revolve:1",
          "revolve:2",
          "revolve:3",
          "budget:" + std::to_string(4 * a),
          "budget:" + std::to_string(5 * a),
          "budget:" + std::to_string(7 * a),
          "budget:" + std::to_string((L + 2) * a),
          "naive:0",
          "naive:5"};
}

void check_all_policies(int L, DType dt, Layers kind) {
  const ChainRun plain = run_chain(L, dt, kind, "");
  ASSERT_EQ(plain.forward_matmuls, L);
  for (const std::string& policy : policies(L, dt)) {
    SCOPED_TRACE(policy);
    const Plan plan = plan_executable(spec_of(L, dt), policy);
    const ChainRun r = run_chain(L, dt, kind, policy);
    // Bitwise: the recomputed x's are the forward's bits, so every dW is too.
    ASSERT_EQ(r.grads.size(), plain.grads.size());
    for (size_t i = 0; i < r.grads.size(); ++i) {
      EXPECT_EQ(r.grads[i], plain.grads[i]) << "dW_" << i + 1;
    }
    // One matmul per recomputed forward step, on top of the plain backward's 2L - 1.
    EXPECT_EQ(r.forward_matmuls, L);
    EXPECT_EQ(r.backward_matmuls - plain.backward_matmuls, plan.sim.recomputed_steps);
  }
}

TEST(ChainRematerializer, MatmulChainF64GradientsBitwiseAndRecomputeCounts) {
  check_all_policies(10, DType::f64, Layers::matmul);
}

TEST(ChainRematerializer, MatmulChainF32GradientsBitwiseAndRecomputeCounts) {
  check_all_policies(8, DType::f32, Layers::matmul);
}

TEST(ChainRematerializer, NonLinearChainWithDropoutGradientsBitwise) {
  check_all_policies(10, DType::f64, Layers::tanh_dropout);
  check_all_policies(8, DType::f32, Layers::tanh_dropout);
}

TEST(ChainRematerializer, ExecutorCountsItsRecomputedSteps) {
  const int L = 10;
  for (const std::string& policy : policies(L, DType::f64)) {
    SCOPED_TRACE(policy);
    Chain c = make_chain(L, DType::f64, Layers::matmul);
    const Plan plan = plan_executable(spec_of(L, DType::f64), policy);
    ChainRematerializer ex(c.layers, plan.schedule);
    Tensor loss = tilegrad::sum(ex.forward(c.x0));
    EXPECT_EQ(ex.recomputed_steps(), 0);
    tilegrad::run_backward(loss, Tensor());
    EXPECT_EQ(ex.recomputed_steps(), plan.sim.recomputed_steps);
    EXPECT_EQ(ex.actions_done(), plan.schedule.size());  // every action ran, backward(1) last
  }
}

// After the forward and the loss, the live activation bytes (counted from after the setup) are
//   sum over the x_j (1 <= j <= L) the schedule stores at the loss, of a  — the executor holds
//     x_1..x_{L-1} of S as aliases, and x_L (always in S at the loss) is the caller's result;
//   + one scalar, the loss.
// Nothing else: the nodes hold handles instead of the x's, every x the schedule freed in the sweep
// had no other owner (a matmul layer saves only its input and its weight), x_0 was created by a
// factory (category other) and the weights are parameters.
TEST(ChainRematerializer, ForwardKeepsExactlyTheStoredActivations) {
  const int L = 10;
  for (DType dt : {DType::f64, DType::f32}) {
    const int64_t a = B * D * int64_t(tilegrad::dtype_size(dt));
    for (const std::string& policy : policies(L, dt)) {
      SCOPED_TRACE(policy);
      const ChainRun r = run_chain(L, dt, Layers::matmul, policy);
      ASSERT_EQ(r.stored_at_loss.size(), size_t(L + 1));
      EXPECT_TRUE(r.stored_at_loss[0]);
      EXPECT_TRUE(r.stored_at_loss[size_t(L)]);
      int64_t stored = 0;
      for (int j = 1; j <= L; ++j) stored += r.stored_at_loss[size_t(j)] ? a : 0;
      EXPECT_EQ(r.activation_after_forward, stored + int64_t(tilegrad::dtype_size(dt)));
    }
  }
  // A plain forward keeps all of x_1..x_L.
  EXPECT_EQ(run_chain(L, DType::f64, Layers::matmul, "").activation_after_forward,
            L * B * D * 8 + 8);
}

TEST(ChainRematerializer, NaiveRecipeCounts) {
  // Checkpoints x_0 and x_5 of 10 layers: x_1..x_4 cost 1+2+3+4 from x_0, x_6..x_9 the same from
  // x_5, so 20 recomputed steps; with 10 forward and 2·9 + 1 backward matmuls, 49 in all.
  const ChainSpec spec = spec_of(10, DType::f64);
  EXPECT_EQ(plan_naive(spec, 5).sim.recomputed_steps, 20);
  EXPECT_EQ(plan_naive(spec, 0).sim.recomputed_steps, 45);  // 1+...+9, all from x_0
  const ChainRun r = run_chain(10, DType::f64, Layers::matmul, "naive:5");
  EXPECT_EQ(r.forward_matmuls + r.backward_matmuls, 49);
  EXPECT_EQ(plan_executable(spec, "naive:5").policy, "naive:5");
  EXPECT_THROW(plan_executable(spec, "naive:10"), Error);
  EXPECT_THROW(plan_executable(spec, "naive:-1"), Error);
  EXPECT_THROW(plan_executable(spec, "naive:x"), Error);
  EXPECT_THROW(plan_executable(spec, "naive:"), Error);
}

TEST(ChainRematerializer, ScheduleForAnotherChainIsRefusedBeforeAnythingRuns) {
  Chain c = make_chain(10, DType::f64, Layers::matmul);
  OpCounter ops;
  for (int other : {8, 12}) {
    const Plan plan = plan_policy(ChainSpec::uniform_chain(other), "every:3");
    try {
      ChainRematerializer ex(c.layers, plan.schedule);
      ADD_FAILURE() << "a schedule for L = " << other << " was accepted for L = 10";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("chain of " + std::to_string(other) + " layers"),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("L = 10"), std::string::npos) << e.what();
    }
  }
  // An invalid schedule for the right L: the simulator's message names the action.
  std::vector<Action> bad = plan_policy(ChainSpec::uniform_chain(10), "none").schedule;
  bad.pop_back();  // no backward(1)
  bad.push_back(Action::backward(2));
  EXPECT_THROW(ChainRematerializer(c.layers, bad), Error);
  // A forward sweep that computes a layer twice before the loss cannot be recorded once.
  std::vector<Action> twice = {Action::forward(1), Action::free(1), Action::forward(1)};
  for (int i = 2; i <= 10; ++i) twice.push_back(Action::forward(i));
  twice.push_back(Action::loss());
  for (int i = 10; i >= 1; --i) twice.push_back(Action::backward(i));
  EXPECT_THROW(ChainRematerializer(c.layers, twice), Error);
  EXPECT_EQ(ops.total().calls, 0);
}

// With retain_graph the handles keep the inputs they handed out, as saved tensors stay with a
// retained graph: a second backward recomputes nothing and accumulates the same gradients again.
TEST(ChainRematerializer, RetainedGraphBackpropagatesAgainWithoutRecomputing) {
  Chain c = make_chain(6, DType::f64, Layers::matmul);
  const Plan plan = plan_policy(spec_of(6, DType::f64), "revolve:1");
  ChainRematerializer ex(c.layers, plan.schedule);
  Tensor loss = tilegrad::sum(ex.forward(c.x0));
  tilegrad::BackwardOptions keep;
  keep.retain_graph = true;
  tilegrad::run_backward(loss, Tensor(), keep);
  std::vector<std::vector<double>> first;
  for (const Tensor& w : c.weights) first.push_back(w.grad().to_vector<double>());
  tilegrad::run_backward(loss, Tensor());
  EXPECT_EQ(ex.recomputed_steps(), plan.sim.recomputed_steps);
  for (size_t i = 0; i < c.weights.size(); ++i) {
    std::vector<double> twice = first[i];
    for (double& v : twice) v += v;
    EXPECT_EQ(c.weights[i].grad().to_vector<double>(), twice);
  }
}

TEST(ChainRematerializer, ForwardNeedsGradMode) {
  Chain c = make_chain(4, DType::f64, Layers::matmul);
  ChainRematerializer ex(c.layers, plan_policy(spec_of(4, DType::f64), "sqrt").schedule);
  tilegrad::NoGradGuard off;
  EXPECT_THROW(ex.forward(c.x0), Error);
}

}  // namespace
