// Placeholder until the softmax kernels land; every entry throws.
#include "core/error.h"
#include "kernels/cpu/softmax.h"

namespace tilegrad::kernels::cpu {
void softmax_forward(DType, const void*, void*, int64_t, int64_t, int64_t, bool) { throw Error("softmax: not implemented yet"); }
void softmax_backward(DType, const void*, const void*, void*, int64_t, int64_t, int64_t, bool) { throw Error("softmax: not implemented yet"); }
}  // namespace tilegrad::kernels::cpu
