// What the bias gradients of GPT-2's linear layers cost on the GPU, and what the MLP's backward
// below its GELU costs, measured outside the engine (cuBLASLt and stand-in kernels only), to
// choose where the sums are made:
//   1. the weight-gradient GEMM dW [K, N] = xᵀ [K, R] · g [R, N] for the four linear layers of a
//      block (R = B·T rows): with cuBLASLt's BGRADA epilogue (the bias gradient in the GEMM) and
//      without (the best of the heuristic's candidates each), beside a column-sum kernel of g
//      alone (float or double accumulation, read cold or right after a pass that wrote g);
//      CONCURRENT=1 adds the plain GEMM with the sum on a second stream;
//   2. the MLP's backward below the GELU: cuBLASLt's DGELU epilogue GEMM plus h's recomputation,
//      against a plain GEMM plus one pass that makes pre's gradient, h and the column sums
//      (kernels/cuda/gelu_backward.cu is the engine's version of that pass).
// Build and run on the GPU machine (bf16, one line per shape, times in µs):
//   nvcc -O2 -std=c++17 -gencode=arch=compute_90a,code=sm_90a bench/device/bias_grad_bench.cu \
//     -lcublasLt -o bias_grad_bench && ./bias_grad_bench
#include <cublasLt.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#define CK(x)                                                                    \
  do {                                                                           \
    auto e_ = (x);                                                               \
    if (e_ != 0) {                                                               \
      std::printf("%s:%d error %d\n", __FILE__, __LINE__, static_cast<int>(e_)); \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

// The block's 8 slices' sums of its 256 columns, added in slice order by a thread per column, to
// row block y's partials.
template <class Acc>
__device__ void block_partials(const Acc (&acc)[8], int slice, int lane, int64_t N, int64_t y,
                               float* partials) {
  __shared__ Acc s[8][32 * 8 + 4];
#pragma unroll
  for (int e = 0; e < 8; ++e) s[slice][lane * 8 + e] = acc[e];
  __syncthreads();
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 256 + threadIdx.x;
  if (c < N) {
    Acc t = 0.f;
#pragma unroll
    for (int k = 0; k < 8; ++k) t += s[k][threadIdx.x];
    partials[y * N + c] = static_cast<float>(t);
  }
}

// Column sums of g [R, N] (row-major, bf16): block 32 lanes x 8 slices, a lane 8 columns.
template <int kUnroll, class Acc = float, bool kReverse = false>
__global__ void __launch_bounds__(256)
    col_partials(const __nv_bfloat16* g, int64_t R, int64_t N, int64_t chunk, float* partials) {
  const int lane = threadIdx.x % 32, slice = threadIdx.x / 32;
  const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * 32 + lane) * 8;
  Acc acc[8] = {};
  const int64_t y = kReverse ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  const int64_t r0 = y * chunk, r1 = min(R, r0 + chunk);
  if (c0 < N) {
    int64_t r = r0 + slice;
    for (; r + 8 * (kUnroll - 1) < r1; r += 8 * kUnroll) {
      uint4 v[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        v[u] = __ldg(reinterpret_cast<const uint4*>(g + (r + 8 * u) * N + c0));
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v[u]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 f = __bfloat1622float2(h[e]);
          acc[2 * e] += Acc(f.x);
          acc[2 * e + 1] += Acc(f.y);
        }
      }
    }
    for (; r < r1; r += 8) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(g + r * N + c0));
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(h[e]);
        acc[2 * e] += Acc(f.x);
        acc[2 * e + 1] += Acc(f.y);
      }
    }
  }
  block_partials(acc, slice, lane, N, y, partials);
}

// Stands in for the GEMM that writes g just before the sum: rewrites every element.
__global__ void rewrite(__nv_bfloat16* g, int64_t n) {
  for (int64_t i = (blockIdx.x * 256 + threadIdx.x) * 8; i < n; i += gridDim.x * 256 * 8) {
    uint4 v = *reinterpret_cast<uint4*>(g + i);
    v.x ^= 0x00010001u;
    *reinterpret_cast<uint4*>(g + i) = v;
  }
}

