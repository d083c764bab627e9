// A kernel that stops the device, for tests of how a run fails on a real CUDA error (`tilegrad
// train --fault-kind device`, Backend::inject_device_fault).
#pragma once

#include <cuda_runtime.h>

namespace tilegrad::kernels::cuda {

// Queues a kernel that executes a trap instruction on `stream`. The launch succeeds; the kernel
// then fails with cudaErrorLaunchFailure, which is sticky: every later CUDA call of the process
// reports it, as after a faulting kernel of the engine's own.
void trap(cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
