// Prediction equals measurement for blocks: a network of MLP-like, attention-like and
// tanh/dropout blocks (trainable and frozen weights) runs on the engine under every block policy
// and under the budget planner's choices; the block model's predicted peak — in total and for the
// activation and gradient categories — equals the tracker's, its recomputed-op count equals the
// executor's, and the gradients are bitwise those of a plain backward.
#include "remat/block_executor.h"

#include <cstring>
#include <set>

#include "testing.h"

namespace tgtest {
namespace {

using remat::BlockAction;
using remat::BlockChainSpec;
using remat::BlockOp;
using remat::BlockPolicy;
using remat::LayerFn;

constexpr int64_t B = 24, C = 5;

enum class Kind { matmul, matmul_frozen, gelu, tanh, softmax, dropout };

struct OpDesc {
  Kind kind;
  int64_t out = C;  // output width (matmuls); other ops keep their input width
};

// The network: its ops as engine functions, its weights, and the block model of it.
struct Net {
  std::vector<std::vector<OpDesc>> blocks;
  DType dt;
  std::vector<Tensor> weights;  // per op (undefined for ops without one)
  std::vector<LayerFn> ops;     // F_1..F_n
  BlockChainSpec spec;
};

Net make_net(DType dt) {
  Net net;
  net.dt = dt;
  net.blocks = {
      {{Kind::matmul, 4 * C}, {Kind::gelu}, {Kind::matmul, C}},            // MLP
      {{Kind::matmul_frozen, 2 * C}, {Kind::softmax}, {Kind::matmul, C}},  // attention-like
      {{Kind::tanh}, {Kind::dropout}, {Kind::matmul, C}},
  };
  const int64_t item = static_cast<int64_t>(dtype_size(dt));
  net.spec.input_bytes = B * C * item;
  int64_t width = C;
  uint64_t seed = 100;
  for (const auto& block : net.blocks) {
    std::vector<BlockOp> spec_block;
    for (const OpDesc& d : block) {
      const int64_t in = width;
      const int64_t out = (d.kind == Kind::matmul || d.kind == Kind::matmul_frozen) ? d.out : in;
      BlockOp op;
      op.out_bytes = B * out * item;
      Tensor w;
      switch (d.kind) {
        case Kind::matmul:
        case Kind::matmul_frozen: {
          w = rnd({in, out}, ++seed, dt);
          if (d.kind == Kind::matmul) w.set_requires_grad(true);
          op.name = d.kind == Kind::matmul ? "matmul" : "matmul_frozen";
          op.flops = 2 * B * in * out;
          // dW = zᵀ·g reads the input; a frozen weight needs only dz = g·Wᵀ.
          op.bwd_reads_input = d.kind == Kind::matmul;
          op.param_grad_bytes = d.kind == Kind::matmul ? in * out * item : 0;
          net.ops.push_back([w](const Tensor& z) { return matmul(z, w); });
          break;
        }
        case Kind::gelu:
          op = {"gelu", B * in * item, B * in, true, false};
          net.ops.push_back([](const Tensor& z) { return gelu(z); });
          break;
        case Kind::tanh:  // its backward reads its output
          op = {"tanh", B * in * item, B * in, false, true};
          net.ops.push_back([](const Tensor& z) { return tanh(z); });
          break;
        case Kind::softmax:
          op = {"softmax", B * in * item, B * in, false, true};
          net.ops.push_back([](const Tensor& z) { return softmax(z, -1); });
          break;
        case Kind::dropout:  // a fixed stream position, so a recomputation draws the same mask
          op = {"dropout", B * in * item, B * in, false, false};
          net.ops.push_back([](const Tensor& z) { return dropout_at(z, 0.3, 77, 1024); });
          break;
      }
      net.weights.push_back(w);
      spec_block.push_back(op);
      width = out;
    }
    net.spec.blocks.push_back(spec_block);
  }
  return net;
}

std::vector<uint8_t> bits(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();  // bytes read on the host
  std::vector<uint8_t> out(static_cast<size_t>(c.nbytes()));
  std::memcpy(out.data(), c.data(), out.size());
  return out;
}

struct Measured {
  std::vector<std::vector<uint8_t>> grads;  // dz_0, then each trainable weight's
  int64_t peak_total = 0, peak_act = 0, peak_grad = 0;
  int64_t final_grad = 0;
  int64_t recomputed = 0;
};

// One forward and backward with fresh leaves; through the executor unless schedule is empty.
Measured run(const Net& net, const std::vector<BlockAction>& schedule) {
  std::vector<Tensor> leaves;
  std::vector<LayerFn> ops = net.ops;
  for (size_t k = 0; k < ops.size(); ++k) {
    const Tensor& w = net.weights[k];
    if (!w.defined() || !w.requires_grad()) continue;
    Tensor leaf = w.detach().clone();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
    ops[k] = [leaf](const Tensor& z) { return matmul(z, leaf); };
  }
  Tensor z0 = rnd({B, C}, 7, net.dt);
  z0.set_requires_grad(true);

  Measured r;
  MemoryScope scope;  // opened after the weights and z_0 exist
  const MemoryStats base = scope.snapshot();
  if (schedule.empty()) {
    Tensor z = z0;
    for (const LayerFn& f : ops) z = f(z);
    Tensor dz;
    {
      CategoryScope g(Category::gradient);
      dz = rnd(z.shape(), 9, net.dt);
    }
    run_backward(std::move(z), std::move(dz));
  } else {
    remat::BlockRematerializer ex(net.spec, ops, schedule);
    Tensor z = ex.forward(z0);
    Tensor dz;
    {
      CategoryScope g(Category::gradient);
      dz = rnd(z.shape(), 9, net.dt);
    }
    ex.backward(std::move(z), std::move(dz));
    r.recomputed = ex.recomputed_ops();
  }
  const MemoryStats now = scope.snapshot();
  r.peak_total = now.peak_total - base.live_total;
  r.peak_act = now.peak_of(Category::activation) - base.live_of(Category::activation);
  r.peak_grad = now.peak_of(Category::gradient) - base.live_of(Category::gradient);
  r.final_grad = now.live_of(Category::gradient) - base.live_of(Category::gradient);
  r.grads.push_back(bits(z0.grad()));
  for (const Tensor& w : leaves) r.grads.push_back(bits(w.grad()));
  return r;
}

// Checks one schedule: measured = predicted, and gradients bitwise equal to the plain run's.
Measured check(const Net& net, const Measured& plain, const std::vector<BlockAction>& schedule) {
  const remat::BlockSim sim = remat::simulate_blocks(net.spec, schedule);
  const Measured r = run(net, schedule);
  // z_0 is live before the scope opens, so it is outside every measured delta.
  EXPECT_EQ(r.peak_total, sim.peak_bytes - net.spec.input_bytes);
  EXPECT_EQ(r.peak_act, sim.peak_act_bytes);
  EXPECT_EQ(r.peak_grad, sim.peak_grad_bytes);
  EXPECT_EQ(r.final_grad, plain.final_grad);
  EXPECT_EQ(r.recomputed, sim.computes - net.spec.num_ops());
  EXPECT_EQ(r.grads.size(), plain.grads.size());
  if (r.grads.size() != plain.grads.size()) return r;
  for (size_t i = 0; i < r.grads.size(); ++i) EXPECT_TRUE(r.grads[i] == plain.grads[i]) << i;
  return r;
}

TEST(BlockExecutor, EveryPolicyPredictsTheTrackerExactly) {
  for (DType dt : {DType::f64, DType::f32}) {
    const Net net = make_net(dt);
    const Measured plain = run(net, {});
    int policies = 0;
    std::set<int64_t> peaks;
    int64_t most_recomputed = 0;
    for (const BlockPolicy& p : remat::all_block_policies(net.spec)) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " policy " + std::to_string(policies));
      const Measured r = check(net, plain, remat::block_schedule(net.spec, p));
      peaks.insert(r.peak_total);
      most_recomputed = std::max(most_recomputed, r.recomputed);
      ++policies;
    }
    EXPECT_EQ(policies, 4 * 4 * 4 * 4);
    // The policies really differ: many distinct peaks, and some recompute most of the network.
    EXPECT_GE(peaks.size(), 5u);
    EXPECT_GE(most_recomputed, 6);
  }
}

