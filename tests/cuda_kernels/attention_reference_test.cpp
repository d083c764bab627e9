// kernels/cuda/attention_reference.h against the CPU FlashAttention kernels
// (kernels/cpu/attention_flash.h) on the same inputs: forward (o, lse) and backward (dq, dk, dv)
// for float32 and float64, odd shapes (Nq != Nk, head dims 1, 17, 64, 100 and 256), causal bands
// with more queries than keys (rows that see nothing), windows, GQA and MQA, non-contiguous q, k,
// v, a block-sparse layout, dropout (the same Philox mask on both devices) and a logsumexp
// gradient; a few bfloat16/float16 problems with their looser tolerance; and a bitwise repeat of
// the backward (no atomics).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/rng.h"
#include "cuda_testing.h"
#include "kernels/cpu/attention_flash.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/attention_reference.h"

namespace {

using namespace tilegrad;  // NOLINT: tests read better with the engine's names
namespace kcpu = tilegrad::kernels::cpu;
namespace kcuda = tilegrad::kernels::cuda;
using tgcuda::bytes_of;
using tgcuda::random_vector;

struct Case {
  std::string name;
  int64_t B = 2, H = 2, Hkv = 2, Nq = 19, Nk = 23, D = 17;
  bool causal = false;
  int64_t window_left = -1, window_right = -1;
  bool layout = false;
  int64_t layout_bq = 5, layout_bk = 7;
  double dropout_p = 0.0;
  bool glse = false;
  bool strided = false;  // q, k, v stored as [B, N, heads, D] instead of [B, heads, N, D]
};

// Copies v into d (sized bytes_of(v)); an empty v leaves the 1-byte buffer as it is.
template <class T>
void upload(const tgcuda::DeviceBuffer& d, const std::vector<T>& v) {
  if (!v.empty()) d.upload(v.data());
}

template <class T>
std::vector<double> widen(const std::vector<T>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<double>(static_cast<acc_t<T>>(v[i]));
  return out;
}

// max |got - want| / max(max |want|, 1), and both must be finite where want is. The floor of 1 is
// the size of the terms every result sums (inputs are O(1)): where a gradient is zero in exact
// arithmetic (one key: dS = dP - rowsum(dO∘O) = 0), both sides hold only rounding noise of O(1)
// terms, and the CPU's noise is no more right than the GPU's exact 0.
void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1.0, worst = 0.0;
  size_t worst_i = 0;
  for (double w : want) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << "[" << i << "] = " << got[i];
    const double e = std::abs(got[i] - want[i]);
    if (e > worst) {
      worst = e;
      worst_i = i;
    }
  }
  EXPECT_LE(worst / scale, tol) << what << ": worst at " << worst_i << ": got " << got[worst_i]
                                << ", CPU " << want[worst_i] << " (max |CPU| " << scale << ")";
}

// lse: -inf exactly where the CPU has -inf (rows that see no key), close elsewhere.
void expect_lse_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i])) {
      ASSERT_EQ(got[i], want[i]) << "lse[" << i << "]";
    } else {
      ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << "lse[" << i << "]";
    }
  }
}

// q, k or v of `heads` heads and N rows: element (b, h, n, d) at b·s0 + h·s1 + n·s2 + d.
struct Operand {
  int64_t strides[3];
  int64_t size;
};
Operand operand(int64_t B, int64_t heads, int64_t N, int64_t D, bool strided) {
  if (strided) return {{N * heads * D, D, heads * D}, B * N * heads * D};  // [B, N, heads, D]
  return {{heads * N * D, N * D, D}, B * heads * N * D};                   // [B, heads, N, D]
}

