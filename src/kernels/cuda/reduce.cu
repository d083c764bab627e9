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
// When the outputs alone would give less than a wave of blocks (a bias gradient: 768 sums of
// 16384 rows each), the reduced range is cut into `parts` equal chunks, a grid dimension of its
// own: each block writes its chunk's partial (float64) to a workspace, and a second kernel combines
// each output's partials in chunk order. The cut depends only on the shapes and the device's SM
// count, so results still do not vary from run to run.
//
// A sum over the rows of a contiguous row-major matrix whose rows are 16-byte aligned (a bias
// gradient) has a kernel of its own, rows_reduce_kernel: the 32 x 8 block above reads 64 bytes of a
// 16-bit type per warp and row, each element's offset computed on its own; there a lane reads 16
// adjacent outputs' bytes in one load. Same slices, same tree, so the same results.
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
// With parts > 1 (gridDim.y), block (tile, part) reduces the part-th chunk of `chunk` reduced
// elements and writes its partial to partials[part * n_out + o] instead of out.
template <class T, bool kMax, class Index, int kSlices, bool kOutputsAcross>
__global__ void __launch_bounds__(kThreads)
    reduce_kernel(const T* x, T* out, Split s, int64_t chunk, double* partials) {
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
      const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
      const int64_t r1 = min64(s.n_red, r0 + chunk);
      for (int64_t r = r0 + slice; r < r1; r += kSlices) {
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
    if (slice == 0 && o < s.n_out) {
      if (gridDim.y > 1) {
        partials[blockIdx.y * s.n_out + o] = r_acc;
      } else {
        out[o] = T(static_cast<acc_t<T>>(r_acc));
      }
    }
  }
}

// reduce_kernel's 32 outputs x 8 slices for a contiguous row-major [n_red, n_out] matrix whose rows
// start 16-byte aligned (n_out a multiple of kVec16<T>): each lane takes kVec16<T> adjacent outputs
// and reads them in one 16-byte load per row, a warp 512 bytes of a row. Slice k accumulates the
// rows k, k + 8, ... of the block's chunk in order and the slices combine by reduce_kernel's tree,
// so each output's result is reduce_kernel's, bit for bit.
constexpr int kRowSlices = 8;
// Outputs per block for elements of elem_bytes: 32 lanes of a 16-byte vector each.
constexpr int64_t row_outs(size_t elem_bytes) {
  return kThreads / kRowSlices * (16 / static_cast<int64_t>(elem_bytes));
}
template <class T>
constexpr int64_t kRowOuts = row_outs(sizeof(T));

template <class T, bool kMax>
__global__ void __launch_bounds__(kThreads)
    rows_reduce_kernel(const T* x, T* out, int64_t n_out, int64_t n_red, int64_t chunk,
                       double* partials) {
  constexpr int V = kVec16<T>;
  constexpr int kLanes = kThreads / kRowSlices;
  const int lane = static_cast<int>(threadIdx.x) % kLanes;
  const int slice = static_cast<int>(threadIdx.x) / kLanes;
  __shared__ double s_acc[kRowSlices][kLanes * V];
  for (int64_t tile = blockIdx.x; tile * kRowOuts<T> < n_out; tile += gridDim.x) {
    const int64_t o0 = tile * kRowOuts<T> + lane * V;  // the lane's first output
    double acc[V];
#pragma unroll
    for (int e = 0; e < V; ++e) acc[e] = identity<kMax>();
    if (o0 < n_out) {
      const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
      const int64_t r1 = min64(n_red, r0 + chunk);
#pragma unroll 4
      for (int64_t r = r0 + slice; r < r1; r += kRowSlices) {
        const Vec16<T> v = *reinterpret_cast<const Vec16<T>*>(x + r * n_out + o0);
#pragma unroll
        for (int e = 0; e < V; ++e) {
          acc[e] = combine<kMax>(acc[e], static_cast<double>(static_cast<acc_t<T>>(v.v[e])));
        }
      }
    }
#pragma unroll
    for (int e = 0; e < V; ++e) s_acc[slice][lane * V + e] = acc[e];
#pragma unroll
    for (int h = kRowSlices / 2; h > 0; h /= 2) {
      __syncthreads();
      if (slice < h) {
#pragma unroll
        for (int e = 0; e < V; ++e) {
          acc[e] = combine<kMax>(acc[e], s_acc[slice + h][lane * V + e]);
          s_acc[slice][lane * V + e] = acc[e];
        }
      }
    }
    __syncthreads();  // the next tile overwrites s_acc
    if (slice == 0 && o0 < n_out) {
#pragma unroll
      for (int e = 0; e < V; ++e) {
        if (gridDim.y > 1) {
          partials[blockIdx.y * n_out + o0 + e] = acc[e];
        } else {
          out[o0 + e] = T(static_cast<acc_t<T>>(acc[e]));
        }
      }
    }
  }
}