TEST(BlockExecutor, BudgetPlansFitAndMatchTheTracker) {
  const Net net = make_net(DType::f32);
  const Measured plain = run(net, {});
  const int64_t lo = remat::blocks_min_feasible_bytes(net.spec);
  // Keeping everything: one segment (no checkpoint but z_0) saving every internal output.
  const int64_t hi =
      remat::simulate_blocks(net.spec, remat::block_schedule(net.spec, {{1, 0, 0}, {3, 3, 3}}))
          .peak_bytes;
  int64_t last_recompute = INT64_MAX;
  for (int i = 0; i <= 8; ++i) {
    const int64_t budget = lo + (hi - lo) * i / 8;
    SCOPED_TRACE("budget " + std::to_string(budget));
    const remat::BlockPlan plan = remat::plan_blocks(net.spec, budget);
    const Measured r = run(net, plan.schedule);
    EXPECT_LE(r.peak_total + net.spec.input_bytes, budget);
    check(net, plain, plan.schedule);
    EXPECT_LE(plan.sim.recompute_flops, last_recompute);  // more memory never costs more
    last_recompute = plan.sim.recompute_flops;
  }
  EXPECT_EQ(last_recompute, 0);
}

TEST(BlockExecutor, WrongReadFlagsAreReported) {
  Net net = make_net(DType::f64);
  // Claim that gelu's backward reads nothing: the schedule may then drop its input.
  net.spec.blocks[0][1].bwd_reads_input = false;
  const auto schedule = remat::block_schedule(net.spec, {{1, 1, 1}, {0, 3, 3}});
  const std::string msg = error_of([&] { run(net, schedule); });
  EXPECT_NE(msg.find("op 2's backward reads its input z_1, which the schedule does not store"),
            std::string::npos)
      << msg;
}

TEST(BlockExecutor, RejectsMismatchedSpecs) {
  const Net net = make_net(DType::f64);
  const auto schedule = remat::block_schedule(net.spec, {{1, 1, 1}, {3, 3, 3}});
  std::vector<LayerFn> fewer(net.ops.begin(), net.ops.end() - 1);
  EXPECT_NE(error_of([&] {
              remat::BlockRematerializer(net.spec, fewer, schedule);
            }).find("the spec has 9 ops but 8 functions"),
            std::string::npos);
  // A composite op (two engine ops) cannot be one step of the model.
  std::vector<LayerFn> composite = net.ops;
  composite[1] = [](const Tensor& z) { return gelu(z) * 2.0; };
  remat::BlockRematerializer ex(net.spec, composite, schedule);
  Tensor z0 = rnd({B, C}, 7, DType::f64);
  z0.set_requires_grad(true);
  EXPECT_NE(error_of([&] { ex.forward(z0); }).find("F_2 is not a single engine op"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
