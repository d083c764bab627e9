// GPU cross-entropy (kernels/cuda/cross_entropy) against the CPU kernel on the same inputs: every
// float dtype, int32 and int64 targets, V from 1 to 50257 (odd sizes included), rows whose logits
// sit near 300, ignored rows (ignore_index outside the classes, and ignore_index a class that some
// targets hold), the scale and the device-side upstream gradient; the CPU's dtype errors.
//
// Losses and logsumexps are in the accumulation type: tolerances are its rounding over the sum of V
// exponentials (added in another order on the GPU, with an exp that may differ by an ulp or two).
// Gradients add a few units in the last place of the logits' dtype. Ignored rows must be exactly 0.
#include "kernels/cuda/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda_kernels/cuda_testing.h"
#include "kernels/cpu/cross_entropy.h"

namespace {

using namespace tgcuda;  // NOLINT: the GPU tests' shared helpers (cuda_testing.h)
using tilegrad::DType;

struct Case {
  int64_t rows, V;
};
const Case kCases[] = {{3, 1}, {5, 3}, {33, 257}, {7, 1000}, {3, 1025}, {4, 50257}, {300, 31}};
const DType kIndexDTypes[] = {DType::i32, DType::i64};

// Targets as bytes of dtype t_dt.
Bytes encode_targets(DType t_dt, const std::vector<int64_t>& t) {
  Bytes out(t.size() * tilegrad::dtype_size(t_dt));
  for (size_t i = 0; i < t.size(); ++i) {
    if (t_dt == DType::i32) {
      const int32_t v = static_cast<int32_t>(t[i]);
      std::memcpy(out.data() + i * 4, &v, 4);
    } else {
      std::memcpy(out.data() + i * 8, &t[i], 8);
    }
  }
  return out;
}

// A problem: logits in [-8, 8), every fourth row shifted by 300; random targets, about one row in
// five set to ignore_index (-100, or class 1 when `ignore_class`, which some targets then hold).
struct Problem {
  std::vector<double> x;
  std::vector<int64_t> t;
  int64_t ignore;
};
Problem make_problem(std::mt19937_64& rng, const Case& cs, bool ignore_class) {
  Problem p;
  p.x = uniform(rng, static_cast<size_t>(cs.rows * cs.V), -8.0, 8.0);
  for (int64_t r = 0; r < cs.rows; r += 4) {
    for (int64_t j = 0; j < cs.V; ++j) p.x[static_cast<size_t>(r * cs.V + j)] += 300.0;
  }
  std::uniform_int_distribution<int64_t> cls(0, cs.V - 1);
  std::uniform_int_distribution<int> fifth(0, 4);
  p.ignore = ignore_class ? 1 : -100;
  for (int64_t r = 0; r < cs.rows; ++r) p.t.push_back(fifth(rng) == 0 ? p.ignore : cls(rng));
  if (cs.rows > 1) p.t[1] = p.ignore;  // at least one ignored row
  return p;
}

std::string describe(DType dt, DType t_dt, const Case& c, int64_t ignore) {
  return std::string(tilegrad::dtype_name(dt)) + " targets " +
         std::string(tilegrad::dtype_name(t_dt)) + " rows " + std::to_string(c.rows) + " V " +
         std::to_string(c.V) + " ignore " + std::to_string(ignore);
}

// Per-row tolerances of the GPU's losses and logsumexps against the CPU's (lc, sc), for logits xv:
// the accumulation type's rounding over the sum of V exponentials (added in another order on the
// GPU, with an exp that may differ by an ulp or two), plus a few roundings of the values' sizes.
struct RowTolerances {
  std::vector<double> loss, lse;
};
RowTolerances row_tolerances(DType dt, const Case& cs, const Problem& p,
                             const std::vector<double>& xv, const std::vector<double>& lc,
                             const std::vector<double>& sc) {
  const double ua = unit_roundoff(acc_dtype(dt));
  const double acc = 16.0 * (1.0 + std::sqrt(static_cast<double>(cs.V))) * ua;
  RowTolerances tol{std::vector<double>(cs.rows), std::vector<double>(cs.rows)};
  for (int64_t r = 0; r < cs.rows; ++r) {
    tol.lse[r] = acc + 4.0 * ua * std::abs(sc[r]);
    const bool ignored = p.t[r] == p.ignore;
    const double xt = ignored ? 0.0 : std::abs(xv[r * cs.V + p.t[r]]);
    tol.loss[r] = ignored ? 0.0 : acc + 8.0 * ua * (std::abs(lc[r]) + std::abs(sc[r]) + xt);
  }
  return tol;
}

// Tolerances of the GPU's glogits against the CPU's, for upstream gradient g, logits xv and the
// CPU's logsumexps sv, when the GPU's lse may differ from sv by up to lse_err[r] per row (0: the
// GPU read the same lse): exp's rounding and its argument's (|x - lse| in size), exp's response to
// the lse's difference, a few roundings of the dtype; ignored rows exactly zero.
std::vector<double> glogits_tolerance(DType dt, const Case& cs, const Problem& p, double g,
                                      const std::vector<double>& xv, const std::vector<double>& sv,
                                      const std::vector<double>& lse_err) {
  const double u = unit_roundoff(dt), ua = unit_roundoff(acc_dtype(dt));
  std::vector<double> tol(static_cast<size_t>(cs.rows * cs.V));
  for (int64_t r = 0; r < cs.rows; ++r) {
    const bool ignored = p.t[r] == p.ignore;
    for (int64_t j = 0; j < cs.V; ++j) {
      const size_t k = static_cast<size_t>(r * cs.V + j);
      if (ignored) {
        tol[k] = 0.0;  // exactly zero
        continue;
      }
      const double d = xv[k] - sv[r], prob = std::exp(d);
      const double hot = j == p.t[r] ? 1.0 : 0.0;
      tol[k] = g * (4.0 * u * (prob + hot) + ua * (16.0 + 4.0 * std::abs(d)) * prob +
                    2.0 * lse_err[r] * prob);
      if (dt == DType::f16) tol[k] += std::ldexp(1.0, -23);  // float16 subnormals
    }
  }
  return tol;
}

TEST(CudaCrossEntropy, ForwardMatchesCpu) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  for (DType dt : kFloatDTypes) {
    const DType adt = acc_dtype(dt);
    const size_t as = tilegrad::dtype_size(adt);
    for (DType t_dt : kIndexDTypes) {
      for (const Case& cs : kCases) {
        for (bool ignore_class : {false, true}) {
          if (ignore_class && cs.V < 2) continue;
          const Problem p = make_problem(rng, cs, ignore_class);
          SCOPED_TRACE(describe(dt, t_dt, cs, p.ignore));
          const Bytes x = encode(dt, p.x), t = encode_targets(t_dt, p.t);
          Bytes loss_cpu(cs.rows * as), lse_cpu(cs.rows * as);
          tilegrad::kernels::cpu::cross_entropy_forward(dt, x.data(), t_dt, t.data(),
                                                        loss_cpu.data(), lse_cpu.data(), cs.rows,
                                                        cs.V, cs.V, p.ignore);
          const DeviceBuffer dx(x.size()), dt_buf(t.size()), dloss(cs.rows * as),
              dlse(cs.rows * as);
          dx.upload(x.data());
          dt_buf.upload(t.data());
          tilegrad::kernels::cuda::cross_entropy_forward(dt, dx.get(), t_dt, dt_buf.get(),
                                                         dloss.get(), dlse.get(), cs.rows, cs.V,
                                                         cs.V, p.ignore, nullptr);
          const std::vector<double> xv = decode(dt, x);
          const std::vector<double> lc = decode(adt, loss_cpu), lg = decode(adt, download(dloss));
          const std::vector<double> sc = decode(adt, lse_cpu), sg = decode(adt, download(dlse));
          const RowTolerances tol = row_tolerances(dt, cs, p, xv, lc, sc);
          expect_close(lg, lc, tol.loss, "loss");
          expect_close(sg, sc, tol.lse, "lse");
        }
      }
    }
  }
}

