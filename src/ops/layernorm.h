// Layer normalisation over the last dimension: y = (x - mean) / sqrt(var + eps) * weight + bias,
// with the biased variance. weight and bias [C] may be undefined (no affine part).
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

// What the backward keeps to recover the normalised input x̂ (kernels/layernorm_saved.h):
// - input: x, with each row's mean and rstd;
// - output: y, with each row's rstd and the weight and bias, x̂ = (y − bias) / weight. For a layer
//   norm whose output the next op saves anyway (a linear saves its input for its weight's
//   gradient), so that the layer norm keeps no tensor of its own and its input can be freed. The
//   backward reads as many bytes either way. Where the weight is 0, y no longer tells x̂, and the
//   gradients come out non-finite (NaN), never silently wrong.
enum class LayerNormSaves { input, output };

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5,
                  LayerNormSaves saves = LayerNormSaves::input);

Cost layer_norm_cost(const Shape& x, DType dt);

}  // namespace tilegrad
