// GPU check of the FlashAttention kernels against a float64 CPU reference, on small odd shapes
// (ragged tails, causal with Nq < Nk and Nq > Nk, GQA and MQA, both 16-bit types, D = 64 and 128).
// Every case runs the sm_80 forward and, on an sm_90 device, the Hopper forward too; the backward
// follows each from that forward's o and lse (the sm_80 backward after the sm_80 forward, the
// automatic choice, the Hopper backward on sm_90, after the Hopper forward).
// Outputs are poisoned with NaN before each run and every element must be written. Exits 0 when all
// pass, 1 on a failure and 77 (CTest's "skipped") when there is no GPU, as on CI machines. Small
// enough to run under compute-sanitizer (bench/device/flash.sh does).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/flash_api.h"

namespace {

using tilegrad::cuda::FlashBwdParams;
using tilegrad::cuda::FlashDType;
using tilegrad::cuda::FlashFwdParams;
using tilegrad::cuda::FlashKernel;
using tilegrad::cuda::FlashStrides;

#define CHECK_CUDA(call)                                                 \
  do {                                                                   \
    const cudaError_t err_ = (call);                                     \
    if (err_ != cudaSuccess) {                                           \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, \
                   cudaGetErrorString(err_));                            \
      std::exit(1);                                                      \
    }                                                                    \
  } while (0)

struct Case {
  int B, H, Hkv, Nq, Nk, D;
  bool causal;
  FlashDType dtype;
};

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// 16-bit storage <-> float on the host through the CUDA types' host conversions.
uint16_t to_bits(float x, FlashDType dt) {
  if (dt == FlashDType::bf16) return static_cast<__nv_bfloat16_raw>(__float2bfloat16(x)).x;
  return static_cast<__half_raw>(__float2half(x)).x;
}
float from_bits(uint16_t u, FlashDType dt) {
  if (dt == FlashDType::bf16) {
    __nv_bfloat16_raw r;
    r.x = u;
    return __bfloat162float(__nv_bfloat16(r));
  }
  __half_raw r;
  r.x = u;
  return __half2float(__half(r));
}

// A (B, N, heads, D) tensor: 16-bit values on the host, their exact float64 values, a device copy.
struct Tensor {
  int B, N, heads, D;
  std::vector<uint16_t> bits;
  std::vector<double> val;
  void* dev = nullptr;
  size_t size() const { return static_cast<size_t>(B) * N * heads * D; }
  size_t at(int b, int n, int h, int d) const {
    return ((static_cast<size_t>(b) * N + n) * heads + h) * D + d;
  }
  FlashStrides strides() const {
    return {static_cast<int64_t>(N) * heads * D, static_cast<int64_t>(heads) * D, D};
  }
};

Tensor make_tensor(int B, int N, int heads, int D, FlashDType dt, uint64_t* rng) {
  Tensor t{B, N, heads, D, {}, {}, nullptr};
  t.bits.resize(t.size());
  t.val.resize(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    if (rng != nullptr) {
      const double u = static_cast<double>(splitmix(*rng) >> 11) * 0x1.0p-53;  // [0, 1)
      t.bits[i] = to_bits(static_cast<float>(2.0 * u - 1.0), dt);
    } else {
      t.bits[i] = to_bits(std::numeric_limits<float>::quiet_NaN(), dt);  // poison
    }
    t.val[i] = from_bits(t.bits[i], dt);
  }
  CHECK_CUDA(cudaMalloc(&t.dev, t.size() * 2));
  CHECK_CUDA(cudaMemcpy(t.dev, t.bits.data(), t.size() * 2, cudaMemcpyHostToDevice));
  return t;
}

std::vector<double> download(const Tensor& t, FlashDType dt) {
  std::vector<uint16_t> bits(t.size());
  CHECK_CUDA(cudaMemcpy(bits.data(), t.dev, t.size() * 2, cudaMemcpyDeviceToHost));
  std::vector<double> out(t.size());
  for (size_t i = 0; i < t.size(); ++i) out[i] = from_bits(bits[i], dt);
  return out;
}

struct Reference {
  std::vector<double> o, lse, dq, dk, dv;  // o, dq: (B, Nq, H, D); dk, dv: (B, Nk, Hkv, D)
};

