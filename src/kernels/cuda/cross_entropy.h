// CUDA fused softmax cross-entropy on logits [rows, V] with integer targets [rows] (see
// Backend::cross_entropy_forward for the contract). The same functions as
// kernels/cpu/cross_entropy.h, plus the stream the work is queued on; pointers are device memory,
// gloss included (one accumulation-type scalar). Asynchronous: nothing waits for the GPU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cuda {

// Rows of logits and glogits are ld >= V elements apart.
// losses[r] = lse[r] - logits[r, t[r]] (0 where t[r] == ignore_index) and lse[r], in the
// accumulation type. A target outside [0, V) that is not ignore_index gives a NaN loss (the CPU
// kernel reads out of bounds there; ops/ rejects such targets before either runs).
void cross_entropy_forward(DType dt, const void* logits, DType t_dt, const void* targets,
                           void* losses, void* lse, int64_t rows, int64_t V, int64_t ld,
                           int64_t ignore_index, cudaStream_t stream);
// glogits[r, j] = (softmax[r, j] - [j == t[r]]) * gloss * scale in the logits' dtype; 0 on ignored
// rows.
void cross_entropy_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                            const void* lse, const void* gloss, double scale, void* glogits,
                            int64_t rows, int64_t V, int64_t ld, int64_t ignore_index,
                            cudaStream_t stream);

// Both of the above for the same rows (glogits may be logits), with the gradient computed from the
// lse this call computes. When a row fits in a block's shared memory, one kernel reads it once from
// global memory and writes its gradient once; its sums run in another order than
// cross_entropy_forward's, so lse may differ from that kernel's in the last bits (its bits, too,
// depend on V alone). Otherwise the two kernels run. Returns whether the single kernel ran.
bool cross_entropy_forward_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                                    void* losses, void* lse, const void* gloss, double scale,
                                    void* glogits, int64_t rows, int64_t V, int64_t ld,
                                    int64_t ignore_index, cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
