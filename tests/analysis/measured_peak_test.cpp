// The measured GEMM peak: a positive, finite rate that leaves no memory behind, and bad arguments
// are errors.
#include <cmath>

#include "analysis/measured_peak.h"
#include "testing.h"

namespace tgtest {
namespace {

TEST(MeasuredPeak, PositiveFiniteAndLeavesNothingLive) {
  const int64_t live = tilegrad::tracker().live_total();
  const double f = analysis::measure_gemm_flops(DType::f32, 96, 2);
  EXPECT_TRUE(std::isfinite(f));
  EXPECT_GT(f, 1e6);  // any machine does a 96³ product at more than a MFLOP/s
  EXPECT_EQ(tilegrad::tracker().live_total(), live);
}

TEST(MeasuredPeak, RejectsEmptyProblems) {
  EXPECT_NE(error_of([] { analysis::measure_gemm_flops(DType::f32, 0); }).find("n and reps"),
            std::string::npos);
  EXPECT_NE(error_of([] { analysis::measure_gemm_flops(DType::f32, 8, 0); }).find("n and reps"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