// Attention in float64, straight from the definition, materialising each row of P.
Reference reference(const Case& c, const Tensor& q, const Tensor& k, const Tensor& v,
                    const Tensor& dout, double scale) {
  Reference r;
  r.o.assign(q.size(), 0.0);
  r.dq.assign(q.size(), 0.0);
  r.dk.assign(k.size(), 0.0);
  r.dv.assign(v.size(), 0.0);
  r.lse.assign(static_cast<size_t>(c.B) * c.H * c.Nq, 0.0);
  const int group = c.H / c.Hkv;
  std::vector<double> p(c.Nk), dp(c.Nk);
  for (int b = 0; b < c.B; ++b) {
    for (int h = 0; h < c.H; ++h) {
      const int hk = h / group;
      for (int i = 0; i < c.Nq; ++i) {
        double mx = -INFINITY;
        for (int j = 0; j < c.Nk; ++j) {
          const bool visible = !c.causal || j <= i + c.Nk - c.Nq;
          double s = -INFINITY;
          if (visible) {
            s = 0.0;
            for (int d = 0; d < c.D; ++d) s += q.val[q.at(b, i, h, d)] * k.val[k.at(b, j, hk, d)];
            s *= scale;
          }
          p[j] = s;
          mx = std::max(mx, s);
        }
        const size_t lse_at = (static_cast<size_t>(b) * c.H + h) * c.Nq + i;
        if (mx == -INFINITY) {  // no visible key: O = 0, lse = -inf, no gradient
          r.lse[lse_at] = -INFINITY;
          continue;
        }
        double sum = 0.0;
        for (int j = 0; j < c.Nk; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int j = 0; j < c.Nk; ++j) p[j] /= sum;
        r.lse[lse_at] = mx + std::log(sum);
        double dsum = 0.0;
        for (int d = 0; d < c.D; ++d) {
          double o = 0.0;
          for (int j = 0; j < c.Nk; ++j) o += p[j] * v.val[v.at(b, j, hk, d)];
          r.o[q.at(b, i, h, d)] = o;
          dsum += o * dout.val[dout.at(b, i, h, d)];
        }
        for (int j = 0; j < c.Nk; ++j) {
          double s = 0.0;
          for (int d = 0; d < c.D; ++d)
            s += dout.val[dout.at(b, i, h, d)] * v.val[v.at(b, j, hk, d)];
          dp[j] = p[j] * (s - dsum);  // dS
        }
        for (int j = 0; j < c.Nk; ++j) {
          for (int d = 0; d < c.D; ++d) {
            r.dv[v.at(b, j, hk, d)] += p[j] * dout.val[dout.at(b, i, h, d)];
            r.dk[k.at(b, j, hk, d)] += scale * dp[j] * q.val[q.at(b, i, h, d)];
            r.dq[q.at(b, i, h, d)] += scale * dp[j] * k.val[k.at(b, j, hk, d)];
          }
        }
      }
    }
  }
  return r;
}

// Max abs error relative to the reference's max abs value; NaN (an unwritten element) fails.
bool compare(const char* name, const std::vector<double>& got, const std::vector<double>& want,
             double tol) {
  double err = 0.0, ref = 0.0;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) {
      ++bad;
      continue;
    }
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      if (got[i] != want[i]) ++bad;
      continue;
    }
    err = std::max(err, std::abs(got[i] - want[i]));
    ref = std::max(ref, std::abs(want[i]));
  }
  const double rel = err / std::max(ref, 1e-30);
  const bool ok = bad == 0 && rel <= tol;
  std::printf("    %-4s max|err| %.3e  max|ref| %.3e  rel %.2e  unwritten/inf-mismatch %zu  %s\n",
              name, err, ref, rel, bad, ok ? "ok" : "FAIL");
  return ok;
}

