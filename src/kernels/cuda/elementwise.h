// CUDA elementwise kernels over strided views (broadcast operands have stride 0): the entries of
// kernels/cpu/elementwise.h with the same semantics — arithmetic in acc_t<T> (float for 16-bit
// types), the same dtypes and the same errors — run on `stream`. Every pointer in the views is a
// device pointer. Includable from plain C++: the kernels themselves live in elementwise.cu.
#pragma once

#include <cuda_runtime.h>

#include "backend/backend.h"

namespace tilegrad::kernels::cuda {

// dst = src converted to dst's dtype (any pair of dtypes, as the CPU converts them).
void copy(const StridedView& src, const StridedView& dst, cudaStream_t stream);
void fill(const StridedView& dst, double value, cudaStream_t stream);
void unary(UnaryOp op, const StridedView& x, const StridedView& y, cudaStream_t stream);
// gx = gy * f'(.), where `saved` is x or y as unary_backward_reads(op) says.
void unary_backward(UnaryOp op, const StridedView& gy, const StridedView& saved,
                    const StridedView& gx, cudaStream_t stream);
void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out,
            cudaStream_t stream);
void scalar(ScalarOp op, const StridedView& a, double s, const StridedView& out,
            cudaStream_t stream);
// dst += alpha * src (in place; src broadcast to dst's shape).
void add_scaled(const StridedView& src, double alpha, const StridedView& dst, cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
