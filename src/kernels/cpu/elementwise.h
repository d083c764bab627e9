// CPU elementwise kernels over strided views (broadcast operands have stride 0).
#pragma once

#include "backend/backend.h"

namespace tilegrad::kernels::cpu {

void copy(const StridedView& src, const StridedView& dst);
void fill(const StridedView& dst, double value);
void unary(UnaryOp op, const StridedView& x, const StridedView& y);
void unary_backward(UnaryOp op, const StridedView& gy, const StridedView& saved,
                    const StridedView& gx);
void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out);
void scalar(ScalarOp op, const StridedView& a, double s, const StridedView& out);
void add_scaled(const StridedView& src, double alpha, const StridedView& dst);

}  // namespace tilegrad::kernels::cpu
