// Theorem 2 of the FlashAttention paper, numerically: the ratios of the IO model's counts behave as
// the theorem says, within bounds derived from the counts' closed forms.
//
// For Algorithm 1's forward with N = Nq = Nk, B_c dividing N and the initialisation counted,
//   flash(N, M) = a + T·b,  a = 3Nd + 2N,  b = 3Nd + 4N,  T = T_c = N/B_c = 4Nd/M,
// so flash(2N)/flash(N) = (2a + 4Tb)/(a + Tb) = 4 − 2a/(a + Tb) ∈ [4 − 2/T, 4] (a ≤ b), and
// halving T (doubling M) gives flash(M)/flash(2M) = 2 − a/(a + Tb/2) ∈ [2 − 2/T, 2]; and
// flash/(N²d²/M) = aM/(N²d²) + 4b/(Nd) = 12 + 16/d + (3d + 2)M/(N d²) ∈ [12 + 16/d, 12 + 16/d +
// 4M/(Nd)]. Standard: 4N² + 4Nd when a row fits in M, 5N² + 4Nd when it does not, so
// standard/(Nd + N²) ∈ [4, 5].
#include <gtest/gtest.h>

#include "analysis/io_scaling.h"

namespace {

using namespace tilegrad::analysis;

TEST(Theorem2, RatiosBehaveAsTheTheoremSays) {
  const int64_t d = 64;
  // M = 4d·2^k so that B_c = M/4d divides every N; d <= M <= Nd throughout.
  const std::vector<int64_t> Ns = {2048, 4096, 8192, 16384};
  const std::vector<int64_t> Ms = {8192, 16384, 32768};
  const std::vector<ScalingRow> rows = theorem2_table(d, Ns, Ms, AttentionAlgo::flash1, false);
  ASSERT_EQ(rows.size(), Ns.size() * Ms.size());
  for (const ScalingRow& r : rows) {
    SCOPED_TRACE("N = " + std::to_string(r.N) + ", M = " + std::to_string(r.M));
    const double T = 4.0 * static_cast<double>(r.N * d) / static_cast<double>(r.M);
    EXPECT_GE(r.standard_over_bound, 4.0);
    EXPECT_LE(r.standard_over_bound, 5.0);
    EXPECT_GE(r.flash_over_bound, 12.0 + 16.0 / d);
    EXPECT_LE(r.flash_over_bound,
              12.0 + 16.0 / d + 4.0 * static_cast<double>(r.M) / static_cast<double>(r.N * d));
    if (r.flash_vs_half_n > 0) {  // doubling N: the T of the smaller N is T/2
      EXPECT_LE(r.flash_vs_half_n, 4.0);
      EXPECT_GE(r.flash_vs_half_n, 4.0 - 2.0 / (T / 2));
    }
    if (r.flash_vs_half_m > 0) {  // doubling M: the T of the smaller M is 2T
      EXPECT_LE(r.flash_vs_half_m, 2.0);
      EXPECT_GE(r.flash_vs_half_m, 2.0 - 2.0 / (2 * T));
    }
  }
  // The largest N: within 1% of the asymptotic factors.
  const ScalingRow& last = rows.back();
  EXPECT_NEAR(last.flash_vs_half_n, 4.0, 0.04);
  EXPECT_NEAR(last.flash_vs_half_m, 2.0, 0.02);
}

// Standard attention's count does not depend on M while a row fits; flash's falls as M grows.
TEST(Theorem2, OnlyFlashDependsOnM) {
  const std::vector<ScalingRow> rows =
      theorem2_table(64, {4096}, {8192, 16384, 32768}, AttentionAlgo::flash1, true);
  EXPECT_EQ(rows[0].standard, rows[2].standard);
  EXPECT_GT(rows[0].flash, rows[1].flash);
  EXPECT_GT(rows[1].flash, rows[2].flash);
  // Forward + backward of flash stays below standard once N·d >> M.
  EXPECT_LT(rows[2].flash, rows[2].standard);
}

}  // namespace