TEST(CudaCrossEntropy, BackwardMatchesCpu) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(6);
  for (DType dt : kFloatDTypes) {
    const DType adt = acc_dtype(dt);
    const size_t es = tilegrad::dtype_size(dt), as = tilegrad::dtype_size(adt);
    for (DType t_dt : kIndexDTypes) {
      for (const Case& cs : kCases) {
        for (bool ignore_class : {false, true}) {
          if (ignore_class && cs.V < 2) continue;
          const Problem p = make_problem(rng, cs, ignore_class);
          SCOPED_TRACE(describe(dt, t_dt, cs, p.ignore));
          const size_t n = static_cast<size_t>(cs.rows * cs.V);
          const Bytes x = encode(dt, p.x), t = encode_targets(t_dt, p.t);
          // lse from the CPU forward, the same bytes for both backwards; the upstream gradient as
          // one accumulation-type scalar, with a scale that is not a power of two.
          Bytes loss(cs.rows * as), lse(cs.rows * as);
          tilegrad::kernels::cpu::cross_entropy_forward(dt, x.data(), t_dt, t.data(), loss.data(),
                                                        lse.data(), cs.rows, cs.V, cs.V, p.ignore);
          const Bytes gloss = encode(adt, {0.75});
          const double scale = 1.0 / 3.0;
          Bytes gx_cpu(n * es);
          tilegrad::kernels::cpu::cross_entropy_backward(dt, x.data(), t_dt, t.data(), lse.data(),
                                                         gloss.data(), scale, gx_cpu.data(),
                                                         cs.rows, cs.V, cs.V, p.ignore);
          const DeviceBuffer dx(x.size()), dt_buf(t.size()), dlse(lse.size()), dgloss(gloss.size()),
              dgx(n * es);
          dx.upload(x.data());
          dt_buf.upload(t.data());
          dlse.upload(lse.data());
          dgloss.upload(gloss.data());
          tilegrad::kernels::cuda::cross_entropy_backward(
              dt, dx.get(), t_dt, dt_buf.get(), dlse.get(), dgloss.get(), scale, dgx.get(), cs.rows,
              cs.V, cs.V, p.ignore, nullptr);
          const std::vector<double> xv = decode(dt, x), sv = decode(adt, lse);
          const std::vector<double> gc = decode(dt, gx_cpu), gg = decode(dt, download(dgx));
          const std::vector<double> same_lse(cs.rows, 0.0);
          expect_close(gg, gc, glogits_tolerance(dt, cs, p, 0.75 * scale, xv, sv, same_lse),
                       "glogits");
        }
      }
    }
  }
}

