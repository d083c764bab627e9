#include "cuda/check.h"

namespace tilegrad::cuda {

bool is_sticky(cudaError_t code) {
  switch (code) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

const char* cublas_status_name(int status) {
  // The values of cublasStatus_t (cublas_api.h), which cuBLASLt shares.
  switch (status) {
    case 0:
      return "CUBLAS_STATUS_SUCCESS";
    case 1:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case 8:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16:
      return "CUBLAS_STATUS_LICENSE_ERROR";
    default:
      return "unknown cuBLAS status";
  }
}

namespace detail {

void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  // Reading the last error resets it (for all but sticky errors), so the next launch check does not
  // report this failure a second time.
  (void)cudaGetLastError();
  throw CudaError(code, tilegrad::detail::cat(
                            "CUDA error at ", file, ":", line, ": ", call, " failed: ",
                            cudaGetErrorString(code), " (", cudaGetErrorName(code), ")",
                            is_sticky(code) ? "; the CUDA context is unusable after this error, "
                                              "the process must be restarted"
                                            : ""));
}

void throw_cublas_error(int status, const char* call, const char* file, int line) {
  throw CublasError(
      status, tilegrad::detail::cat("cuBLAS error at ", file, ":", line, ": ", call,
                                    " failed: ", cublas_status_name(status), " (", status, ")"));
}

}  // namespace detail
}  // namespace tilegrad::cuda
