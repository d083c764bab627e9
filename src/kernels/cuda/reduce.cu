// CUDA reductions. As on the CPU (kernels/cpu/reduce.cpp), x's dimensions split into kept ones (one
// output each, row-major, which is out's contiguous order) and reduced ones, each list coalesced;
// every element is converted to float64 and accumulated in float64, and the result is rounded to
// the output type through acc_t<T>, so sums have the CPU's precision class and max gives its bits.
//
// A block of 256 threads covers kOuts outputs with kSlices = 256 / kOuts threads each: a slice
// accumulates every kSlices-th reduced element of its output, then the slices' partials are
// combined by a fixed tree in shared memory, so results do not vary from run to run. Four shapes of
// block:
//   - 1 slice per output, when there are at most 16 elements per output (no tree at all);
//   - 32 outputs x 8 slices, outputs across the warp, when outputs are adjacent in memory and the
//     reduced elements are not (a sum over the rows of a row-major matrix): loads coalesce;
//   - 8 outputs x 32 slices (a warp per output) for up to 2048 elements per output;
//   - 1 output x 256 slices (a block per output) beyond.
// One output's reduction never spans blocks (there is no workspace for partials), so a reduction
// of very many elements to very few outputs runs on few SMs.
#include "kernels/cuda/reduce.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"

namespace tilegrad::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// Sizes and x strides of one group of dimensions (kept or reduced), outermost first.
struct Dims {
  int n = 0;
  int64_t shape[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};

  // Appends an inner dimension, merged into the previous one when stepping through both is one
  // step of the merged one (the row-major order of the elements is unchanged).
  void push(int64_t size, int64_t step) {
    if (n > 0 && stride[n - 1] == step * size) {
      shape[n - 1] *= size;
      stride[n - 1] = step;
    } else {
      shape[n] = size;
      stride[n] = step;
      ++n;
    }
  }
};

struct Split {
  Dims kept, reduced;
  int64_t n_out = 1, n_red = 1;
};

// A dimension is reduced where out has size 1 and x does not; size-1 dimensions of x drop out.
Split split_dims(const StridedView& x, const StridedView& out) {
  Split s;
  for (int d = 0; d < x.ndim; ++d) {
    if (x.shape[d] == 1) continue;
    if (out.shape[d] == 1) {
      s.reduced.push(x.shape[d], x.strides[d]);
      s.n_red *= x.shape[d];
    } else {
      s.kept.push(x.shape[d], x.strides[d]);
      s.n_out *= x.shape[d];
    }
  }
  return s;
}

// x offset of element i (row-major) of the dimensions `d`. Index is uint32_t when every index fits,
// since 64-bit division costs several times more; the loop runs over kMaxDims so that it unrolls
// and reads d's arrays at fixed positions. The outermost dimension needs no division.
template <class Index>
__device__ __forceinline__ int64_t offset_of(int64_t i, const Dims& d) {
  Index rem = static_cast<Index>(i);
  int64_t off = 0;
#pragma unroll
  for (int k = kMaxDims - 1; k > 0; --k) {
    if (k < d.n) {
      const Index size = static_cast<Index>(d.shape[k]);
      const Index q = rem / size;
      off += static_cast<int64_t>(rem - q * size) * d.stride[k];
      rem = q;
    }
  }
  if (d.n > 0) off += static_cast<int64_t>(rem) * d.stride[0];
  return off;
}

// The accumulation: float64 sum, or float64 max that propagates NaN (a NaN partial wins every
// combine, wherever it sits in the tree).
template <bool kMax>
__device__ __forceinline__ double identity() {
  return kMax ? -static_cast<double>(INFINITY) : 0.0;
}
template <bool kMax>
__device__ __forceinline__ double combine(double acc, double v) {
  if constexpr (kMax) {
    return (v > acc || isnan(v)) ? v : acc;
  } else {
    return acc + v;
  }
}

