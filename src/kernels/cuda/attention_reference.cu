// Exact attention forward and backward on CUDA (see attention_reference.h for the algorithm).
//
// Work split: a thread block of kWarps warps owns one output row (a query row in the forward and
// the dq kernel, a key row in the dk/dv kernel) and its warps take the other side's rows in turn,
// warp w the rows w, w + kWarps, ... of the visible range. A score is a warp's dot product: lane l
// multiplies the elements d = l, l + 32, ... and a butterfly of xor shuffles adds the 32 lane sums
// (every lane ends with the same bits, since each step adds the same two values in either order).
// Lane l also owns the accumulator elements d = l + 32 t (t < 8, so D <= 256). At the end the
// warps' accumulators meet in shared memory and are added in warp order. Every sum thus has an
// order fixed by the problem alone: the kernels are deterministic without atomics.
//
// All loops over rows are warp-uniform (a warp's rows, the mask and the dropout draw depend on the
// warp index only), so every lane takes part in every shuffle.
#include "kernels/cuda/attention_reference.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"
#include "kernels/cuda/random.h"

namespace tilegrad::kernels::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kMaxD = 256;
constexpr int kPerLane = kMaxD / 32;  // accumulator elements per lane

template <class A>
__device__ __forceinline__ A neg_inf() {
  return A(-INFINITY);
}

// The problem as the kernels read it: AttentionArgs with the band's parameters resolved as
// kernels/cpu/attention_common.h's Visibility resolves them, and the dropout constants formed on
// the host as the CPU kernels form them.
struct Problem {
  int64_t B, H, Hkv, Nq, Nk, D, group;
  const void* q;
  const void* k;
  const void* v;
  int64_t qs[3], ks[3], vs[3];
  double scale;
  // Row i sees keys [lo(i), hi(i)]: j >= i + shift - left when has_left, j <= i + shift + right
  // when has_right.
  int64_t shift, left, right;
  bool has_left, has_right;
  const uint8_t* layout;  // device, [ceil(Nq / bq), layout_cols]; null = dense
  int64_t bq, bk, layout_cols;
  bool dropout;
  uint32_t threshold;
  double drop_scale;
  uint64_t seed, offset;

  __device__ int64_t lo(int64_t i) const { return has_left ? max64(0, i + shift - left) : 0; }
  __device__ int64_t hi(int64_t i) const {
    return has_right ? min64(Nk - 1, i + shift + right) : Nk - 1;
  }
  // The queries whose band holds key j: [first_row(j), last_row(j)] (empty when first > last).
  __device__ int64_t first_row(int64_t j) const {
    return has_right ? max64(0, j - shift - right) : 0;
  }
  __device__ int64_t last_row(int64_t j) const {
    return has_left ? min64(Nq - 1, j - shift + left) : Nq - 1;
  }
  __device__ bool layout_allows(int64_t i, int64_t j) const {
    return layout == nullptr || layout[(i / bq) * layout_cols + j / bk] != 0;
  }
  // Whether dropout keeps element (b, h, i, j) of the probabilities (ops/attention.h numbering).
  __device__ bool keep(int64_t b, int64_t h, int64_t i, int64_t j) const {
    const uint64_t d = offset + static_cast<uint64_t>(((b * H + h) * Nq + i) * Nk + j);
    return dropout_keep(philox_draw_device(seed, d), threshold);
  }
};

