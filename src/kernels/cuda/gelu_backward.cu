// The MLP's backward below its GELU in one pass (kernels/cuda/gelu_backward.h). Without it the
// backward ran three passes over [rows, M]: the GEMM that makes h's gradient multiplied by
// GELU'(pre) in its epilogue (cuBLASLt's DGELU, which reads pre there at well below the memory's
// rate), h = GELU(pre) recomputed for w2's gradient, and b1's gradient summed by the
// weight-gradient GEMM's epilogue (BGRADA). In a GPT-2 step on an H200 (B = 16, 12 calls each):
// the DGELU GEMM took 1.935 ms against 1.274 ms plain, the recomputation 0.855 ms, the GEMM with
// BGRADA 1.797 ms against 1.310 ms plain: 2.00 ms above the plain GEMMs, where this pass takes
// 1.44 ms (docs/KERNELS.md, run K8; bench/device/bias_grad_bench.cu measures the pieces alone).
//
// Layout: a block of 256 threads is 32 lanes x 8 slices over 256 columns (a lane's 8 adjacent
// columns are one 16-byte vector) and one chunk of rows; slice k takes rows k, k + 8, ... of the
// chunk, two rows in flight. Each thread keeps its columns' sums in registers; the block's slices
// meet in shared memory in slice order, one partial per (chunk, column), and the final pass
// (column_sums.cuh) adds the chunks' partials in order. The chunks depend on the shape and the
// SM count alone, so the sums are the same bits on every run. h may be pre itself: each thread
// writes h only where it has read pre.
#include "kernels/cuda/gelu_backward.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "cuda/check.h"
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/kernel_common.cuh"

namespace tilegrad::kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 32;
constexpr int kSlices = kThreads / kLanes;
constexpr int kUnroll = 2;  // rows in flight per thread (four 16-byte loads)
// Four blocks per SM (64 registers a thread): the loads of 1,024 threads in flight.
constexpr int kMinBlocks = 4;
// At most this many row chunks: their partials stay a few MB, the final pass short.
constexpr int64_t kMaxChunks = 1024;

template <class T, bool kH, bool kSum>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    gelu_backward_kernel(const T* pre, T* __restrict__ grad, T* h, int64_t rows, int64_t M,
                         int64_t chunk, float* __restrict__ partials) {
  constexpr int V = kVec16<T>;
  static_assert(V == 8, "16-bit types: 8 to a 16-byte vector");
  const int lane = static_cast<int>(threadIdx.x) % kLanes;
  const int slice = static_cast<int>(threadIdx.x) / kLanes;
  const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * kLanes + lane) * V;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t r1 = min64(rows, r0 + chunk);
  float acc[V] = {};
  if (c0 < M) {
    for (int64_t r = r0 + slice; r < r1; r += kSlices * kUnroll) {
      Vec16<T> vp[kUnroll], vg[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t at = (r + u * kSlices) * M + c0;
        if (r + u * kSlices < r1) {
          vp[u] = *reinterpret_cast<const Vec16<T>*>(pre + at);
          vg[u] = *reinterpret_cast<const Vec16<T>*>(grad + at);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (r + u * kSlices >= r1) continue;
        float dpre[V], hv[V];
#pragma unroll
        for (int e = 0; e < V; ++e) {
          // GELU(x) = x s (the unary GELU kernel's form, kernels/cuda/elementwise.cu) and
          // GELU'(x) = s + 2 x s (1 - s) u'(x) = s + h (1 - s) · 2u'(x), where 2u'(x) =
          // 2 sqrt(2/pi) (1 + 3 · 0.044715 x²) is one multiply-add.
          const float x = float(vp[u].v[e]);
          const float s = gelu_sigmoid_fast(x);
          const float h = x * s;
          const float du2 = 1.5957691216057308f + 0.21406444881780076f * (x * x);
          dpre[e] = float(vg[u].v[e]) * (s + h * (1.0f - s) * du2);
          hv[e] = h;
        }
        // Two to a conversion instruction: the arithmetic, not the memory, bounds this loop.
        vg[u] = convert_not_nan<T>(dpre);
        if constexpr (kSum) {
#pragma unroll
          for (int e = 0; e < V; ++e) acc[e] += float(vg[u].v[e]);  // the value written
        }
        const int64_t at = (r + u * kSlices) * M + c0;
        *reinterpret_cast<Vec16<T>*>(grad + at) = vg[u];
        if constexpr (kH) *reinterpret_cast<Vec16<T>*>(h + at) = convert_not_nan<T>(hv);
      }
    }
  }
  if constexpr (kSum) {
    // The slices' sums of the block's 256 columns, added in slice order by a thread per column.
    __shared__ float s_acc[kSlices][kLanes * V];
#pragma unroll
    for (int e = 0; e < V; ++e) s_acc[slice][lane * V + e] = acc[e];
    __syncthreads();
    const int64_t c = static_cast<int64_t>(blockIdx.x) * kLanes * V + threadIdx.x;
    if (c < M) {
      float total = 0.0f;
#pragma unroll
      for (int k = 0; k < kSlices; ++k) total += s_acc[k][threadIdx.x];
      partials[static_cast<int64_t>(blockIdx.y) * M + c] = total;
    }
  }
}

