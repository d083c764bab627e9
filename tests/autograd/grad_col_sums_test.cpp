// Column sums that travel with a gradient (autograd/grad_col_sums.h): returned once, only while the
// gradient's values are those they were made from, and only for the width asked.
#include "autograd/grad_col_sums.h"

#include "testing.h"

namespace tgtest {
namespace {

TEST(GradColSums, ReturnedOnceWhileTheValuesHold) {
  const Tensor g = rnd({4, 3, 5}, 1);
  const Tensor s = rnd({5}, 2);
  EXPECT_FALSE(take_col_sums(g, 5).defined()) << "none attached";
  attach_col_sums(g, s);
  const Tensor got = take_col_sums(g, 5);
  ASSERT_TRUE(got.defined());
  EXPECT_TRUE(bitwise_equal(got, s));
  EXPECT_FALSE(take_col_sums(g, 5).defined()) << "taken already";
  // Another width: not returned (and dropped).
  attach_col_sums(g, s);
  EXPECT_FALSE(take_col_sums(g, 3).defined());
  EXPECT_FALSE(take_col_sums(g, 5).defined());
  // An in-place change of the gradient, or of another view of its storage, makes them stale.
  attach_col_sums(g, s);
  g.add_(rnd({4, 3, 5}, 3));
  EXPECT_FALSE(take_col_sums(g, 5).defined());
  attach_col_sums(g, s);
  reshape(g, {60}).mul_(2.0);
  EXPECT_FALSE(take_col_sums(g, 5).defined());
}

}  // namespace
}  // namespace tgtest
