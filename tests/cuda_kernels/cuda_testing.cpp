#include "cuda_testing.h"

namespace tgcuda {

bool have_gpu() {
  static const bool present = [] {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  }();
  return present;
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  TG_CUDA_CHECK(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes));
  TG_CUDA_CHECK(cudaMemset(ptr_, 0xFF, bytes == 0 ? 1 : bytes));
}

DeviceBuffer::~DeviceBuffer() {
  cudaFree(ptr_);
}

void DeviceBuffer::upload(const void* host) const {
  TG_CUDA_CHECK(cudaMemcpy(ptr_, host, bytes_, cudaMemcpyHostToDevice));
}

void DeviceBuffer::download(void* host) const {
  TG_CUDA_CHECK(cudaDeviceSynchronize());
  TG_CUDA_CHECK(cudaMemcpy(host, ptr_, bytes_, cudaMemcpyDeviceToHost));
}

}  // namespace tgcuda
