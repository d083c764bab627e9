// GPU check of the FlashAttention kernels against a float64 CPU reference, on small odd shapes
// (ragged tails, causal with Nq < Nk and Nq > Nk, sliding windows, dropout, GQA and MQA, both
// 16-bit types, D = 64, 128 and 256, packed variable-length batches). Every case runs the sm_80
// forward and, on an sm_90 device, the Hopper forward too; the backward follows each from that
// forward's o and lse (the sm_80 backward after the sm_80 forward, the automatic choice, the Hopper
// backward on sm_90, after the Hopper forward), once as is and once deterministic. Criteria:
// flash-attention's (the error against the float64 reference at most 2x, gradients 3x, that of a
// reference computed in the inputs' 16-bit type, here one that rounds where PyTorch's math
// attention in that type rounds) and a fixed relative bound. Dropout uses the CPU op's Philox
// counters (core/rng.h), so the references draw the mask on the CPU. Then, without a case count
// argument: the dropout mask read back from the GPU against the CPU's draws (and the drop
// fraction), and the deterministic backward's 20-run bitwise reproducibility. Outputs are poisoned
// with NaN before each run and every element must be written. Exits 0 when all pass, 1 on a failure
// and 77 (CTest's "skipped") when there is no GPU, as on CI machines. The first cases are small
// enough to run under compute-sanitizer (bench/device/flash.sh does).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

// core/rng.h marks Philox __host__ __device__ but indexes std::array, whose constexpr operator[] is
// host-only without --expt-relaxed-constexpr; this file calls it from the host only.
#pragma nv_diag_suppress 20013, 20015
#include "core/rng.h"
#pragma nv_diag_default 20013, 20015
#include "flash_testing.h"
#include "kernels/cuda/flash_api.h"