bool run_case(const Case& c, uint64_t seed, FlashKernel kernel) {
  std::printf("B=%d H=%d Hkv=%d Nq=%d Nk=%d D=%d causal=%d %s, %s forward\n", c.B, c.H, c.Hkv, c.Nq,
              c.Nk, c.D, c.causal ? 1 : 0, c.dtype == FlashDType::bf16 ? "bf16" : "f16",
              kernel == FlashKernel::sm90 ? "sm_90" : "sm_80");
  uint64_t rng = seed;
  Tensor q = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, &rng);
  Tensor k = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, &rng);
  Tensor v = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, &rng);
  Tensor dout = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, &rng);
  Tensor o = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, nullptr);
  Tensor dq = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, nullptr);
  Tensor dk = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, nullptr);
  Tensor dv = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, nullptr);
  const size_t n_lse = static_cast<size_t>(c.B) * c.H * c.Nq;
  float* lse = nullptr;
  CHECK_CUDA(cudaMalloc(&lse, n_lse * sizeof(float)));
  CHECK_CUDA(cudaMemset(lse, 0xff, n_lse * sizeof(float)));  // NaN

  FlashFwdParams f;
  f.dtype = c.dtype;
  f.B = c.B;
  f.H = c.H;
  f.Hkv = c.Hkv;
  f.Nq = c.Nq;
  f.Nk = c.Nk;
  f.D = c.D;
  f.causal = c.causal;
  f.softmax_scale = 1.0f / std::sqrt(static_cast<float>(c.D));
  f.q = q.dev;
  f.k = k.dev;
  f.v = v.dev;
  f.o = o.dev;
  f.lse = lse;
  f.q_strides = q.strides();
  f.k_strides = k.strides();
  f.v_strides = v.strides();
  f.o_strides = o.strides();
  FlashBwdParams p;
  p.fwd = f;
  p.dout = dout.dev;
  p.dq = dq.dev;
  p.dk = dk.dev;
  p.dv = dv.dev;
  p.dout_strides = dout.strides();
  p.dq_strides = dq.strides();
  p.dk_strides = dk.strides();
  p.dv_strides = dv.strides();
  void* workspace = nullptr;
  CHECK_CUDA(cudaMalloc(&workspace, tilegrad::cuda::flash_attention_backward_workspace_bytes(p)));
  p.workspace = workspace;
  const std::string why = tilegrad::cuda::flash_attention_check(p);
  if (!why.empty()) {
    std::printf("    rejected: %s\n", why.c_str());
    return false;
  }

  CHECK_CUDA(tilegrad::cuda::flash_attention_forward_with(f, kernel, nullptr));
  // The sm_80 forward is followed by the sm_80 backward, the Hopper one by the automatic choice
  // (the Hopper backward where it exists), so both backwards are checked on sm_90.
  CHECK_CUDA(tilegrad::cuda::flash_attention_backward_with(
      p, kernel == FlashKernel::sm80 ? FlashKernel::sm80 : FlashKernel::automatic, nullptr));
  CHECK_CUDA(cudaDeviceSynchronize());

  const Reference r = reference(c, q, k, v, dout, f.softmax_scale);
  std::vector<float> lse_f(n_lse);
  CHECK_CUDA(cudaMemcpy(lse_f.data(), lse, n_lse * sizeof(float), cudaMemcpyDeviceToHost));
  const std::vector<double> lse_got(lse_f.begin(), lse_f.end());
  // bf16 keeps 8 significant bits, f16 11: P and dS are rounded to them before the second GEMMs.
  const double tol = c.dtype == FlashDType::bf16 ? 3e-2 : 6e-3;
  bool ok = compare("o", download(o, c.dtype), r.o, tol);
  ok &= compare("lse", lse_got, r.lse, 1e-4);
  ok &= compare("dq", download(dq, c.dtype), r.dq, tol);
  ok &= compare("dk", download(dk, c.dtype), r.dk, tol);
  ok &= compare("dv", download(dv, c.dtype), r.dv, tol);

  for (void* ptr : {q.dev, k.dev, v.dev, dout.dev, o.dev, dq.dev, dk.dev, dv.dev, workspace,
                    static_cast<void*>(lse)}) {
    CHECK_CUDA(cudaFree(ptr));
  }
  return ok;
}

}  // namespace

// Optional argument: how many of the cases to run (the sanitizers run the first few).
int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  const FlashDType bf = FlashDType::bf16, hf = FlashDType::f16;
  const Case cases[] = {
      {2, 4, 2, 113, 203, 64, true, bf},    // GQA, ragged, causal with Nq < Nk
      {1, 2, 1, 128, 217, 128, false, bf},  // MQA
      {1, 2, 2, 1, 239, 64, true, hf},      // a single query sees every key
      {1, 1, 1, 3, 799, 128, false, hf},
      {1, 3, 1, 257, 100, 64, true, bf},  // causal with Nq > Nk: the first 157 rows see nothing
      {2, 2, 2, 200, 200, 128, true, hf},
      {1, 2, 1, 127, 513, 128, true, bf},
      {1, 1, 1, 300, 70, 128, false, bf},  // Nk smaller than one key block
      {2, 40, 8, 200, 230, 64, true, bf},  // 160 query tiles, more than the SMs
  };
  const int n_cases = static_cast<int>(sizeof(cases) / sizeof(cases[0]));
  const int n_run = argc > 1 ? std::min(std::atoi(argv[1]), n_cases) : n_cases;
  int major = 0, minor = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
  const bool hopper = major == 9 && minor == 0;
  bool ok = true;
  for (int i = 0; i < n_run; ++i) {
    ok &= run_case(cases[i], 0x5EED + i, FlashKernel::sm80);
    if (hopper) ok &= run_case(cases[i], 0x5EED + i, FlashKernel::sm90);
  }
  std::printf(ok ? "all cases passed\n" : "FAILED\n");
  return ok ? 0 : 1;
}
