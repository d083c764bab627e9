// What a layer norm's backward reads of its forward, shared by the layer-norm kernels of every
// device (kernels/cpu/layernorm.h, kernels/cuda/layernorm.h) and the Backend interface.
//
// The backward needs x̂, the normalised input, and rstd. It recovers x̂ in one of two ways:
//   from the input:   x̂ = (x − mean) · rstd
//   from the output:  x̂ = (y − b) / w        (y = x̂ · w + b; a null w reads as 1, a null b as 0)
// The second lets a layer norm whose output is kept anyway — a transformer's layer norms feed a
// GEMM that saves its input for its weight gradient — keep no tensor of its own, so that its input
// can be freed: in GPT, the residual stream before each of the two layer norms of a block, two [B,
// T, C] tensors per block. It reads as many bytes as the first. x̂ cannot be recovered where w is 0
// (y is b there, whatever x was); the kernels then give non-finite gradients rather than wrong
// ones.
#pragma once

#include <cstdint>

#include "core/dtype.h"  // TG_HOST_DEVICE

namespace tilegrad {

struct LayerNormSaved {
  const void* v = nullptr;     // [rows, C]: the input x, or the output y when from_output
  const void* mean = nullptr;  // [rows] in the accumulation type; read from the input only
  const void* rstd = nullptr;  // [rows] in the accumulation type
  const void* b = nullptr;     // [C] or null: the bias; read from the output only
  bool from_output = false;
};

// x̂ of element j of a row whose saved value is v, in the accumulation type A: from the input with
// the row's mean mu and rstd rs, or from the output with column j of w and b (either may be null).
// The CPU kernel and the CUDA two-pass kernels; the one-pass CUDA kernel keeps 1 / w by column.
template <class A, class T>
TG_HOST_DEVICE inline A layernorm_xhat(bool from_output, T v, A mu, A rs, const T* w, const T* b,
                                       int64_t j) {
  if (!from_output) return (A(v) - mu) * rs;
  const A y = b ? A(v) - A(b[j]) : A(v);
  return w ? y / A(w[j]) : y;
}

}  // namespace tilegrad
