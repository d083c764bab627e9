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
#include "kernels/optim_step.h"

namespace tilegrad::kernels::cpu {

using ::tilegrad::AdamWStep;
using ::tilegrad::SgdStep;

// param: n elements of dtype `dt`, updated in place. master: float32 master weights when `dt` is
// bf16/f16 (required then), null for f32/f64. grad: dtype `dt`. m, v: acc_t of `dt` (float for
// f32/bf16/f16, double for f64).
void adamw_update(DType dt, void* param, float* master, const void* grad, void* m, void* v,
                  int64_t n, const AdamWStep& s);

// momentum_buf: acc_t of `dt`, may be null when s.momentum == 0.
void sgd_update(DType dt, void* param, float* master, const void* grad, void* momentum_buf,
                int64_t n, const SgdStep& s);

// Σ x[i]² over n elements of dtype `dt`, accumulated in float64 in fixed-size blocks summed in
// block order, so the result has the same bits for any thread count. inf or NaN if any element is.
double sum_squares(DType dt, const void* x, int64_t n);

}  // namespace tilegrad::kernels::cpu
