// Tensor factories. Results are leaves (requires_grad false) tagged with the thread's
// CategoryScope, else `other`. Random factories draw from an explicit Generator (core/rng.h), never
// a global one.
#pragma once

#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace tilegrad {

Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// 0, 1, ..., n-1.
Tensor arange(int64_t n, TensorOptions options = {});
// A tensor with the given values (row-major), converted to options.dtype.
Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                   TensorOptions options = {});
Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape,
                   TensorOptions options = {DType::i64});
// Uniform in [lo, hi).
Tensor rand_uniform(const Shape& shape, Generator& gen, double lo = 0.0, double hi = 1.0,
                    TensorOptions options = {});
// Normal(mean, std).
Tensor randn(const Shape& shape, Generator& gen, double mean = 0.0, double std = 1.0,
             TensorOptions options = {});
// Uniform integers in [lo, hi).
Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen,
               TensorOptions options = {DType::i64});

}  // namespace tilegrad