// Rows ld > V elements apart (a head's output padded to an aligned row stride) give the bits of the
// same rows stored contiguously, on the GPU and on the CPU, and the padding is never read (NaN
// there would show) nor written.
TEST(CudaCrossEntropy, PaddedRowsGiveTheContiguousBits) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(7);
  for (DType dt : kFloatDTypes) {
    const DType adt = acc_dtype(dt);
    const size_t es = tilegrad::dtype_size(dt), as = tilegrad::dtype_size(adt);
    const Case cs{37, 1001};
    const int64_t ld = 1024;
    const Problem p = make_problem(rng, cs, false);
    SCOPED_TRACE(describe(dt, DType::i64, cs, p.ignore));
    std::vector<double> padded(static_cast<size_t>(cs.rows * ld), std::nan(""));
    for (int64_t r = 0; r < cs.rows; ++r)
      for (int64_t j = 0; j < cs.V; ++j) padded[r * ld + j] = p.x[r * cs.V + j];
    const Bytes x = encode(dt, p.x), xp = encode(dt, padded), t = encode_targets(DType::i64, p.t);
    const Bytes gloss = encode(adt, {0.75});
    const size_t n = static_cast<size_t>(cs.rows * cs.V), np = static_cast<size_t>(cs.rows * ld);
    const DeviceBuffer dx(x.size()), dxp(xp.size()), dtb(t.size()), dg(gloss.size());
    dx.upload(x.data());
    dxp.upload(xp.data());
    dtb.upload(t.data());
    dg.upload(gloss.data());
    // Contiguous, then padded; gradients into buffers whose padding holds a sentinel byte.
    const DeviceBuffer l1(cs.rows * as), s1(cs.rows * as), l2(cs.rows * as), s2(cs.rows * as),
        g1(n * es), g2(np * es);
    Bytes sentinel(np * es, 0x5A);
    g2.upload(sentinel.data());
    namespace kc = tilegrad::kernels::cuda;
    kc::cross_entropy_forward(dt, dx.get(), DType::i64, dtb.get(), l1.get(), s1.get(), cs.rows,
                              cs.V, cs.V, p.ignore, nullptr);
    kc::cross_entropy_forward(dt, dxp.get(), DType::i64, dtb.get(), l2.get(), s2.get(), cs.rows,
                              cs.V, ld, p.ignore, nullptr);
    kc::cross_entropy_backward(dt, dx.get(), DType::i64, dtb.get(), s1.get(), dg.get(), 0.5,
                               g1.get(), cs.rows, cs.V, cs.V, p.ignore, nullptr);
    kc::cross_entropy_backward(dt, dxp.get(), DType::i64, dtb.get(), s1.get(), dg.get(), 0.5,
                               g2.get(), cs.rows, cs.V, ld, p.ignore, nullptr);
    EXPECT_EQ(download(l1), download(l2));
    EXPECT_EQ(download(s1), download(s2));
    const Bytes gc = download(g1), gp = download(g2);
    for (int64_t r = 0; r < cs.rows; ++r) {
      EXPECT_EQ(0, std::memcmp(gp.data() + r * ld * es, gc.data() + r * cs.V * es, cs.V * es))
          << "row " << r;
      for (size_t b = (r * ld + cs.V) * es; b < static_cast<size_t>((r + 1) * ld) * es; ++b)
        ASSERT_EQ(gp[b], 0x5A) << "padding of row " << r << " written";
    }
    // The CPU kernel with the same padded rows.
    Bytes lc(cs.rows * as), sc(cs.rows * as), lcp(cs.rows * as), scp(cs.rows * as);
    namespace kp = tilegrad::kernels::cpu;
    kp::cross_entropy_forward(dt, x.data(), DType::i64, t.data(), lc.data(), sc.data(), cs.rows,
                              cs.V, cs.V, p.ignore);
    kp::cross_entropy_forward(dt, xp.data(), DType::i64, t.data(), lcp.data(), scp.data(), cs.rows,
                              cs.V, ld, p.ignore);
    EXPECT_EQ(lc, lcp);
    EXPECT_EQ(sc, scp);
    Bytes gcc(n * es), gcp = sentinel;
    kp::cross_entropy_backward(dt, x.data(), DType::i64, t.data(), sc.data(), gloss.data(), 0.5,
                               gcc.data(), cs.rows, cs.V, cs.V, p.ignore);
    kp::cross_entropy_backward(dt, xp.data(), DType::i64, t.data(), sc.data(), gloss.data(), 0.5,
                               gcp.data(), cs.rows, cs.V, ld, p.ignore);
    for (int64_t r = 0; r < cs.rows; ++r) {
      EXPECT_EQ(0, std::memcmp(gcp.data() + r * ld * es, gcc.data() + r * cs.V * es, cs.V * es));
      for (size_t b = (r * ld + cs.V) * es; b < static_cast<size_t>((r + 1) * ld) * es; ++b)
        ASSERT_EQ(gcp[b], 0x5A);
    }
  }
}