// out[o] = reduction over the reduced dimensions of x at output o's kept coordinates.
template <class T, bool kMax, class Index, int kSlices, bool kOutputsAcross>
__global__ void __launch_bounds__(kThreads) reduce_kernel(const T* x, T* out, Split s) {
  static_assert(kThreads % kSlices == 0 && (kSlices & (kSlices - 1)) == 0,
                "slices must be a power of two dividing the block");
  constexpr int kOuts = kThreads / kSlices;
  // Outputs across the warp: consecutive threads take consecutive outputs (adjacent in memory);
  // otherwise consecutive threads take consecutive elements of one output.
  const int o_local = kOutputsAcross ? threadIdx.x % kOuts : threadIdx.x / kSlices;
  const int slice = kOutputsAcross ? threadIdx.x / kOuts : threadIdx.x % kSlices;
  __shared__ double s_acc[kSlices > 1 ? kThreads : 1];  // [kSlices, kOuts]
  // The tile loop's bounds are the same for the whole block, so every thread reaches every barrier.
  for (int64_t tile = blockIdx.x; tile * kOuts < s.n_out; tile += gridDim.x) {
    const int64_t o = tile * kOuts + o_local;
    double r_acc = identity<kMax>();
    if (o < s.n_out) {
      const T* base = x + offset_of<Index>(o, s.kept);
      for (int64_t r = slice; r < s.n_red; r += kSlices) {
        // Through acc_t<T> to double, as the CPU reads elements.
        const double v =
            static_cast<double>(static_cast<acc_t<T>>(base[offset_of<Index>(r, s.reduced)]));
        r_acc = combine<kMax>(r_acc, v);
      }
    }
    if constexpr (kSlices > 1) {
      s_acc[slice * kOuts + o_local] = r_acc;
#pragma unroll
      for (int h = kSlices / 2; h > 0; h /= 2) {
        __syncthreads();
        if (slice < h) {
          r_acc = combine<kMax>(r_acc, s_acc[(slice + h) * kOuts + o_local]);
          s_acc[slice * kOuts + o_local] = r_acc;
        }
      }
      __syncthreads();  // the next tile overwrites s_acc
    }
    if (slice == 0 && o < s.n_out) out[o] = T(static_cast<acc_t<T>>(r_acc));
  }
}

template <class T, bool kMax, class Index, int kSlices, bool kOutputsAcross>
void launch(const T* x, T* out, const Split& s, cudaStream_t stream) {
  constexpr int kOuts = kThreads / kSlices;
  reduce_kernel<T, kMax, Index, kSlices, kOutputsAcross>
      <<<grid_blocks((s.n_out + kOuts - 1) / kOuts, one_wave_blocks()), kThreads, 0, stream>>>(
          x, out, s);
  TG_CUDA_CHECK_LAUNCH();
}

template <class T, bool kMax, class Index>
void reduce_impl(const T* x, T* out, const Split& s, cudaStream_t stream) {
  const bool outputs_adjacent = s.kept.n > 0 && s.kept.stride[s.kept.n - 1] == 1;
  const bool elements_adjacent = s.reduced.n > 0 && s.reduced.stride[s.reduced.n - 1] == 1;
  if (s.n_red <= 16) {
    launch<T, kMax, Index, 1, false>(x, out, s, stream);
  } else if (outputs_adjacent && !elements_adjacent && s.n_out >= 32) {
    launch<T, kMax, Index, 8, true>(x, out, s, stream);
  } else if (s.n_red <= 2048) {
    launch<T, kMax, Index, 32, false>(x, out, s, stream);
  } else {
    launch<T, kMax, Index, kThreads, false>(x, out, s, stream);
  }
}

}  // namespace

void reduce(ReduceOp op, const StridedView& x, const StridedView& out, cudaStream_t stream) {
  TG_ASSERT(x.ndim == out.ndim && out.is_contiguous(), "reduce: bad output view");
  dispatch_floating(x.dtype, op == ReduceOp::sum ? "sum" : "max", [&]<class T>() {
    const Split s = split_dims(x, out);
    if (s.n_out == 0) return;  // nothing to write; an empty reduction (n_red = 0) still writes
    const T* px = static_cast<const T*>(x.data);
    T* po = static_cast<T*>(out.data);
    const bool small = s.n_out <= int64_t{UINT32_MAX} && s.n_red <= int64_t{UINT32_MAX};
    if (op == ReduceOp::sum) {
      if (small) return reduce_impl<T, false, uint32_t>(px, po, s, stream);
      reduce_impl<T, false, int64_t>(px, po, s, stream);
    } else {
      if (small) return reduce_impl<T, true, uint32_t>(px, po, s, stream);
      reduce_impl<T, true, int64_t>(px, po, s, stream);
    }
  });
}

}  // namespace tilegrad::kernels::cuda
