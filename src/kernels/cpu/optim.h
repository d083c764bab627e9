// CPU optimizer kernels: fused AdamW and SGD updates and the sum of squares for gradient norms.
//
// Raw pointers in, no Tensor. One pass reads each element of the parameter, gradient and state
// once and writes parameter and state once. Math is in acc_t<T> (float32 for float32, bfloat16 and
// float16 parameters; float64 for float64 ones). A 16-bit parameter has a float32 master copy: the
// update is computed on the master and the 16-bit parameter is rewritten from it (round to nearest
// even), so updates smaller than the 16-bit spacing accumulate in the master instead of being lost.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cpu {

// One AdamW step for one tensor (PyTorch's formulation, decoupled weight decay):
//   g = grad * grad_scale
//   p = p * (1 - lr * weight_decay)
//   m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g²
//   p = p - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
struct AdamWStep {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;         // 1 at the first update of this tensor (bias correction)
  double grad_scale = 1.0;  // folds loss-scale removal, accumulation averaging and clipping in
};

// param: n elements of dtype `dt`, updated in place. master: float32 master weights when `dt` is
// bf16/f16 (required then), null for f32/f64. grad: dtype `dt`. m, v: acc_t of `dt` (float for
// f32/bf16/f16, double for f64).
void adamw_update(DType dt, void* param, float* master, const void* grad, void* m, void* v,
                  int64_t n, const AdamWStep& s);

// One SGD step for one tensor (PyTorch's formulation, L2 weight decay added to the gradient):
//   g = grad * grad_scale + weight_decay * p
//   b = first_step ? g : momentum b + (1 - dampening) g      (when momentum != 0)
//   g = nesterov ? g + momentum b : b                         (when momentum != 0)
//   p = p - lr g
struct SgdStep {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = true;  // the momentum buffer starts as the first gradient
  double grad_scale = 1.0;
};

// momentum_buf: acc_t of `dt`, may be null when s.momentum == 0.
void sgd_update(DType dt, void* param, float* master, const void* grad, void* momentum_buf,
                int64_t n, const SgdStep& s);

// Σ x[i]² over n elements of dtype `dt`, accumulated in float64 in fixed-size blocks summed in
// block order, so the result has the same bits for any thread count. inf or NaN if any element is.
double sum_squares(DType dt, const void* x, int64_t n);

}  // namespace tilegrad::kernels::cpu
