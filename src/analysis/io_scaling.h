// Theorem 2 of the FlashAttention paper, numerically: standard attention makes Θ(Nd + N²)
// slow-memory accesses and FlashAttention Θ(N²d²/M), for d ≤ M ≤ Nd. Each row holds the exact
// counts of the IO model (io_model.h) for one (N, M) and their ratios to the two bounds; the ratio
// columns make the scaling visible (doubling N multiplies flash's count by ~4 once N·d ≫ M,
// doubling M divides it by ~2, and standard/(Nd + N²) stays bounded).
#pragma once

#include <cstdint>
#include <vector>

#include "analysis/io_model.h"

namespace tilegrad::analysis {

struct ScalingRow {
  int64_t N = 0;
  int64_t M = 0;
  int64_t standard = 0;  // element accesses (reads + writes), one head
  int64_t flash = 0;
  double standard_over_bound = 0;  // standard / (N d + N²)
  double flash_over_bound = 0;     // flash / (N² d² / M)
  double flash_vs_half_n = 0;      // flash(N, M) / flash(N/2, M); 0 when N/2 is not in the table
  double flash_vs_half_m = 0;      // flash(N, M/2) / flash(N, M); 0 when M/2 is not in the table
};

// Rows for every (N, M) in the given lists (B = H = 1, Nq = Nk = N, no mask). `backward` adds
// the backward pass to both counts. Throws tilegrad::Error for empty lists or sizes < 1.
std::vector<ScalingRow> theorem2_table(int64_t d, const std::vector<int64_t>& Ns,
                                       const std::vector<int64_t>& Ms, AttentionAlgo flash,
                                       bool backward);

}  // namespace tilegrad::analysis
