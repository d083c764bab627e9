// CUDA optimizer kernels (see optim.h; the update rules are in kernels/cpu/optim.h).
//
// The updates are elementwise: one element per thread, grid-stride for one tensor; a block per
// (tensor, chunk) pair for many. Each element does the CPU kernel's operations in its order with
// __fmul_rn-style intrinsics, which nvcc never contracts into FMAs (the CPU build has none), and
// the per-step scalars come from the same host expressions as on the CPU, so every rounding is the
// CPU's.
//
// The sum of squares is a reduction and must not depend on timing: a fixed number of blocks (from
// n alone) each sum one contiguous range into a float64 partial through a fixed tree, and a single
// block then adds the partials through a fixed tree. No atomics anywhere.
#include "kernels/cuda/optim.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"

namespace tilegrad::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;  // grid-stride beyond this (results do not depend on it)
constexpr int kMultiThreads = 512;     // a chunk of 65536 elements: 128 per thread

// ---- AdamW

// The per-step scalars in the accumulation type, formed in float64 and rounded once, as
// cpu::adamw_update forms them (same host expressions, same libm).
template <class A>
struct AdamWScalars {
  A decay, b1, b2, one_b1, one_b2, step_size, bc2_sqrt, eps, gs;
};

template <class A>
AdamWScalars<A> adamw_scalars(const AdamWStep& s) {
  const double bc1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bc2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.step));
  return {A(1.0 - s.lr * s.weight_decay),
          A(s.beta1),
          A(s.beta2),
          A(1.0 - s.beta1),
          A(1.0 - s.beta2),
          A(s.lr / bc1),
          A(std::sqrt(bc2)),
          A(s.eps),
          A(s.grad_scale)};
}

// One AdamW step of one element, in the order of cpu::adamw_update's loop body: p (the master
// weight, or the parameter itself without one), m and v are updated in place.
template <class A>
__device__ __forceinline__ void adamw_math(A grad, A& p, A& m, A& v, const AdamWScalars<A>& s) {
  const A g = mul_rn(grad, s.gs);
  p = mul_rn(p, s.decay);
  m = add_rn(mul_rn(s.b1, m), mul_rn(s.one_b1, g));
  v = add_rn(mul_rn(s.b2, v), mul_rn(s.one_b2, mul_rn(g, g)));
  p = sub_rn(p, mul_rn(s.step_size, div_rn(m, add_rn(div_rn(sqrt_rn(v), s.bc2_sqrt), s.eps))));
}

// Element i of one AdamW step.
template <class T>
__device__ __forceinline__ void adamw_element(T* param, float* master, const T* grad, acc_t<T>* m,
                                              acc_t<T>* v, int64_t i,
                                              const AdamWScalars<acc_t<T>>& s) {
  using A = acc_t<T>;
  A p;
  if constexpr (kHasMaster<T>) {
    p = master[i];
  } else {
    (void)master;
    p = param[i];
  }
  A mi = m[i], vi = v[i];
  adamw_math(A(grad[i]), p, mi, vi, s);
  m[i] = mi;
  v[i] = vi;
  if constexpr (kHasMaster<T>) master[i] = p;
  param[i] = T(p);
}

template <class T>
__global__ void adamw_kernel(T* param, float* master, const T* grad, acc_t<T>* m, acc_t<T>* v,
                             int64_t n, AdamWScalars<acc_t<T>> s) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    adamw_element(param, master, grad, m, v, i, s);
  }
}

