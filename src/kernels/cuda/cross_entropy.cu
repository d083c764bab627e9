// CUDA fused softmax cross-entropy: one thread block per row of logits.
//
// The forward reads its row once. Each thread keeps an online (max m, Σ exp(x - m)) pair over its
// strided share of the row, rescaling the sum when the max grows, so a row of V = 50257 logits is
// not read twice (a second pass would miss L2 once many rows are in flight); the pairs are then
// merged across the warp with shuffles and across warps through shared memory, in a fixed order,
// so results are the same bits on every run. Arithmetic is in the accumulation type (double for f64
// logits, float otherwise). As in the CPU kernel, the loss is (m - x[t]) + log s rather than
// lse - x[t], which keeps the digits of logits near ±1000 that lse would round away.
//
// The backward recomputes each probability as exp(x - lse) in the pass that writes the gradient,
// so the [rows, V] softmax never exists in memory; an ignored row is written with zeros.
#include "kernels/cuda/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cuda/check.h"
#include "kernels/cuda/flash_common.cuh"  // cp.async
#include "kernels/cuda/kernel_common.cuh"

namespace tilegrad::kernels::cuda {

namespace {

using tilegrad::cuda::flash::cp_async_16;
using tilegrad::cuda::flash::cp_async_commit;
using tilegrad::cuda::flash::cp_async_wait;

// Threads per row (one block).
constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Adds logit v to the running pair (m, s = Σ exp(x - m)). At the start m = -inf and s = 0, so the
// first finite v gives s = 0 · exp(-inf) + 1 = 1. A -inf logit adds nothing (exp(-inf - m) = 0;
// computing it when m is still -inf would give exp(NaN)). NaN never becomes m (the comparison is
// false) and reaches s through exp, as in the CPU kernel.
template <class A>
__device__ __forceinline__ void online_add(A& m, A& s, A v) {
  if (v > m) {
    s = s * exp_acc(m - v) + A(1);
    m = v;
  } else if (v != -A(INFINITY)) {
    s += exp_acc(v - m);
  }
}

// Merges the pair (m2, s2) into (m, s). The result does not depend on the order of the two pairs,
// so both lanes of a shuffle exchange end with the same bits. A pair with m = -inf has s = 0.
template <class A>
__device__ __forceinline__ void online_merge(A& m, A& s, A m2, A s2) {
  if (m2 > m) {
    const A tm = m, ts = s;
    m = m2;
    s = s2;
    m2 = tm;
    s2 = ts;
  }
  if (m2 != -A(INFINITY)) s += s2 * exp_acc(m2 - m);
}

template <class A>
__device__ __forceinline__ void warp_merge(A& m, A& s) {
  for (int o = 16; o > 0; o >>= 1) {
    const A m2 = __shfl_xor_sync(kFullMask, m, o);
    const A s2 = __shfl_xor_sync(kFullMask, s, o);
    online_merge(m, s, m2, s2);
  }
}

// Thread t owns the 16-byte vectors t, t + kThreads, ... of a row, columns [k · W, k · W + W) of
// vector k (W = kVec16<T>), whether it loads them as one vector (rows 16-byte aligned) or one by
// one (any other ld): the order of the sums is a function of V alone, so a padded row gives the
// bits of a contiguous one.

// The W elements of vector k of row xr (elements at or past V are not read: -inf, which no sum
// sees), as one load when `vec`.
template <class T>
__device__ __forceinline__ Vec16<T> load_vec(const T* xr, int64_t k, int64_t V, bool vec) {
  constexpr int W = kVec16<T>;
  const int64_t j0 = k * W;
  if (vec && j0 + W <= V) return *reinterpret_cast<const Vec16<T>*>(xr + j0);
  Vec16<T> out;
#pragma unroll
  for (int e = 0; e < W; ++e) out.v[e] = j0 + e < V ? xr[j0 + e] : T(-INFINITY);
  return out;
}

// The one-pass kernel's exp. In float it is the hardware's exp2 of a scaled argument (__expf): its
// two passes take an exp per element each, and the accurate expf (some twenty instructions) cost
// at least 7% of the kernel's time on an H200 (a GPT-2 step's four chunks: 1.93 ms with it, 1.79
// with __expf on a machine whose GEMMs ran 3% slower). Every argument is x - m or x - lse <= 0,
// where __expf is within a few units in the last place of float plus ~1 per unit of |x - lse|:
// below the bf16/f16 gradients' rounding, and a relative 1e-6 at most in the float32 lse's sum.
// It is __expf's instruction with denormal results flushed to zero (ex2.approx.ftz): __expf's
// exact denormals take three more instructions per exp, for probabilities below 1e-38 that no sum
// or 16-bit gradient here can hold. Double keeps exp.
__device__ __forceinline__ float exp_fused(float v) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(v * 1.4426950408889634f));
  return y;
}
__device__ __forceinline__ double exp_fused(double v) {
  return exp(v);
}