// The MLP's GELU backward in one pass after a plain GEMM made dh = g · w2ᵀ: reads pre and dh,
// writes dpre = dh · gelu'(pre) over dh and h = gelu(pre) over pre, and sums dpre's stored values
// by column (partials per row chunk, as col_partials).
__device__ __forceinline__ void gelu_pair(float x, float d, float& h, float& dp) {
  const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  const float sg = __frcp_rn(1.0f + __expf(-2.0f * u));
  const float du = 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
  h = x * sg;
  dp = d * (sg + 2.0f * x * sg * (1.0f - sg) * du);
}
template <int kUnroll>
__global__ void __launch_bounds__(256)
    gelu_bwd_fused(__nv_bfloat16* pre_h, __nv_bfloat16* dh_dpre, int64_t R, int64_t N,
                   int64_t chunk, float* partials) {
  const int lane = threadIdx.x % 32, slice = threadIdx.x / 32;
  const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * 32 + lane) * 8;
  float acc[8] = {};
  const int64_t r0 = blockIdx.y * chunk, r1 = min(R, r0 + chunk);
  if (c0 < N) {
    for (int64_t r = r0 + slice; r < r1; r += 8 * kUnroll) {
      uint4 vp[kUnroll], vd[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t rr = r + 8 * u;
        if (rr < r1) {
          vp[u] = *reinterpret_cast<const uint4*>(pre_h + rr * N + c0);
          vd[u] = *reinterpret_cast<const uint4*>(dh_dpre + rr * N + c0);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t rr = r + 8 * u;
        if (rr < r1) {
          __nv_bfloat162* p2 = reinterpret_cast<__nv_bfloat162*>(&vp[u]);
          __nv_bfloat162* d2 = reinterpret_cast<__nv_bfloat162*>(&vd[u]);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 x = __bfloat1622float2(p2[e]), d = __bfloat1622float2(d2[e]);
            float h0, h1, g0, g1;
            gelu_pair(x.x, d.x, h0, g0);
            gelu_pair(x.y, d.y, h1, g1);
            p2[e] = __floats2bfloat162_rn(h0, h1);
            d2[e] = __floats2bfloat162_rn(g0, g1);
            const float2 q = __bfloat1622float2(d2[e]);
            acc[2 * e] += q.x;
            acc[2 * e + 1] += q.y;
          }
          *reinterpret_cast<uint4*>(pre_h + rr * N + c0) = vp[u];
          *reinterpret_cast<uint4*>(dh_dpre + rr * N + c0) = vd[u];
        }
      }
    }
  }
  block_partials(acc, slice, lane, N, blockIdx.y, partials);
}

// The engine's GELU recompute: h = gelu(pre), 16-byte vectors.
__global__ void gelu_fwd(const __nv_bfloat16* pre, __nv_bfloat16* h, int64_t n) {
  for (int64_t i = (blockIdx.x * 256 + threadIdx.x) * 8; i < n; i += gridDim.x * 256 * 8) {
    uint4 v = *reinterpret_cast<const uint4*>(pre + i);
    __nv_bfloat162* p2 = reinterpret_cast<__nv_bfloat162*>(&v);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = __bfloat1622float2(p2[e]);
      float h0, h1, g0, g1;
      gelu_pair(x.x, 0.f, h0, g0);
      gelu_pair(x.y, 0.f, h1, g1);
      p2[e] = __floats2bfloat162_rn(h0, h1);
    }
    *reinterpret_cast<uint4*>(h + i) = v;
  }
}

__global__ void col_final(const float* partials, int parts, int64_t N, __nv_bfloat16* out) {
  const int64_t c = blockIdx.x * 256 + threadIdx.x;
  if (c >= N) return;
  float t = 0.f;
  for (int p = 0; p < parts; ++p) t += partials[p * N + c];
  out[c] = __float2bfloat16(t);
}

struct Gemm {
  cublasLtHandle_t h;
  cublasLtMatmulDesc_t d;
  cublasLtMatrixLayout_t la, lb, lc;
  std::vector<cublasLtMatmulAlgo_t> algos;
};

// The heuristic's candidates (up to 16) for g's descriptors, with wsb bytes of workspace.
void find_algos(Gemm& g, size_t wsb) {
  cublasLtMatmulPreference_t pref;
  CK(cublasLtMatmulPreferenceCreate(&pref));
  CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb,
                                          sizeof wsb));
  cublasLtMatmulHeuristicResult_t res[16];
  int found = 0;
  CK(cublasLtMatmulAlgoGetHeuristic(g.h, g.d, g.la, g.lb, g.lc, g.lc, pref, 16, res, &found));
  for (int i = 0; i < found; ++i)
    if (res[i].state == CUBLAS_STATUS_SUCCESS) g.algos.push_back(res[i].algo);
}