// The forward and backward in one kernel (cross_entropy_forward_backward): losses, lse and glogits
// against the CPU kernels with the tolerances of the two tests above (glogits' also carrying lse's,
// which the GPU computes itself here), for every dtype, both target dtypes and the cases above; it
// runs as one kernel exactly when a row fits in a block's shared memory (float64 rows of 50257 fall
// back to the two kernels); padded rows give the contiguous bits and leave the padding unread and
// unwritten; in place (glogits over the logits) gives the out-of-place bits; a second run the same.
TEST(CudaCrossEntropy, ForwardBackwardMatchesCpu) {
  TG_REQUIRE_GPU();
  namespace kc = tilegrad::kernels::cuda;
  namespace kp = tilegrad::kernels::cpu;
  int device = 0, optin = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
            cudaSuccess);
  std::mt19937_64 rng(8);
  for (DType dt : kFloatDTypes) {
    const DType adt = acc_dtype(dt);
    const size_t es = tilegrad::dtype_size(dt), as = tilegrad::dtype_size(adt);
    for (DType t_dt : kIndexDTypes) {
      for (const Case& cs : kCases) {
        const Problem p = make_problem(rng, cs, false);
        SCOPED_TRACE(describe(dt, t_dt, cs, p.ignore));
        const int64_t ld = cs.V + 13;
        const size_t n = static_cast<size_t>(cs.rows * cs.V),
                     np = static_cast<size_t>(cs.rows * ld);
        std::vector<double> padded(np, std::nan(""));
        for (int64_t r = 0; r < cs.rows; ++r)
          for (int64_t j = 0; j < cs.V; ++j) padded[r * ld + j] = p.x[r * cs.V + j];
        const Bytes x = encode(dt, p.x), xp = encode(dt, padded), t = encode_targets(t_dt, p.t);
        const Bytes gloss = encode(adt, {0.75});
        const double scale = 1.0 / 7.0;
        // The CPU's forward, then its backward from its own lse.
        Bytes loss_cpu(cs.rows * as), lse_cpu(cs.rows * as), gx_cpu(n * es);
        kp::cross_entropy_forward(dt, x.data(), t_dt, t.data(), loss_cpu.data(), lse_cpu.data(),
                                  cs.rows, cs.V, cs.V, p.ignore);
        kp::cross_entropy_backward(dt, x.data(), t_dt, t.data(), lse_cpu.data(), gloss.data(),
                                   scale, gx_cpu.data(), cs.rows, cs.V, cs.V, p.ignore);
        const Bytes sentinel(np * es, 0x5A);
        const DeviceBuffer dx(x.size()), dxp(xp.size()), dtb(t.size()), dg(gloss.size()),
            l1(cs.rows * as), s1(cs.rows * as), g1(n * es), l2(cs.rows * as), s2(cs.rows * as),
            g2(np * es), l3(cs.rows * as), s3(cs.rows * as), inplace(x.size()), g4(n * es);
        dx.upload(x.data());
        dxp.upload(xp.data());
        dtb.upload(t.data());
        dg.upload(gloss.data());
        g2.upload(sentinel.data());
        inplace.upload(x.data());
        const bool fused = kc::cross_entropy_forward_backward(
            dt, dx.get(), t_dt, dtb.get(), l1.get(), s1.get(), dg.get(), scale, g1.get(), cs.rows,
            cs.V, cs.V, p.ignore, nullptr);
        const int64_t row_bytes = (cs.V * static_cast<int64_t>(es) + 15) / 16 * 16;
        EXPECT_EQ(fused, row_bytes + 1024 <= optin);
        kc::cross_entropy_forward_backward(dt, dxp.get(), t_dt, dtb.get(), l2.get(), s2.get(),
                                           dg.get(), scale, g2.get(), cs.rows, cs.V, ld, p.ignore,
                                           nullptr);
        kc::cross_entropy_forward_backward(dt, inplace.get(), t_dt, dtb.get(), l3.get(), s3.get(),
                                           dg.get(), scale, inplace.get(), cs.rows, cs.V, cs.V,
                                           p.ignore, nullptr);
        kc::cross_entropy_forward_backward(dt, dx.get(), t_dt, dtb.get(), l3.get(), s3.get(),
                                           dg.get(), scale, g4.get(), cs.rows, cs.V, cs.V, p.ignore,
                                           nullptr);
        const Bytes loss = download(l1), lse = download(s1), gx = download(g1);
        EXPECT_EQ(download(l2), loss);
        EXPECT_EQ(download(s2), lse);
        EXPECT_EQ(download(l3), loss);
        EXPECT_EQ(download(s3), lse);
        EXPECT_EQ(download(inplace), gx);
        EXPECT_EQ(download(g4), gx);
        const Bytes gp = download(g2);
        for (int64_t r = 0; r < cs.rows; ++r) {
          EXPECT_EQ(0, std::memcmp(gp.data() + r * ld * es, gx.data() + r * cs.V * es, cs.V * es))
              << "row " << r;
          for (size_t q = (r * ld + cs.V) * es; q < static_cast<size_t>((r + 1) * ld) * es; ++q)
            ASSERT_EQ(gp[q], 0x5A) << "padding of row " << r << " written";
        }
        // Against the CPU.
        const std::vector<double> xv = decode(dt, x);
        const std::vector<double> lc = decode(adt, loss_cpu), lg = decode(adt, loss);
        const std::vector<double> sc = decode(adt, lse_cpu), sg = decode(adt, lse);
        const std::vector<double> gc = decode(dt, gx_cpu), gg = decode(dt, gx);
        // glogits come from the GPU's own lse: the bound carries its difference from the CPU's.
        const RowTolerances tol = row_tolerances(dt, cs, p, xv, lc, sc);
        expect_close(lg, lc, tol.loss, "loss");
        expect_close(sg, sc, tol.lse, "lse");
        expect_close(gg, gc, glogits_tolerance(dt, cs, p, 0.75 * scale, xv, sc, tol.lse),
                     "glogits");
      }
    }
  }
}

