// CUDA embedding lookup and its deterministic backward, plus index range validation (see
// Backend::embedding_forward for the contract). The same functions as kernels/cpu/embedding.h, plus
// the stream the work is queued on; pointers are device memory.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cuda {

// out[i, :] = weight[idx[i], :] for n indices (rows of C elements of dt; any dtype). Asynchronous.
void embedding_forward(DType dt, const void* weight, DType idx_dt, const void* idx, void* out,
                       int64_t n, int64_t C, cudaStream_t stream);
// gweight [V, C] is overwritten with the sum of the rows of gout for each index, added in position
// order — the same bits on every run, and the same as the CPU kernel's; with `accumulate` the sums
// are added to the rows that indices hit (T(A(gweight) + A(T(sum))), as the CPU kernel does) and
// the other rows are not touched. An index outside [0, V) contributes nothing (the CPU kernel
// asserts; ops/ rejects them before either runs). Asynchronous; needs n < 2^31 and V < 2^31.
void embedding_backward(DType dt, const void* gout, DType idx_dt, const void* idx, void* gweight,
                        int64_t n, int64_t C, int64_t V, bool accumulate, cudaStream_t stream);
// The first position i in idx[0, n) with idx[i] outside [lo, hi) and idx[i] != ignore, or -1; its
// value goes to *bad_value (a host pointer; may be null). Waits for the stream to finish.
int64_t find_out_of_range(DType idx_dt, const void* idx, int64_t n, int64_t lo, int64_t hi,
                          int64_t ignore, int64_t* bad_value, cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