namespace {

using namespace flash_testing;

struct Case {
  int B, H, Hkv, Nq, Nk, D;
  bool causal;
  FlashDType dtype;
  int window_left = -1, window_right = -1;
  double dropout_p = 0.0;
  uint64_t dropout_offset = 0;
};

constexpr uint64_t kDropoutSeed = 0x0123456789ABCDEFull;

// Visibility and the dropout mask exactly as the CPU op defines them (ops/attention.h).
struct Masks {
  const Case& c;
  uint32_t threshold;
  double drop_scale;
  explicit Masks(const Case& cs)
      : c(cs),
        threshold(tilegrad::dropout_keep_threshold(cs.dropout_p)),
        drop_scale(cs.dropout_p < 1.0 ? 1.0 / (1.0 - cs.dropout_p) : 0.0) {}
  bool visible(int i, int j) const {
    const KeyRange keys = visible_keys(i, c.Nq, c.Nk, c.causal, c.window_left, c.window_right);
    return j >= keys.lo && j <= keys.hi;
  }
  // 1 / (1 - p) when element (b, h, i, j) is kept, 0 when dropped, 1 without dropout.
  double factor(int b, int h, int i, int j) const {
    if (c.dropout_p <= 0.0) return 1.0;
    const uint64_t d =
        c.dropout_offset + ((static_cast<uint64_t>(b) * c.H + h) * c.Nq + i) * c.Nk + j;
    return tilegrad::dropout_keep(tilegrad::philox_draw(kDropoutSeed, d), threshold) ? drop_scale
                                                                                     : 0.0;
  }
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

// Attention straight from the definition, materialising each row of P. low = nullptr: in float64.
// Otherwise in the 16-bit type *low as PyTorch's math attention computes it in that type (the
// issue's "same-precision reference"): the scores, the scaled scores, P, the dropped P, O, dP, dS
// and the gradients are rounded to 16 bits where its operators return them; sums run in float64.
Reference reference(const Case& c, const Tensor& q, const Tensor& k, const Tensor& v,
                    const Tensor& dout, double scale, const FlashDType* low = nullptr) {
  auto rnd = [&](double x) {
    return low == nullptr
               ? x
               : static_cast<double>(from_bits(to_bits(static_cast<float>(x), *low), *low));
  };
  const Masks masks(c);
  Reference r;
  r.o.assign(q.size(), 0.0);
  r.dq.assign(q.size(), 0.0);
  r.dk.assign(k.size(), 0.0);
  r.dv.assign(v.size(), 0.0);
  r.lse.assign(static_cast<size_t>(c.B) * c.H * c.Nq, 0.0);
  const int group = c.H / c.Hkv;
  std::vector<double> p(c.Nk), dp(c.Nk), pd(c.Nk), keep(c.Nk);
  for (int b = 0; b < c.B; ++b) {
    for (int h = 0; h < c.H; ++h) {
      const int hk = h / group;
      for (int i = 0; i < c.Nq; ++i) {
        double mx = -INFINITY;
        for (int j = 0; j < c.Nk; ++j) {
          double s = -INFINITY;
          if (masks.visible(i, j)) {
            s = 0.0;
            for (int d = 0; d < c.D; ++d) s += q.val[q.at(b, i, h, d)] * k.val[k.at(b, j, hk, d)];
            s = rnd(rnd(s) * scale);
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
        for (int j = 0; j < c.Nk; ++j) {
          p[j] = rnd(p[j] / sum);
          keep[j] = masks.factor(b, h, i, j);
          pd[j] = c.dropout_p > 0.0 ? rnd(p[j] * keep[j]) : p[j];
        }
        r.lse[lse_at] = mx + std::log(sum);
        for (int d = 0; d < c.D; ++d) {
          double o = 0.0;
          for (int j = 0; j < c.Nk; ++j) o += pd[j] * v.val[v.at(b, j, hk, d)];
          r.o[q.at(b, i, h, d)] = rnd(o);
        }
        // dP = dO Vᵀ through the dropout, then dS = P ∘ (dP - rowsum(P ∘ dP)).
        double dsum = 0.0;
        for (int j = 0; j < c.Nk; ++j) {
          double s = 0.0;
          for (int d = 0; d < c.D; ++d)
            s += dout.val[dout.at(b, i, h, d)] * v.val[v.at(b, j, hk, d)];
          dp[j] = c.dropout_p > 0.0 ? rnd(rnd(s) * keep[j]) : rnd(s);
          dsum += dp[j] * p[j];
        }
        for (int j = 0; j < c.Nk; ++j) {
          const double ds = rnd(rnd(p[j] * (dp[j] - dsum)) * scale);
          for (int d = 0; d < c.D; ++d) {
            r.dv[v.at(b, j, hk, d)] += pd[j] * dout.val[dout.at(b, i, h, d)];
            r.dk[k.at(b, j, hk, d)] += ds * q.val[q.at(b, i, h, d)];
            r.dq[q.at(b, i, h, d)] += ds * k.val[k.at(b, j, hk, d)];
          }
        }
      }
    }
  }
  for (auto* x : {&r.o, &r.dq, &r.dk, &r.dv}) {
    for (double& e : *x) e = rnd(e);
  }
  return r;
}

double max_abs_err(const std::vector<double>& got, const std::vector<double>& want) {
  double err = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isfinite(got[i]) && std::isfinite(want[i])) {
      err = std::max(err, std::abs(got[i] - want[i]));
    }
  }
  return err;
}

// Max abs error relative to the reference's max abs value; NaN (an unwritten element) fails. With
// `low` (the same-precision reference) and `factor`: also max|err| <= factor * max|low - want| +
// 1e-5, flash-attention's criterion.
bool compare(const char* name, const std::vector<double>& got, const std::vector<double>& want,
             double tol, const std::vector<double>* low = nullptr, double factor = 0.0) {
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
  bool ok = bad == 0 && err <= tol * ref + 1e-5;  // the 1e-5: a reference that is zero
  double ratio = 0.0;
  if (low != nullptr) {
    const double low_err = max_abs_err(*low, want);
    ratio = err / std::max(low_err, 1e-30);
    ok &= err <= factor * low_err + 1e-5;
  }
  std::printf(
      "    %-4s max|err| %.3e  max|ref| %.3e  rel %.2e  ratio %.2f  unwritten/inf %zu  %s\n", name,
      err, ref, rel, ratio, bad, ok ? "ok" : "FAIL");
  return ok;
}

std::vector<uint16_t> download_bits(const Tensor& t) {
  std::vector<uint16_t> bits(t.size());
  CHECK_CUDA(cudaMemcpy(bits.data(), t.dev, t.size() * 2, cudaMemcpyDeviceToHost));
  return bits;
}

void poison(const Tensor& t) {
  CHECK_CUDA(cudaMemset(t.dev, 0xff, t.size() * 2));  // NaN in both 16-bit types
}

// Replaces a tensor's values by fill(b, n, h, d) (on the host and the device).
template <typename F>
void set_values(Tensor& t, FlashDType dt, F fill) {
  for (int b = 0; b < t.B; ++b) {
    for (int n = 0; n < t.N; ++n) {
      for (int h = 0; h < t.heads; ++h) {
        for (int d = 0; d < t.D; ++d) {
          const size_t i = t.at(b, n, h, d);
          t.bits[i] = to_bits(fill(b, n, h, d), dt);
          t.val[i] = from_bits(t.bits[i], dt);
        }
      }
    }
  }
  CHECK_CUDA(cudaMemcpy(t.dev, t.bits.data(), t.size() * 2, cudaMemcpyHostToDevice));
}

// The device buffers and parameters of one case, inputs uniform in [-1, 1), outputs poisoned.
struct Problem {
  Case c;
  Tensor q, k, v, dout, o, dq, dk, dv;
  float* lse = nullptr;
  void* workspace = nullptr;  // sized for the deterministic mode, which needs the most
  FlashBwdParams p;