Problem make_problem(const AttentionArgs& a) {
  Problem p{};
  p.B = a.B;
  p.H = a.H;
  p.Hkv = a.Hkv;
  p.Nq = a.Nq;
  p.Nk = a.Nk;
  p.D = a.D;
  p.group = a.H / a.Hkv;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  for (int r = 0; r < 3; ++r) {
    p.qs[r] = a.q_strides[r];
    p.ks[r] = a.k_strides[r];
    p.vs[r] = a.v_strides[r];
  }
  p.scale = a.scale;
  p.shift = a.Nk - a.Nq;
  p.has_left = a.window_left >= 0;
  p.left = a.window_left;
  p.has_right = a.causal || a.window_right >= 0;
  p.right =
      a.causal ? (a.window_right >= 0 ? std::min<int64_t>(a.window_right, 0) : 0) : a.window_right;
  p.layout = a.layout;
  p.bq = a.layout_block_q;
  p.bk = a.layout_block_k;
  p.layout_cols = a.layout != nullptr ? (a.Nk + a.layout_block_k - 1) / a.layout_block_k : 0;
  p.dropout = a.dropout_p > 0.0;
  p.threshold = dropout_keep_threshold(a.dropout_p);
  p.drop_scale = a.dropout_p < 1.0 ? 1.0 / (1.0 - a.dropout_p) : 0.0;
  p.seed = a.seed;
  p.offset = a.offset;
  return p;
}

// Σ_d x[d] y[d] over the D elements, x in shared memory (accumulation type), y a row in global
// memory; the same bits in every lane of the warp.
template <class T, class A>
__device__ __forceinline__ A warp_dot(const A* s_x, const T* g_y, int64_t D, int lane) {
  A acc = 0;
  for (int64_t d = lane; d < D; d += 32) acc += s_x[d] * A(g_y[d]);
  return warp_sum(acc);
}

// acc[t] += w · y[lane + 32 t] for the lane's elements of a global row y.
template <class T, class A>
__device__ __forceinline__ void axpy_lane(A (&acc)[kPerLane], A w, const T* g_y, int64_t D,
                                          int lane) {
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < D) acc[t] += w * A(g_y[d]);
  }
}

// Leaves each warp's accumulator in s_red[warp][.]; after the barrier, thread d adds the warps'
// values in warp order and stores T(factor · sum) to out[d] for d < D.
template <class T, class A>
__device__ __forceinline__ void reduce_warps_store(const A (&acc)[kPerLane], A (*s_red)[kMaxD],
                                                   A factor, T* out, int64_t D, int warp,
                                                   int lane) {
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < D) s_red[warp][d] = acc[t];
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < D; d += kThreads) {
    A sum = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += s_red[w][d];
    out[d] = T(factor * sum);
  }
}

// Loads D elements of a global row into shared memory in the accumulation type.
template <class T, class A>
__device__ __forceinline__ void load_row(const T* g_x, A* s_x, int64_t D) {
  for (int64_t d = threadIdx.x; d < D; d += kThreads) s_x[d] = A(g_x[d]);
}

// ---- forward