// The kernel argument of one multi-tensor launch: the tensors (structure of arrays) and the
// (tensor, chunk) pairs, one per thread block. Passed by value: CUDA copies kernel arguments at
// launch, so no device allocation or host-to-device copy is needed and the host table can be
// reused at once. Up to 32,764 bytes of arguments are allowed from CUDA 12.1 on Volta and later
// (this library targets sm_80 and sm_90a); __grid_constant__ lets the kernel index the arrays in
// the parameter space without copying them to local memory.
template <class T>
struct AdamWTable {
  using A = acc_t<T>;
  T* param[kAdamWMaxTensors];
  float* master[kAdamWMaxTensors];
  const T* grad[kAdamWMaxTensors];
  A* m[kAdamWMaxTensors];
  A* v[kAdamWMaxTensors];
  int64_t n[kAdamWMaxTensors];
  AdamWScalars<A> s[kAdamWMaxTensors];
  int32_t chunk_index[kAdamWMaxChunks];
  uint8_t chunk_tensor[kAdamWMaxChunks];
};
static_assert(kAdamWMaxTensors <= 256, "chunk_tensor indexes the tensors with a uint8_t");
static_assert(sizeof(AdamWTable<double>) <= 32764,
              "the multi-tensor table must fit in the kernel argument space (32,764 bytes)");

template <class T>
__global__ void __launch_bounds__(kMultiThreads)
    adamw_multi_kernel(const __grid_constant__ AdamWTable<T> table) {
  using A = acc_t<T>;
  const int t = table.chunk_tensor[blockIdx.x];
  const int64_t i0 = static_cast<int64_t>(table.chunk_index[blockIdx.x]) * kAdamWChunk;
  const int64_t i1 = min64(table.n[t], i0 + kAdamWChunk);
  T* param = table.param[t];
  float* master = table.master[t];
  const T* grad = table.grad[t];
  A* m = table.m[t];
  A* v = table.v[t];
  const AdamWScalars<A> s = table.s[t];
  int64_t tail = i0;  // the elements from here on go one per thread
  if constexpr (sizeof(A) == 4) {
    // Four elements per thread and turn, one 16-byte load or store per float array, where every
    // array is aligned for it (chunks start at multiples of kAdamWChunk): one element at a time
    // keeps too few bytes in flight per thread to cover DRAM's latency. The same operations per
    // element, so the same bits.
    constexpr int kV = 4;
    auto aligned = [](const void* ptr, size_t bytes) {
      return ptr == nullptr || reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
    };
    if (aligned(param, kV * sizeof(T)) && aligned(grad, kV * sizeof(T)) &&
        aligned(master, kV * sizeof(float)) && aligned(m, kV * sizeof(A)) &&
        aligned(v, kV * sizeof(A))) {
      const int64_t n_vec = (i1 - i0) / kV;
      for (int64_t j = threadIdx.x; j < n_vec; j += blockDim.x) {
        const int64_t e = i0 + j * kV;
        const Vec<kV, T> gv = *reinterpret_cast<const Vec<kV, T>*>(grad + e);
        Vec<kV, A> mv = *reinterpret_cast<const Vec<kV, A>*>(m + e);
        Vec<kV, A> vv = *reinterpret_cast<const Vec<kV, A>*>(v + e);
        Vec<kV, A> pv;
        if constexpr (kHasMaster<T>) {
          pv = *reinterpret_cast<const Vec<kV, float>*>(master + e);
        } else {
          pv = *reinterpret_cast<const Vec<kV, A>*>(param + e);
        }
        Vec<kV, T> out;
#pragma unroll
        for (int k = 0; k < kV; ++k) {
          adamw_math(A(gv.v[k]), pv.v[k], mv.v[k], vv.v[k], s);
          out.v[k] = T(pv.v[k]);
        }
        *reinterpret_cast<Vec<kV, A>*>(m + e) = mv;
        *reinterpret_cast<Vec<kV, A>*>(v + e) = vv;
        if constexpr (kHasMaster<T>) *reinterpret_cast<Vec<kV, float>*>(master + e) = pv;
        *reinterpret_cast<Vec<kV, T>*>(param + e) = out;
      }
      tail = i0 + n_vec * kV;
    }
  }
  for (int64_t i = tail + threadIdx.x; i < i1; i += blockDim.x) {
    adamw_element(param, master, grad, m, v, i, s);
  }
}

// ---- SGD

