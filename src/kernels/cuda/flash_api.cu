// Problem checks, workspace layout and kernel choice for the FlashAttention kernels (flash_api.h).
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>

#include "kernels/cuda/flash_api.h"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_sm80.h"
#include "kernels/cuda/flash_sm90.h"

namespace tilegrad::cuda {
namespace {

std::string operand_problem(const char* name, const void* ptr, const FlashStrides& s) {
  if (ptr == nullptr) return std::string(name) + " is null";
  // cp.async and the vector stores move 16 bytes: every row of D elements must start 16-byte
  // aligned, so the base and all strides must be multiples of 8 elements.
  if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) {
    return std::string(name) + " is not 16-byte aligned";
  }
  if (s.batch % 8 != 0 || s.row % 8 != 0 || s.head % 8 != 0) {
    return std::string(name) + " strides (batch " + std::to_string(s.batch) + ", row " +
           std::to_string(s.row) + ", head " + std::to_string(s.head) +
           ") must be multiples of 8 elements";
  }
  if (s.batch < 0 || s.row < 0 || s.head < 0) {
    return std::string(name) + " has a negative stride";
  }
  return {};
}

int64_t align256(int64_t bytes) {
  return (bytes + 255) / 256 * 256;
}

}  // namespace

std::string flash_attention_check(const FlashFwdParams& p) {
  const std::string dims = "(B " + std::to_string(p.B) + ", H " + std::to_string(p.H) + ", Hkv " +
                           std::to_string(p.Hkv) + ", Nq " + std::to_string(p.Nq) + ", Nk " +
                           std::to_string(p.Nk) + ", D " + std::to_string(p.D) + ")";
  if (p.dtype != FlashDType::bf16 && p.dtype != FlashDType::f16) {
    return "flash_attention: dtype must be bf16 or f16";
  }
  if (p.B < 1 || p.H < 1 || p.Hkv < 1 || p.Nq < 1 || p.Nk < 1) {
    return "flash_attention: sizes must be positive " + dims;
  }
  if (p.H % p.Hkv != 0) return "flash_attention: Hkv must divide H " + dims;
  if (p.D != 64 && p.D != 128 && p.D != 256) {
    return "flash_attention: D must be 64, 128 or 256 " + dims;
  }
  if (p.B > 65535 || p.H > 65535) return "flash_attention: B and H must be <= 65535 " + dims;
  // Band arithmetic (i + shift ± window) stays in int below this (flash_common.cuh, kNoLimit).
  if (p.Nq > (1 << 28) || p.Nk > (1 << 28)) {
    return "flash_attention: Nq and Nk must be <= 2^28 " + dims;
  }
  if (p.window_left < -1 || p.window_right < -1) {
    return "flash_attention: window sides must be >= 0, or -1 for no limit (got " +
           std::to_string(p.window_left) + ", " + std::to_string(p.window_right) + ")";
  }
  if (!(p.dropout_p >= 0.0 && p.dropout_p <= 1.0)) {
    return "flash_attention: dropout_p must be in [0, 1] (got " + std::to_string(p.dropout_p) + ")";
  }
  if (!(p.softmax_scale > 0.0f) || !std::isfinite(p.softmax_scale)) {
    return "flash_attention: softmax_scale must be positive and finite (got " +
           std::to_string(p.softmax_scale) + ")";
  }
  for (const auto& [name, ptr, strides] :
       {std::tuple{"q", p.q, p.q_strides}, std::tuple{"k", p.k, p.k_strides},
        std::tuple{"v", p.v, p.v_strides},
        std::tuple{"o", static_cast<const void*>(p.o), p.o_strides}}) {
    std::string why = operand_problem(name, ptr, strides);
    if (!why.empty()) return "flash_attention: " + why;
  }
  if (p.lse == nullptr) return "flash_attention: lse is null";
  if (p.D == 256 && p.dropout_p > 0.0) {
    return "flash_attention: dropout is not implemented at D = 256";
  }
  if ((p.cu_seqlens_q == nullptr) != (p.cu_seqlens_k == nullptr)) {
    return "flash_attention: cu_seqlens_q and cu_seqlens_k must both be set or both be null";
  }
  if (p.cu_seqlens_q != nullptr) {
    if (p.total_q < 1 || p.total_k < 1) {
      return "flash_attention: packed batches need total_q, total_k >= 1 (got " +
             std::to_string(p.total_q) + ", " + std::to_string(p.total_k) + ")";
    }
    if (p.dropout_p > 0.0) return "flash_attention: dropout is not implemented for packed batches";
  }
  return {};
}

