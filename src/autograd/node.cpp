#include "autograd/node.h"

#include <any>
#include <atomic>

#include "autograd/accumulate_grad.h"
#include "autograd/grad_mode.h"
#include "autograd/meta.h"
#include "autograd/saved_hooks.h"
#include "core/error.h"
#include "memory/category.h"

namespace tilegrad {

namespace {
std::atomic<uint64_t> g_next_seq{0};
}

// What a saved tensor keeps when a pack hook took it (see Note [Saved-tensor hooks]).
struct SavedTensor::Packed {
  std::shared_ptr<const SavedTensorHooks> hooks;
  std::weak_ptr<Storage> storage;  // to version-check an unpacked tensor on the same storage
  Shape shape;
  DType dtype = DType::f32;
  std::any value;  // last member: destroyed first, while `hooks` is still alive
};

SavedTensor::SavedTensor(const Tensor& t, const Node& owner) : was_defined_(t.defined()) {
  if (!t.defined()) return;
  version_ = t.storage()->version();
  if (const std::shared_ptr<const SavedTensorHooks>* hooks = current_saved_tensor_hooks()) {
    std::any value;
    {
      SavedTensorHooksDisabled off;  // ops run by the pack hook save normally
      // A detached alias, as without hooks (Note [Saved tensors]): a hook that keeps what it is
      // given must not keep the saving node alive through the tensor's grad_fn.
      value = (*hooks)->pack(t.alias(), owner);
    }
    if (value.has_value()) {
      packed_ = std::make_shared<Packed>();
      packed_->hooks = *hooks;
      packed_->storage = t.storage();
      packed_->shape = t.shape();
      packed_->dtype = t.dtype();
      packed_->value = std::move(value);
      return;
    }
  }
  data_ = t.alias();
}

Tensor SavedTensor::unpack(const Node& owner) const {
  TG_CHECK(!released(), owner.name(),
           " backward: its saved tensors were already freed by an earlier backward; trying to "
           "backward through the graph a second time needs retain_graph=true on the first call");
  if (packed_) {
    Tensor v = packed_->hooks->unpack(packed_->value);
    TG_CHECK(v.defined() && v.shape() == packed_->shape && v.dtype() == packed_->dtype,
             owner.name(), " backward: the unpack hook returned ", v.defined() ? v.str() : "none",
             " for a saved tensor of shape ", shape_str(packed_->shape), " and dtype ",
             dtype_name(packed_->dtype));
    if (v.storage() == packed_->storage.lock()) {
      TG_CHECK(v.storage()->version() == version_, owner.name(), " backward: a tensor of shape ",
               shape_str(v.shape()),
               " saved for the gradient was modified in place after it was saved (version ",
               version_, " -> ", v.storage()->version(), ")");
    }
    return v;
  }
  if (data_.defined()) {
    TG_CHECK(data_.storage()->version() == version_, owner.name(), " backward: a tensor of shape ",
             shape_str(data_.shape()),
             " saved for the gradient was modified in place after it was saved (version ", version_,
             " -> ", data_.storage()->version(), ")");
  }
  return data_;
}

Node::Node(const char* name) : name_(name), seq_(g_next_seq++) {}

Node::~Node() {
  // See Note [Iterative graph destruction].
  thread_local std::vector<std::shared_ptr<Node>> pending;
  thread_local bool draining = false;
  for (Edge& e : next_edges_) {
    if (e.node && e.node.use_count() == 1) pending.push_back(std::move(e.node));
  }
  next_edges_.clear();
  if (draining) return;
  draining = true;
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    n.reset();  // may push n's own children onto `pending`
  }
  draining = false;
}

size_t Node::save(const Tensor& t) {
  saved_.emplace_back(t, *this);
  return saved_.size() - 1;
}

int64_t Node::saved_bytes() const {
  int64_t n = 0;
  for (const auto& s : saved_) n += s.nbytes();
  return n;
}

void Node::release_saved() {
  for (auto& s : saved_) s.release();
  released_ = true;
}

AutogradMeta& autograd_meta(const Tensor& t) {
  auto& p = t.impl().autograd;
  if (!p) p = std::make_shared<AutogradMeta>();
  return *p;
}

Edge gradient_edge(const Tensor& t) {
  AutogradMeta* m = autograd_meta_or_null(t);
  if (!m) return {};
  if (m->grad_fn) return {m->grad_fn, m->output_nr};
  if (!m->requires_grad) return {};
  std::shared_ptr<Node> acc = m->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t);
    m->grad_accumulator = acc;
  }
  return {acc, 0};
}

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

void set_history(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs,
                 const std::vector<Tensor>& outputs) {
  auto& edges = node->next_edges();
  edges.clear();
  edges.reserve(inputs.size());
  for (const Tensor& t : inputs) edges.push_back(t.defined() ? gradient_edge(t) : Edge{});
  auto& infos = node->outputs();
  infos.clear();
  for (uint32_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    AutogradMeta& m = autograd_meta(out);
    m.grad_fn = node;
    m.output_nr = i;
    infos.push_back({out.shape(), out.dtype(), out.device()});
  }
  if (eager_grad_buffers()) {
    CategoryScope cat(Category::gradient);
    auto& pre = node->preallocated_grads();
    pre.clear();
    for (const Tensor& out : outputs) {
      Tensor z = empty(out.shape(), {out.dtype(), out.device(), Category::gradient});
      z.zero_();
      pre.push_back(z);
    }
  }
}

}  // namespace tilegrad