template <class A>
struct SgdScalars {
  A lr, mu, one_damp, wd, gs;
  bool use_wd, use_mom, first_step, nesterov;
};

template <class T>
__global__ void sgd_kernel(T* param, float* master, const T* grad, acc_t<T>* buf, int64_t n,
                           SgdScalars<acc_t<T>> s) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A p;
    if constexpr (kHasMaster<T>) {
      p = master[i];
    } else {
      p = param[i];
    }
    A g = mul_rn(A(grad[i]), s.gs);
    if (s.use_wd) g = add_rn(g, mul_rn(s.wd, p));
    if (s.use_mom) {
      const A b = s.first_step ? g : add_rn(mul_rn(s.mu, buf[i]), mul_rn(s.one_damp, g));
      buf[i] = b;
      g = s.nesterov ? add_rn(g, mul_rn(s.mu, b)) : b;
    }
    p = sub_rn(p, mul_rn(s.lr, g));
    if constexpr (kHasMaster<T>) master[i] = p;
    param[i] = T(p);
  }
}

// ---- sum of squares

constexpr int kSumThreads = 256;
// A partial covers at least this many elements, so small tensors use few blocks.
constexpr int64_t kSumMinPerBlock = 4096;

// Adds the kThreads values of s (thread t's at s[t]) through a fixed halving tree into s[0]; the
// fixed order is what makes the sums of squares the same bits on every run.
template <int kThreads>
__device__ __forceinline__ void halving_tree(double* s) {
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    __syncthreads();
    if (static_cast<int>(threadIdx.x) < stride) s[threadIdx.x] += s[threadIdx.x + stride];
  }
}

// Σ x[i]² over [i0, i1) into s_sum[0]: thread t takes i0 + t, i0 + t + 256, ... in order, then the
// block's 256 sums meet in a fixed halving tree.
template <class T>
__device__ __forceinline__ void block_sum_squares(const T* x, int64_t i0, int64_t i1,
                                                  double* s_sum) {
  double acc = 0.0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += kSumThreads) {
    const double v = static_cast<double>(static_cast<acc_t<T>>(x[i]));
    acc = fma(v, v, acc);
  }
  s_sum[threadIdx.x] = acc;
  halving_tree<kSumThreads>(s_sum);
}

