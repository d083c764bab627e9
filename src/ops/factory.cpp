// Tensor factories.
#include "ops/factory.h"

#include <cmath>

#include "core/error.h"
#include "ops/common.h"

namespace tilegrad {

Tensor full(const Shape& shape, double value, TensorOptions options) {
  Tensor t = empty(shape, options);
  backend(options.device).fill(strided(t), value);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions options) {
  return full(shape, 0.0, options);
}
Tensor ones(const Shape& shape, TensorOptions options) {
  return full(shape, 1.0, options);
}
Tensor zeros_like(const Tensor& t) {
  return zeros(t.shape(), {t.dtype(), t.device()});
}
Tensor ones_like(const Tensor& t) {
  return ones(t.shape(), {t.dtype(), t.device()});
}

Tensor arange(int64_t n, TensorOptions options) {
  TG_CHECK(n >= 0, "arange: negative length ", n);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i);
  return from_vector(v, {n}, options);
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, TensorOptions options) {
  check_shape(shape, "from_vector");
  TG_CHECK(static_cast<int64_t>(values.size()) == numel(shape), "from_vector: ", values.size(),
           " values for shape ", shape_str(shape), " (", numel(shape), " elements)");
  // Converted on the host, then copied to the device in one transfer.
  const Device device = options.device;
  options.device = Device::cpu();
  Tensor t = empty(shape, options);
  StridedView src = strided(t);  // same layout, pointing at the host doubles
  src.data = const_cast<double*>(values.data());
  src.dtype = DType::f64;
  backend(Device::cpu()).copy(src, strided(t));
  return t.to(device);
}

Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape, TensorOptions options) {
  check_shape(shape, "from_vector");
  TG_CHECK(static_cast<int64_t>(values.size()) == numel(shape), "from_vector: ", values.size(),
           " values for shape ", shape_str(shape));
  const Device device = options.device;
  options.device = Device::cpu();
  Tensor t = empty(shape, options);
  StridedView src = strided(t);
  src.data = const_cast<int64_t*>(values.data());
  src.dtype = DType::i64;
  backend(Device::cpu()).copy(src, strided(t));
  return t.to(device);
}

Tensor rand_uniform(const Shape& shape, Generator& gen, double lo, double hi,
                    TensorOptions options) {
  Tensor t = empty(shape, options);
  check_floating("rand_uniform", t);
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(t.numel()));
  backend(options.device).fill_uniform(t.dtype(), t.data(), t.numel(), lo, hi, gen.seed(), offset);
  return t;
}

Tensor randn(const Shape& shape, Generator& gen, double mean, double std, TensorOptions options) {
  Tensor t = empty(shape, options);
  check_floating("randn", t);
  const uint64_t offset = gen.reserve(2 * static_cast<uint64_t>(t.numel()));
  backend(options.device)
      .fill_normal(t.dtype(), t.data(), t.numel(), mean, std, gen.seed(), offset);
  return t;
}

Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen, TensorOptions options) {
  TG_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  const Tensor u = rand_uniform(shape, gen, 0.0, 1.0, {DType::f64, Device::cpu()});
  std::vector<int64_t> v;
  v.reserve(static_cast<size_t>(u.numel()));
  for (double x : u.to_vector<double>()) {
    v.push_back(
        std::min(hi - 1, lo + static_cast<int64_t>(std::floor(x * static_cast<double>(hi - lo)))));
  }
  return from_vector(v, shape, options);
}

}  // namespace tilegrad