// Vector k of row gr: one 16-byte store when `vec`, else element by element (none past V).
template <class T>
__device__ __forceinline__ void store_vec(const Vec16<T>& out, int64_t k, T* gr, int64_t V,
                                          bool vec) {
  constexpr int W = kVec16<T>;
  const int64_t j0 = k * W;
  if (vec && j0 + W <= V) {
    *reinterpret_cast<Vec16<T>*>(gr + j0) = out;
  } else {
#pragma unroll
    for (int e = 0; e < W; ++e)
      if (j0 + e < V) gr[j0 + e] = out.v[e];
  }
}

// Vector k of a row's gradient from its logits x, in the accumulation type: (exp(x - lse) -
// [j == t]) · g, with exp_fused (the one-pass kernel) or exp_acc; only the target's vector pays
// for the one.
template <bool kFastExp, class T, class A>
__device__ __forceinline__ void grad_values(const Vec16<T>& x, int64_t k, int64_t tr, A lr, A g,
                                            A (&p)[kVec16<T>]) {
  constexpr int W = kVec16<T>;
#pragma unroll
  for (int e = 0; e < W; ++e) {
    p[e] = kFastExp ? exp_fused(A(x.v[e]) - lr) : exp_acc(A(x.v[e]) - lr);
  }
  const int64_t d = tr - k * W;
  if (d >= 0 && d < W) {
#pragma unroll
    for (int e = 0; e < W; ++e) {
      if (e == d) p[e] -= A(1);
    }
  }
#pragma unroll
  for (int e = 0; e < W; ++e) p[e] *= g;
}

// Vector k of a row's gradient from its logits x (grad_values with exp_acc), 0 on an ignored row;
// one 16-byte store when `vec` (elements past V are not written).
template <class T, class A>
__device__ __forceinline__ void store_grad_vec(const Vec16<T>& x, int64_t k, int64_t tr,
                                               bool ignored, A lr, A g, T* gr, int64_t V,
                                               bool vec) {
  constexpr int W = kVec16<T>;
  A p[W];
  grad_values<false>(x, k, tr, lr, g, p);
  Vec16<T> out;
#pragma unroll
  for (int e = 0; e < W; ++e) out.v[e] = ignored ? T(A(0)) : T(p[e]);
  store_vec(out, k, gr, V, vec);
}