// out[o] = the combination of o's `parts` partials, in chunk order.
template <class T, bool kMax>
__global__ void __launch_bounds__(kThreads)
    combine_parts_kernel(const double* partials, T* out, int64_t n_out, int parts) {
  for (int64_t o = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; o < n_out;
       o += static_cast<int64_t>(gridDim.x) * kThreads) {
    double acc = identity<kMax>();
    for (int p = 0; p < parts; ++p) acc = combine<kMax>(acc, partials[p * n_out + o]);
    out[o] = T(static_cast<acc_t<T>>(acc));
  }
}

// How many chunks the reduced range is cut into: enough for about a wave of blocks, but with at
// least kMinPerSlice elements per slice in a chunk, and at most kMaxParts.
constexpr int kMaxParts = 64;
constexpr int64_t kMinPerSlice = 32;
int parts_for(const Split& s, int slices, int64_t outs) {
  const int64_t tiles = (s.n_out + outs - 1) / outs;
  const int64_t wave = one_wave_blocks();
  if (tiles >= wave / 2) return 1;
  const int64_t by_wave = wave / tiles;
  const int64_t by_size = s.n_red / (kMinPerSlice * slices);
  return static_cast<int>(std::clamp<int64_t>(std::min(by_wave, by_size), 1, kMaxParts));
}

