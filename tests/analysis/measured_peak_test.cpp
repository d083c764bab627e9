// The measured GEMM peak: a positive, finite rate that the tracker never sees, and bad arguments
// are errors.
#include <cmath>

#include "analysis/measured_peak.h"
#include "testing.h"

namespace tgtest {
namespace {

TEST(MeasuredPeak, PositiveFiniteAndInvisibleToTheTracker) {
  const MemoryStats before = tilegrad::tracker().stats();
  const double f = analysis::measure_gemm_flops(96, 2);
  EXPECT_TRUE(std::isfinite(f));
  EXPECT_GT(f, 1e6);  // any machine does a 96³ product at more than a MFLOP/s
  const MemoryStats after = tilegrad::tracker().stats();
  EXPECT_EQ(after.live_total, before.live_total);
  EXPECT_EQ(after.peak_total, before.peak_total);
}

TEST(MeasuredPeak, RejectsEmptyProblems) {
  EXPECT_NE(error_of([] { analysis::measure_gemm_flops(0); }).find("n and reps"),
            std::string::npos);
  EXPECT_NE(error_of([] { analysis::measure_gemm_flops(8, 0); }).find("n and reps"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