template <class T, class I>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ logits, const I* __restrict__ targets,
                   acc_t<T>* __restrict__ losses, acc_t<T>* __restrict__ lse, int64_t rows,
                   int64_t V, int64_t ld, int64_t ignore_index, bool vec) {
  using A = acc_t<T>;
  constexpr int W = kVec16<T>;
  __shared__ A s_m[kWarps], s_s[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t vectors = (V + W - 1) / W;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = logits + r * ld;  // (V)
    A m = -A(INFINITY), s = 0;
    int64_t k = threadIdx.x;
    // Two vectors in flight per thread.
    for (; k + kThreads < vectors; k += 2 * kThreads) {
      const Vec16<T> a = load_vec(xr, k, V, vec), b = load_vec(xr, k + kThreads, V, vec);
#pragma unroll
      for (int e = 0; e < W; ++e) online_add(m, s, A(a.v[e]));
#pragma unroll
      for (int e = 0; e < W; ++e) online_add(m, s, A(b.v[e]));
    }
    if (k < vectors) {
      const Vec16<T> a = load_vec(xr, k, V, vec);
#pragma unroll
      for (int e = 0; e < W; ++e) online_add(m, s, A(a.v[e]));
    }

    warp_merge(m, s);
    __syncthreads();  // warp 0 has read the previous row's partials
    if (lane == 0) {
      s_m[warp] = m;
      s_s[warp] = s;
    }
    __syncthreads();
    if (warp != 0) continue;
    m = lane < kWarps ? s_m[lane] : -A(INFINITY);
    s = lane < kWarps ? s_s[lane] : A(0);
    warp_merge(m, s);
    if (lane == 0) {
      const A log_s = log_acc(s);
      lse[r] = m + log_s;
      const int64_t tr = static_cast<int64_t>(targets[r]);
      A loss = 0;
      if (tr != ignore_index) loss = tr >= 0 && tr < V ? (m - A(xr[tr])) + log_s : A(NAN);
      losses[r] = loss;
    }
  }
}

// glogits may be logits: each element is read and then written by the same thread, so logits and
// glogits carry no __restrict__.
template <class T, class I>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* logits, const I* __restrict__ targets,
                    const acc_t<T>* __restrict__ lse, const acc_t<T>* __restrict__ gloss,
                    double scale, T* glogits, int64_t rows, int64_t V, int64_t ld,
                    int64_t ignore_index, bool vec) {
  using A = acc_t<T>;
  constexpr int W = kVec16<T>;
  // The upstream scalar times scale, in double and then rounded, as the CPU kernel does.
  const A g = A(static_cast<double>(*gloss) * scale);
  const int64_t vectors = (V + W - 1) / W;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = logits + r * ld;  // (V)
    T* gr = glogits + r * ld;       // (V)
    const int64_t tr = static_cast<int64_t>(targets[r]);
    const bool ignored = tr == ignore_index;
    const A lr = lse[r];
#pragma unroll 2
    for (int64_t k = threadIdx.x; k < vectors; k += kThreads) {
      store_grad_vec(load_vec(xr, k, V, vec), k, tr, ignored, lr, g, gr, V, vec);
    }
  }
}

// The forward and the backward of a row with one read and one write of it in global memory (the two
// kernels above read it twice). The row goes to shared memory by asynchronous copies, and its max
// m is taken from there; then s = Σ exp(x - m) and the gradient come from the shared copy. So the
// exp runs on rows that are already on chip, and no online rescaling chains one element's update to
// the last (that chain held forward_kernel at ~2 TB/s). A thread reads back only the slots it
// wrote, so the passes need no barrier but their reductions'. The sum's order is a function of V
// alone (thread t owns vectors t, t + kFusedThreads, ...), so padded rows give the bits of
// contiguous ones and every run the same bits; it is not forward_kernel's order, so lse may differ
// from the two kernels' in the last bits. glogits may be logits.
constexpr int kFusedThreads = 512;

