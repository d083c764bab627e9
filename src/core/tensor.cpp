#include "core/tensor.h"

#include <cstdio>

#include "core/error.h"

namespace tilegrad {

TensorImpl& Tensor::impl() const {
  TG_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const {
  return shape()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  return strides()[wrap_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  const auto& sh = shape();
  const auto& st = strides();
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;  // the stride of a size-1 dimension never matters
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::data() const {
  auto* base = static_cast<char*>(impl().storage->data());
  return base ? base + impl().offset * static_cast<int64_t>(itemsize()) : nullptr;
}

Tensor Tensor::alias() const {
  auto p = std::make_shared<TensorImpl>();
  p->storage = impl().storage;
  p->shape = impl().shape;
  p->strides = impl().strides;
  p->offset = impl().offset;
  p->dtype = impl().dtype;
  p->name = impl().name;
  return Tensor(std::move(p));
}

const Tensor& Tensor::set_name(std::string name) const {
  impl().name = std::move(name);
  return *this;
}

void Tensor::check_dtype(DType expected, const char* op) const {
  TG_CHECK(dtype() == expected, op, ": expected dtype ", dtype_name(expected), ", got ",
           dtype_name(dtype()), " (shape ", shape_str(shape()), ")");
}

const Tensor& Tensor::set_category(Category c) const {
  impl().storage->retag(c);
  return *this;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  // A device tensor is copied to the host first (Tensor::to, in ops/view.cpp); that waits for the
  // device's queued work, like PyTorch's .cpu().
  if (!device().is_cpu()) return to(Device::cpu()).to_vector<T>();
  std::vector<T> out(static_cast<size_t>(numel()));
  if (out.empty()) return out;
  const int64_t nd = dim();
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  dispatch_all(dtype(), "to_vector", [&]<class S>() {
    const S* base = static_cast<const S*>(data());
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t off = 0;
      for (int64_t d = 0; d < nd; ++d) off += idx[d] * strides()[d];
      if constexpr (std::is_same_v<S, bfloat16> || std::is_same_v<S, float16>) {
        out[i] = static_cast<T>(static_cast<float>(base[off]));
      } else {
        out[i] = static_cast<T>(base[off]);
      }
      for (int64_t d = nd - 1; d >= 0; --d) {  // advance the row-major multi-index
        if (++idx[d] < shape()[d]) break;
        idx[d] = 0;
      }
    }
  });
  return out;
}

template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;

double Tensor::item() const {
  TG_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(),
           " elements, expected exactly 1");
  return to_vector<double>()[0];
}

std::string Tensor::str(bool values) const {
  if (!defined()) return "Tensor(undefined)";
  std::string s = "Tensor(" + shape_str(shape()) + ", " + std::string(dtype_name(dtype())) + ", " +
                  device().str();
  if (values && numel() <= 64) {
    s += ", [";
    auto v = to_vector<double>();
    for (size_t i = 0; i < v.size(); ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.6g", i ? ", " : "", v[i]);
      s += buf;
    }
    s += "]";
  }
  return s + ")";
}

Tensor empty(const Shape& shape, TensorOptions options) {
  check_shape(shape, "empty");
  auto p = std::make_shared<TensorImpl>();
  const size_t nbytes = static_cast<size_t>(numel(shape)) * dtype_size(options.dtype);
  p->storage = std::make_shared<Storage>(
      nbytes, options.device, options.category.value_or(current_category_or(Category::other)));
  p->shape = shape;
  p->strides = contiguous_strides(shape);
  p->dtype = options.dtype;
  return Tensor(std::move(p));
}

Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  auto p = std::make_shared<TensorImpl>();
  p->storage = base.storage();
  p->shape = std::move(shape);
  p->strides = std::move(strides);
  p->offset = offset;
  p->dtype = base.dtype();
  return Tensor(std::move(p));
}

}  // namespace tilegrad