// Block b's partial: the sum of squares of its range of x.
template <class T>
__global__ void __launch_bounds__(kSumThreads)
    sum_squares_partials_kernel(const T* x, int64_t n, int64_t per_block, double* partials) {
  __shared__ double s_sum[kSumThreads];
  const int64_t i0 = blockIdx.x * per_block, i1 = min64(n, i0 + per_block);
  block_sum_squares(x, i0, i1, s_sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = s_sum[0];
}

// Block i adds one tensor's partials through a fixed halving tree (missing partials count as 0)
// into out[i]: partials[offsets[i], offsets[i + 1]) for a list, or the first `count` partials
// when offsets is null (one tensor, one block).
__global__ void __launch_bounds__(kSumSquaresPartials)
    sum_squares_final_kernel(const double* partials, const int32_t* offsets, int count,
                             double* out) {
  __shared__ double s_sum[kSumSquaresPartials];
  const int i = static_cast<int>(blockIdx.x);
  const int first = offsets ? offsets[i] : 0;
  if (offsets) count = offsets[i + 1] - first;
  s_sum[threadIdx.x] = static_cast<int>(threadIdx.x) < count ? partials[first + threadIdx.x] : 0.0;
  halving_tree<kSumSquaresPartials>(s_sum);
  if (threadIdx.x == 0) out[i] = s_sum[0];
}

// The number of partials (blocks) n elements are summed in: a function of n alone.
int sum_squares_blocks(int64_t n) {
  return n <= 0 ? 0
                : static_cast<int>(std::min<int64_t>(kSumSquaresPartials,
                                                     (n + kSumMinPerBlock - 1) / kSumMinPerBlock));
}

// The launches of sum_squares_async, on a workspace of kSumSquaresPartials doubles.
void sum_squares_launch(DType dt, const void* x, int64_t n, double* d_out, double* partials,
                        cudaStream_t stream) {
  // No elements: the final kernel writes 0 (and, as on the CPU, the dtype is not looked at).
  const int blocks = sum_squares_blocks(n);
  if (blocks > 0)
    dispatch_floating(dt, "sum_squares", [&]<class T>() {
      const int64_t per_block = (n + blocks - 1) / blocks;
      sum_squares_partials_kernel<T>
          <<<blocks, kSumThreads, 0, stream>>>(static_cast<const T*>(x), n, per_block, partials);
      TG_CUDA_CHECK_LAUNCH();
    });
  sum_squares_final_kernel<<<1, kSumSquaresPartials, 0, stream>>>(partials, nullptr, blocks, d_out);
  TG_CUDA_CHECK_LAUNCH();
}

// ---- sum of squares over many tensors, in three launches whatever their number
//
// The partials of every tensor come from one launch per run of kSumListMaxTensors tensors of one
// dtype (block b finds its tensor by a binary search over the run's first blocks, then sums the
// range sum_squares would give that block), each tensor's partials meet in one block per tensor
// (sum_squares_final_kernel), and one thread adds the totals in order: every bit is
// that of calling sum_squares per tensor and adding on the host.
constexpr int kSumListMaxTensors = 256;

struct SumSquaresTable {
  const void* x[kSumListMaxTensors];
  int64_t n[kSumListMaxTensors];
  int64_t per_block[kSumListMaxTensors];
  int32_t first_block[kSumListMaxTensors + 1];  // within this launch; the last entry is the total
  int32_t first_partial;                        // the launch's first block in the partials array
  int32_t count;
};
static_assert(sizeof(SumSquaresTable) <= 32764, "kernel argument space");

template <class T>
__global__ void __launch_bounds__(kSumThreads)
    sum_squares_list_partials_kernel(const __grid_constant__ SumSquaresTable table,
                                     double* partials) {
  __shared__ double s_sum[kSumThreads];
  const int b = static_cast<int>(blockIdx.x);
  int lo = 0, hi = table.count - 1;  // the last tensor whose first block is <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table.first_block[mid] <= b)
      lo = mid;
    else
      hi = mid - 1;
  }
  const T* x = static_cast<const T*>(table.x[lo]);
  const int64_t per_block = table.per_block[lo];
  const int64_t i0 = (b - table.first_block[lo]) * per_block,
                i1 = min64(table.n[lo], i0 + per_block);
  block_sum_squares(x, i0, i1, s_sum);
  if (threadIdx.x == 0) partials[table.first_partial + b] = s_sum[0];
}

// *out = Σ totals[i] for i in order, by one thread: the host's left-to-right float64 sum.
__global__ void sum_in_order_kernel(const double* totals, int count, double* out) {
  double acc = 0.0;
  for (int i = 0; i < count; ++i) acc += totals[i];
  *out = acc;
}

}  // namespace

void adamw_update(DType dt, void* param, float* master, const void* grad, void* m, void* v,
                  int64_t n, const AdamWStep& s, cudaStream_t stream) {
  dispatch_floating(dt, "adamw_update", [&]<class T>() {
    using A = acc_t<T>;
    check_master<T>(master);
    if (n <= 0) return;
    adamw_kernel<T><<<grid_blocks(ceil_div(n, kThreads), kMaxBlocks), kThreads, 0, stream>>>(
        static_cast<T*>(param), master, static_cast<const T*>(grad), static_cast<A*>(m),
        static_cast<A*>(v), n, adamw_scalars<A>(s));
    TG_CUDA_CHECK_LAUNCH();
  });
}