template <class T>
void run_case(const Case& c, double tol) {
  using A = acc_t<T>;
  SCOPED_TRACE(testing::Message() << c.name << " (" << dtype_name(dtype_of<T>()) << ")");
  const Operand oq = operand(c.B, c.H, c.Nq, c.D, c.strided);
  const Operand ok = operand(c.B, c.Hkv, c.Nk, c.D, c.strided);
  const std::vector<T> q = random_vector<T>(oq.size, 1, -2.0, 2.0);
  const std::vector<T> k = random_vector<T>(ok.size, 2, -2.0, 2.0);
  const std::vector<T> v = random_vector<T>(ok.size, 3);
  const int64_t rows = c.B * c.H * c.Nq, kv_rows = c.B * c.Hkv * c.Nk;
  const std::vector<T> dout = random_vector<T>(rows * c.D, 4);
  const std::vector<A> glse = random_vector<A>(rows, 5);
  std::vector<uint8_t> layout;
  if (c.layout) {
    const int64_t lr = (c.Nq + c.layout_bq - 1) / c.layout_bq,
                  lc = (c.Nk + c.layout_bk - 1) / c.layout_bk;
    for (int64_t e = 0; e < lr * lc; ++e) {  // about two blocks in three visible
      layout.push_back(uniform_from_bits(philox_draw(6, static_cast<uint64_t>(e))) < 0.67f);
    }
  }

  AttentionArgs a;
  a.dtype = dtype_of<T>();
  a.B = c.B;
  a.H = c.H;
  a.Hkv = c.Hkv;
  a.Nq = c.Nq;
  a.Nk = c.Nk;
  a.D = c.D;
  std::copy(oq.strides, oq.strides + 3, a.q_strides);
  std::copy(ok.strides, ok.strides + 3, a.k_strides);
  std::copy(ok.strides, ok.strides + 3, a.v_strides);
  a.scale = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(c.D, 1))) * 1.3;
  a.causal = c.causal;
  a.window_left = c.window_left;
  a.window_right = c.window_right;
  a.layout_block_q = c.layout_bq;
  a.layout_block_k = c.layout_bk;
  a.dropout_p = c.dropout_p;
  a.seed = 0xfeedbeefull;
  a.offset = 12;
  a.block_r = 16;  // small CPU tiles: several per head, partial ones at the edges
  a.block_c = 24;
  a.bwd_block_r = 16;
  a.bwd_block_c = 16;

  // CPU.
  AttentionArgs ca = a;
  ca.q = q.data();
  ca.k = k.data();
  ca.v = v.data();
  ca.layout = c.layout ? layout.data() : nullptr;
  std::vector<T> o_cpu(static_cast<size_t>(rows * c.D)), dq_cpu(o_cpu.size());
  std::vector<T> dk_cpu(static_cast<size_t>(kv_rows * c.D)), dv_cpu(dk_cpu.size());
  std::vector<A> lse_cpu(static_cast<size_t>(rows));
  kcpu::attention_flash_forward(ca, o_cpu.data(), lse_cpu.data());
  kcpu::attention_flash_backward(ca, o_cpu.data(), lse_cpu.data(), dout.data(),
                                 c.glse ? glse.data() : nullptr, dq_cpu.data(), dk_cpu.data(),
                                 dv_cpu.data());

  // GPU, on its own forward's o and lse.
  const tgcuda::DeviceBuffer d_q(bytes_of(q)), d_k(bytes_of(k)), d_v(bytes_of(v));
  const tgcuda::DeviceBuffer d_dout(bytes_of(dout)), d_glse(bytes_of(glse));
  const tgcuda::DeviceBuffer d_layout(bytes_of(layout));
  const tgcuda::DeviceBuffer d_o(bytes_of(o_cpu)), d_lse(bytes_of(lse_cpu));
  const tgcuda::DeviceBuffer d_dq(bytes_of(dq_cpu)), d_dk(bytes_of(dk_cpu)), d_dv(bytes_of(dv_cpu));
  upload(d_q, q);
  upload(d_k, k);
  upload(d_v, v);
  upload(d_dout, dout);
  upload(d_glse, glse);
  upload(d_layout, layout);
  AttentionArgs ga = a;
  ga.q = d_q.get();
  ga.k = d_k.get();
  ga.v = d_v.get();
  ga.layout = c.layout ? static_cast<const uint8_t*>(d_layout.get()) : nullptr;
  kcuda::attention_reference_forward(ga, d_o.get(), d_lse.get(), nullptr);
  const tgcuda::DeviceBuffer ws(
      std::max<size_t>(kcuda::attention_reference_backward_workspace_bytes(ga), 1));
  kcuda::attention_reference_backward(ga, d_o.get(), d_lse.get(), d_dout.get(),
                                      c.glse ? d_glse.get() : nullptr, d_dq.get(), d_dk.get(),
                                      d_dv.get(), ws.get(), nullptr);

  expect_close(widen(tgcuda::to_host<T>(d_o, o_cpu.size())), widen(o_cpu), tol, "o");
  expect_lse_close(widen(tgcuda::to_host<A>(d_lse, lse_cpu.size())), widen(lse_cpu), tol);
  expect_close(widen(tgcuda::to_host<T>(d_dq, dq_cpu.size())), widen(dq_cpu), tol, "dq");
  expect_close(widen(tgcuda::to_host<T>(d_dk, dk_cpu.size())), widen(dk_cpu), tol, "dk");
  expect_close(widen(tgcuda::to_host<T>(d_dv, dv_cpu.size())), widen(dv_cpu), tol, "dv");

  // The backward again: the same bits (fixed summation orders, no atomics).
  const std::vector<T> dq1 = tgcuda::to_host<T>(d_dq, dq_cpu.size());
  const std::vector<T> dk1 = tgcuda::to_host<T>(d_dk, dk_cpu.size());
  kcuda::attention_reference_backward(ga, d_o.get(), d_lse.get(), d_dout.get(),
                                      c.glse ? d_glse.get() : nullptr, d_dq.get(), d_dk.get(),
                                      d_dv.get(), ws.get(), nullptr);
  const std::vector<T> dq2 = tgcuda::to_host<T>(d_dq, dq_cpu.size());
  const std::vector<T> dk2 = tgcuda::to_host<T>(d_dk, dk_cpu.size());
  EXPECT_EQ(std::memcmp(dq1.data(), dq2.data(), dq1.size() * sizeof(T)), 0) << "dq not repeatable";
  EXPECT_EQ(std::memcmp(dk1.data(), dk2.data(), dk1.size() * sizeof(T)), 0) << "dk not repeatable";
}

