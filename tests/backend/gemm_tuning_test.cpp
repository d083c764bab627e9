// GEMMs with tuning on (Backend::set_gemm_tuning; on CUDA, cuda/gemm.h's Note [GEMM tuning]): the
// first call of a problem times the candidate algorithms on its own operands, so it must still
// leave exactly its one result — a call that accumulates into C in place must not be run again,
// outputs beside C (the GELU pre-activation) must hold that call's values — and later calls of the
// tuned problem must repeat its bits. Checked against float64 on shapes no other test uses
// (plans are per process and per problem). A backend without tuning passes the same checks.
#include <cmath>

#include "testing.h"

namespace tgtest {
namespace {

// Turns tuning on for a scope on the test tensors' device.
class TuningScope {
 public:
  explicit TuningScope(Device d) : be_(backend(d)) { be_.set_gemm_tuning(true); }
  ~TuningScope() { be_.set_gemm_tuning(false); }
  TuningScope(const TuningScope&) = delete;
  TuningScope& operator=(const TuningScope&) = delete;

 private:
  Backend& be_;
};

std::vector<double> host(const Tensor& t) {
  return t.to(Device::cpu()).to(DType::f64).contiguous().to_vector<double>();
}

double gelu_ref(double s) {
  return 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)));
}

enum class Kind { plain, accumulate_in_place, separate_c, bias_gelu };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::plain:
      return "plain";
    case Kind::accumulate_in_place:
      return "accumulate in place";
    case Kind::separate_c:
      return "separate C";
    case Kind::bias_gelu:
      return "bias + GELU";
  }
  return "";
}

TEST(GemmTuning, TunedCallsLeaveOneResultAndRepeatTheirBits) {
  const int64_t m = 301, n = 264, k = 200;  // odd m; n, k multiples of 8 so cuBLASLt fuses
  int64_t shift = 0;
  for (DType dt : {DType::bf16, DType::f32}) {
    for (Kind kind : {Kind::plain, Kind::accumulate_in_place, Kind::separate_c, Kind::bias_gelu}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + ", " + kind_name(kind));
      // Each case its own problem (k differs by 8), so that each is tuned at its first call here.
      const int64_t kk = k + 8 * shift++;
      const uint64_t seed = 100 + static_cast<uint64_t>(shift) * 10;
      const Tensor a = rnd({m, kk}, seed).to(dt), b = rnd({kk, n}, seed + 1).to(dt);
      const Tensor c0 = rnd({m, n}, seed + 2).to(dt), r = rnd({m, n}, seed + 3).to(dt);
      const Tensor bias = rnd({n}, seed + 4).to(dt);
      const TuningScope tuning(a.device());
      // Three calls of the same problem: the first tunes, the later two must give its bits.
      std::vector<Tensor> outs, pres;
      for (int call = 0; call < 3; ++call) {
        Tensor c = c0.clone(), pre = empty({m, n}, TensorOptions{dt, a.device()});
        const bool reads_c = kind == Kind::accumulate_in_place || kind == Kind::separate_c;
        GemmArgs g = gemm_args(dt, false, false, m, n, kk, 1.0, a.data(), kk, b.data(), n,
                               reads_c ? 1.0 : 0.0, c.data(), n);
        if (kind == Kind::separate_c) g.c_in = r.data();
        if (kind == Kind::bias_gelu) {
          g.epilogue = GemmEpilogue::bias_gelu;
          g.bias = bias.data();
          g.pre_act = pre.data();
        }
        backend(a.device()).gemm(g);
        outs.push_back(c);
        pres.push_back(pre);
      }
      // float64 reference from the rounded operands.
      const auto va = host(a), vb = host(b), vc = host(c0), vr = host(r), vbias = host(bias);
      std::vector<double> want(static_cast<size_t>(m * n)), pre_want(want.size());
      double scale = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double s = 0, mag = 0;
          for (int64_t q = 0; q < kk; ++q) {
            s += va[i * kk + q] * vb[q * n + j];
            mag += std::abs(va[i * kk + q] * vb[q * n + j]);
          }
          const size_t at = static_cast<size_t>(i * n + j);
          if (kind == Kind::accumulate_in_place) s += vc[at];
          if (kind == Kind::separate_c) s += vr[at];
          if (kind == Kind::bias_gelu) {
            s += vbias[j];
            pre_want[at] = s;
            s = gelu_ref(s);
          }
          want[at] = s;
          scale = std::max(scale, mag + 2.0);
        }
      // Rounding of the output to dt plus float32 accumulation over k terms; GELU's tanh in the
      // epilogue is an approximation good to about 2^-18.
      const double u = unit_roundoff(dt);
      const double tol = 4 * u * scale + 4 * kk * 0x1p-24 * scale + 0x1p-18 * scale;
      const auto got = host(outs[0]);
      double worst = 0;
      for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
      EXPECT_LE(worst, tol) << "the first (tuning) call's output";
      if (kind == Kind::bias_gelu) {
        const auto pre = host(pres[0]);
        double pw = 0;
        for (size_t i = 0; i < want.size(); ++i) pw = std::max(pw, std::abs(pre[i] - pre_want[i]));
        EXPECT_LE(pw, tol) << "the first call's pre-activation";
      }
      // The tuning call ends with the chosen algorithm's run, so its bits are the later calls'.
      for (int call = 1; call < 3; ++call) {
        EXPECT_EQ(max_abs_diff(outs[call], outs[0]), 0.0) << "call " << call;
        if (kind == Kind::bias_gelu) {
          EXPECT_EQ(max_abs_diff(pres[call], pres[0]), 0.0) << "call " << call;
        }
      }
    }
  }
}

// A tuning state that is not one is refused with a message naming what is wrong, and changes
// nothing: the state read back afterwards is the one before. (Devices without tuning ignore
// states.)
TEST(GemmTuning, BadStateIsRefusedAndChangesNothing) {
  if (!device_available(DeviceType::cuda)) GTEST_SKIP() << "no CUDA device";
  Backend& be = backend(Device::cuda());
  const std::string before = be.gemm_tuning_state();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json {", "not JSON"},
      {R"({"format": "other", "problems": []})", "tilegrad gemm tuning 1"},
      {R"({"format": "tilegrad gemm tuning 1", "problems": [{"key": "1,2"}]})", "lacks"},
      {R"({"format": "tilegrad gemm tuning 1", "problems": [{"key": "1", "candidates": 4,
          "choice": 4}]})",
       "choice 4 of 4"}};
  for (const auto& [text, pattern] : cases) {
    const std::string err = error_of([&] { be.load_gemm_tuning_state(text); });
    EXPECT_NE(err.find(pattern), std::string::npos) << text << ": " << err;
  }
  EXPECT_EQ(be.gemm_tuning_state(), before);
}

}  // namespace
}  // namespace tgtest
