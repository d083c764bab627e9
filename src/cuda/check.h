// Checked CUDA calls: every CUDA runtime, cuBLAS and cuBLASLt call goes through one of these
// macros, so a failure becomes a tilegrad::Error naming the call, the file and line, and the
// library's own description of the error, instead of a status code nobody looks at.
//
//   TG_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, stream));
//   my_kernel<<<grid, block, 0, stream>>>(...);
//   TG_CUDA_CHECK_LAUNCH();  // launch errors are only visible through cudaGetLastError
//   TG_CUBLAS_CHECK(cublasLtMatmul(...));
//
// The runtime keeps the last error of a thread until it is read; a failed call would otherwise be
// blamed on whichever later TG_CUDA_CHECK_LAUNCH reads it, so the throwing path clears it. Some
// errors (an illegal address in a kernel, say) are sticky: the context is unusable afterwards and
// every later call fails; the message says so, since no retry in this process can succeed.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

namespace tilegrad::cuda {

// A failed CUDA runtime call. code() is the cudaError_t, for callers that handle some errors (an
// allocator retries after cudaErrorMemoryAllocation, for instance).
class CudaError : public Error {
 public:
  CudaError(cudaError_t code, const std::string& what) : Error(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

// A failed cuBLAS or cuBLASLt call; status() is the cublasStatus_t as an int (both libraries use
// that enum), so this header does not need the cuBLAS headers.
class CublasError : public Error {
 public:
  CublasError(int status, const std::string& what) : Error(what), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// True for errors after which the CUDA context cannot be used any more.
bool is_sticky(cudaError_t code);
// The enumerator's name for a cublasStatus_t ("CUBLAS_STATUS_NOT_SUPPORTED").
const char* cublas_status_name(int status);

namespace detail {
[[noreturn]] void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(int status, const char* call, const char* file, int line);
}  // namespace detail

}  // namespace tilegrad::cuda

#define TG_CUDA_CHECK(call)                                                                \
  do {                                                                                     \
    const cudaError_t tg_cuda_err_ = (call);                                               \
    if (tg_cuda_err_ != cudaSuccess)                                                       \
      ::tilegrad::cuda::detail::throw_cuda_error(tg_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad configuration (too many threads, too much shared memory)
// at the launch site; errors inside the kernel surface at the next synchronising call.
#define TG_CUDA_CHECK_LAUNCH() TG_CUDA_CHECK(cudaGetLastError())

// CUBLAS_STATUS_SUCCESS is 0 in both cuBLAS and cuBLASLt.
#define TG_CUBLAS_CHECK(call)                                                                     \
  do {                                                                                            \
    const int tg_cublas_status_ = static_cast<int>(call);                                         \
    if (tg_cublas_status_ != 0)                                                                   \
      ::tilegrad::cuda::detail::throw_cublas_error(tg_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)
