// Checkpointing (Note [Checkpoint]) and selective recomputation (Note [Selective recomputation]):
// gradients bitwise equal to the plain backward's, the bytes kept after the forward and the
// backward's peak counted by hand, the recomputation counted op by op, and the errors.
#include <memory>

#include "testing.h"

namespace tgtest {
namespace {

// The gradients of every leaf, in order, as exact values (float to double is exact).
using Grads = std::vector<std::vector<double>>;

Grads grads_of(const std::vector<Tensor>& leaves) {
  Grads g;
  for (const Tensor& t : leaves) g.push_back(t.grad().to_vector<double>());
  return g;
}

Tensor layer(const Tensor& h, const Tensor& w) {
  return tanh(matmul(h, w));
}

// L layers h = tanh(h W_i) on a [B, C] input, checkpointed every `every` layers (0: never).
struct Chain {
  Tensor x;
  std::vector<Tensor> ws;
  Chain(int L, int64_t B, int64_t C, DType dt, bool x_requires_grad = true) {
    x = rnd({B, C}, 1, dt).set_requires_grad(x_requires_grad);
    for (int i = 0; i < L; ++i) ws.push_back(rnd({C, C}, 100 + i, dt).set_requires_grad(true));
  }
  Tensor forward(int every) const {
    Tensor h = x;
    const int L = static_cast<int>(ws.size());
    for (int i = 0; i < L;) {
      const int n = every > 0 ? std::min(every, L - i) : 1;
      const std::vector<Tensor> seg(ws.begin() + i, ws.begin() + i + n);
      auto fn = [seg](const std::vector<Tensor>& in) {
        Tensor y = in[0];
        for (const Tensor& w : seg) y = layer(y, w);
        return y;
      };
      h = every > 0 ? checkpoint(fn, {h}) : fn({h});
      i += n;
    }
    return h;
  }
  std::vector<Tensor> leaves() const {
    std::vector<Tensor> l{x};
    l.insert(l.end(), ws.begin(), ws.end());
    return l;
  }
};

Grads chain_grads(DType dt, int every) {
  const Chain c(6, 5, 7, dt);
  sum(c.forward(every)).backward();
  return grads_of(c.leaves());
}

TEST(Checkpoint, ChainGradientsAreBitwiseEqual) {
  for (DType dt : {DType::f64, DType::f32}) {
    const Grads plain = chain_grads(dt, 0);
    EXPECT_EQ(chain_grads(dt, 1), plain) << dtype_name(dt) << ", every layer";
    EXPECT_EQ(chain_grads(dt, 3), plain) << dtype_name(dt) << ", every 3 layers";
    EXPECT_EQ(chain_grads(dt, 6), plain) << dtype_name(dt) << ", one segment";
  }
}

// x enters the segment and is also used after it; the segment has two outputs, one used twice.
TEST(Checkpoint, BranchingGraphWithTwoOutputsIsBitwiseEqual) {
  for (DType dt : {DType::f64, DType::f32}) {
    const Tensor x = rnd({4, 6}, 2, dt).set_requires_grad(true);
    const Tensor w1 = rnd({6, 6}, 3, dt).set_requires_grad(true);
    const Tensor w2 = rnd({6, 6}, 4, dt).set_requires_grad(true);
    const CheckpointFn fn = [&](const std::vector<Tensor>& in) {
      const Tensor h = matmul(in[0], w1);
      return std::vector<Tensor>{tanh(h), sigmoid(matmul(exp(mul(h, 0.1)), w2))};
    };
    auto run = [&](bool ckpt) {
      for (const Tensor& l : {x, w1, w2}) l.set_grad(Tensor());
      const std::vector<Tensor> o = ckpt ? checkpoint(fn, {x}) : fn({x});
      const Tensor r = add(mul(o[0], o[1]), tanh(x));  // x used outside the segment too
      sum(add(mul(r, o[1]), matmul(o[0], w2))).backward();
      return grads_of({x, w1, w2});
    };
    EXPECT_EQ(run(true), run(false)) << dtype_name(dt);
  }
}

// Two segments of matmul → dropout → tanh, drawing from one generator.
struct DropoutNet {
  explicit DropoutNet(DType dt)
      : x(rnd({6, 8}, 5, dt).set_requires_grad(true)),
        ws{rnd({8, 8}, 6, dt).set_requires_grad(true), rnd({8, 8}, 7, dt).set_requires_grad(true)} {
  }
  Tensor x;
  std::vector<Tensor> ws;
  Grads run(Generator& gen, bool ckpt, bool pass_generator) const {
    for (const Tensor& l : leaves()) l.set_grad(Tensor());
    Tensor h = x;
    for (const Tensor& w : ws) {
      auto fn = [&gen, w](const std::vector<Tensor>& in) {
        return tanh(dropout(matmul(in[0], w), 0.3, gen));
      };
      if (!ckpt) {
        h = fn({h});
      } else if (pass_generator) {
        h = checkpoint(fn, {h}, {&gen});
      } else {
        h = checkpoint(fn, {h});
      }
    }
    sum(h).backward();
    return grads_of(leaves());
  }
  std::vector<Tensor> leaves() const { return {x, ws[0], ws[1]}; }
};

TEST(Checkpoint, DropoutMasksAreReplayedFromTheGeneratorSnapshot) {
  for (DType dt : {DType::f64, DType::f32}) {
    const DropoutNet net(dt);
    Generator g_plain(42);
    const Grads plain = net.run(g_plain, false, false);
    Generator g(42);
    EXPECT_EQ(net.run(g, true, true), plain) << dtype_name(dt);
    // The recomputation rewound the generator and put it back: the stream goes on where the
    // forward left it, as without checkpointing.
    EXPECT_EQ(g.offset(), g_plain.offset());
  }
}

TEST(Checkpoint, AGeneratorNotPassedIsNotReplayedAndTheGradientsDiffer) {
  const DropoutNet net(DType::f64);
  Generator g_plain(42);
  const Grads plain = net.run(g_plain, false, false);
  Generator g(42);
  // The re-run draws fresh numbers: the tanh outputs it saves come from other masks than the ones
  // the dropout nodes (recorded in the forward) apply, so the gradients are wrong.
  EXPECT_NE(net.run(g, true, false), plain);
  EXPECT_GT(g.offset(), g_plain.offset());  // the re-run drew numbers of its own
}

// Chain of L = 9 layers, [B, C] activations of `act` bytes, in segments of s = 3 layers (N = 3).
TEST(Checkpoint, ForwardKeepsOnlySegmentBoundariesAndBackwardPeaksAtOneSegment) {
  constexpr int L = 9, s = 3, N = L / s;
  constexpr int64_t B = 5, C = 7, act = B * C * 8;
  for (int every : {0, s}) {
    const Chain c(L, B, C, DType::f64, /*x_requires_grad=*/false);
    MemoryScope scope;
    Tensor h = c.forward(every);
    const int64_t kept = scope.delta().live_of(Category::activation);
    Tensor loss = sum(h);
    h = Tensor();
    scope.reset_peak();
    loss.backward();
    const int64_t peak = scope.delta().peak_of(Category::activation);
    if (every == 0) {
      // Every layer's output is saved (by its tanh and the next matmul): L activations.
      EXPECT_EQ(kept, L * act);
      EXPECT_EQ(peak, L * act + 8);  // at the start of the backward; + the loss scalar
    } else {
      // Only the segments' outputs: the first two are the inputs the next segments keep, the last
      // is h. Everything the segments saved inside was freed when their fn returned.
      EXPECT_EQ(kept, N * act);
      // Dropping h freed the last output (its tanh holds a slot number, not the tensor). The
      // peak is at the recomputation of the last segment: the N - 1 checkpoints, the s tanh
      // outputs it recomputes (the slots of its tanh nodes and of the next matmuls), and the
      // matmul output of its last layer, which lives until that layer's tanh has run.
      EXPECT_EQ(peak, (N - 1) * act + (s + 1) * act + 8);
    }
    EXPECT_EQ(scope.delta().live_of(Category::activation), 8);  // only the loss remains
  }
}

TEST(Checkpoint, RecomputedTensorsAreFreedAsTheSegmentsBackwardProceeds) {
  constexpr int L = 4;
  constexpr int64_t act = 5 * 7 * 8;
  const Chain c(L, 5, 7, DType::f64, /*x_requires_grad=*/false);
  MemoryScope scope;
  Tensor h = c.forward(L);
  Tensor loss = sum(h);
  h = Tensor();
  std::vector<std::string> names;
  std::vector<int64_t> acts;
  BackwardOptions opts;
  opts.on_node_done = [&](const Node& n) {
    names.push_back(n.name());
    acts.push_back(scope.delta().live_of(Category::activation));
  };
  run_backward(loss, Tensor(), opts);
  // Nodes: sum, then per layer from the top tanh, matmul, AccumulateGrad(W). The first tanh
  // recomputes the four outputs (the last layer's matmul output is gone by then); then each tanh
  // drops its own output slot's copy and each matmul its input's, one activation per layer.
  ASSERT_EQ(names.size(), 1u + 3u * L);
  EXPECT_EQ(acts[0], 8);
  for (int i = 0; i < L; ++i) {
    EXPECT_EQ(names[1 + 3 * i], "tanh");
    EXPECT_EQ(acts[1 + 3 * i], (L - i - 1) * act + 8) << "after tanh of layer " << L - i;
    EXPECT_EQ(acts[2 + 3 * i], (L - i - 1) * act + 8) << "after matmul of layer " << L - i;
  }
}

TEST(Checkpoint, ASegmentOfKMatmulsRecomputesExactlyKMatmuls) {
  constexpr int k = 4;
  OpStats with, without;
  int64_t tanh_with = 0, tanh_without = 0;
  for (int every : {0, k}) {
    const Chain c(k, 5, 7, DType::f64);
    const Tensor loss = sum(c.forward(every));
    OpCounter counter;
    loss.backward();
    (every ? with : without) = counter.by_op().at("matmul");
    (every ? tanh_with : tanh_without) = counter.calls("tanh");
  }
  EXPECT_EQ(without.calls, 2 * k);  // dA and dW of each layer
  EXPECT_EQ(with.calls - without.calls, k);
  EXPECT_EQ(tanh_with - tanh_without, k);
}

TEST(Checkpoint, BackwardTwiceNeedsRetainGraph) {
  const Chain c(3, 5, 7, DType::f64);
  const Tensor loss = sum(c.forward(3));
  loss.backward();
  const std::string msg = error_of([&] { loss.backward(); });
  EXPECT_NE(msg.find("retain_graph"), std::string::npos) << msg;
}

TEST(Checkpoint, RetainGraphRecomputesInEachBackwardAndAccumulatesBitwiseEqual) {
  auto run = [](int every, int64_t* matmuls) {
    const Chain c(3, 5, 7, DType::f32);
    const Tensor loss = sum(c.forward(every));
    OpCounter counter;
    loss.backward(Tensor(), /*retain_graph=*/true);
    loss.backward(Tensor(), /*retain_graph=*/true);
    *matmuls = counter.calls("matmul");
    return grads_of(c.leaves());
  };
  int64_t plain_mm = 0, ckpt_mm = 0;
  const Grads plain = run(0, &plain_mm);
  EXPECT_EQ(run(3, &ckpt_mm), plain);
  EXPECT_EQ(ckpt_mm - plain_mm, 2 * 3);  // one recomputation of the 3 matmuls per backward
}

TEST(Checkpoint, NestingIsRefused) {
  const Tensor x = rnd({3, 3}, 8).set_requires_grad(true);
  const std::string msg = error_of([&] {
    checkpoint(
        [](const std::vector<Tensor>& in) {
          return checkpoint([](const std::vector<Tensor>& i2) { return exp(i2[0]); }, in);
        },
        {x});
  });
  EXPECT_NE(msg.find("nested"), std::string::npos) << msg;
}

TEST(Checkpoint, InputModifiedInPlaceBeforeTheBackwardIsDetected) {
  const Tensor x = rnd({4, 4}, 9);
  const Tensor w = rnd({4, 4}, 10).set_requires_grad(true);
  const Tensor loss =
      sum(checkpoint([&](const std::vector<Tensor>& in) { return layer(in[0], w); }, {x}));
  {
    NoGradGuard g;
    x.mul_(2.0);
  }
  const std::string msg = error_of([&] { loss.backward(); });
  EXPECT_NE(msg.find("modified in place"), std::string::npos) << msg;
}

TEST(Checkpoint, AFunctionThatRecordsAnotherGraphWhenReRunIsDetected) {
  const Tensor x = rnd({4, 4}, 11).set_requires_grad(true);
  auto calls = std::make_shared<int>(0);
  const Tensor loss = sum(checkpoint(
      [calls](const std::vector<Tensor>& in) {
        return ++*calls == 1 ? tanh(in[0]) : tanh(exp(in[0]));
      },
      {x}));
  const std::string msg = error_of([&] { loss.backward(); });
  EXPECT_NE(msg.find("same graph"), std::string::npos) << msg;
}

TEST(Checkpoint, WithoutGradModeItJustRunsTheFunction) {
  const Tensor x = rnd({4, 4}, 12).set_requires_grad(true);
  NoGradGuard g;
  const Tensor y = checkpoint([](const std::vector<Tensor>& in) { return exp(in[0]); }, {x});
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.to_vector<double>(), exp(x).to_vector<double>());
}

// --- selective recomputation ---

// One MLP-like segment: tanh(gelu(h W1) W2). In save order: matmul saves h and W1, gelu its input
// z1 = h W1, matmul saves a = gelu(z1) and W2, tanh its output y.
struct Mlp {
  Tensor x = rnd({5, 7}, 13).set_requires_grad(true);
  Tensor w1 = rnd({7, 7}, 14).set_requires_grad(true);
  Tensor w2 = rnd({7, 7}, 15).set_requires_grad(true);
  Tensor block(const Tensor& h) const { return tanh(matmul(gelu(matmul(h, w1)), w2)); }
};

struct SelectiveRun {
  Grads grads;
  int64_t kept = 0;  // activation bytes held by the graph after the forward (output dropped)
  int64_t matmuls = 0, gelus = 0, tanhs = 0;  // op calls in the backward
};

// mode: 0 plain, 1 checkpoint, 2 checkpoint under `policy`.
SelectiveRun run_mlp(int mode, const SavePolicy& policy = {}) {
  const Mlp m;
  SelectiveRun r;
  MemoryScope scope;
  Tensor loss;
  {
    auto fn = [&m](const std::vector<Tensor>& in) { return m.block(m.block(in[0])); };
    std::unique_ptr<SelectivePolicyScope> ps;
    if (mode == 2) ps = std::make_unique<SelectivePolicyScope>(policy);
    const Tensor y = mode == 0 ? fn({m.x}) : checkpoint(fn, {m.x});
    loss = sum(y);
  }
  r.kept = scope.delta().live_of(Category::activation) - 8;  // less the loss
  OpCounter counter;
  loss.backward();
  r.matmuls = counter.calls("matmul");
  r.gelus = counter.calls("gelu");
  r.tanhs = counter.calls("tanh");
  r.grads = grads_of({m.x, m.w1, m.w2});
  return r;
}

TEST(SelectiveRecompute, KeepMatmulInputsRecomputeGeluAndTanh) {
  constexpr int64_t act = 5 * 7 * 8;
  const SelectiveRun plain = run_mlp(0);
  const SelectiveRun full = run_mlp(1);
  const SelectiveRun sel = run_mlp(2, keep_ops({"matmul"}));
  // Two blocks. Plain: per block z1 (gelu's), a (matmul's), and y (tanh's; the first block's y is
  // also the second's matmul input): 6 activations. Full checkpointing keeps none. Keeping what
  // matmuls save keeps a of both blocks and the first block's y (the second matmul's input), and
  // drops both z1 and the last y: 3 activations.
  EXPECT_EQ(plain.kept, 6 * act);
  EXPECT_EQ(full.kept, 0);
  EXPECT_EQ(sel.kept, 3 * act);
  EXPECT_EQ(full.grads, plain.grads);
  EXPECT_EQ(sel.grads, plain.grads);
  // The plain backward runs two matmuls per matmul and no forward op; a recomputation re-runs the
  // whole segment once: 4 matmuls, 2 gelus, 2 tanhs.
  EXPECT_EQ(plain.matmuls, 8);
  EXPECT_EQ(plain.gelus + plain.tanhs, 0);
  for (const SelectiveRun* r : {&full, &sel}) {
    EXPECT_EQ(r->matmuls, 8 + 4);
    EXPECT_EQ(r->gelus, 2);
    EXPECT_EQ(r->tanhs, 2);
  }
}

TEST(SelectiveRecompute, KeepingEverythingRecomputesNothing) {
  const SelectiveRun plain = run_mlp(0);
  const SelectiveRun all = run_mlp(2, [](std::string_view) { return true; });
  EXPECT_EQ(all.kept, plain.kept);
  EXPECT_EQ(all.grads, plain.grads);
  EXPECT_EQ(all.matmuls, plain.matmuls);
  EXPECT_EQ(all.gelus + all.tanhs, 0);
}

TEST(SelectiveRecompute, KeptAndDroppedSlotsStayAlignedOverManyLayers) {
  // Dropping only tanh's saves in a 6-layer segment: the recomputation must hand each tanh node
  // its own layer's output although every matmul slot in between was kept.
  for (DType dt : {DType::f64, DType::f32}) {
    const Chain c(6, 5, 7, dt);
    sum(c.forward(0)).backward();
    const Grads plain = grads_of(c.leaves());
    for (const Tensor& l : c.leaves()) l.set_grad(Tensor());
    {
      SelectivePolicyScope policy([](std::string_view op) { return op != "tanh"; });
      sum(c.forward(6)).backward();
    }
    EXPECT_EQ(grads_of(c.leaves()), plain) << dtype_name(dt);
  }
}

TEST(SelectiveRecompute, ThePolicyScopeNestsAndEnds) {
  EXPECT_FALSE(current_save_policy());
  {
    SelectivePolicyScope outer(keep_ops({"matmul"}));
    EXPECT_TRUE(current_save_policy()("matmul"));
    {
      SelectivePolicyScope inner(keep_ops({"gelu"}));
      EXPECT_FALSE(current_save_policy()("matmul"));
      EXPECT_TRUE(current_save_policy()("gelu"));
    }
    EXPECT_TRUE(current_save_policy()("matmul"));
  }
  EXPECT_FALSE(current_save_policy());
}

}  // namespace
}  // namespace tgtest
