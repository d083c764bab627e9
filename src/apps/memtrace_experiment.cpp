// The memtrace experiment (see memtrace_experiment.h): builds the matmul chain, runs the forward
// and the backward, and reads the memory tracker after every step.
#include "apps/memtrace_experiment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <unordered_map>

#include "apps/plan_chain.h"
#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "ops/factory.h"
#include "ops/matmul.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"
#include "remat/engine_chain.h"
#include "remat/executor.h"

namespace tilegrad::apps {

namespace {

// Reads the scope opened at the experiment's start: live bytes relative to that start.
MemoryPoint point_of(const MemoryScope& whole, int64_t previous_live) {
  const MemoryStats d = whole.delta();
  MemoryPoint p;
  p.live = d.live_total;
  p.delta = d.live_total - previous_live;
  p.by_category = d.live;
  return p;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void validate(const MemtraceConfig& config) {
  TG_CHECK(config.layers >= 1, "memtrace: --layers must be at least 1, got ", config.layers);
  TG_CHECK(config.batch >= 1, "memtrace: --batch must be at least 1, got ", config.batch);
  TG_CHECK(config.dim >= 1, "memtrace: --dim must be at least 1, got ", config.dim);
  TG_CHECK(is_floating(config.dtype),
           "memtrace: --dtype must be a float type (f64, f32, bf16, f16), got ",
           dtype_name(config.dtype));
  memtrace_plan(config);  // throws for a bad policy or an infeasible budget
}

remat::Plan memtrace_plan(const MemtraceConfig& config) {
  const remat::ChainSpec spec = memtrace_chain_spec(config);
  const std::string prefix = "budget:";
  if (config.remat.compare(0, prefix.size(), prefix) != 0)
    return remat::plan_executable(spec, config.remat);
  TG_CHECK(!config.eager_grads, "memtrace: --remat ", config.remat,
           " plans against the engine's peak, which is modelled with lazy gradients; drop "
           "--eager-grads");
  const int64_t item = static_cast<int64_t>(dtype_size(config.dtype));
  const int64_t budget = parse_bytes(config.remat.substr(prefix.size()), "--remat budget");
  return remat::plan_linear_chain_budget(spec, {config.dim * config.dim * item, item}, budget);
}

remat::ChainSpec memtrace_chain_spec(const MemtraceConfig& config) {
  const int64_t a = config.batch * config.dim * static_cast<int64_t>(dtype_size(config.dtype));
  return remat::ChainSpec::uniform_chain(static_cast<int>(config.layers), a,
                                         2 * config.batch * config.dim * config.dim);
}

MemtraceResult run_memtrace(const MemtraceConfig& config) {
  validate(config);
  TG_CHECK(grad_enabled(), "memtrace: needs grad mode on (called inside a NoGradGuard?)");

  MemtraceResult r;
  r.config = config;
  const int64_t L = config.layers;
  const remat::ChainSpec spec = memtrace_chain_spec(config);
  const remat::Plan plan = memtrace_plan(config);
  r.remat_policy = plan.policy;
  r.predicted_recomputed_steps = plan.sim.recomputed_steps;
  if (!config.eager_grads) {
    const int64_t item = static_cast<int64_t>(dtype_size(config.dtype));
    const remat::EnginePrediction predicted =
        remat::predict_linear_chain(spec, plan.schedule, {config.dim * config.dim * item, item});
    r.predicted_peak_bytes = predicted.peak_total;
    r.predicted_peak_by_category = predicted.peak_by_category;
  }

  // Eager mode covers the weights too: set_requires_grad then allocates their gradient buffers at
  // once, as a framework that pairs every parameter with a .grad at creation would.
  EagerGradScope eager(config.eager_grads);

  // Opened before anything is created, so every figure is relative to this point.
  MemoryScope whole;
  const MemoryStats base = whole.snapshot();

  // Setup: weights scaled by 1/sqrt(dim) (the std of the normal) so that x_i stays of order 1 along
  // the chain, and an input that does not require grad.
  Generator gen(config.seed);
  std::vector<Tensor> weights;
  weights.reserve(static_cast<size_t>(L));
  const double w_std = 1.0 / std::sqrt(static_cast<double>(config.dim));
  for (int64_t i = 0; i < L; ++i) {
    Tensor w = randn({config.dim, config.dim}, gen, 0.0, w_std, {config.dtype});
    w.set_category(Category::parameter);
    w.set_requires_grad(true);
    w.set_name("W" + std::to_string(i + 1));
    weights.push_back(std::move(w));
  }
  const Tensor input = randn({config.batch, config.dim}, gen, 0.0, 1.0, {config.dtype});
  r.setup = point_of(whole, 0);

  // The traced part: per-layer figures are differences between consecutive tracker readings.
  MemoryScope trace(config.record_timeline);
  OpCounter all_ops;
  int64_t previous = r.setup.live;

  Tensor x = input;
  Tensor loss;
  // The node of each layer and of its weight's accumulator, to label the backward steps. Raw
  // pointers suffice: x_L and the loss keep the whole graph alive until the function returns.
  std::unordered_map<const Node*, int64_t> layer_of;
  // Alive until the end: it reports the steps it recomputed once the backward has run.
  std::unique_ptr<remat::ChainRematerializer> executor;
  {
    OpCounter forward_ops;
    const auto start = std::chrono::steady_clock::now();
    auto record_layer = [&](int64_t layer, const Tensor& x_i) {
      ForwardStep s{std::to_string(layer), layer, point_of(whole, previous)};
      previous = s.mem.live;
      r.forward.push_back(std::move(s));
      const Node* node = x_i.grad_fn().get();
      layer_of[node] = layer;
      const Edge& w_edge = node->next_edges().at(1);
      if (w_edge.valid()) layer_of[w_edge.node.get()] = layer;
    };
    if (config.remat == "none") {
      for (int64_t i = 0; i < L; ++i) {
        x = matmul(x, weights[static_cast<size_t>(i)]);
        record_layer(i + 1, x);
      }
    } else {
      std::vector<remat::LayerFn> layers;
      for (const Tensor& w : weights) {
        layers.push_back([w](const Tensor& in) { return matmul(in, w); });
      }
      executor = std::make_unique<remat::ChainRematerializer>(std::move(layers), plan.schedule);
      // The reading after layer i follows forward(i) and the frees the schedule puts after it.
      x = executor->forward(input, [&](int i, const Tensor& x_i) { record_layer(i, x_i); });
    }
    loss = sum(x);
    ForwardStep s{"sum", 0, point_of(whole, previous)};
    previous = s.mem.live;
    r.forward.push_back(std::move(s));
    r.forward_seconds = seconds_since(start);
    r.forward_matmul_calls = forward_ops.calls("matmul");
    r.forward_flops = forward_ops.total().flops;
  }

  size_t backward_events = 0;
  {
    OpCounter backward_ops;
    // Records the backward alone, to mark where it starts in the whole timeline.
    MemoryScope backward_trace(config.record_timeline);
    BackwardOptions options;
    options.on_node_done = [&](const Node& node) {
      auto it = layer_of.find(&node);
      BackwardStep s{static_cast<int64_t>(r.backward.size()) + 1, node.name(),
                     it == layer_of.end() ? 0 : it->second, point_of(whole, previous)};
      previous = s.mem.live;
      r.backward.push_back(std::move(s));
    };
    const auto start = std::chrono::steady_clock::now();
    run_backward(loss, Tensor(), options);
    r.backward_seconds = seconds_since(start);
    r.backward_matmul_calls = backward_ops.calls("matmul");
    r.backward_flops = backward_ops.total().flops;
    backward_events = backward_trace.events().size();
  }
  r.matmul_calls = all_ops.calls("matmul");
  r.recomputed_steps = executor ? executor->recomputed_steps() : 0;
  r.extra_backward_matmul_calls = r.backward_matmul_calls - (2 * L - 1);

  std::vector<int64_t> deltas;
  for (const ForwardStep& s : r.forward) {
    if (s.layer > 0) deltas.push_back(s.mem.delta);
  }
  std::sort(deltas.begin(), deltas.end());
  r.bytes_per_layer = deltas[(deltas.size() - 1) / 2];

  r.stats = whole.delta();
  r.peak_bytes = whole.peak_delta();
  r.peak_bytes_above_setup = trace.peak_delta();
  if (config.record_timeline) {
    r.timeline = trace.events();
    if (backward_events > 0) {
      r.timeline_backward_start = static_cast<int64_t>(r.timeline.size() - backward_events);
    }
    for (MemoryEvent& e : r.timeline) {
      e.live_after -= base.live_total;
      for (int c = 0; c < kNumCategories; ++c) e.live_by_category[c] -= base.live[c];
    }
  }
  return r;
}

}  // namespace tilegrad::apps