template <class T>
void launch(const T* pre, T* grad, T* h, T* grad_sum, int64_t rows, int64_t M,
            cudaStream_t stream) {
  constexpr int64_t kCols = kLanes * kVec16<T>;
  const int64_t tiles = ceil_div(M, kCols);
  TG_CHECK(tiles <= 0x7fffffff, "mlp: M = ", M, " is too wide for the GPU's GELU backward");
  // About a wave of blocks in all, each slice with at least two rows.
  const int64_t wanted = std::clamp<int64_t>(one_wave_blocks() / tiles, 1, kMaxChunks);
  const int64_t chunk = std::max<int64_t>(ceil_div(rows, wanted), int64_t{kSlices} * kUnroll);
  const int64_t chunks = ceil_div(rows, chunk);
  const ColumnPartials<T> part({grad_sum}, chunks, M, stream);
  float* const partials = part.of[0];
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks));
  auto run = [&]<bool kH, bool kSum>() {
    gelu_backward_kernel<T, kH, kSum>
        <<<grid, kThreads, 0, stream>>>(pre, grad, h, rows, M, chunk, partials);
  };
  if (h != nullptr) {
    grad_sum != nullptr ? run.template operator()<true, true>()
                        : run.template operator()<true, false>();
  } else {
    grad_sum != nullptr ? run.template operator()<false, true>()
                        : run.template operator()<false, false>();
  }
  TG_CUDA_CHECK_LAUNCH();
  part.finish(stream, "mlp");
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

bool gelu_backward_fused_supported(DType dt, const void* pre, const void* grad, const void* h,
                                   int64_t rows, int64_t M) {
  return (dt == DType::bf16 || dt == DType::f16) && rows > 0 && M > 0 && M % 8 == 0 &&
         aligned16(pre) && aligned16(grad) && (h == nullptr || aligned16(h));
}

void gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                         int64_t rows, int64_t M, cudaStream_t stream) {
  TG_ASSERT(gelu_backward_fused_supported(dt, pre, grad, h, rows, M),
            "gelu_backward_fused: unsupported problem");
  if (dt == DType::bf16) {
    launch<bfloat16>(static_cast<const bfloat16*>(pre), static_cast<bfloat16*>(grad),
                     static_cast<bfloat16*>(h), static_cast<bfloat16*>(grad_sum), rows, M, stream);
  } else {
    launch<float16>(static_cast<const float16*>(pre), static_cast<float16*>(grad),
                    static_cast<float16*>(h), static_cast<float16*>(grad_sum), rows, M, stream);
  }
}

}  // namespace tilegrad::kernels::cuda