template <class T>
__global__ void __launch_bounds__(kThreads) forward_kernel(const Problem p, T* o, acc_t<T>* lse) {
  using A = acc_t<T>;
  __shared__ A s_q[kMaxD];
  __shared__ A s_red[kWarps][kMaxD];
  __shared__ A s_m[kWarps], s_l[kWarps];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = blockIdx.x;  // (b · H + h) · Nq + i
  const int64_t i = row % p.Nq, bh = row / p.Nq, h = bh % p.H, b = bh / p.H, hk = h / p.group;
  const T* kh = static_cast<const T*>(p.k) + b * p.ks[0] + hk * p.ks[1];
  const T* vh = static_cast<const T*>(p.v) + b * p.vs[0] + hk * p.vs[1];
  const A scale = A(p.scale);
  const int64_t lo = p.lo(i), hi = p.hi(i);
  load_row(static_cast<const T*>(p.q) + b * p.qs[0] + h * p.qs[1] + i * p.qs[2], s_q, p.D);
  __syncthreads();

  // Pass 1: the warp's running max m and sum l of exp(s - m) over its keys.
  A m = neg_inf<A>(), l = 0;
  for (int64_t j = lo + warp; j <= hi; j += kWarps) {
    if (!p.layout_allows(i, j)) continue;
    const A s = scale * warp_dot(s_q, kh + j * p.ks[2], p.D, lane);
    if (s > m) {
      l = l * exp_acc(m - s) + A(1);  // exp(-inf) = 0 for the first key
      m = s;
    } else {
      l += exp_acc(s - m);
    }
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
  __syncthreads();
  // Every thread combines the warps' partials in warp order (the same bits everywhere).
  A row_max = neg_inf<A>();
  for (int w = 0; w < kWarps; ++w) row_max = s_m[w] > row_max ? s_m[w] : row_max;
  A sum = 0;
  if (row_max != neg_inf<A>()) {
    for (int w = 0; w < kWarps; ++w) sum += s_l[w] * exp_acc(s_m[w] - row_max);
  }
  const bool any = sum > A(0);  // false: the row sees no key, O = 0 and lse = -inf
  const A row_lse = any ? row_max + log_acc(sum) : neg_inf<A>();

  // Pass 2: acc = Σ_j dropout(P_ij) v_j with P_ij = exp(s_ij - lse_i).
  A acc[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) acc[t] = 0;
  const A drop_scale = A(p.drop_scale);
  for (int64_t j = lo + warp; any && j <= hi; j += kWarps) {
    if (!p.layout_allows(i, j)) continue;
    if (p.dropout && !p.keep(b, h, i, j)) continue;  // a dropped P adds nothing
    A prob = exp_acc(scale * warp_dot(s_q, kh + j * p.ks[2], p.D, lane) - row_lse);
    if (p.dropout) prob *= drop_scale;
    axpy_lane(acc, prob, vh + j * p.vs[2], p.D, lane);
  }
  reduce_warps_store(acc, s_red, A(1), o + row * p.D, p.D, warp, lane);
  if (threadIdx.x == 0) lse[row] = row_lse;
}

// ---- backward

// dvec[r] = Σ_d dout[r, d] o[r, d] - glse[r] (glse may be null), one warp per row.
template <class T>
__global__ void __launch_bounds__(kThreads)
    dvec_kernel(const T* o, const T* dout, const acc_t<T>* glse, acc_t<T>* dvec, int64_t rows,
                int64_t D) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= rows) return;  // the whole warp leaves together
  A acc = 0;
  for (int64_t d = lane; d < D; d += 32) acc += A(dout[r * D + d]) * A(o[r * D + d]);
  acc = warp_sum(acc);
  if (lane == 0) dvec[r] = glse != nullptr ? acc - glse[r] : acc;
}

// dQ_i = scale Σ_j P_ij (dP_ij - Dvec_i) k_j over the visible keys j of query row i.
template <class T>
__global__ void __launch_bounds__(kThreads)
    dq_kernel(const Problem p, const acc_t<T>* lse, const T* dout, const acc_t<T>* dvec, T* dq) {
  using A = acc_t<T>;
  __shared__ A s_q[kMaxD];
  __shared__ A s_do[kMaxD];
  __shared__ A s_red[kWarps][kMaxD];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = blockIdx.x;
  const int64_t i = row % p.Nq, bh = row / p.Nq, h = bh % p.H, b = bh / p.H, hk = h / p.group;
  const T* kh = static_cast<const T*>(p.k) + b * p.ks[0] + hk * p.ks[1];
  const T* vh = static_cast<const T*>(p.v) + b * p.vs[0] + hk * p.vs[1];
  const A scale = A(p.scale), drop_scale = A(p.drop_scale);
  const A row_lse = lse[row], row_dvec = dvec[row];
  const bool any = row_lse != neg_inf<A>();  // a row without keys passes no gradient
  load_row(static_cast<const T*>(p.q) + b * p.qs[0] + h * p.qs[1] + i * p.qs[2], s_q, p.D);
  load_row(dout + row * p.D, s_do, p.D);
  __syncthreads();

  A acc[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) acc[t] = 0;
  const int64_t lo = p.lo(i), hi = p.hi(i);
  for (int64_t j = lo + warp; any && j <= hi; j += kWarps) {
    if (!p.layout_allows(i, j)) continue;
    const T* krow = kh + j * p.ks[2];
    const A prob = exp_acc(scale * warp_dot(s_q, krow, p.D, lane) - row_lse);
    A dp = warp_dot(s_do, vh + j * p.vs[2], p.D, lane);  // dP̃_ij = dO_i · v_j
    if (p.dropout) dp = p.keep(b, h, i, j) ? dp * drop_scale : A(0);
    axpy_lane(acc, prob * (dp - row_dvec), krow, p.D, lane);  // dS_ij k_j
  }
  reduce_warps_store(acc, s_red, scale, dq + row * p.D, p.D, warp, lane);
}

