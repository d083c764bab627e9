// Theorem 2's table (see io_scaling.h).
#include "analysis/io_scaling.h"

#include <map>
#include <utility>

#include "core/error.h"

namespace tilegrad::analysis {

std::vector<ScalingRow> theorem2_table(int64_t d, const std::vector<int64_t>& Ns,
                                       const std::vector<int64_t>& Ms, AttentionAlgo flash,
                                       bool backward) {
  TG_CHECK(!Ns.empty() && !Ms.empty(), "Theorem 2 table: give at least one N and one M");
  TG_CHECK(flash != AttentionAlgo::standard, "Theorem 2 table: the flash algorithm must be flash1 ",
           "or flash2");
  auto accesses = [&](AttentionAlgo a, int64_t N, int64_t M) {
    AttentionDims dims;
    dims.Nq = dims.Nk = N;
    dims.d = d;
    IoOptions o;
    o.M = M;
    const AttentionIo io = attention_io(a, dims, o);
    return io.forward.traffic.elements() + (backward ? io.backward.traffic.elements() : 0);
  };
  std::map<std::pair<int64_t, int64_t>, int64_t> flash_of;
  std::vector<ScalingRow> rows;
  for (int64_t N : Ns) {
    for (int64_t M : Ms) {
      ScalingRow r;
      r.N = N;
      r.M = M;
      r.standard = accesses(AttentionAlgo::standard, N, M);
      r.flash = accesses(flash, N, M);
      const double n = static_cast<double>(N), dd = static_cast<double>(d);
      r.standard_over_bound = static_cast<double>(r.standard) / (n * dd + n * n);
      r.flash_over_bound =
          static_cast<double>(r.flash) / (n * n * dd * dd / static_cast<double>(M));
      flash_of[{N, M}] = r.flash;
      rows.push_back(r);
    }
  }
  for (ScalingRow& r : rows) {
    if (r.N % 2 == 0) {
      auto it = flash_of.find({r.N / 2, r.M});
      if (it != flash_of.end()) r.flash_vs_half_n = static_cast<double>(r.flash) / it->second;
    }
    if (r.M % 2 == 0) {
      auto it = flash_of.find({r.N, r.M / 2});
      if (it != flash_of.end()) r.flash_vs_half_m = static_cast<double>(it->second) / r.flash;
    }
  }
  return rows;
}

}  // namespace tilegrad::analysis