  Problem(const Case& cs, uint64_t seed) : c(cs) {
    uint64_t rng = seed;
    q = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, &rng);
    k = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, &rng);
    v = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, &rng);
    dout = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, &rng);
    o = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, nullptr);
    dq = make_tensor(c.B, c.Nq, c.H, c.D, c.dtype, nullptr);
    dk = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, nullptr);
    dv = make_tensor(c.B, c.Nk, c.Hkv, c.D, c.dtype, nullptr);
    CHECK_CUDA(cudaMalloc(&lse, n_lse() * sizeof(float)));
    FlashFwdParams& f = p.fwd;
    f.dtype = c.dtype;
    f.B = c.B;
    f.H = c.H;
    f.Hkv = c.Hkv;
    f.Nq = c.Nq;
    f.Nk = c.Nk;
    f.D = c.D;
    f.causal = c.causal;
    f.window_left = c.window_left;
    f.window_right = c.window_right;
    f.dropout_p = c.dropout_p;
    f.dropout_seed = kDropoutSeed;
    f.dropout_offset = c.dropout_offset;
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
    p.dout = dout.dev;
    p.dq = dq.dev;
    p.dk = dk.dev;
    p.dv = dv.dev;
    p.dout_strides = dout.strides();
    p.dq_strides = dq.strides();
    p.dk_strides = dk.strides();
    p.dv_strides = dv.strides();
    FlashBwdParams det = p;
    det.deterministic = true;
    CHECK_CUDA(
        cudaMalloc(&workspace, tilegrad::cuda::flash_attention_backward_workspace_bytes(det)));
    p.workspace = workspace;
  }
  Problem(const Problem&) = delete;
  Problem& operator=(const Problem&) = delete;
  ~Problem() {
    for (void* ptr : {q.dev, k.dev, v.dev, dout.dev, o.dev, dq.dev, dk.dev, dv.dev, workspace,
                      static_cast<void*>(lse)}) {
      (void)cudaFree(ptr);  // best effort: a failed free cannot be reported from here
    }
  }
  size_t n_lse() const { return static_cast<size_t>(c.B) * c.H * c.Nq; }

  void forward(FlashKernel kernel) {
    poison(o);
    CHECK_CUDA(cudaMemset(lse, 0xff, n_lse() * sizeof(float)));  // NaN
    CHECK_CUDA(tilegrad::cuda::flash_attention_forward_with(p.fwd, kernel, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
  }
  void backward(FlashKernel kernel, bool deterministic) {
    for (const Tensor* t : {&dq, &dk, &dv}) poison(*t);
    FlashBwdParams b = p;
    b.deterministic = deterministic;
    CHECK_CUDA(tilegrad::cuda::flash_attention_backward_with(b, kernel, nullptr));
    CHECK_CUDA(cudaDeviceSynchronize());
  }
  std::vector<double> lse_values() const {
    std::vector<float> lse_f(n_lse());
    CHECK_CUDA(cudaMemcpy(lse_f.data(), lse, n_lse() * sizeof(float), cudaMemcpyDeviceToHost));
    return std::vector<double>(lse_f.begin(), lse_f.end());
  }
};

const char* kernel_name(FlashKernel k) {
  return k == FlashKernel::sm90 ? "sm_90" : k == FlashKernel::sm80 ? "sm_80" : "automatic";
}

// Every kernel pair of `kernels` on one case: the forward, then the backward from its o and lse,
// once as is and once deterministic, each against the float64 and the same-precision references.
bool run_case(const Case& c, uint64_t seed, const std::vector<FlashKernel>& kernels) {
  std::printf("B=%d H=%d Hkv=%d Nq=%d Nk=%d D=%d causal=%d window=(%d, %d) dropout=%.2f@%llu %s\n",
              c.B, c.H, c.Hkv, c.Nq, c.Nk, c.D, c.causal ? 1 : 0, c.window_left, c.window_right,
              c.dropout_p, static_cast<unsigned long long>(c.dropout_offset),
              c.dtype == FlashDType::bf16 ? "bf16" : "f16");
  Problem pr(c, seed);
  const std::string why = tilegrad::cuda::flash_attention_check(pr.p);
  if (!why.empty()) {
    std::printf("    rejected: %s\n", why.c_str());
    return false;
  }
  const double scale = pr.p.fwd.softmax_scale;
  const Reference r = reference(c, pr.q, pr.k, pr.v, pr.dout, scale);
  const Reference low = reference(c, pr.q, pr.k, pr.v, pr.dout, scale, &c.dtype);
  // bf16 keeps 8 significant bits, f16 11: P and dS are rounded to them before the second GEMMs.
  const double tol = c.dtype == FlashDType::bf16 ? 3e-2 : 6e-3;
  bool ok = true;
  for (FlashKernel kernel : kernels) {
    std::printf("  %s forward\n", kernel_name(kernel));
    pr.forward(kernel);
    ok &= compare("o", download(pr.o, c.dtype), r.o, tol, &low.o, 2.0);
    ok &= compare("lse", pr.lse_values(), r.lse, 1e-4);
    // The sm_80 forward is followed by the sm_80 backward, the Hopper one by the automatic choice
    // (the Hopper backward where it exists), so both backwards are checked on sm_90.
    const FlashKernel bwd =
        kernel == FlashKernel::sm80 ? FlashKernel::sm80 : FlashKernel::automatic;
    for (bool deterministic : {false, true}) {
      std::printf("  %s backward%s\n", kernel_name(kernel), deterministic ? ", deterministic" : "");
      pr.backward(bwd, deterministic);
      ok &= compare("dq", download(pr.dq, c.dtype), r.dq, tol, &low.dq, 3.0);
      ok &= compare("dk", download(pr.dk, c.dtype), r.dk, tol, &low.dk, 3.0);
      ok &= compare("dv", download(pr.dv, c.dtype), r.dv, tol, &low.dv, 3.0);
    }
  }
  return ok;
}

// A packed variable-length batch (cu_seqlens): sequence b has lq[b] queries and lk[b] keys,
// lengths that differ between q and k, odd, 1 and 0 among them.
struct VarCase {
  std::vector<int> lq, lk;
  int H, Hkv, D;
  bool causal;
  FlashDType dtype;
  int window_left = -1, window_right = -1;
};

// Rows [row0, row0 + n) of a packed (1, total, heads, D) tensor as a host-only (1, n, heads, D)
// one.
Tensor slice_rows(const Tensor& t, int row0, int n) {
  Tensor s{1, n, t.heads, t.D, {}, {}, nullptr};
  const size_t begin = t.at(0, row0, 0, 0), count = s.size();
  s.bits.assign(t.bits.begin() + begin, t.bits.begin() + begin + count);
  s.val.assign(t.val.begin() + begin, t.val.begin() + begin + count);
  return s;
}

// The packed batch through the kernels against the float64 and same-precision references run on
// each sequence alone (as a padded problem of batch 1), gathered back into the packed layout: the
// masks must apply per sequence, and rows and keys of other sequences must not leak in.
bool run_varlen_case(const VarCase& vc, uint64_t seed) {
  const int B = static_cast<int>(vc.lq.size());
  std::vector<int> cq{0}, ck{0};
  for (int b = 0; b < B; ++b) {
    cq.push_back(cq.back() + vc.lq[b]);
    ck.push_back(ck.back() + vc.lk[b]);
  }
  const int tq = cq.back(), tk = ck.back();
  const int max_q = *std::max_element(vc.lq.begin(), vc.lq.end());
  const int max_k = *std::max_element(vc.lk.begin(), vc.lk.end());
  std::printf("varlen: B=%d H=%d Hkv=%d D=%d causal=%d window=(%d, %d) %s, lengths q/k:", B, vc.H,
              vc.Hkv, vc.D, vc.causal ? 1 : 0, vc.window_left, vc.window_right,
              vc.dtype == FlashDType::bf16 ? "bf16" : "f16");
  for (int b = 0; b < B; ++b) std::printf(" %d/%d", vc.lq[b], vc.lk[b]);
  std::printf("\n");
  // A padded problem of batch 1 over the packed rows supplies the buffers and parameters; the
  // offsets turn it into the packed batch.
  Case whole{1, vc.H, vc.Hkv, tq, tk, vc.D, vc.causal, vc.dtype, vc.window_left, vc.window_right};
  Problem pr(whole, seed);
  int* d_cu = nullptr;
  CHECK_CUDA(cudaMalloc(&d_cu, 2 * (B + 1) * sizeof(int)));
  CHECK_CUDA(cudaMemcpy(d_cu, cq.data(), (B + 1) * sizeof(int), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d_cu + B + 1, ck.data(), (B + 1) * sizeof(int), cudaMemcpyHostToDevice));
  FlashFwdParams& f = pr.p.fwd;
  f.B = B;
  f.Nq = max_q;
  f.Nk = max_k;
  f.cu_seqlens_q = d_cu;
  f.cu_seqlens_k = d_cu + B + 1;
  f.total_q = tq;
  f.total_k = tk;
  bool ok = true;
  const std::string why = tilegrad::cuda::flash_attention_check(pr.p);
  if (!why.empty()) {
    std::printf("    rejected: %s\n", why.c_str());
    ok = false;
  }
  // The workspace the packed problem asks for must fit in the one allocated for the padded view.
  FlashBwdParams det = pr.p;
  det.deterministic = true;
  FlashBwdParams whole_det = det;
  whole_det.fwd.B = 1;
  whole_det.fwd.Nq = tq;
  whole_det.fwd.cu_seqlens_q = whole_det.fwd.cu_seqlens_k = nullptr;
  if (tilegrad::cuda::flash_attention_backward_workspace_bytes(det) >
      tilegrad::cuda::flash_attention_backward_workspace_bytes(whole_det)) {
    CHECK_CUDA(cudaFree(pr.workspace));
    CHECK_CUDA(
        cudaMalloc(&pr.workspace, tilegrad::cuda::flash_attention_backward_workspace_bytes(det)));
    pr.p.workspace = pr.workspace;
  }

  Reference r, low;
  for (Reference* x : {&r, &low}) {
    x->o.assign(pr.q.size(), 0.0);
    x->dq.assign(pr.q.size(), 0.0);
    x->dk.assign(pr.k.size(), 0.0);
    x->dv.assign(pr.v.size(), 0.0);
    x->lse.assign(static_cast<size_t>(vc.H) * tq, 0.0);
  }
  const double scale = f.softmax_scale;
  for (int b = 0; b < B && ok; ++b) {
    const Case c{1,    vc.H,      vc.Hkv,   vc.lq[b],       vc.lk[b],
                 vc.D, vc.causal, vc.dtype, vc.window_left, vc.window_right};
    const Tensor q = slice_rows(pr.q, cq[b], c.Nq), k = slice_rows(pr.k, ck[b], c.Nk);
    const Tensor v = slice_rows(pr.v, ck[b], c.Nk), dout = slice_rows(pr.dout, cq[b], c.Nq);
    const Reference seq[2] = {reference(c, q, k, v, dout, scale),
                              reference(c, q, k, v, dout, scale, &c.dtype)};
    Reference* into[2] = {&r, &low};
    for (int x = 0; x < 2; ++x) {
      std::copy(seq[x].o.begin(), seq[x].o.end(), into[x]->o.begin() + pr.q.at(0, cq[b], 0, 0));
      std::copy(seq[x].dq.begin(), seq[x].dq.end(), into[x]->dq.begin() + pr.q.at(0, cq[b], 0, 0));
      std::copy(seq[x].dk.begin(), seq[x].dk.end(), into[x]->dk.begin() + pr.k.at(0, ck[b], 0, 0));
      std::copy(seq[x].dv.begin(), seq[x].dv.end(), into[x]->dv.begin() + pr.v.at(0, ck[b], 0, 0));
      for (int h = 0; h < vc.H; ++h) {
        for (int i = 0; i < c.Nq; ++i) {
          into[x]->lse[static_cast<size_t>(h) * tq + cq[b] + i] = seq[x].lse[h * c.Nq + i];
        }
      }
    }
  }
  const double tol = vc.dtype == FlashDType::bf16 ? 3e-2 : 6e-3;
  for (FlashKernel kernel : {FlashKernel::sm80, FlashKernel::automatic}) {
    if (!ok) break;
    const char* name = kernel == FlashKernel::sm80 ? "sm_80" : "automatic";
    std::printf("  %s forward\n", name);
    pr.forward(kernel);
    ok &= compare("o", download(pr.o, vc.dtype), r.o, tol, &low.o, 2.0);
    ok &= compare("lse", pr.lse_values(), r.lse, 1e-4);
    for (bool deterministic : {false, true}) {
      std::printf("  %s backward%s\n", name, deterministic ? ", deterministic" : "");
      pr.backward(kernel, deterministic);
      ok &= compare("dq", download(pr.dq, vc.dtype), r.dq, tol, &low.dq, 3.0);
      ok &= compare("dk", download(pr.dk, vc.dtype), r.dk, tol, &low.dk, 3.0);
      ok &= compare("dv", download(pr.dv, vc.dtype), r.dv, tol, &low.dv, 3.0);
    }
  }
  CHECK_CUDA(cudaFree(d_cu));
  return ok;
}

// The dropout mask as the GPU draws it, read back exactly: with Q = 0 every visible score is
// equal, so P = 1 / Nk, and with V = I (Nk = D) the forward's O[i, j] is P̃[i, j] = Z[i, j] / (Nk
// (1 - p)); with dO = I (Nq = D) the backward's dV[j, i] is P̃[i, j] too. Both must be zero exactly
// where the CPU's Philox draws drop, and the dropped fraction must be within 0.01 of p.
bool mask_test(int D, FlashKernel kernel) {
  Case c{4, 8, 8, D, D, D, false, FlashDType::bf16};
  c.dropout_p = 0.17;
  c.dropout_offset = 3;  // not a multiple of 4: pairs of draws straddle Philox blocks
  std::printf("dropout mask: B=%d H=%d N=D=%d p=%.2f offset=%llu, %s kernels\n", c.B, c.H, D,
              c.dropout_p, static_cast<unsigned long long>(c.dropout_offset), kernel_name(kernel));
  Problem pr(c, 0xD20F + D);
  set_values(pr.q, c.dtype, [](int, int, int, int) { return 0.0f; });
  set_values(pr.v, c.dtype, [](int, int j, int, int d) { return j == d ? 1.0f : 0.0f; });
  set_values(pr.dout, c.dtype, [](int, int i, int, int d) { return i == d ? 1.0f : 0.0f; });
  pr.forward(kernel);
  pr.backward(kernel == FlashKernel::sm80 ? FlashKernel::sm80 : FlashKernel::automatic, false);
  const std::vector<double> o = download(pr.o, c.dtype), dv = download(pr.dv, c.dtype);
  const Masks masks(c);
  const double kept_value = 1.0 / (D * (1.0 - c.dropout_p));
  int64_t total = 0, dropped = 0, fwd_mismatch = 0, bwd_mismatch = 0, bad_value = 0;
  for (int b = 0; b < c.B; ++b) {
    for (int h = 0; h < c.H; ++h) {
      for (int i = 0; i < c.Nq; ++i) {
        for (int j = 0; j < c.Nk; ++j) {
          const bool keep = masks.factor(b, h, i, j) != 0.0;
          const double of = o[pr.o.at(b, i, h, j)], vb = dv[pr.dv.at(b, j, h, i)];
          ++total;
          dropped += of == 0.0 ? 1 : 0;
          fwd_mismatch += (of != 0.0) != keep ? 1 : 0;
          bwd_mismatch += (vb != 0.0) != keep ? 1 : 0;
          for (double x : {of, vb}) {
            if (x != 0.0 && !(std::abs(x - kept_value) <= 1e-2 * kept_value)) ++bad_value;
          }
        }
      }
    }
  }
  const double frac = static_cast<double>(dropped) / static_cast<double>(total);
  const bool ok = fwd_mismatch == 0 && bwd_mismatch == 0 && bad_value == 0 &&
                  std::abs(frac - c.dropout_p) <= 0.01;
  std::printf(
      "    %lld elements: dropped fraction %.5f (p %.2f), mask mismatches forward %lld "
      "backward %lld, wrong kept values %lld  %s\n",
      static_cast<long long>(total), frac, c.dropout_p, static_cast<long long>(fwd_mismatch),
      static_cast<long long>(bwd_mismatch), static_cast<long long>(bad_value), ok ? "ok" : "FAIL");
  return ok;
}

// The deterministic backward, 20 runs from the same forward: dq, dk and dv must be bitwise equal
// to the first run's. The default backward is run as many times for comparison (its dq may vary:
// reported, not a failure).
bool determinism_test(const Case& c, FlashKernel kernel) {
  std::printf(
      "determinism: B=%d H=%d Hkv=%d Nq=%d Nk=%d D=%d causal=%d window=(%d, %d) "
      "dropout=%.2f, %s kernels\n",
      c.B, c.H, c.Hkv, c.Nq, c.Nk, c.D, c.causal ? 1 : 0, c.window_left, c.window_right,
      c.dropout_p, kernel_name(kernel));
  Problem pr(c, 0xDE7 + c.Nq);
  pr.forward(kernel);
  const FlashKernel bwd = kernel == FlashKernel::sm80 ? FlashKernel::sm80 : FlashKernel::automatic;
  constexpr int kRuns = 20;
  bool ok = true;
  for (bool deterministic : {true, false}) {
    std::vector<uint16_t> first[3];
    int differing[3] = {0, 0, 0};
    for (int run = 0; run < kRuns; ++run) {
      pr.backward(bwd, deterministic);
      const Tensor* outs[3] = {&pr.dq, &pr.dk, &pr.dv};
      for (int x = 0; x < 3; ++x) {
        std::vector<uint16_t> bits = download_bits(*outs[x]);
        if (run == 0) {
          first[x] = std::move(bits);
        } else if (bits != first[x]) {
          ++differing[x];
        }
      }
    }
    const bool same = differing[0] == 0 && differing[1] == 0 && differing[2] == 0;
    if (deterministic) ok &= same;
    std::printf("    %s: runs differing from the first (of %d): dq %d, dk %d, dv %d  %s\n",
                deterministic ? "deterministic" : "default      ", kRuns, differing[0],
                differing[1], differing[2],
                deterministic ? (same ? "ok" : "FAIL") : "(not required)");
  }
  return ok;
}

}  // namespace

