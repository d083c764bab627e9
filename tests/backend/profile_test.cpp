// The device profile's table (backend/profile.h): rows longest first, per-step figures and shares.
#include "backend/profile.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tilegrad {
namespace {

TEST(Profile, TableSortsByTimeAndDividesBySteps) {
  const std::vector<ProfileRow> rows = {{"activation", "add", "binary:add", 6, 0.003},
                                        {"gradient", "matmul", "gemm:8x8x8 NN", 4, 0.009},
                                        {"activation", "", "adamw_update", 2, 0.0}};
  const std::string t = format_profile(rows, 2);
  const size_t gemm = t.find("gemm:8x8x8 NN"), add = t.find("binary:add"),
               adamw = t.find("adamw_update");
  ASSERT_NE(gemm, std::string::npos);
  ASSERT_NE(add, std::string::npos);
  ASSERT_NE(adamw, std::string::npos);
  EXPECT_LT(gemm, add);
  EXPECT_LT(add, adamw);
  // Per step: 2 calls and 4.5 ms of the GEMM, 75% of the 6 ms total; the op-less row shows "-".
  EXPECT_NE(t.find("4.500  75.0%"), std::string::npos) << t;
  EXPECT_NE(t.find("1.500  25.0%"), std::string::npos) << t;
  EXPECT_NE(t.find("6.000"), std::string::npos) << t;
  EXPECT_NE(t.find(" -  "), std::string::npos) << t;
}

TEST(Profile, EmptyProfileHasOnlyHeaderAndTotal) {
  const std::string t = format_profile({}, 3);
  EXPECT_NE(t.find("category"), std::string::npos);
  EXPECT_NE(t.find("0.000"), std::string::npos);
}

}  // namespace
}  // namespace tilegrad
