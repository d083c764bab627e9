// Tensor: a handle to a view (shape, strides, offset, dtype) over a reference-counted Storage.
//
// Copying a Tensor copies the handle, not the data. The data-level API (layout, pointers, values)
// is defined in core/tensor.cpp. The autograd methods (requires_grad, grad, backward, ...) are
// defined in autograd/tensor_autograd.cpp and the view and in-place methods in ops/, so that this
// header can be the one type every layer speaks while each layer keeps its own code.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/shape.h"
#include "core/storage.h"

namespace tilegrad {

struct AutogradMeta;  // autograd/meta.h
class Node;           // autograd/node.h
class Tensor;

// How to create a tensor. The category defaults to the thread's CategoryScope, else `other`; the
// device to the thread's DeviceScope, else cpu.
struct TensorOptions {
  DType dtype = DType::f32;
  Device device = default_device();
  std::optional<Category> category = std::nullopt;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;     // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  std::shared_ptr<AutogradMeta> autograd;  // null until the tensor takes part in autograd
  std::string name;                        // optional, for reports
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- layout and data (core/tensor.cpp) ---
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // d may be negative
  const Strides& strides() const { return impl().strides; }
  int64_t stride(int64_t d) const;
  int64_t offset() const { return impl().offset; }
  int64_t numel() const { return tilegrad::numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  size_t itemsize() const { return dtype_size(impl().dtype); }
  int64_t nbytes() const { return numel() * static_cast<int64_t>(itemsize()); }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  // Pointer to the first element (storage base + offset).
  void* data() const;
  template <class T>
  T* data_ptr() const {
    check_dtype(dtype_of<T>(), "data_ptr");
    return static_cast<T*>(data());
  }
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  // This is the only handle on the tensor and on its storage (no copy of the handle, no view), so
  // writing its data in place changes nothing that anyone else holds.
  bool unshared() const { return impl_.use_count() == 1 && storage().use_count() == 1; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  // A new handle on the same storage and layout, without autograd history ("alias").
  Tensor alias() const;
  const std::string& name() const { return impl().name; }
  const Tensor& set_name(std::string name) const;
  // "Tensor([2, 3], float32, cpu)"; with values for small tensors when `values` is true.
  std::string str(bool values = false) const;

  // Values (cpu tensors; any layout): the single element as double, or all elements in row-major
  // order converted to T.
  double item() const;
  template <class T>
  std::vector<T> to_vector() const;

  // Re-labels the storage's bytes (e.g. a freshly created weight becomes a parameter).
  const Tensor& set_category(Category c) const;

  // --- autograd (autograd/tensor_autograd.cpp) ---
  bool requires_grad() const;
  // Only leaves (tensors without grad_fn) of a float dtype may be set; returns *this.
  const Tensor& set_requires_grad(bool requires_grad = true) const;
  bool is_leaf() const;
  // The accumulated gradient (leaves only); undefined until a backward reaches this tensor.
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  const std::shared_ptr<Node>& grad_fn() const;
  // Reverse-mode: accumulates d(this)/d(leaf) into every leaf's .grad. `grad` defaults to 1 for a
  // single-element tensor. Saved tensors are freed as they are used unless `retain_graph`.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // A tensor sharing storage, with no history and requires_grad false.
  Tensor detach() const;
  // Called once per backward with the leaf, after its gradient for that backward is complete.
  void register_grad_final_hook(std::function<void(const Tensor&)> hook) const;
  // Forward-mode tangent (see autograd/forward_ad.h); undefined when none.
  Tensor tangent() const;

  // --- views (ops/view.cpp); differentiable, sharing storage where the layout allows ---
  Tensor reshape(const Shape& shape) const;  // one size may be -1
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(-2, -1); }
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor contiguous() const;  // this tensor if already contiguous, else a differentiable copy
  Tensor clone() const;       // always a differentiable copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // --- in-place (ops/inplace.cpp); not recorded by autograd, bump the version counter ---
  // Like every method here they are const: a Tensor is a handle, and const-ness of the handle does
  // not extend to the data it refers to.
  const Tensor& fill_(double value) const;
  const Tensor& zero_() const { return fill_(0.0); }
  const Tensor& copy_(
      const Tensor& src) const;  // src broadcast to this shape, converted to this dtype
  const Tensor& add_(const Tensor& other, double alpha = 1.0) const;  // this += alpha * other
  const Tensor& mul_(double value) const;

  void check_dtype(DType expected, const char* op) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// A fresh contiguous tensor of `shape` (uninitialised).
Tensor empty(const Shape& shape, TensorOptions options = {});
// A tensor over existing storage.
Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset);

}  // namespace tilegrad
