// Warmup + cosine schedule against nanoGPT's get_lr, evaluated by hand.
#include "optim/lr_schedule.h"
#include "testing.h"

namespace tgtest {
namespace {

using optim::WarmupCosineSchedule;

TEST(WarmupCosine, MatchesNanoGptByHand) {
  // learning_rate 6e-4, min_lr 6e-5, warmup_iters 10, lr_decay_iters 110.
  const WarmupCosineSchedule s(
      {.max_lr = 6e-4, .min_lr = 6e-5, .warmup_iters = 10, .decay_iters = 110});
  // Warmup: 6e-4 · (it + 1) / 11.
  EXPECT_DOUBLE_EQ(s(0), 5.454545454545454e-05);
  EXPECT_DOUBLE_EQ(s(4), 2.7272727272727274e-04);
  EXPECT_DOUBLE_EQ(s(9), 5.454545454545455e-04);
  // it = 10: ratio 0, coeff 1: the peak.
  EXPECT_DOUBLE_EQ(s(10), 6e-4);
  // it = 35: ratio 1/4, coeff 0.5 (1 + √2/2) = 0.8535533905932737; 6e-5 + coeff · 5.4e-4.
  EXPECT_NEAR(s(35), 5.209188309203678e-04, 1e-18);
  // it = 60: ratio 1/2, coeff 1/2: 6e-5 + 2.7e-4.
  EXPECT_NEAR(s(60), 3.3e-4, 1e-18);
  // it = 85: ratio 3/4, coeff 0.5 (1 - √2/2) = 0.14644660940672624.
  EXPECT_NEAR(s(85), 1.390811690796322e-04, 1e-18);
  // The end and beyond: min_lr.
  EXPECT_NEAR(s(110), 6e-5, 1e-20);
  EXPECT_DOUBLE_EQ(s(111), 6e-5);
  EXPECT_DOUBLE_EQ(s(1000000), 6e-5);
}

TEST(WarmupCosine, ShakespeareCharConfig) {
  // nanoGPT's train_shakespeare_char: 1e-3, min 1e-4, warmup 100, decay 5000.
  const WarmupCosineSchedule s(
      {.max_lr = 1e-3, .min_lr = 1e-4, .warmup_iters = 100, .decay_iters = 5000});
  EXPECT_DOUBLE_EQ(s(0), 1e-3 / 101);
  EXPECT_DOUBLE_EQ(s(99), 1e-3 * 100 / 101);
  EXPECT_DOUBLE_EQ(s(100), 1e-3);
  EXPECT_NEAR(s(2550), 5.5e-4, 1e-18);  // ratio 1/2
  EXPECT_NEAR(s(5000), 1e-4, 1e-18);
  // Monotone: up through warmup, down after.
  for (int64_t it = 1; it < 100; ++it) EXPECT_GT(s(it), s(it - 1));
  for (int64_t it = 101; it <= 5000; ++it) EXPECT_LE(s(it), s(it - 1));
}

TEST(WarmupCosine, ConstantWhenDecayIsOff) {
  const WarmupCosineSchedule s(
      {.max_lr = 3e-4, .min_lr = 0, .warmup_iters = 10, .decay_iters = 20, .decay = false});
  EXPECT_EQ(s(0), 3e-4);
  EXPECT_EQ(s(15), 3e-4);
  EXPECT_EQ(s(100), 3e-4);
}

TEST(WarmupCosine, ZeroWarmupStartsAtThePeak) {
  const WarmupCosineSchedule s({.max_lr = 1.0, .min_lr = 0.0, .warmup_iters = 0, .decay_iters = 4});
  EXPECT_DOUBLE_EQ(s(0), 1.0);
  EXPECT_NEAR(s(2), 0.5, 1e-16);
  EXPECT_NEAR(s(4), 0.0, 1e-16);
}

TEST(WarmupCosine, RejectsBadConfigs) {
  EXPECT_NE(error_of([] {
              WarmupCosineSchedule({.warmup_iters = 10, .decay_iters = 10});
            }).find("decay_iters"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              WarmupCosineSchedule({.max_lr = 1e-4, .min_lr = 1e-3});
            }).find("min_lr <= max_lr"),
            std::string::npos);
  const WarmupCosineSchedule s({});
  EXPECT_NE(error_of([&] { s(-1); }).find("negative"), std::string::npos);
}

}  // namespace
}  // namespace tgtest