// dV_j = Σ P̃_ij dO_i and dK_j = scale Σ dS_ij q_i over the query heads h of kv head hk's group
// and the queries i that see key j.
template <class T>
__global__ void __launch_bounds__(kThreads)
    dkdv_kernel(const Problem p, const acc_t<T>* lse, const T* dout, const acc_t<T>* dvec, T* dk,
                T* dv) {
  using A = acc_t<T>;
  __shared__ A s_k[kMaxD];
  __shared__ A s_v[kMaxD];
  __shared__ A s_red[kWarps][kMaxD];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t kv_row = blockIdx.x;  // (b · Hkv + hk) · Nk + j
  const int64_t j = kv_row % p.Nk, bhk = kv_row / p.Nk, hk = bhk % p.Hkv, b = bhk / p.Hkv;
  const A scale = A(p.scale), drop_scale = A(p.drop_scale);
  load_row(static_cast<const T*>(p.k) + b * p.ks[0] + hk * p.ks[1] + j * p.ks[2], s_k, p.D);
  load_row(static_cast<const T*>(p.v) + b * p.vs[0] + hk * p.vs[1] + j * p.vs[2], s_v, p.D);
  __syncthreads();

  A acc_dk[kPerLane], acc_dv[kPerLane];
#pragma unroll
  for (int t = 0; t < kPerLane; ++t) acc_dk[t] = acc_dv[t] = 0;
  const int64_t first = p.first_row(j), rows = max64(0, p.last_row(j) - first + 1);
  // Task u = (g, i): head hk · group + g, query first + i, in that order.
  for (int64_t u = warp; u < p.group * rows; u += kWarps) {
    const int64_t h = hk * p.group + u / rows, i = first + u % rows;
    if (!p.layout_allows(i, j)) continue;
    const int64_t row = (b * p.H + h) * p.Nq + i;
    const A row_lse = lse[row];
    if (row_lse == neg_inf<A>()) continue;  // cannot happen for a visible pair; kept for safety
    const T* qrow = static_cast<const T*>(p.q) + b * p.qs[0] + h * p.qs[1] + i * p.qs[2];
    const T* dorow = dout + row * p.D;
    const A prob = exp_acc(scale * warp_dot(s_k, qrow, p.D, lane) - row_lse);
    const A dpt = warp_dot(s_v, dorow, p.D, lane);  // dP̃_ij = dO_i · v_j
    A pt = prob, dp = dpt;                          // P̃_ij and dP_ij
    if (p.dropout) {
      const bool kept = p.keep(b, h, i, j);
      pt = kept ? prob * drop_scale : A(0);
      dp = kept ? dpt * drop_scale : A(0);
    }
    axpy_lane(acc_dv, pt, dorow, p.D, lane);
    axpy_lane(acc_dk, prob * (dp - dvec[row]), qrow, p.D, lane);
  }
  reduce_warps_store(acc_dk, s_red, scale, dk + kv_row * p.D, p.D, warp, lane);
  __syncthreads();  // s_red is reused
  reduce_warps_store(acc_dv, s_red, A(1), dv + kv_row * p.D, p.D, warp, lane);
}

// ---- host side

