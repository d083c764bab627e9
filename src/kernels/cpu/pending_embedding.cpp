// Placeholder until the embedding kernels land; every entry throws.
#include "core/error.h"
#include "kernels/cpu/embedding.h"

namespace tilegrad::kernels::cpu {
void embedding_forward(DType, const void*, DType, const void*, void*, int64_t, int64_t) { throw Error("embedding: not implemented yet"); }
void embedding_backward(DType, const void*, DType, const void*, void*, int64_t, int64_t, int64_t) { throw Error("embedding: not implemented yet"); }
int64_t find_out_of_range(DType, const void*, int64_t, int64_t, int64_t, int64_t, int64_t*) { throw Error("embedding: not implemented yet"); }
}  // namespace tilegrad::kernels::cpu
