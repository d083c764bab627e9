// C entry points to the FlashAttention kernels for bench/device/flash_bench.py, which loads this
// library with ctypes and passes PyTorch's device pointers: one small shim instead of a PyTorch
// extension, so PyTorch stays a peer and reference, never a build dependency of tilegrad.
//
// Arrays keep the signatures short: dims = {B, H, Hkv, Nq, Nk, D, causal}; strides are (batch, row,
// head) triples in elements, in the order of the pointers. Return value: 0 on success, -1 when the
// problem is rejected (tg_flash_error() says why), otherwise the cudaError_t of the launch.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/cuda/flash_api.h"

namespace {

using tilegrad::cuda::FlashBwdParams;
using tilegrad::cuda::FlashDType;
using tilegrad::cuda::FlashFwdParams;
using tilegrad::cuda::FlashStrides;

thread_local std::string g_error;

FlashStrides strides_at(const int64_t* s, int i) {
  return FlashStrides{s[3 * i], s[3 * i + 1], s[3 * i + 2]};
}

FlashFwdParams fwd_params(int dtype, const int* dims, float scale, void* const* ptrs,
                          const int64_t* strides) {
  FlashFwdParams p;
  p.dtype = dtype == 0 ? FlashDType::bf16 : FlashDType::f16;
  p.B = dims[0];
  p.H = dims[1];
  p.Hkv = dims[2];
  p.Nq = dims[3];
  p.Nk = dims[4];
  p.D = dims[5];
  p.causal = dims[6] != 0;
  p.softmax_scale = scale;
  p.q = ptrs[0];
  p.k = ptrs[1];
  p.v = ptrs[2];
  p.o = ptrs[3];
  p.lse = static_cast<float*>(ptrs[4]);
  p.q_strides = strides_at(strides, 0);
  p.k_strides = strides_at(strides, 1);
  p.v_strides = strides_at(strides, 2);
  p.o_strides = strides_at(strides, 3);
  return p;
}

FlashBwdParams bwd_params(int dtype, const int* dims, float scale, void* const* ptrs,
                          const int64_t* strides) {
  FlashBwdParams p;
  p.fwd = fwd_params(dtype, dims, scale, ptrs, strides);
  p.dout = ptrs[5];
  p.dq = ptrs[6];
  p.dk = ptrs[7];
  p.dv = ptrs[8];
  p.workspace = ptrs[9];
  p.dout_strides = strides_at(strides, 4);
  p.dq_strides = strides_at(strides, 5);
  p.dk_strides = strides_at(strides, 6);
  p.dv_strides = strides_at(strides, 7);
  return p;
}

int result(cudaError_t err) {
  if (err == cudaSuccess) return 0;
  g_error = cudaGetErrorString(err);
  return static_cast<int>(err);
}

}  // namespace

extern "C" {

const char* tg_flash_error() {
  return g_error.c_str();
}

// ptrs = {q, k, v, o, lse}; strides for q, k, v, o.
int tg_flash_forward(int dtype, const int* dims, float scale, void* const* ptrs,
                     const int64_t* strides, void* stream) {
  const FlashFwdParams p = fwd_params(dtype, dims, scale, ptrs, strides);
  g_error = tilegrad::cuda::flash_attention_check(p);
  if (!g_error.empty()) return -1;
  return result(tilegrad::cuda::flash_attention_forward(p, static_cast<cudaStream_t>(stream)));
}

// The forward with an explicit kernel (flash_attention_forward_with: 0 automatic, 1 sm_80, 2
// sm_90); same arguments after `kernel`.
int tg_flash_forward_kernel(int kernel, int dtype, const int* dims, float scale, void* const* ptrs,
                            const int64_t* strides, void* stream) {
  const FlashFwdParams p = fwd_params(dtype, dims, scale, ptrs, strides);
  g_error = tilegrad::cuda::flash_attention_check(p);
  if (!g_error.empty()) return -1;
  return result(tilegrad::cuda::flash_attention_forward_with(
      p, static_cast<tilegrad::cuda::FlashKernel>(kernel), static_cast<cudaStream_t>(stream)));
}

// The forward's ablations (flash_attention_forward_ablation); same arguments after `variant`.
int tg_flash_forward_variant(int variant, int dtype, const int* dims, float scale,
                             void* const* ptrs, const int64_t* strides, void* stream) {
  const FlashFwdParams p = fwd_params(dtype, dims, scale, ptrs, strides);
  g_error = tilegrad::cuda::flash_attention_check(p);
  if (!g_error.empty()) return -1;
  return result(tilegrad::cuda::flash_attention_forward_ablation(
      p, variant, static_cast<cudaStream_t>(stream)));
}

// ptrs = {q, k, v, o, lse, dout, dq, dk, dv, workspace}; strides for q, k, v, o, dout, dq, dk, dv.
size_t tg_flash_backward_workspace(int dtype, const int* dims) {
  void* const none[10] = {};
  const int64_t zero[24] = {};
  return tilegrad::cuda::flash_attention_backward_workspace_bytes(
      bwd_params(dtype, dims, 1.0f, none, zero));
}

int tg_flash_backward(int dtype, const int* dims, float scale, void* const* ptrs,
                      const int64_t* strides, void* stream) {
  const FlashBwdParams p = bwd_params(dtype, dims, scale, ptrs, strides);
  g_error = tilegrad::cuda::flash_attention_check(p);
  if (!g_error.empty()) return -1;
  return result(tilegrad::cuda::flash_attention_backward(p, static_cast<cudaStream_t>(stream)));
}

// The backward's ablations (flash_attention_backward_ablation); same arguments after `variant`.
int tg_flash_backward_variant(int variant, int dtype, const int* dims, float scale,
                              void* const* ptrs, const int64_t* strides, void* stream) {
  const FlashBwdParams p = bwd_params(dtype, dims, scale, ptrs, strides);
  g_error = tilegrad::cuda::flash_attention_check(p);
  if (!g_error.empty()) return -1;
  return result(tilegrad::cuda::flash_attention_backward_ablation(
      p, variant, static_cast<cudaStream_t>(stream)));
}

}  // extern "C"