// A bf16 GEMM's descriptor with cuBLASLt's operations op_a, op_b (float32 accumulation).
Gemm begin_gemm(cublasLtHandle_t h, cublasOperation_t op_a, cublasOperation_t op_b) {
  Gemm g{};
  g.h = h;
  CK(cublasLtMatmulDescCreate(&g.d, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  return g;
}

// The operands' column-major layouts (rows, columns; the leading dimension is rows), then the
// heuristic's candidates for the whole descriptor.
void finish_gemm(Gemm& g, int64_t a_rows, int64_t a_cols, int64_t b_rows, int64_t b_cols,
                 int64_t c_rows, int64_t c_cols, size_t wsb) {
  CK(cublasLtMatrixLayoutCreate(&g.la, CUDA_R_16BF, a_rows, a_cols, a_rows));
  CK(cublasLtMatrixLayoutCreate(&g.lb, CUDA_R_16BF, b_rows, b_cols, b_rows));
  CK(cublasLtMatrixLayoutCreate(&g.lc, CUDA_R_16BF, c_rows, c_cols, c_rows));
  find_algos(g, wsb);
}

// dW column-major [N, K] = g (col-major [N, R]) · x (col-major [K, R])ᵀ.
Gemm make(cublasLtHandle_t h, int64_t R, int64_t N, int64_t K, bool bgrad, void* bias, size_t wsb) {
  Gemm g = begin_gemm(h, CUBLAS_OP_N, CUBLAS_OP_T);
  if (bgrad) {
    cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BGRADA;
    CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    cudaDataType_t bt = CUDA_R_16BF;
    CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
  }
  finish_gemm(g, N, R, K, R, N, K, wsb);
  return g;
}

template <class F>
float time_us(F&& f, int reps = 40) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 5; ++i) f();
  std::vector<float> t;
  for (int k = 0; k < 5; ++k) {
    cudaEventRecord(a);
    for (int i = 0; i < reps; ++i) f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms * 1000.f / reps);
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

// dh = g · w2ᵀ as the MLP's backward runs it: column-major dhᵀ [M, R] = w2 (row-major [M, N], read
// transposed) · gᵀ; with DGELU, aux = pre.
Gemm make_dh(cublasLtHandle_t h, int64_t R, int64_t M, int64_t N, void* pre, size_t wsb) {
  Gemm g = begin_gemm(h, CUBLAS_OP_T, CUBLAS_OP_N);
  if (pre != nullptr) {
    cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DGELU;
    CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &pre,
                                      sizeof pre));
    const int64_t ld = M;
    CK(cublasLtMatmulDescSetAttribute(g.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld));
  }
  finish_gemm(g, N, M, N, R, M, R, wsb);
  return g;
}