void adamw_update_multi(DType dt, std::span<const AdamWTensor> tensors, cudaStream_t stream) {
  dispatch_floating(dt, "adamw_update", [&]<class T>() {
    using A = acc_t<T>;
    AdamWTable<T> table{};
    int num_tensors = 0, num_chunks = 0;
    auto launch = [&] {
      if (num_chunks > 0) {
        adamw_multi_kernel<T><<<num_chunks, kMultiThreads, 0, stream>>>(table);
        TG_CUDA_CHECK_LAUNCH();
      }
      num_tensors = 0;
      num_chunks = 0;
    };
    auto add_tensor = [&](const AdamWTensor& x) {
      table.param[num_tensors] = static_cast<T*>(x.param);
      table.master[num_tensors] = x.master;
      table.grad[num_tensors] = static_cast<const T*>(x.grad);
      table.m[num_tensors] = static_cast<A*>(x.m);
      table.v[num_tensors] = static_cast<A*>(x.v);
      table.n[num_tensors] = x.n;
      table.s[num_tensors] = adamw_scalars<A>(x.step);
      return num_tensors++;
    };
    for (const AdamWTensor& x : tensors) {
      check_master<T>(x.master);
      if (x.n <= 0) continue;
      if (num_tensors == kAdamWMaxTensors) launch();
      int t = add_tensor(x);
      const int64_t chunks = (x.n + kAdamWChunk - 1) / kAdamWChunk;
      for (int64_t c = 0; c < chunks; ++c) {
        if (num_chunks == kAdamWMaxChunks) {  // the table is full: run it, go on with a new one
          launch();
          t = add_tensor(x);
        }
        table.chunk_tensor[num_chunks] = static_cast<uint8_t>(t);
        table.chunk_index[num_chunks] = static_cast<int32_t>(c);
        ++num_chunks;
      }
    }
    launch();
  });
}

void sgd_update(DType dt, void* param, float* master, const void* grad, void* momentum_buf,
                int64_t n, const SgdStep& s, cudaStream_t stream) {
  TG_ASSERT(s.momentum == 0.0 || momentum_buf != nullptr, "SGD with momentum needs a buffer");
  dispatch_floating(dt, "sgd_update", [&]<class T>() {
    using A = acc_t<T>;
    check_master<T>(master);
    if (n <= 0) return;
    const SgdScalars<A> sc{A(s.lr),           A(s.momentum),   A(1.0 - s.dampening),
                           A(s.weight_decay), A(s.grad_scale), s.weight_decay != 0.0,
                           s.momentum != 0.0, s.first_step,    s.nesterov};
    sgd_kernel<T><<<grid_blocks(ceil_div(n, kThreads), kMaxBlocks), kThreads, 0, stream>>>(
        static_cast<T*>(param), master, static_cast<const T*>(grad), static_cast<A*>(momentum_buf),
        n, sc);
    TG_CUDA_CHECK_LAUNCH();
  });
}

void sum_squares_async(DType dt, const void* x, int64_t n, double* d_out, cudaStream_t stream,
                       void* workspace) {
  if (workspace != nullptr) {
    sum_squares_launch(dt, x, n, d_out, static_cast<double*>(workspace), stream);
    return;
  }
  void* scratch = nullptr;
  TG_CUDA_CHECK(cudaMallocAsync(&scratch, kSumSquaresWorkspaceBytes, stream));
  try {
    sum_squares_launch(dt, x, n, d_out, static_cast<double*>(scratch), stream);
  } catch (...) {
    (void)cudaFreeAsync(scratch, stream);  // the first error is the one reported
    throw;
  }
  TG_CUDA_CHECK(cudaFreeAsync(scratch, stream));
}

