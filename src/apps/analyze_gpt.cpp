// The engine GPT of `tilegrad analyze transformer` (see analyze_gpt.h).
#include "apps/analyze_gpt.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "autograd/checkpoint.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/error.h"
#include "memory/tracker.h"
#include "ops/concat.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/factory.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "ops/softmax.h"
#include "ops/view.h"

namespace tilegrad::apps {

namespace {

using analysis::GptDims;

struct Layer {
  Tensor ln1_w, ln1_b, w_qkv, b_qkv, w_o, b_o, ln2_w, ln2_b, w_fc, b_fc, w_proj, b_proj;
};

struct Model {
  Tensor wte, wpe, ln_f_w, ln_f_b, w_lm;
  std::vector<Layer> layers;
  Tensor mask;                 // [T, T]: 0 on and below the diagonal, a large negative number above
  std::vector<Tensor> params;  // every tensor above that requires grad
};

Tensor param(const Shape& shape, Generator& gen, double std, DType dt) {
  Tensor t = randn(shape, gen, 0.0, std, {dt});
  t.set_category(Category::parameter);
  t.set_requires_grad(true);
  return t;
}

Tensor constant(const Shape& shape, double value, DType dt) {
  Tensor t = full(shape, value, {dt});
  t.set_category(Category::parameter);
  t.set_requires_grad(true);
  return t;
}

Model make_model(const GptDims& g, Generator& gen) {
  const DType dt = g.dtype;
  const double s = 0.02;  // GPT-2's initialisation scale
  Model m;
  m.wte = param({g.V, g.d}, gen, s, dt);
  m.wpe = param({g.T, g.d}, gen, s, dt);
  for (int64_t l = 0; l < g.L; ++l) {
    Layer y;
    y.ln1_w = constant({g.d}, 1.0, dt);
    y.ln1_b = constant({g.d}, 0.0, dt);
    y.w_qkv = param({g.d, 3 * g.d}, gen, s, dt);
    y.w_o = param({g.d, g.d}, gen, s, dt);
    y.ln2_w = constant({g.d}, 1.0, dt);
    y.ln2_b = constant({g.d}, 0.0, dt);
    y.w_fc = param({g.d, 4 * g.d}, gen, s, dt);
    y.w_proj = param({4 * g.d, g.d}, gen, s, dt);
    if (g.bias) {
      y.b_qkv = constant({3 * g.d}, 0.0, dt);
      y.b_o = constant({g.d}, 0.0, dt);
      y.b_fc = constant({4 * g.d}, 0.0, dt);
      y.b_proj = constant({g.d}, 0.0, dt);
    }
    m.layers.push_back(std::move(y));
  }
  m.ln_f_w = constant({g.d}, 1.0, dt);
  m.ln_f_b = constant({g.d}, 0.0, dt);
  m.w_lm = param({g.d, g.V}, gen, s, dt);
  // An additive mask rather than -inf, so that exp() of a masked score is exactly 0 without NaN
  // from (-inf) - (-inf) in a fully masked row (none occurs here, but the constant is safe).
  std::vector<double> mask(static_cast<size_t>(g.T * g.T), 0.0);
  for (int64_t i = 0; i < g.T; ++i) {
    for (int64_t j = i + 1; j < g.T; ++j) mask[static_cast<size_t>(i * g.T + j)] = -1e9;
  }
  m.mask = from_vector(mask, {g.T, g.T}, {dt});
  for (const Tensor& t : {m.wte, m.wpe, m.ln_f_w, m.ln_f_b, m.w_lm}) m.params.push_back(t);
  for (const Layer& y : m.layers) {
    for (const Tensor& t : {y.ln1_w, y.ln1_b, y.w_qkv, y.b_qkv, y.w_o, y.b_o, y.ln2_w, y.ln2_b,
                            y.w_fc, y.b_fc, y.w_proj, y.b_proj}) {
      if (t.defined()) m.params.push_back(t);
    }
  }
  return m;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y = matmul(x, w);
  return b.defined() ? add(y, b) : y;
}

// One block, in the op order of analysis::gpt_layer_ops. Each intermediate is dropped as soon as
// it is dead, so that a forward without a graph holds only what it must (locals held to the end of
// the function would inflate the inference peak by several H·T² matrices).
Tensor block(const GptDims& g, const Layer& y, const Tensor& mask, const Tensor& x) {
  const int64_t B = g.B, T = g.T, d = g.d, H = g.H, D = d / H;
  auto heads = [&](const Tensor& t) {  // [B, T, d] -> [B, H, T, D], contiguous
    return t.reshape({B, T, H, D}).transpose(1, 2).contiguous();
  };
  Tensor q, k, v;
  {
    Tensor qkv = layer_norm(x, y.ln1_w, y.ln1_b);
    qkv = linear(qkv, y.w_qkv, y.b_qkv);  // [B, T, 3d]
    const std::vector<Tensor> parts = split(qkv, {d, d, d}, -1);
    q = mul(heads(parts[0]), 1.0 / std::sqrt(static_cast<double>(D)));
    k = heads(parts[1]);
    v = heads(parts[2]);
  }
  Tensor p = add(matmul(q, k.transpose(-2, -1)), mask);  // masked scores [B, H, T, T]
  q = Tensor();
  k = Tensor();
  p = softmax(p, -1);
  Tensor att = matmul(p, v).transpose(1, 2).reshape({B, T, d});  // merge heads (a copy)
  p = Tensor();
  v = Tensor();
  const Tensor x1 = add(x, linear(att, y.w_o, y.b_o));
  att = Tensor();
  Tensor m = layer_norm(x1, y.ln2_w, y.ln2_b);
  m = linear(m, y.w_fc, y.b_fc);  // [B, T, 4d]
  m = gelu(m);
  m = linear(m, y.w_proj, y.b_proj);
  return add(x1, m);
}

// The forward; `mode` wraps blocks in checkpoint().
Tensor forward(const GptDims& g, const Model& m, const Tensor& idx, const Tensor& targets,
               GptCheckpoint mode) {
  Tensor x = add(embedding(m.wte, idx), m.wpe);
  const int64_t L = g.L;
  int64_t k = 1;  // blocks per checkpointed segment
  if (mode == GptCheckpoint::sqrt_segments) {
    while (k * k < L) ++k;
  }
  if (mode == GptCheckpoint::none) {
    // Assigning each block's output to x frees its input as soon as nothing else holds it.
    for (const Layer& y : m.layers) x = block(g, y, m.mask, x);
  } else {
    for (int64_t l = 0; l < L; l += k) {
      const int64_t end = std::min(L, l + k);
      auto segment = [&g, &m, l, end](const std::vector<Tensor>& in) {
        Tensor t = in[0];
        for (int64_t i = l; i < end; ++i) {
          t = block(g, m.layers[static_cast<size_t>(i)], m.mask, t);
        }
        return t;
      };
      x = checkpoint(segment, {x});
    }
  }
  x = layer_norm(x, m.ln_f_w, m.ln_f_b);
  const Tensor logits = matmul(x, m.w_lm);  // [B, T, V]
  x = Tensor();
  return cross_entropy(logits, targets);
}

std::string shape_of(const Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

// Walks the graph from the loss and groups the distinct storages its nodes save, each under the
// first node (in forward order) that saves it.
void walk_saved(const Tensor& loss, GptMeasurement& r) {
  std::vector<Node*> nodes;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack{loss.grad_fn().get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (n == nullptr || !seen.insert(n).second) continue;
    nodes.push_back(n);
    for (const Edge& e : n->next_edges()) stack.push_back(e.node.get());
  }
  std::sort(nodes.begin(), nodes.end(),
            [](const Node* a, const Node* b) { return a->sequence_nr() < b->sequence_nr(); });
  std::unordered_set<const Storage*> counted;
  std::map<std::pair<std::string, std::string>, SavedGroup> groups;
  std::vector<std::pair<std::string, std::string>> order;
  for (const Node* n : nodes) {
    for (const SavedTensor& s : n->saved_tensors()) {
      const Tensor& t = s.peek();
      if (!t.defined() || t.storage()->category() == Category::parameter ||
          t.storage()->category() == Category::other) {
        continue;  // parameters and inputs are not graph memory
      }
      if (!counted.insert(t.storage().get()).second) continue;
      const auto key = std::make_pair(std::string(n->name()), shape_of(t));
      SavedGroup& grp = groups[key];
      if (grp.count == 0) order.push_back(key);
      grp.op = key.first;
      grp.shape = key.second;
      grp.count += 1;
      grp.elements = static_cast<int64_t>(t.storage()->nbytes() / t.itemsize());
      grp.bytes += static_cast<int64_t>(t.storage()->nbytes());
      r.saved_bytes += static_cast<int64_t>(t.storage()->nbytes());
    }
  }
  for (const auto& key : order) r.saved.push_back(groups[key]);
}

}  // namespace

GptMeasurement measure_gpt(const GptDims& g, GptCheckpoint mode, uint64_t seed) {
  g.validate();
  GptMeasurement r;
  MemoryScope whole;
  Generator gen(seed);
  const Model model = make_model(g, gen);
  const Tensor idx = randint({g.B, g.T}, 0, g.V, gen);
  const Tensor targets = randint({g.B, g.T}, 0, g.V, gen);
  {
    const MemoryStats s = whole.delta();
    r.parameter_bytes = s.live_of(Category::parameter);
    r.input_bytes = s.live_total - r.parameter_bytes;
  }
  r.parameter_count = r.parameter_bytes / static_cast<int64_t>(dtype_size(g.dtype));
  {
    // Parameter gradients exist before the step (the backward accumulates into them in place), so
    // the step's peak is activations, activation gradients and recomputation only, not the
    // parameter gradients the backward happens to have created by then.
    CategoryScope cat(Category::gradient);
    const int64_t before = whole.delta().live_total;
    for (const Tensor& p : model.params) p.set_grad(zeros_like(p));
    r.gradient_bytes = whole.delta().live_total - before;
  }

  {  // inference: no graph
    NoGradGuard no_grad;
    MemoryScope scope;
    const Tensor loss = forward(g, model, idx, targets, GptCheckpoint::none);
    r.inference_peak = scope.peak_delta();
  }
  {  // training
    MemoryScope step;
    Tensor loss;
    {
      MemoryScope fwd;
      OpCounter ops;
      loss = forward(g, model, idx, targets, mode);
      r.graph_bytes = fwd.delta().live_total;
      r.forward_peak = fwd.peak_delta();
      r.forward_ops = ops.by_op();
    }
    r.loss = loss.item();
    if (mode == GptCheckpoint::none) walk_saved(loss, r);
    loss.backward();
    r.step_peak = step.peak_delta();
  }
  return r;
}

}  // namespace tilegrad::apps