// Rows with infinite and NaN logits through the fused kernel, which takes the row's max without
// NaN and tests no element for -inf: a row with some -inf logits (their gradients exactly 0), a
// row of -inf (lse -inf, the rest NaN), a NaN logit and a +inf logit (everything NaN), beside an
// ordinary row; the same NaNs and infinities as the CPU, finite values close to it.
TEST(CudaCrossEntropy, ForwardBackwardSpecialValuesMatchCpu) {
  TG_REQUIRE_GPU();
  namespace kc = tilegrad::kernels::cuda;
  namespace kp = tilegrad::kernels::cpu;
  const int64_t rows = 5, V = 1000;
  std::mt19937_64 rng(21);
  std::uniform_real_distribution<double> u(-8.0, 8.0);
  std::vector<double> x(static_cast<size_t>(rows * V));
  for (double& v : x) v = u(rng);
  const std::vector<int64_t> t = {3, 7, 11, 500, 999};
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t j = 100; j < 110; ++j) x[1 * V + j] = -inf;  // row 1: some -inf, not the target
  for (int64_t j = 0; j < V; ++j) x[2 * V + j] = -inf;      // row 2: all -inf
  x[3 * V + 42] = std::nan("");                             // row 3: one NaN
  x[4 * V + 42] = inf;                                      // row 4: one +inf
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(tilegrad::dtype_name(dt));
    const DType adt = acc_dtype(dt);
    const size_t es = tilegrad::dtype_size(dt), as = tilegrad::dtype_size(adt);
    const Bytes xb = encode(dt, x), tb = encode_targets(DType::i64, t);
    const Bytes gloss = encode(adt, {0.5});
    Bytes loss_cpu(rows * as), lse_cpu(rows * as), gx_cpu(x.size() * es);
    kp::cross_entropy_forward(dt, xb.data(), DType::i64, tb.data(), loss_cpu.data(), lse_cpu.data(),
                              rows, V, V, -100);
    kp::cross_entropy_backward(dt, xb.data(), DType::i64, tb.data(), lse_cpu.data(), gloss.data(),
                               0.25, gx_cpu.data(), rows, V, V, -100);
    const DeviceBuffer dx(xb.size()), dt_(tb.size()), dg(gloss.size()), dl(rows * as),
        ds(rows * as), dgx(x.size() * es);
    dx.upload(xb.data());
    dt_.upload(tb.data());
    dg.upload(gloss.data());
    ASSERT_TRUE(kc::cross_entropy_forward_backward(dt, dx.get(), DType::i64, dt_.get(), dl.get(),
                                                   ds.get(), dg.get(), 0.25, dgx.get(), rows, V, V,
                                                   -100, nullptr));
    auto same = [](const std::vector<double>& got, const std::vector<double>& want, double tol,
                   const char* what) {
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(std::isnan(got[i]), std::isnan(want[i])) << what << " " << i;
        if (std::isnan(want[i])) continue;
        ASSERT_EQ(std::isinf(got[i]), std::isinf(want[i])) << what << " " << i;
        if (std::isinf(want[i])) {
          ASSERT_EQ(got[i], want[i]) << what << " " << i;
        } else {
          ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " " << i;
        }
      }
    };
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    same(decode(adt, download(dl)), decode(adt, loss_cpu), tol, "loss");
    same(decode(adt, download(ds)), decode(adt, lse_cpu), tol, "lse");
    const std::vector<double> gx = decode(dt, download(dgx)), gc = decode(dt, gx_cpu);
    same(gx, gc, tol, "glogits");
    for (int64_t j = 100; j < 110; ++j) EXPECT_EQ(gx[1 * V + j], 0.0) << "column " << j;
    EXPECT_TRUE(std::isinf(decode(adt, download(ds))[2]));
    EXPECT_TRUE(std::isnan(gx[3 * V]) && std::isnan(gx[4 * V]));
  }
}

