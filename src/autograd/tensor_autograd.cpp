// Tensor's autograd methods (declared in core/tensor.h).
#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "autograd/meta.h"
#include "autograd/node.h"
#include "core/error.h"

namespace tilegrad {

bool Tensor::requires_grad() const {
  const AutogradMeta* m = autograd_meta_or_null(*this);
  return m && (m->requires_grad || m->grad_fn);
}

const Tensor& Tensor::set_requires_grad(bool requires_grad) const {
  TG_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be changed; this tensor of shape ",
           shape_str(shape()), " was produced by ", grad_fn()->name(),
           " (use detach() to make a new leaf)");
  TG_CHECK(!requires_grad || is_floating(dtype()),
           "set_requires_grad: only float tensors can "
           "require gradients; got ",
           dtype_name(dtype()), " of shape ", shape_str(shape()));
  AutogradMeta& m = autograd_meta(*this);
  m.requires_grad = requires_grad;
  if (requires_grad && eager_grad_buffers() && !m.grad.defined()) {
    m.grad = empty(shape(), {dtype(), device(), Category::gradient});
    m.grad.zero_();
  }
  return *this;
}

bool Tensor::is_leaf() const {
  const AutogradMeta* m = autograd_meta_or_null(*this);
  return !m || !m->grad_fn;
}

Tensor Tensor::grad() const {
  const AutogradMeta* m = autograd_meta_or_null(*this);
  return m ? m->grad : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  if (grad.defined()) {
    TG_CHECK(grad.shape() == shape() && grad.dtype() == dtype(), "set_grad: gradient ", grad.str(),
             " does not match tensor ", str());
  }
  autograd_meta(*this).grad = grad;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  const AutogradMeta* m = autograd_meta_or_null(*this);
  return m ? m->grad_fn : none;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  BackwardOptions options;
  options.retain_graph = retain_graph;
  run_backward(*this, grad, options);
}

Tensor Tensor::detach() const {
  return alias();
}

void Tensor::register_grad_final_hook(std::function<void(const Tensor&)> hook) const {
  TG_CHECK(is_leaf() && requires_grad(),
           "register_grad_final_hook: only leaves that require grad "
           "have a final gradient; tensor of shape ",
           shape_str(shape()), " is not one");
  autograd_meta(*this).final_hooks.push_back(std::move(hook));
}

Tensor Tensor::tangent() const {
  const AutogradMeta* m = autograd_meta_or_null(*this);
  return m ? m->tangent : Tensor();
}

}  // namespace tilegrad