std::string flash_attention_check(const FlashBwdParams& p) {
  std::string why = flash_attention_check(p.fwd);
  if (!why.empty()) return why;
  for (const auto& [name, ptr, strides] :
       {std::tuple{"dout", p.dout, p.dout_strides},
        std::tuple{"dq", static_cast<const void*>(p.dq), p.dq_strides},
        std::tuple{"dk", static_cast<const void*>(p.dk), p.dk_strides},
        std::tuple{"dv", static_cast<const void*>(p.dv), p.dv_strides}}) {
    why = operand_problem(name, ptr, strides);
    if (!why.empty()) return "flash_attention_backward: " + why;
  }
  if (p.workspace == nullptr || reinterpret_cast<uintptr_t>(p.workspace) % 256 != 0) {
    return "flash_attention_backward: workspace must be non-null and 256-byte aligned";
  }
  return {};
}

namespace {

cudaError_t forward_sm80(const FlashFwdParams& p, cudaStream_t stream) {
  using namespace flash;
  const bool bf16 = p.dtype == FlashDType::bf16;
  if (p.D == 64) {
    return bf16 ? run_flash_fwd_sm80<__nv_bfloat16, 64>(p, stream)
                : run_flash_fwd_sm80<__half, 64>(p, stream);
  }
  if (p.D == 256) {
    return bf16 ? run_flash_fwd_sm80<__nv_bfloat16, 256>(p, stream)
                : run_flash_fwd_sm80<__half, 256>(p, stream);
  }
  return bf16 ? run_flash_fwd_sm80<__nv_bfloat16, 128>(p, stream)
              : run_flash_fwd_sm80<__half, 128>(p, stream);
}

cudaError_t forward_sm90(const FlashFwdParams& p, flash::Sm90Variant v, cudaStream_t stream) {
  using namespace flash;
  const bool bf16 = p.dtype == FlashDType::bf16;
  if (p.D == 64) {
    return bf16 ? run_flash_fwd_sm90<__nv_bfloat16, 64>(p, v, stream)
                : run_flash_fwd_sm90<__half, 64>(p, v, stream);
  }
  if (p.D == 256) {
    return bf16 ? run_flash_fwd_sm90<__nv_bfloat16, 256>(p, v, stream)
                : run_flash_fwd_sm90<__half, 256>(p, v, stream);
  }
  return bf16 ? run_flash_fwd_sm90<__nv_bfloat16, 128>(p, v, stream)
              : run_flash_fwd_sm90<__half, 128>(p, v, stream);
}

// The Hopper kernels cover D = 64, 128 and 256 with padded batches; packed batches run the sm_80
// kernels everywhere (and the deterministic backward at D = 256: run_flash_bwd_sm90_wide falls
// back).
bool sm90_covers(const FlashFwdParams& p) {
  return p.cu_seqlens_q == nullptr;
}

}  // namespace

cudaError_t flash_attention_forward_with(const FlashFwdParams& p, FlashKernel kernel,
                                         cudaStream_t stream) {
  if (!flash_attention_check(p).empty()) return cudaErrorInvalidValue;
  if (kernel == FlashKernel::sm80) return forward_sm80(p, stream);
  const bool hopper = flash::flash_sm90_device() && sm90_covers(p);
  if (kernel == FlashKernel::sm90) {
    return hopper ? forward_sm90(p, flash::Sm90Variant::pingpong, stream) : cudaErrorInvalidValue;
  }
  if (hopper) {
    const cudaError_t err = forward_sm90(p, flash::Sm90Variant::pingpong, stream);
    if (err != cudaErrorNotSupported) return err;
  }
  return forward_sm80(p, stream);
}

cudaError_t flash_attention_forward(const FlashFwdParams& p, cudaStream_t stream) {
  return flash_attention_forward_with(p, FlashKernel::automatic, stream);
}

cudaError_t flash_attention_forward_ablation(const FlashFwdParams& p, int variant,
                                             cudaStream_t stream) {
  if (!flash_attention_check(p).empty() || variant < 0 || variant > 5) return cudaErrorInvalidValue;
  if (p.cu_seqlens_q != nullptr && variant != 0) return cudaErrorInvalidValue;
  if (variant >= 4) {
    if (!flash::flash_sm90_device() || p.dtype != FlashDType::bf16 || p.D != 128) {
      return cudaErrorInvalidValue;
    }
    return forward_sm90(p, variant == 4 ? flash::Sm90Variant::overlap : flash::Sm90Variant::plain,
                        stream);
  }
  return flash::run_flash_fwd_sm80_variant(p, static_cast<flash::FwdVariant>(variant), stream);
}