// The problems, each a variation of the default (B 2, H = Hkv = 2, Nq 19, Nk 23, D 17).
std::vector<Case> cases() {
  std::vector<Case> out;
  auto add = [&](const std::string& name, auto&& edit) {
    Case c;
    c.name = name;
    edit(c);
    out.push_back(c);
  };
  add("dense D=17", [](Case&) {});
  add("D=1", [](Case& c) { c.D = 1; });
  add("D=64 Nq>Nk", [](Case& c) {
    c.D = 64;
    c.Nq = 41;
    c.Nk = 29;
  });
  add("D=100 strided", [](Case& c) {
    c.D = 100;
    c.strided = true;
  });
  add("D=256", [](Case& c) {
    c.D = 256;
    c.Nq = 9;
    c.Nk = 70;
  });
  add("causal Nq<Nk", [](Case& c) { c.causal = true; });
  add("causal Nq>Nk (rows without keys)", [](Case& c) {
    c.causal = true;
    c.Nq = 37;
    c.Nk = 20;
  });
  add("window 5/2", [](Case& c) {
    c.window_left = 5;
    c.window_right = 2;
  });
  add("causal window left 3", [](Case& c) {
    c.causal = true;
    c.window_left = 3;
    c.Nq = 30;
  });
  add("right window only", [](Case& c) { c.window_right = 0; });
  add("GQA 6/2", [](Case& c) {
    c.H = 6;
    c.Hkv = 2;
    c.D = 64;
  });
  add("MQA 4/1 causal strided", [](Case& c) {
    c.H = 4;
    c.Hkv = 1;
    c.causal = true;
    c.strided = true;
  });
  add("layout", [](Case& c) { c.layout = true; });
  add("layout causal GQA", [](Case& c) {
    c.layout = true;
    c.causal = true;
    c.H = 4;
    c.Hkv = 2;
    c.layout_bq = 4;
    c.layout_bk = 3;
  });
  add("dropout 0.2", [](Case& c) { c.dropout_p = 0.2; });
  add("dropout 0.5 causal GQA D=64", [](Case& c) {
    c.dropout_p = 0.5;
    c.causal = true;
    c.H = 4;
    c.Hkv = 2;
    c.D = 64;
  });
  add("glse", [](Case& c) { c.glse = true; });
  add("glse window dropout layout", [](Case& c) {
    c.glse = true;
    c.window_left = 6;
    c.window_right = 4;
    c.dropout_p = 0.3;
    c.layout = true;
  });
  add("single row and key", [](Case& c) {
    c.Nq = 1;
    c.Nk = 1;
  });
  return out;
}

TEST(CudaAttentionReference, Float64MatchesTheCpu) {
  TG_REQUIRE_GPU();
  for (const Case& c : cases()) run_case<double>(c, 1e-11);
}

TEST(CudaAttentionReference, Float32MatchesTheCpu) {
  TG_REQUIRE_GPU();
  for (const Case& c : cases()) run_case<float>(c, 5e-5);
}

TEST(CudaAttentionReference, SixteenBitMatchesTheCpu) {
  TG_REQUIRE_GPU();
  // Both devices compute in float32 from the same 16-bit inputs; the outputs differ by the
  // rounding of the 16-bit results (2^-8 relative for bfloat16).
  for (const Case& c : cases()) {
    if (c.D != 17 || c.strided) continue;
    run_case<bfloat16>(c, 1e-2);
    run_case<float16>(c, 2e-3);
  }
}

TEST(CudaAttentionReference, EmptyKeysGiveZeroOutputAndGradients) {
  TG_REQUIRE_GPU();
  Case c;
  c.name = "Nk=0";
  c.Nk = 0;
  run_case<float>(c, 0.0);
  c.name = "Nq=0";
  c.Nk = 5;
  c.Nq = 0;
  run_case<double>(c, 0.0);
}

TEST(CudaAttentionReference, RejectsHeadDimsAbove256) {
  TG_REQUIRE_GPU();
  AttentionArgs a;
  a.B = a.H = a.Hkv = a.Nq = a.Nk = 1;
  a.D = 257;
  EXPECT_THROW(kcuda::attention_reference_forward(a, nullptr, nullptr, nullptr), Error);
}

}  // namespace