// Whether x is a contiguous row-major [n_red, n_out] matrix reduced over its rows, whose rows
// start 16-byte aligned: rows_reduce_kernel's case.
bool rows_case(const void* x, size_t elem_bytes, const Split& s) {
  const int64_t vec = 16 / static_cast<int64_t>(elem_bytes);
  return s.kept.n == 1 && s.kept.stride[0] == 1 && s.reduced.n == 1 &&
         s.reduced.stride[0] == s.n_out && s.n_out % vec == 0 && s.n_red > 16 &&
         reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

// A reduction's blocks: rows_reduce_kernel's (rows), or reduce_kernel's with |slices| threads per
// output (negative: outputs across the warp), the shapes of the header comment; outs, the
// outputs per block. The launch and reduce_workspace_bytes both take it from here, so that the
// workspace always holds the launch's partials.
struct BlockShape {
  bool rows;
  int slices;
  int64_t outs;
};

BlockShape block_shape(const Split& s, const void* x, size_t elem_bytes) {
  if (rows_case(x, elem_bytes, s)) return {true, kRowSlices, row_outs(elem_bytes)};
  const bool outputs_adjacent = s.kept.n > 0 && s.kept.stride[s.kept.n - 1] == 1;
  const bool elements_adjacent = s.reduced.n > 0 && s.reduced.stride[s.reduced.n - 1] == 1;
  int slices = kThreads;
  if (s.n_red <= 16) {
    slices = 1;
  } else if (outputs_adjacent && !elements_adjacent && s.n_out >= 32) {
    slices = -8;  // outputs across
  } else if (s.n_red <= 2048) {
    slices = 32;
  }
  return {false, slices, kThreads / std::abs(slices)};
}

// The number of chunks the reduced range is cut into for shape b (1: no workspace used).
int parts_of(const Split& s, const BlockShape& b, bool have_workspace) {
  return have_workspace && std::abs(b.slices) > 1 ? parts_for(s, std::abs(b.slices), b.outs) : 1;
}

// Launches the first kernel through `first(grid, chunk)` over parts_of(...) chunks of the reduced
// range, then, with more than one, the kernel that combines their partials.
template <class T, bool kMax, class First>
void launch(const Split& s, const BlockShape& b, double* workspace, T* out, cudaStream_t stream,
            First&& first) {
  const int parts = parts_of(s, b, workspace != nullptr);
  const dim3 grid(grid_blocks((s.n_out + b.outs - 1) / b.outs, one_wave_blocks()),
                  static_cast<unsigned>(parts));
  first(grid, parts > 1 ? (s.n_red + parts - 1) / parts : s.n_red);
  TG_CUDA_CHECK_LAUNCH();
  if (parts > 1) {
    combine_parts_kernel<T, kMax>
        <<<grid_blocks((s.n_out + kThreads - 1) / kThreads, one_wave_blocks()), kThreads, 0,
           stream>>>(workspace, out, s.n_out, parts);
    TG_CUDA_CHECK_LAUNCH();
  }
}

template <class T, bool kMax, class Index>
void reduce_impl(const T* x, T* out, const Split& s, double* ws, cudaStream_t stream) {
  const BlockShape b = block_shape(s, x, sizeof(T));
  // reduce_kernel with kSlices threads per output (kAcross: outputs across the warp).
  auto with = [&]<int kSlices, bool kAcross>() {
    launch<T, kMax>(s, b, ws, out, stream, [&](dim3 grid, int64_t chunk) {
      reduce_kernel<T, kMax, Index, kSlices, kAcross>
          <<<grid, kThreads, 0, stream>>>(x, out, s, chunk, ws);
    });
  };
  if (b.rows) {
    return launch<T, kMax>(s, b, ws, out, stream, [&](dim3 grid, int64_t chunk) {
      rows_reduce_kernel<T, kMax>
          <<<grid, kThreads, 0, stream>>>(x, out, s.n_out, s.n_red, chunk, ws);
    });
  }
  switch (b.slices) {
    case 1:
      return with.template operator()<1, false>();
    case -8:
      return with.template operator()<8, true>();
    case 32:
      return with.template operator()<32, false>();
    default:
      return with.template operator()<kThreads, false>();
  }
}

}  // namespace

size_t reduce_workspace_bytes(const StridedView& x, const StridedView& out) {
  if (x.ndim != out.ndim) return 0;
  const Split s = split_dims(x, out);
  const size_t elem = dtype_size(x.dtype);
  if (s.n_out == 0 || elem == 0 || elem > 16) return 0;
  const int parts = parts_of(s, block_shape(s, x.data, elem), true);
  return parts > 1 ? static_cast<size_t>(parts) * static_cast<size_t>(s.n_out) * sizeof(double) : 0;
}

void reduce(ReduceOp op, const StridedView& x, const StridedView& out, cudaStream_t stream,
            void* workspace) {
  TG_ASSERT(x.ndim == out.ndim && out.is_contiguous(), "reduce: bad output view");
  double* ws = static_cast<double*>(workspace);
  dispatch_floating(x.dtype, op == ReduceOp::sum ? "sum" : "max", [&]<class T>() {
    const Split s = split_dims(x, out);
    if (s.n_out == 0) return;  // nothing to write; an empty reduction (n_red = 0) still writes
    const T* px = static_cast<const T*>(x.data);
    T* po = static_cast<T*>(out.data);
    const bool small = s.n_out <= int64_t{UINT32_MAX} && s.n_red <= int64_t{UINT32_MAX};
    if (op == ReduceOp::sum) {
      if (small) return reduce_impl<T, false, uint32_t>(px, po, s, ws, stream);
      reduce_impl<T, false, int64_t>(px, po, s, ws, stream);
    } else {
      if (small) return reduce_impl<T, true, uint32_t>(px, po, s, ws, stream);
      reduce_impl<T, true, int64_t>(px, po, s, ws, stream);
    }
  });
}

}  // namespace tilegrad::kernels::cuda