// Workspace: dq_accum, float32 (B, H, Nq, D), then dsum, float32 (B, H, Nq), then, when
// deterministic, the ordering counters, int32 (B, H, ceil(Nq / 64)) (one per 64 query rows, the
// smaller of the two kernels' query blocks); each 256-aligned.
namespace {
// (Packed batches: dq_accum (H, total_q, D), dsum (H, total_q), counters (B, H, ceil(Nq / 64))
// with Nq the longest sequence.)
int64_t semaphore_count(const FlashBwdParams& p) {
  return static_cast<int64_t>(p.fwd.B) * p.fwd.H * ((p.fwd.Nq + 63) / 64);
}
}  // namespace

size_t flash_attention_backward_workspace_bytes(const FlashBwdParams& p) {
  const int64_t rows = flash::flash_stat_rows(p.fwd);
  const int64_t sems = p.deterministic ? align256(semaphore_count(p) * 4) : 0;
  return static_cast<size_t>(align256(rows * p.fwd.D * 4) + align256(rows * 4) + sems);
}

cudaError_t flash_attention_backward_ablation(const FlashBwdParams& p, int variant,
                                              cudaStream_t stream) {
  using namespace flash;
  if (!flash_attention_check(p).empty() || variant < 0 || variant > 4) return cudaErrorInvalidValue;
  const bool hopper_main = variant >= 3;
  if (hopper_main && !(flash_sm90_device() && sm90_covers(p.fwd))) return cudaErrorInvalidValue;
  if (p.deterministic && variant != 0 && variant != 3) return cudaErrorInvalidValue;
  if (p.fwd.cu_seqlens_q != nullptr && variant != 0) return cudaErrorInvalidValue;
  const int64_t rows = flash_stat_rows(p.fwd);
  char* ws = static_cast<char*>(p.workspace);
  float* dq_accum = reinterpret_cast<float*>(ws);
  float* dsum = reinterpret_cast<float*>(ws + align256(rows * p.fwd.D * 4));
  BwdOptions opt;
  opt.atomic_width = variant == 1 ? 1 : variant == 2 ? 2 : 4;
  opt.hopper_main = hopper_main;
  opt.hopper_bulk_dq = variant != 4;
  if (p.deterministic) {
    opt.semaphores = reinterpret_cast<int*>(ws + align256(rows * p.fwd.D * 4) + align256(rows * 4));
    opt.n_semaphores = semaphore_count(p);
  }
  const bool bf16 = p.fwd.dtype == FlashDType::bf16;
  if (p.fwd.D == 64) {
    return bf16 ? run_flash_bwd_sm80<__nv_bfloat16, 64>(p, dq_accum, dsum, stream, opt)
                : run_flash_bwd_sm80<__half, 64>(p, dq_accum, dsum, stream, opt);
  }
  if (p.fwd.D == 256) {
    return bf16 ? run_flash_bwd_sm80<__nv_bfloat16, 256>(p, dq_accum, dsum, stream, opt)
                : run_flash_bwd_sm80<__half, 256>(p, dq_accum, dsum, stream, opt);
  }
  return bf16 ? run_flash_bwd_sm80<__nv_bfloat16, 128>(p, dq_accum, dsum, stream, opt)
              : run_flash_bwd_sm80<__half, 128>(p, dq_accum, dsum, stream, opt);
}

cudaError_t flash_attention_backward_with(const FlashBwdParams& p, FlashKernel kernel,
                                          cudaStream_t stream) {
  if (kernel == FlashKernel::sm90) return flash_attention_backward_ablation(p, 3, stream);
  // Automatic: the Hopper main kernel on sm_90, the sm_80 one elsewhere.
  const bool hopper =
      kernel == FlashKernel::automatic && flash::flash_sm90_device() && sm90_covers(p.fwd);
  return flash_attention_backward_ablation(p, hopper ? 3 : 0, stream);
}

cudaError_t flash_attention_backward(const FlashBwdParams& p, cudaStream_t stream) {
  return flash_attention_backward_with(p, FlashKernel::automatic, stream);
}

}  // namespace tilegrad::cuda