double sum_squares(DType dt, const void* x, int64_t n, cudaStream_t stream, void* workspace) {
  // The result goes to the workspace's last slot, after the partials.
  void* scratch = workspace;
  if (scratch == nullptr) {
    TG_CUDA_CHECK(cudaMallocAsync(&scratch, kSumSquaresWorkspaceBytes, stream));
  }
  double* d_out = static_cast<double*>(scratch) + kSumSquaresPartials;
  double total = 0.0;
  try {
    sum_squares_launch(dt, x, n, d_out, static_cast<double*>(scratch), stream);
    TG_CUDA_CHECK(cudaMemcpyAsync(&total, d_out, sizeof(double), cudaMemcpyDeviceToHost, stream));
  } catch (...) {
    if (workspace == nullptr) (void)cudaFreeAsync(scratch, stream);
    throw;
  }
  if (workspace == nullptr) TG_CUDA_CHECK(cudaFreeAsync(scratch, stream));
  TG_CUDA_CHECK(cudaStreamSynchronize(stream));
  return total;
}

size_t sum_squares_list_workspace_bytes(std::span<const SumSquaresInput> xs) {
  // Every tensor's partials, one total per tensor and the sum (doubles), then the partials'
  // offsets (int32).
  size_t partials = 0;
  for (const SumSquaresInput& x : xs) partials += static_cast<size_t>(sum_squares_blocks(x.n));
  return (partials + xs.size() + 1) * sizeof(double) + (xs.size() + 1) * sizeof(int32_t);
}

double sum_squares_list(std::span<const SumSquaresInput> xs, cudaStream_t stream, void* workspace) {
  TG_CHECK(workspace != nullptr, "sum_squares_list: no workspace");
  std::vector<int32_t> offsets(xs.size() + 1, 0);
  for (size_t i = 0; i < xs.size(); ++i) offsets[i + 1] = offsets[i] + sum_squares_blocks(xs[i].n);
  auto* partials = static_cast<double*>(workspace);
  double* totals = partials + offsets.back();
  double* sum = totals + xs.size();
  auto* d_offsets = reinterpret_cast<int32_t*>(sum + 1);
  TG_CUDA_CHECK(cudaMemcpyAsync(d_offsets, offsets.data(), offsets.size() * sizeof(int32_t),
                                cudaMemcpyHostToDevice, stream));
  // Runs of tensors with elements, one dtype and at most kSumListMaxTensors per launch.
  for (size_t i = 0; i < xs.size();) {
    SumSquaresTable table{};
    table.first_partial = offsets[i];
    const DType dt = xs[i].dtype;
    size_t j = i;
    for (; j < xs.size() && table.count < kSumListMaxTensors; ++j) {
      if (xs[j].n <= 0) continue;  // no partials: its total is the final kernel's 0
      if (xs[j].dtype != dt) break;
      const int c = table.count++;
      const int blocks = sum_squares_blocks(xs[j].n);
      table.x[c] = xs[j].x;
      table.n[c] = xs[j].n;
      table.per_block[c] = (xs[j].n + blocks - 1) / blocks;
      table.first_block[c] = offsets[j] - table.first_partial;
      table.first_block[c + 1] = offsets[j + 1] - table.first_partial;
    }
    if (table.count > 0)
      dispatch_floating(dt, "sum_squares", [&]<class T>() {
        sum_squares_list_partials_kernel<T>
            <<<table.first_block[table.count], kSumThreads, 0, stream>>>(table, partials);
        TG_CUDA_CHECK_LAUNCH();
      });
    i = j;
  }
  if (!xs.empty()) {
    sum_squares_final_kernel<<<static_cast<int>(xs.size()), kSumSquaresPartials, 0, stream>>>(
        partials, d_offsets, 0, totals);
    TG_CUDA_CHECK_LAUNCH();
  }
  sum_in_order_kernel<<<1, 1, 0, stream>>>(totals, static_cast<int>(xs.size()), sum);
  TG_CUDA_CHECK_LAUNCH();
  double total = 0.0;
  TG_CUDA_CHECK(cudaMemcpyAsync(&total, sum, sizeof(double), cudaMemcpyDeviceToHost, stream));
  TG_CUDA_CHECK(cudaStreamSynchronize(stream));
  return total;
}

}  // namespace tilegrad::kernels::cuda
