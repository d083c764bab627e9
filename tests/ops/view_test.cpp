// Views share storage and version counters; their gradients map back correctly; contiguous()
// copies only when needed.
#include "testing.h"

namespace tgtest {
namespace {

TEST(View, ViewsShareStorageAndCopiesDoNot) {
  const Tensor x = rnd({4, 6}, 31);
  EXPECT_EQ(x.reshape({6, 4}).storage(), x.storage());
  EXPECT_EQ(x.transpose(0, 1).storage(), x.storage());
  EXPECT_EQ(x.permute({1, 0}).storage(), x.storage());
  EXPECT_EQ(x.slice(1, 1, 5, 2).storage(), x.storage());
  EXPECT_EQ(x.unsqueeze(0).expand({3, 4, 6}).storage(), x.storage());
  EXPECT_EQ(x.unsqueeze(1).squeeze(1).storage(), x.storage());
  EXPECT_TRUE(x.contiguous().is_same(x));  // no copy when already contiguous
  const Tensor t = x.t();
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_NE(t.contiguous().storage(), x.storage());
  EXPECT_TRUE(t.contiguous().is_contiguous());
  EXPECT_NE(x.clone().storage(), x.storage());
}

TEST(View, ValuesFollowTheLayout) {
  const Tensor x = arange(24, {DType::f64}).reshape({2, 3, 4});
  EXPECT_EQ(x.transpose(0, 2).contiguous().to_vector<double>()[1],
            12.0);  // element [0,0,1] = x[1,0,0]
  EXPECT_EQ(x.slice(2, 1, 4, 2).to_vector<double>(),
            (std::vector<double>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}));
  EXPECT_EQ(x.slice(1, -1, 100).to_vector<double>(),
            (std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23}));
  EXPECT_EQ(x.permute({2, 0, 1}).shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(x.permute({2, 0, 1}).to_vector<double>()[3], 12.0);
  EXPECT_EQ(x.reshape({-1, 6}).shape(), (Shape{4, 6}));
  // Reshape of a non-contiguous view copies, and the values keep row-major order.
  EXPECT_EQ(x.transpose(1, 2).reshape({2, 12}).to_vector<double>()[1], 4.0);
}

TEST(View, WritesThroughAViewAreSeenByTheBase) {
  const Tensor x = zeros({3, 4}, {DType::f64});
  x.slice(0, 1, 2).fill_(7.0);
  EXPECT_EQ(x.to_vector<double>()[5], 7.0);
  EXPECT_EQ(x.to_vector<double>()[0], 0.0);
}

TEST(View, GradientsMatchFiniteDifferences) {
  const Tensor x = rnd({3, 4, 5}, 32).set_requires_grad(true);
  using F = std::function<Tensor(const std::vector<Tensor>&)>;
  const F fs[] = {
      [](const auto& v) {
        return v[0].reshape({5, 12});
      },
      [](const auto& v) { return v[0].transpose(0, 2); },
      [](const auto& v) {
        return v[0].permute({1, 2, 0});
      },
      [](const auto& v) { return v[0].slice(1, 1, 4, 2); },
      [](const auto& v) { return v[0].slice(2, -3, 5); },
      [](const auto& v) {
        return v[0].slice(0, 1, 2).expand({6, 4, 5});
      },
      [](const auto& v) {
        return v[0].unsqueeze(1).expand({3, 2, 4, 5});
      },
      [](const auto& v) {
        return v[0].transpose(1, 2).reshape({3, 20});
      },
      [](const auto& v) { return v[0].t().contiguous(); },
      [](const auto& v) { return v[0].slice(0, 0, 1).squeeze(0); },
      [](const auto& v) { return v[0].to(DType::f32).to(DType::f64); },
  };
  for (size_t i = 0; i < std::size(fs); ++i) {
    SCOPED_TRACE(i);
    GradCheckOptions o;
    if (i == std::size(fs) - 1) {  // float32 round trip: the step must be far above f32 resolution
      o.eps = 1e-3;
      o.atol = 1e-3;
    }
    expect_gradcheck(fs[i], {x}, o);
  }
}

TEST(View, ForwardMode) {
  expect_jvp_matches_vjp([](const auto& v) { return v[0].transpose(0, 1).slice(0, 1, 3); },
                         {rnd({3, 4}, 33)});
  expect_jvp_matches_vjp(
      [](const auto& v) {
        return v[0].unsqueeze(0).expand({2, 3, 4});
      },
      {rnd({3, 4}, 34)});
}

TEST(View, BadInputThrows) {
  const Tensor x = rnd({3, 4}, 35);
  EXPECT_THROW(x.reshape({5, 3}), Error);
  EXPECT_THROW(x.reshape({-1, -1}), Error);
  EXPECT_THROW(x.transpose(0, 2), Error);
  EXPECT_THROW(x.permute({0, 0}), Error);
  EXPECT_THROW(x.permute({0}), Error);
  EXPECT_THROW(x.slice(0, 0, 2, 0), Error);
  EXPECT_THROW(x.expand({3, 5}), Error);
  EXPECT_THROW(x.squeeze(0), Error);
  try {
    x.expand({2, 5});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expand: cannot expand [3, 4] to [2, 5]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tgtest

namespace tgtest {
namespace {

TEST(View, ReshapeIsAViewWheneverTheLayoutAllowsIt) {
  const Tensor x = rnd({4, 6}, 36);
  const Tensor t = x.t();  // [6, 4], strides [1, 6]
  MemoryScope scope;
  const Tensor a = t.reshape({6, 2, 2});  // splits the strided last dim: still a view
  const Tensor b = t.unsqueeze(0).unsqueeze(3);
  const Tensor c = x.slice(1, 0, 6, 2).reshape({4, 3, 1});
  EXPECT_EQ(scope.delta().live_total, 0);
  EXPECT_EQ(a.storage(), x.storage());
  EXPECT_EQ(a.to_vector<double>(), t.contiguous().reshape({6, 2, 2}).to_vector<double>());
  EXPECT_EQ(b.shape(), (Shape{1, 6, 4, 1}));
  EXPECT_EQ(c.to_vector<double>(), x.slice(1, 0, 6, 2).contiguous().to_vector<double>());
  const Tensor d = t.reshape({24});  // needs a copy: the columns are not one run
  EXPECT_EQ(scope.delta().live_total, 24 * 8);
  EXPECT_EQ(d.to_vector<double>(), t.contiguous().to_vector<double>());
}

}  // namespace
}  // namespace tgtest
