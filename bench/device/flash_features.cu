// Timings of the FlashAttention kernels' options against their defaults, in one program for
// bench/device/flash.sh: the deterministic backward against the default (atomic) one, dropout
// against none, and a sliding window against causal. bf16, 16k tokens per batch, H = 2048 / D,
// random inputs; CUDA events around each call after warm-up, median of the repetitions. FLOPs as
// flash-attention counts them (forward 4 · B · H · D per visible (query, key) pair, backward 2.5×),
// so masked configurations are compared on the work they must do.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "../../tests/cuda/flash_testing.h"
#include "kernels/cuda/flash_api.h"

namespace {

using namespace flash_testing;

// bf16 values uniform in [-1, 1) from a hash of the index.
__global__ void fill_random(uint16_t* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    const float u = static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
    x[i] = static_cast<uint16_t>(__float_as_uint(u) >> 16);
  }
}

float median_ms(const std::function<void()>& fn, int warmup = 3, int reps = 15) {
  for (int i = 0; i < warmup; ++i) fn();
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CHECK_CUDA(cudaEventRecord(start));
    fn();
    CHECK_CUDA(cudaEventRecord(stop));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float t = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Visible (query, key) pairs of one head under the band (flash_api.h).
double visible_pairs(const FlashFwdParams& f) {
  double pairs = 0.0;
  for (int64_t i = 0; i < f.Nq; ++i) {
    const KeyRange keys = visible_keys(i, f.Nq, f.Nk, f.causal, f.window_left, f.window_right);
    if (keys.hi >= keys.lo) pairs += static_cast<double>(keys.hi - keys.lo + 1);
  }
  return pairs;
}

struct Buffers {
  void *q, *k, *v, *o, *dout, *dq, *dk, *dv, *ws;
  float* lse;
};

void run(int D, int N, bool causal) {
  const int B = 16384 / N, H = 2048 / D;
  const int64_t n = static_cast<int64_t>(B) * N * H * D;
  Buffers m{};
  for (void** p : {&m.q, &m.k, &m.v, &m.o, &m.dout, &m.dq, &m.dk, &m.dv}) {
    CHECK_CUDA(cudaMalloc(p, n * 2));
  }
  CHECK_CUDA(cudaMalloc(&m.lse, static_cast<size_t>(B) * H * N * sizeof(float)));
  uint32_t seed = 1;
  for (void* p : {m.q, m.k, m.v, m.dout}) {
    fill_random<<<1024, 256>>>(static_cast<uint16_t*>(p), n, seed++ * 0x51ED27u);
  }
  CHECK_CUDA(cudaGetLastError());

  FlashBwdParams bp;
  FlashFwdParams& f = bp.fwd;
  f.dtype = FlashDType::bf16;
  f.B = B;
  f.H = H;
  f.Hkv = H;
  f.Nq = N;
  f.Nk = N;
  f.D = D;
  f.causal = causal;
  f.softmax_scale = 1.0f / std::sqrt(static_cast<float>(D));
  const FlashStrides st{static_cast<int64_t>(N) * H * D, static_cast<int64_t>(H) * D, D};
  f.q = m.q;
  f.k = m.k;
  f.v = m.v;
  f.o = m.o;
  f.lse = m.lse;
  f.q_strides = f.k_strides = f.v_strides = f.o_strides = st;
  bp.dout = m.dout;
  bp.dq = m.dq;
  bp.dk = m.dk;
  bp.dv = m.dv;
  bp.dout_strides = bp.dq_strides = bp.dk_strides = bp.dv_strides = st;
  FlashBwdParams det = bp;
  det.deterministic = true;
  // One workspace for all: the deterministic mode needs the most.
  CHECK_CUDA(cudaMalloc(&m.ws, tilegrad::cuda::flash_attention_backward_workspace_bytes(det)));
  bp.workspace = det.workspace = m.ws;

  auto tflops = [&](const FlashFwdParams& fp, float ms, double factor) {
    return factor * 4.0 * B * H * D * visible_pairs(fp) / (ms * 1e-3) / 1e12;
  };
  auto time_fwd = [&](const FlashFwdParams& fp, FlashKernel kernel) {
    return median_ms(
        [&] { CHECK_CUDA(tilegrad::cuda::flash_attention_forward_with(fp, kernel, nullptr)); });
  };
  auto time_bwd = [&](const FlashBwdParams& p, FlashKernel kernel) {
    // The backward reads the forward's o and lse of the same options.
    CHECK_CUDA(tilegrad::cuda::flash_attention_forward(p.fwd, nullptr));
    return median_ms(
        [&] { CHECK_CUDA(tilegrad::cuda::flash_attention_backward_with(p, kernel, nullptr)); });
  };
  auto line = [&](const char* what, const FlashFwdParams& fp, float ms_base, float ms,
                  double factor) {
    std::printf(
        "D=%3d N=%5d causal=%d %-34s %8.3f ms %6.1f TFLOP/s  (default %8.3f ms %6.1f)  x%.2f\n", D,
        N, causal ? 1 : 0, what, ms, tflops(fp, ms, factor), ms_base, tflops(f, ms_base, factor),
        ms / ms_base);
    std::fflush(stdout);
  };

  // Deterministic backward against the default, for both kernels (the default and the explicit
  // timing of the same kernel are taken in turn, twice, to see the spread).
  for (FlashKernel kernel : {FlashKernel::sm90, FlashKernel::sm80}) {
    const char* name =
        kernel == FlashKernel::sm90 ? "bwd sm90 deterministic" : "bwd sm80 deterministic";
    for (int round = 0; round < 2; ++round) {
      const float base = time_bwd(bp, kernel);
      const float t = time_bwd(det, kernel);
      line(name, f, base, t, 2.5);
    }
  }
  // Dropout p = 0.17 (Hopper kernels, the defaults on this device).
  {
    FlashBwdParams drop = bp;
    drop.fwd.dropout_p = 0.17;
    drop.fwd.dropout_seed = 42;
    const float fb = time_fwd(f, FlashKernel::automatic),
                fd = time_fwd(drop.fwd, FlashKernel::automatic);
    line("fwd dropout 0.17", f, fb, fd, 1.0);
    const float bb = time_bwd(bp, FlashKernel::automatic),
                bd = time_bwd(drop, FlashKernel::automatic);
    line("bwd dropout 0.17", f, bb, bd, 2.5);
  }
  // Sliding window (left 1024, right 0 below the diagonal; with causal the same band) against the
  // default's full or causal problem: the time should shrink with the visible pairs.
  if (N >= 4096) {
    FlashBwdParams win = bp;
    win.fwd.window_left = 1024;
    win.fwd.window_right = 0;
    const float fb = time_fwd(f, FlashKernel::automatic),
                fw = time_fwd(win.fwd, FlashKernel::automatic);
    line("fwd window (1024, 0)", win.fwd, fb, fw, 1.0);
    const float bb = time_bwd(bp, FlashKernel::automatic),
                bw = time_bwd(win, FlashKernel::automatic);
    line("bwd window (1024, 0)", win.fwd, bb, bw, 2.5);
  }

  for (void* p : {m.q, m.k, m.v, m.o, m.dout, m.dq, m.dk, m.dv, m.ws, static_cast<void*>(m.lse)}) {
    CHECK_CUDA(cudaFree(p));
  }
}

}  // namespace

int main() {
  cudaDeviceProp prop{};
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf(
      "%s, %d SMs; bf16, 16k tokens, H = 2048 / D; the \"default\" columns are the same "
      "options' default (for window rows: the full or causal problem it is cut from)\n",
      prop.name, prop.multiProcessorCount);
  for (int D : {128, 64}) {
    for (int N : {2048, 8192}) {
      for (bool causal : {false, true}) run(D, N, causal);
    }
  }
  return 0;
}
