// CPU reductions (sum, max) over any set of dimensions.
#pragma once

#include "backend/backend.h"

namespace tilegrad::kernels::cpu {

// out has x's rank with size 1 on reduced dimensions and is contiguous.
void reduce(ReduceOp op, const StridedView& x, const StridedView& out);

}  // namespace tilegrad::kernels::cpu