template <class T, class I>
__global__ void __launch_bounds__(kFusedThreads, 2)
    forward_backward_kernel(const T* logits, const I* __restrict__ targets,
                            acc_t<T>* __restrict__ losses, acc_t<T>* __restrict__ lse,
                            const acc_t<T>* __restrict__ gloss, double scale, T* glogits,
                            int64_t rows, int64_t V, int64_t ld, int64_t ignore_index, bool vec) {
  using A = acc_t<T>;
  constexpr int W = kVec16<T>;
  extern __shared__ uint4 s_row_raw[];
  Vec16<T>* s_row = reinterpret_cast<Vec16<T>*>(s_row_raw);  // (vectors)
  __shared__ A s_red[32];
  const A g = A(static_cast<double>(*gloss) * scale);
  const int64_t vectors = (V + W - 1) / W;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = logits + r * ld;  // (V)
    T* gr = glogits + r * ld;       // (V)
    __syncthreads();  // thread 0 has read the previous row's target logit from shared memory
    // Pass 1: the row into shared memory by cp.async, every vector of the thread in flight at
    // once and none held in registers (loads through registers, four at a time, left the kernel
    // at ~1.8 TB/s); vectors that cp.async cannot copy (unaligned rows, the row's last partial
    // vector) go through registers. Then the row's max from the shared copy.
    int64_t k = threadIdx.x;
    for (; k < vectors; k += kFusedThreads) {
      if (vec && (k + 1) * W <= V) {
        cp_async_16(&s_row[k], xr + k * W, true);
      } else {
        s_row[k] = load_vec(xr, k, V, vec);
      }
    }
    cp_async_commit();
    cp_async_wait<0>();
    // The max skips NaN (one instruction per element, where a NaN-propagating max takes three), as
    // the CPU kernel's std::max does: a NaN logit makes s NaN below all the same, and with it lse,
    // the loss and every gradient.
    A m = -A(INFINITY);
    for (k = threadIdx.x; k < vectors; k += kFusedThreads) {
      const Vec16<T> a = s_row[k];
#pragma unroll
      for (int e = 0; e < W; ++e) m = max(m, A(a.v[e]));
    }
    m = group_reduce<kFusedThreads, MaxOp>(m, s_red);
    // Pass 2: s = Σ exp(x - m). A -inf logit (and the padding past V) adds exp(-inf) = 0, so a row
    // of -inf gives s = 0 and lse = -inf, as the online pair does; its m, -inf, is taken as 0 there
    // so that no element pays a test.
    A s = 0;
    const A m_finite = m == -A(INFINITY) ? A(0) : m;
    for (k = threadIdx.x; k < vectors; k += kFusedThreads) {
      const Vec16<T> a = s_row[k];
#pragma unroll
      for (int e = 0; e < W; ++e) s += exp_fused(A(a.v[e]) - m_finite);
    }
    s = group_reduce<kFusedThreads, SumOp>(s, s_red);
    const A log_s = log_acc(s);
    const A lr = m + log_s;
    const int64_t tr = static_cast<int64_t>(targets[r]);
    const bool ignored = tr == ignore_index;
    if (threadIdx.x == 0) {
      lse[r] = lr;
      A loss = 0;
      if (!ignored) {
        // The target's logit from the shared copy: glogits may already overwrite the row.
        loss = tr >= 0 && tr < V ? (m - A(s_row[tr / W].v[tr % W])) + log_s : A(NAN);
      }
      losses[r] = loss;
    }
    // Pass 3: the gradient, as backward_kernel computes it (but for the exp), with the row's tests
    // taken out of the elements: an ignored row is zeros, and only the target's vector subtracts
    // the one (per element, the tests were a third of the kernel's instructions).
    if (ignored) {
      Vec16<T> zero;
#pragma unroll
      for (int e = 0; e < W; ++e) zero.v[e] = T(A(0));
      for (k = threadIdx.x; k < vectors; k += kFusedThreads) store_vec(zero, k, gr, V, vec);
      continue;
    }
    // With lse and g finite no gradient is NaN (a NaN or +inf logit makes lse NaN), so the row
    // can take the paired conversion; the whole vectors of aligned rows go first, each one store.
    auto gradients = [&]<bool kNoNan>() {
      auto vector_grad = [&](int64_t kv) {
        A p[W];
        grad_values<true>(s_row[kv], kv, tr, lr, g, p);
        if constexpr (kNoNan) {
          return convert_not_nan<T>(p);
        } else {
          return convert<T>(p);
        }
      };
      const int64_t whole = vec ? V / W : 0;
      int64_t kv = threadIdx.x;
#pragma unroll 2
      for (; kv < whole; kv += kFusedThreads) {
        *reinterpret_cast<Vec16<T>*>(gr + kv * W) = vector_grad(kv);
      }
      for (; kv < vectors; kv += kFusedThreads) store_vec(vector_grad(kv), kv, gr, V, vec);
    };
    if (isfinite(lr) && isfinite(g)) {
      gradients.template operator()<true>();
    } else {
      gradients.template operator()<false>();
    }
  }
}

