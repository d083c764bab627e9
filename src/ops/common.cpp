#include "ops/common.h"

#include "core/error.h"
#include "memory/category.h"

namespace tilegrad {

StridedView strided(const Tensor& t) {
  StridedView v;
  v.data = t.data();
  v.dtype = t.dtype();
  v.ndim = static_cast<int>(t.dim());
  for (int i = 0; i < v.ndim; ++i) {
    v.shape[i] = t.shape()[i];
    v.strides[i] = t.strides()[i];
  }
  return v;
}

StridedView strided_as(const Tensor& t, const Shape& shape) {
  StridedView v;
  v.data = t.data();
  v.dtype = t.dtype();
  v.ndim = static_cast<int>(shape.size());
  const int lead = v.ndim - static_cast<int>(t.dim());
  TG_ASSERT(lead >= 0, "cannot broadcast ", shape_str(t.shape()), " to ", shape_str(shape));
  for (int i = 0; i < v.ndim; ++i) {
    v.shape[i] = shape[i];
    if (i < lead) {
      v.strides[i] = 0;
    } else {
      const int64_t d = t.shape()[i - lead];
      TG_ASSERT(d == shape[i] || d == 1, "cannot broadcast ", shape_str(t.shape()), " to ",
                shape_str(shape));
      v.strides[i] = (d == shape[i] && d != 1) ? t.strides()[i - lead] : 0;
    }
  }
  return v;
}

Tensor empty_output(const Shape& shape, DType dtype, Device device) {
  return empty(shape, {dtype, device, current_category_or(Category::activation)});
}

void check_defined(const char* op, const Tensor& t, const char* what) {
  TG_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

void check_floating(const char* op, const Tensor& t) {
  TG_CHECK(is_floating(t.dtype()), op, ": expected a float tensor, got ", dtype_name(t.dtype()),
           " of shape ", shape_str(t.shape()));
}

void check_compatible(const char* op, const std::vector<Tensor>& ts) {
  for (const Tensor& t : ts) check_defined(op, t);
  for (size_t i = 1; i < ts.size(); ++i) {
    TG_CHECK(ts[i].device() == ts[0].device(), op,
             ": tensors are on different devices: ", ts[0].str(), " and ", ts[i].str());
    TG_CHECK(ts[i].dtype() == ts[0].dtype(), op, ": dtypes differ: ", ts[0].str(), " and ",
             ts[i].str());
  }
}

}  // namespace tilegrad
