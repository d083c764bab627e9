// The trapping kernel (fault.h).
#include "kernels/cuda/fault.h"

#include "cuda/check.h"

namespace tilegrad::kernels::cuda {

namespace {

__global__ void trap_kernel() {
  __trap();
}

}  // namespace

void trap(cudaStream_t stream) {
  trap_kernel<<<1, 1, 0, stream>>>();
  TG_CUDA_CHECK_LAUNCH();
}

}  // namespace tilegrad::kernels::cuda