constexpr int64_t kMaxGrid = std::numeric_limits<int32_t>::max();

void check_problem(const AttentionArgs& a) {
  TG_CHECK(a.D >= 0 && a.D <= kMaxD, "attention (CUDA reference kernel): head dim D = ", a.D,
           " is not supported (at most ", kMaxD, ")");
  TG_CHECK(a.Hkv >= 1 && a.H % a.Hkv == 0, "attention (CUDA reference kernel): H = ", a.H,
           " is not a multiple of Hkv = ", a.Hkv);
  TG_CHECK(a.layout == nullptr || (a.layout_block_q >= 1 && a.layout_block_k >= 1),
           "attention (CUDA reference kernel): layout block sizes must be >= 1, got ",
           a.layout_block_q, " x ", a.layout_block_k);
  TG_CHECK(a.dropout_p >= 0.0 && a.dropout_p <= 1.0,
           "attention (CUDA reference kernel): dropout_p = ", a.dropout_p, " is outside [0, 1]");
  TG_CHECK(a.B * a.H * a.Nq <= kMaxGrid && a.B * a.Hkv * a.Nk <= kMaxGrid,
           "attention (CUDA reference kernel): too many rows (B = ", a.B, ", H = ", a.H,
           ", Nq = ", a.Nq, ", Nk = ", a.Nk, "): one block per row, at most ", kMaxGrid);
}

int64_t acc_size(DType dt) {
  return dt == DType::f64 ? 8 : 4;
}

}  // namespace

void attention_reference_forward(const AttentionArgs& args, void* o, void* lse,
                                 cudaStream_t stream) {
  dispatch_floating(args.dtype, "attention", [&]<class T>() {
    check_problem(args);
    const int64_t rows = args.B * args.H * args.Nq;
    if (rows == 0) return;
    forward_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        make_problem(args), static_cast<T*>(o), static_cast<acc_t<T>*>(lse));
    TG_CUDA_CHECK_LAUNCH();
  });
}

size_t attention_reference_backward_workspace_bytes(const AttentionArgs& args) {
  return static_cast<size_t>(args.B * args.H * args.Nq * acc_size(args.dtype));
}

void attention_reference_backward(const AttentionArgs& args, const void* o, const void* lse,
                                  const void* dout, const void* glse, void* dq, void* dk, void* dv,
                                  void* workspace, cudaStream_t stream) {
  dispatch_floating(args.dtype, "attention", [&]<class T>() {
    using A = acc_t<T>;
    check_problem(args);
    const Problem p = make_problem(args);
    const int64_t q_rows = args.B * args.H * args.Nq, kv_rows = args.B * args.Hkv * args.Nk;
    const A* lse_a = static_cast<const A*>(lse);
    const T* dout_t = static_cast<const T*>(dout);
    A* dvec = static_cast<A*>(workspace);
    if (q_rows > 0) {
      TG_ASSERT(workspace != nullptr, "attention_reference_backward needs its workspace");
      dvec_kernel<T>
          <<<static_cast<unsigned>((q_rows + kWarps - 1) / kWarps), kThreads, 0, stream>>>(
              static_cast<const T*>(o), dout_t, static_cast<const A*>(glse), dvec, q_rows, args.D);
      TG_CUDA_CHECK_LAUNCH();
      dq_kernel<T><<<static_cast<unsigned>(q_rows), kThreads, 0, stream>>>(p, lse_a, dout_t, dvec,
                                                                           static_cast<T*>(dq));
      TG_CUDA_CHECK_LAUNCH();
    }
    if (kv_rows > 0) {  // also when Nq = 0: dk and dv are then zero
      dkdv_kernel<T><<<static_cast<unsigned>(kv_rows), kThreads, 0, stream>>>(
          p, lse_a, dout_t, dvec, static_cast<T*>(dk), static_cast<T*>(dv));
      TG_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace tilegrad::kernels::cuda