TEST(CudaCrossEntropy, RejectsBadDTypesLikeTheCpu) {
  TG_REQUIRE_GPU();
  const std::pair<DType, DType> bad[] = {{DType::i32, DType::i64}, {DType::f32, DType::f32}};
  for (const auto& [dt, t_dt] : bad) {
    const std::string cpu = error_of([&] {
      tilegrad::kernels::cpu::cross_entropy_forward(dt, nullptr, t_dt, nullptr, nullptr, nullptr, 1,
                                                    1, 1, -100);
    });
    ASSERT_FALSE(cpu.empty());
    EXPECT_EQ(error_of([&] {
                tilegrad::kernels::cuda::cross_entropy_forward(dt, nullptr, t_dt, nullptr, nullptr,
                                                               nullptr, 1, 1, 1, -100, nullptr);
              }),
              cpu);
    const std::string cpu_bwd = error_of([&] {
      tilegrad::kernels::cpu::cross_entropy_backward(dt, nullptr, t_dt, nullptr, nullptr, nullptr,
                                                     1.0, nullptr, 1, 1, 1, -100);
    });
    ASSERT_FALSE(cpu_bwd.empty());
    EXPECT_EQ(error_of([&] {
                tilegrad::kernels::cuda::cross_entropy_backward(dt, nullptr, t_dt, nullptr, nullptr,
                                                                nullptr, 1.0, nullptr, 1, 1, 1,
                                                                -100, nullptr);
              }),
              cpu_bwd);
  }
}

}  // namespace