// Optional argument: how many of the cases to run (the sanitizers run the first few), or a
// comma-separated list of positions in the run order (from 0: "11,14"); with it, the mask and
// determinism tests are skipped.
int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  const FlashDType bf = FlashDType::bf16, hf = FlashDType::f16;
  const Case cases[] = {
      {1, 2, 1, 113, 203, 256, true, bf},                    // D = 256 (first: sanitized)
      {2, 4, 2, 113, 203, 64, true, bf},                     // GQA, ragged, causal, Nq < Nk
      {1, 2, 1, 150, 260, 128, false, bf, 70, 20, 0.17, 5},  // window and dropout
      {1, 2, 1, 128, 217, 128, false, bf},                   // MQA
      {1, 2, 2, 1, 239, 64, true, hf},                       // a single query sees every key
      {1, 1, 1, 3, 799, 128, false, hf},
      {1, 3, 1, 257, 100, 64, true, bf},  // causal with Nq > Nk: the first 157 rows see nothing
      {2, 2, 2, 200, 200, 128, true, hf},
      {1, 2, 1, 127, 513, 128, true, bf},
      {1, 1, 1, 300, 70, 128, false, bf},  // Nk smaller than one key block
      {2, 40, 8, 200, 230, 64, true, bf},  // 160 query tiles, more than the SMs
      // Causal with an even number of query tiles: the Hopper forward's persistent CTAs take
      // heavy-light pairs (144 and 136, more than an H100's or H200's 132 SMs: some CTAs take
      // two), the first tile padded above row 0 (68 and 12 rows), Nq < Nk.
      {1, 72, 8, 700, 733, 64, true, bf},
      {1, 68, 4, 500, 520, 128, true, hf},
      // D = 64, Nq <= 512: 128-row tiles (two consumers), four per head here, 192 pairs.
      {2, 48, 8, 500, 520, 64, true, hf},
      // 216 tiles, non-causal: the Hopper forward's persistent CTAs take one or two each, and the
      // K/V ring (three key blocks per tile) continues from one tile into the next.
      {3, 24, 8, 300, 290, 128, false, bf},
      {3, 24, 8, 400, 290, 64, false, hf},
      // Sliding windows: skipped key blocks on both sides, rows that see nothing.
      {2, 4, 2, 300, 300, 64, false, bf, 64, 0},
      {1, 2, 1, 333, 517, 128, true, hf, 100, 50},  // causal caps the right side at 0
      {1, 2, 2, 400, 250, 64, false, bf, 30, 10},   // Nq > Nk: the first 140 rows see nothing
      {1, 2, 1, 260, 700, 128, false, bf, -1, 40},  // right side only
      {1, 2, 1, 500, 180, 128, false, hf, 0, 0},    // the diagonal alone
      // Dropout (offsets not multiples of 4, odd Nk: every alignment of draws to Philox blocks).
      {2, 4, 2, 113, 203, 64, true, bf, -1, -1, 0.17, 0},
      {1, 2, 1, 128, 217, 128, false, hf, -1, -1, 0.17, 1026},
      {1, 3, 3, 257, 300, 64, false, bf, 200, 0, 0.17, 7},
      {1, 1, 1, 129, 1001, 128, false, bf, -1, -1, 0.5, 2},
      // D = 256 on the issue's shapes, causal, windows, GQA (the Hopper forward's 64-key blocks;
      // the backward runs the sm_80 kernel everywhere).
      {1, 2, 2, 128, 217, 256, false, hf},
      {1, 2, 1, 1, 239, 256, true, bf},
      {1, 1, 1, 3, 799, 256, false, hf},
      {1, 2, 1, 127, 513, 256, true, bf},
      {1, 2, 2, 1023, 1024, 256, false, bf},
      {1, 1, 1, 1024, 1023, 256, true, hf},
      {2, 4, 2, 200, 230, 256, true, bf},
      {1, 2, 1, 300, 260, 256, false, hf, 64, 16},
      // D = 256 on the Hopper forward's persistent CTAs: heavy-light pairs, more than the SMs, the
      // first tile padded, Nq < Nk; unmasked tiles with the K/V ring running on between tiles.
      {2, 24, 8, 700, 733, 256, true, bf},
      {3, 24, 8, 300, 290, 256, false, hf},
  };
  // Packed batches; the first is small enough for the sanitizers.
  const VarCase var_cases[] = {
      {{1, 77, 130, 3, 0}, {65, 77, 45, 0, 9}, 2, 1, 64, true, bf},
      {{200, 1, 129, 64}, {150, 257, 129, 1}, 4, 2, 128, false, hf, 30, 10},
      {{100, 1, 67}, {130, 33, 67}, 2, 2, 256, true, bf},
      {{5, 300, 17}, {290, 31, 17}, 2, 1, 128, false, bf, 64, -1},
      {{3, 129, 1, 64}, {3, 130, 1, 200}, 3, 3, 256, false, hf},
  };
  // The run order: the first D = 256 case and the first packed batch come first, so that the
  // sanitizers (bench/device/flash.sh: the first few) cover both.
  const int n_cases = static_cast<int>(sizeof(cases) / sizeof(cases[0]));
  const int n_var = static_cast<int>(sizeof(var_cases) / sizeof(var_cases[0]));
  const int n_all = n_cases + n_var;
  std::vector<int> run_order;
  if (argc > 1 && std::strchr(argv[1], ',') != nullptr) {
    for (const char* c = argv[1]; c != nullptr; c = std::strchr(c, ',')) {
      if (*c == ',') ++c;
      if (*c == '\0') break;  // "14,": one case
      const int i = std::atoi(c);
      if (i < 0 || i >= n_all) {
        std::printf("case position %d is not in [0, %d)\n", i, n_all);
        return 2;
      }
      run_order.push_back(i);
    }
  } else {
    const int n_run = argc > 1 ? std::min(std::atoi(argv[1]), n_all) : n_all;
    for (int i = 0; i < n_run; ++i) run_order.push_back(i);
  }
  int major = 0, minor = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
  const bool hopper = major == 9 && minor == 0;
  std::vector<FlashKernel> kernels{FlashKernel::sm80};
  if (hopper) kernels.push_back(FlashKernel::sm90);
  bool ok = true;
  for (const int i : run_order) {
    // Order: cases[0], var_cases[0], cases[1..], var_cases[1..].
    const int var = i == 1 ? 0 : i >= n_cases + 1 ? i - n_cases : -1;
    if (var >= 0) {
      ok &= run_varlen_case(var_cases[var], 0x7A1 + var);
    } else {
      const int ci = i == 0 ? 0 : i - 1;
      ok &= run_case(cases[ci], 0x5EED + ci, kernels);
    }
  }
  if (argc <= 1) {
    const Case det_cases[] = {
        {2, 8, 2, 1536, 1536, 128, true, bf},
        {2, 8, 8, 1000, 1200, 64, false, bf, 256, 64, 0.17, 4},
        {2, 4, 2, 700, 900, 256, true, bf, 300, -1},
    };
    for (FlashKernel kernel : kernels) {
      for (int D : {64, 128}) ok &= mask_test(D, kernel);
      for (const Case& c : det_cases) {
        ok &= determinism_test(c, kernel);
      }
    }
  }
  std::printf(ok ? "all cases passed\n" : "FAILED\n");
  return ok ? 0 : 1;
}