void mlp_backward_bench(cublasLtHandle_t h, void* ws, size_t wsb, int sms) {
  const int64_t M = 3072, N = 768;
  std::printf(
      "\nMLP backward below the GELU (M = %lld, N = %lld): old = DGELU GEMM + GELU recompute,"
      " new = plain GEMM + fused pass (BGRADA's extra not included)\n",
      static_cast<long long>(M), static_cast<long long>(N));
  std::printf("%6s | %9s %9s %9s | %9s %9s %9s %9s | %7s %7s\n", "R", "dgelu", "gelu", "old",
              "plain", "fused_u2", "fused_u4", "new", "old-new", "TB/s");
  for (int64_t R : {16384, 32768}) {
    __nv_bfloat16 *w2, *g, *pre, *dh, *hh;
    float* parts;
    CK(cudaMalloc(&w2, M * N * 2));
    CK(cudaMalloc(&g, R * N * 2));
    CK(cudaMalloc(&pre, R * M * 2));
    CK(cudaMalloc(&dh, R * M * 2));
    CK(cudaMalloc(&hh, R * M * 2));
    CK(cudaMalloc(&parts, 4096 * M * 4));
    std::vector<__nv_bfloat16> hx(R * M);
    for (size_t i = 0; i < hx.size(); ++i)
      hx[i] = __float2bfloat16(static_cast<float>((i * 2654435761u) % 1000) / 250.f - 2.f);
    CK(cudaMemcpy(pre, hx.data(), R * M * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(g, hx.data(), R * N * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(w2, hx.data(), M * N * 2, cudaMemcpyHostToDevice));
    const float one = 1.f, zero = 0.f;
    auto best = [&](Gemm& G) {
      float b = 1e30f;
      for (auto& algo : G.algos) {
        b = std::min(b, time_us(
                            [&] {
                              cublasLtMatmul(h, G.d, &one, w2, G.la, g, G.lb, &zero, dh, G.lc, dh,
                                             G.lc, &algo, ws, wsb, 0);
                            },
                            10));
      }
      return b;
    };
    Gemm Gd = make_dh(h, R, M, N, pre, wsb), Gp = make_dh(h, R, M, N, nullptr, wsb);
    const float t_dgelu = best(Gd), t_plain = best(Gp);
    const float t_gelu = time_us([&] { gelu_fwd<<<sms * 8, 256>>>(pre, hh, R * M); });
    const int64_t tiles = (M + 255) / 256;
    auto fused = [&](int unroll) {
      const int64_t p = std::clamp<int64_t>(static_cast<int64_t>(sms) * 8 / tiles, 1, 4096);
      const int64_t chunk = (R + p - 1) / p;
      const int parts_n = static_cast<int>((R + chunk - 1) / chunk);
      const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(parts_n));
      return time_us([&] {
        if (unroll == 2)
          gelu_bwd_fused<2><<<grid, 256>>>(pre, dh, R, M, chunk, parts);
        else
          gelu_bwd_fused<4><<<grid, 256>>>(pre, dh, R, M, chunk, parts);
        col_final<<<static_cast<unsigned>(tiles), 256>>>(parts, parts_n, M, hh);
      });
    };
    const float f2 = fused(2), f4 = fused(4), fb = std::min(f2, f4);
    const float old_t = t_dgelu + t_gelu, new_t = t_plain + fb;
    std::printf("%6lld | %9.1f %9.1f %9.1f | %9.1f %9.1f %9.1f %9.1f | %7.1f %7.2f\n",
                static_cast<long long>(R), t_dgelu, t_gelu, old_t, t_plain, f2, f4, new_t,
                old_t - new_t, R * M * 8 / (fb * 1e-6) / 1e12);
    CK(cudaGetLastError());
    cudaFree(w2);
    cudaFree(g);
    cudaFree(pre);
    cudaFree(dh);
    cudaFree(hh);
    cudaFree(parts);
  }
}

int main() {
  cublasLtHandle_t h;
  CK(cublasLtCreate(&h));
  const size_t wsb = 32 << 20;
  void* ws;
  CK(cudaMalloc(&ws, wsb));
  int sms;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  struct Shape {
    const char* name;
    int64_t K, N;
  } shapes[] = {{"qkv", 768, 2304}, {"proj", 768, 768}, {"fc", 768, 3072}, {"fc2", 3072, 768}};
  std::printf("%-5s %6s | %9s %9s %6s | %9s %9s %9s %9s | %8s | %7s | %7s %7s %7s\n", "layer", "R",
              "BGRADA", "plain", "extra", "sum_u4", "sum_u8", "sum_w2", "best", "TB/s", "f64acc",
              "write", "w+fwd", "w+rev");
  for (int64_t R : {16384, 32768}) {
    for (const Shape& s : shapes) {
      __nv_bfloat16 *x, *g, *dw, *db;
      float* parts;
      CK(cudaMalloc(&x, R * s.K * 2));
      CK(cudaMalloc(&g, R * s.N * 2));
      CK(cudaMalloc(&dw, s.K * s.N * 2));
      CK(cudaMalloc(&db, s.N * 2));
      CK(cudaMalloc(&parts, 4096 * s.N * 4));
      std::vector<__nv_bfloat16> hx(R * std::max(s.K, s.N));
      for (size_t i = 0; i < hx.size(); ++i)
        hx[i] = __float2bfloat16(static_cast<float>((i * 2654435761u) % 1000) / 1000.f - 0.5f);
      CK(cudaMemcpy(x, hx.data(), R * s.K * 2, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(g, hx.data(), R * s.N * 2, cudaMemcpyHostToDevice));
      const float one = 1.f, zero = 0.f;
      // Best of the heuristic's candidates, as the engine's tuner picks: its time and algorithm.
      auto best_of = [&](Gemm& G) {
        float best = 1e30f;
        cublasLtMatmulAlgo_t best_algo = G.algos[0];
        for (auto& algo : G.algos) {
          const float t = time_us(
              [&] {
                cublasLtMatmul(h, G.d, &one, g, G.la, x, G.lb, &zero, dw, G.lc, dw, G.lc, &algo, ws,
                               wsb, 0);
              },
              10);
          if (t < best) {
            best = t;
            best_algo = algo;
          }
        }
        return std::make_pair(best, best_algo);
      };
      auto best_gemm = [&](bool bgrad) {
        Gemm G = make(h, R, s.N, s.K, bgrad, db, wsb);
        return best_of(G).first;
      };
      const float tb = best_gemm(true), tp = best_gemm(false);
      const int64_t tiles = (s.N + 255) / 256;
      auto colsum = [&](int unroll, int waves, int kind = 0, bool after_write = false) {
        const int64_t want = static_cast<int64_t>(sms) * 8 * waves;
        const int64_t p = std::clamp<int64_t>(want / tiles, 1, 4096);
        const int64_t chunk = (R + p - 1) / p;
        const int parts_n = static_cast<int>((R + chunk - 1) / chunk);
        return time_us([&] {
          const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(parts_n));
          if (after_write) rewrite<<<sms * 8, 256>>>(g, R * s.N);
          if (kind == 1)
            col_partials<8, double><<<grid, 256>>>(g, R, s.N, chunk, parts);
          else if (kind == 2)
            col_partials<8, float, true><<<grid, 256>>>(g, R, s.N, chunk, parts);
          else if (unroll == 4)
            col_partials<4><<<grid, 256>>>(g, R, s.N, chunk, parts);
          else
            col_partials<8><<<grid, 256>>>(g, R, s.N, chunk, parts);
          col_final<<<static_cast<unsigned>(tiles), 256>>>(parts, parts_n, s.N, db);
        });
      };
      const float u4 = colsum(4, 1), u8 = colsum(8, 1), w2 = colsum(4, 2);
      const float best = std::min({u4, u8, w2});
      const float f64 = colsum(8, 1, 1);
      // After a pass that rewrites g: the sum's own cost, reading forward and from the end.
      const float wr = time_us([&] { rewrite<<<sms * 8, 256>>>(g, R * s.N); });
      const float fwd = colsum(8, 1, 0, true) - wr, rev = colsum(8, 1, 2, true) - wr;
      std::printf(
          "%-5s %6lld | %9.1f %9.1f %6.1f | %9.1f %9.1f %9.1f %9.1f | %8.2f | %7.1f | %7.1f %7.1f "
          "%7.1f\n",
          s.name, static_cast<long long>(R), tb, tp, tb - tp, u4, u8, w2, best,
          R * s.N * 2 / (best * 1e-6) / 1e12, f64, wr, fwd, rev);
      // The plain GEMM (its best algorithm) with the sum on a side stream, forked after the GEMM's
      // launch and joined after both; blocks_per_sm sizes the sum's grid.
      if (std::getenv("CONCURRENT") != nullptr) {
        Gemm G = make(h, R, s.N, s.K, false, db, wsb);
        const auto tuned = best_of(G);
        const float bt = tuned.first;
        cublasLtMatmulAlgo_t best_algo = tuned.second;
        cudaStream_t side;
        cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking);
        cudaEvent_t fork, join;
        cudaEventCreateWithFlags(&fork, cudaEventDisableTiming);
        cudaEventCreateWithFlags(&join, cudaEventDisableTiming);
        std::printf("      concurrent (gemm alone %.1f):", bt);
        for (int bps : {1, 2, 4, 8}) {
          for (int first : {0, 1}) {
            const int64_t want = static_cast<int64_t>(sms) * bps;
            const int64_t p = std::clamp<int64_t>(want / tiles, 1, 4096);
            const int64_t chunk = (R + p - 1) / p;
            const int parts_n = static_cast<int>((R + chunk - 1) / chunk);
            const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(parts_n));
            auto sum = [&](cudaStream_t st) {
              col_partials<8><<<grid, 256, 0, st>>>(g, R, s.N, chunk, parts);
              col_final<<<static_cast<unsigned>(tiles), 256, 0, st>>>(parts, parts_n, s.N, db);
            };
            auto mm = [&] {
              cublasLtMatmul(h, G.d, &one, g, G.la, x, G.lb, &zero, dw, G.lc, dw, G.lc, &best_algo,
                             ws, wsb, 0);
            };
            const float t = time_us([&] {
              cudaEventRecord(fork, 0);
              cudaStreamWaitEvent(side, fork, 0);
              if (first) sum(side);
              mm();
              if (!first) sum(side);
              cudaEventRecord(join, side);
              cudaStreamWaitEvent(0, join, 0);
            });
            std::printf(" %d%s %.1f", bps, first ? "s" : "g", t);
          }
        }
        std::printf("\n");
        cudaStreamDestroy(side);
      }
      CK(cudaGetLastError());
      cudaFree(x);
      cudaFree(g);
      cudaFree(dw);
      cudaFree(db);
      cudaFree(parts);
    }
  }
  mlp_backward_bench(h, ws, wsb, sms);
  return 0;
}