// Whether rows of ld elements starting at p (and q) are all 16-byte aligned.
bool rows_aligned(const void* p, const void* q, int64_t ld, size_t elem) {
  const auto a = reinterpret_cast<uintptr_t>(p) | reinterpret_cast<uintptr_t>(q);
  return a % 16 == 0 && (static_cast<size_t>(ld) * elem) % 16 == 0;
}

}  // namespace

void cross_entropy_forward(DType dt, const void* logits, DType t_dt, const void* targets,
                           void* losses, void* lse, int64_t rows, int64_t V, int64_t ld,
                           int64_t ignore_index, cudaStream_t stream) {
  dispatch_floating(dt, "cross_entropy", [&]<class T>() {
    using A = acc_t<T>;
    dispatch_index(t_dt, "cross_entropy", [&]<class I>() {
      if (rows <= 0) return;
      forward_kernel<T, I><<<grid_blocks(rows, kMaxGridBlocks), kThreads, 0, stream>>>(
          static_cast<const T*>(logits), static_cast<const I*>(targets), static_cast<A*>(losses),
          static_cast<A*>(lse), rows, V, ld, ignore_index,
          rows_aligned(logits, logits, ld, sizeof(T)));
      TG_CUDA_CHECK_LAUNCH();
    });
  });
}

void cross_entropy_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                            const void* lse, const void* gloss, double scale, void* glogits,
                            int64_t rows, int64_t V, int64_t ld, int64_t ignore_index,
                            cudaStream_t stream) {
  dispatch_floating(dt, "cross_entropy backward", [&]<class T>() {
    using A = acc_t<T>;
    dispatch_index(t_dt, "cross_entropy backward", [&]<class I>() {
      if (rows <= 0 || V <= 0) return;  // no elements to write
      backward_kernel<T, I><<<grid_blocks(rows, kMaxGridBlocks), kThreads, 0, stream>>>(
          static_cast<const T*>(logits), static_cast<const I*>(targets), static_cast<const A*>(lse),
          static_cast<const A*>(gloss), scale, static_cast<T*>(glogits), rows, V, ld, ignore_index,
          rows_aligned(logits, glogits, ld, sizeof(T)));
      TG_CUDA_CHECK_LAUNCH();
    });
  });
}

bool cross_entropy_forward_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                                    void* losses, void* lse, const void* gloss, double scale,
                                    void* glogits, int64_t rows, int64_t V, int64_t ld,
                                    int64_t ignore_index, cudaStream_t stream) {
  bool fused = false;
  dispatch_floating(dt, "cross_entropy", [&]<class T>() {
    using A = acc_t<T>;
    dispatch_index(t_dt, "cross_entropy", [&]<class I>() {
      if (rows <= 0 || V <= 0) return;
      // The row's copy in shared memory: one 16-byte slot per vector.
      const int64_t vectors = (V + kVec16<T> - 1) / kVec16<T>;
      const int64_t bytes = vectors * static_cast<int64_t>(sizeof(Vec16<T>));
      int device = 0, optin = 0;
      TG_CUDA_CHECK(cudaGetDevice(&device));
      TG_CUDA_CHECK(
          cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
      // Room for the static partials besides the row.
      if (bytes + 1024 > optin) return;
      const auto kernel = forward_backward_kernel<T, I>;
      TG_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes)));
      kernel<<<grid_blocks(rows, kMaxGridBlocks), kFusedThreads, static_cast<size_t>(bytes),
               stream>>>(static_cast<const T*>(logits), static_cast<const I*>(targets),
                         static_cast<A*>(losses), static_cast<A*>(lse),
                         static_cast<const A*>(gloss), scale, static_cast<T*>(glogits), rows, V, ld,
                         ignore_index, rows_aligned(logits, glogits, ld, sizeof(T)));
      TG_CUDA_CHECK_LAUNCH();
      fused = true;
    });
  });
  if (fused || rows <= 0) return fused;
  cross_entropy_forward(dt, logits, t_dt, targets, losses, lse, rows, V, ld, ignore_index, stream);
  cross_entropy_backward(dt, logits, t_dt, targets, lse, gloss, scale, glogits, rows, V, ld,
                         ignore_index, stream);
  return false;
}

}  // namespace tilegrad::kernels::cuda
