// Reductions: sum/mean/max over any set of dims against float64 loops; gradients (including ties
// for max) against finite differences; sum_to; errors.
#include <cmath>
#include <limits>

#include "testing.h"

namespace tgtest {
namespace {

// Reference reduction of a contiguous f64 tensor over `dims` (keepdim shape).
std::vector<double> ref_reduce(const Tensor& x, const std::vector<int64_t>& dims, bool is_max) {
  const auto v = x.to_vector<double>();
  Shape keep = x.shape();
  for (int64_t d : dims) keep[d] = 1;
  std::vector<double> out(static_cast<size_t>(numel(keep)),
                          is_max ? -std::numeric_limits<double>::infinity() : 0.0);
  const Strides ks = contiguous_strides(keep);
  std::vector<int64_t> idx(static_cast<size_t>(x.dim()), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t o = 0;
    for (int64_t d = 0; d < x.dim(); ++d) o += (keep[d] == 1 ? 0 : idx[d]) * ks[d];
    out[o] = is_max ? std::max(out[o], v[i]) : out[o] + v[i];
    for (int64_t d = x.dim() - 1; d >= 0; --d) {
      if (++idx[d] < x.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

const std::vector<std::pair<Shape, std::vector<int64_t>>> kCases = {
    {{7}, {0}},       {{3, 5}, {1}},       {{3, 5}, {0}},    {{3, 5}, {0, 1}},
    {{2, 3, 4}, {1}}, {{2, 3, 4}, {0, 2}}, {{2, 1, 4}, {1}}, {{4, 3, 2, 5}, {-1, 1}},
    {{1, 1}, {}},     {{5, 6}, {}},
};

TEST(Reduce, SumMeanMaxValues) {
  for (const auto& [shape, dims] : kCases) {
    const Tensor x = rnd(shape, 21);
    std::vector<int64_t> nd;
    for (int64_t d : dims) nd.push_back(d < 0 ? d + static_cast<int64_t>(shape.size()) : d);
    if (dims.empty())
      for (size_t d = 0; d < shape.size(); ++d) nd.push_back(static_cast<int64_t>(d));
    std::sort(nd.begin(), nd.end());
    const auto rs = ref_reduce(x, nd, false), rm = ref_reduce(x, nd, true);
    int64_t count = 1;
    for (int64_t d : nd) count *= shape[d];
    const auto s = sum(x, dims, true).to_vector<double>();
    const auto m = mean(x, dims).to_vector<double>();
    const auto mx = max(x, dims, false).to_vector<double>();
    for (size_t i = 0; i < rs.size(); ++i) {
      EXPECT_NEAR(s[i], rs[i], 1e-14);
      EXPECT_NEAR(m[i], rs[i] / static_cast<double>(count), 1e-15);
      EXPECT_EQ(mx[i], rm[i]);
    }
  }
}

TEST(Reduce, KeepdimShapes) {
  const Tensor x = rnd({2, 3, 4}, 22);
  EXPECT_EQ(sum(x, {1}, true).shape(), (Shape{2, 1, 4}));
  EXPECT_EQ(sum(x, {1}, false).shape(), (Shape{2, 4}));
  EXPECT_EQ(sum(x).shape(), Shape{});
  EXPECT_EQ(max(x, {0, 2}).shape(), (Shape{3}));
}

TEST(Reduce, LargeSumIsAccurateInFloat32) {
  // 2^22 values of 0.1f: a naive float accumulator drifts far; double accumulation does not.
  const Tensor x = full({1 << 22}, 0.1, {DType::f32});
  EXPECT_NEAR(sum(x).item(), static_cast<double>(0.1f) * (1 << 22), 1.0);
}

TEST(Reduce, GradientsMatchFiniteDifferences) {
  for (const auto& [shape, dims] : kCases) {
    const Tensor x = rnd(shape, 23).set_requires_grad(true);
    SCOPED_TRACE(shape_str(shape));
    expect_gradcheck([&](const std::vector<Tensor>& v) { return sum(v[0], dims); }, {x});
    expect_gradcheck([&](const std::vector<Tensor>& v) { return mean(v[0], dims, true); }, {x});
    expect_gradcheck([&](const std::vector<Tensor>& v) { return max(v[0], dims); }, {x});
  }
  const Tensor xn = noncontiguous(rnd({3, 4, 5}, 24)).set_requires_grad(true);
  expect_gradcheck([](const std::vector<Tensor>& v) { return sum(v[0], {0, 2}); }, {xn});
  expect_gradcheck([](const std::vector<Tensor>& v) { return max(v[0], {1}); }, {xn});
}

TEST(Reduce, MaxSplitsTheGradientAmongTies) {
  const Tensor x = from_vector(std::vector<double>{1, 3, 3, 2, 5, 5, 5, 0}, {2, 4}, {DType::f64})
                       .set_requires_grad(true);
  max(x, {1}).backward(from_vector(std::vector<double>{1, 3}, {2}, {DType::f64}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0.5, 0.5, 0, 1, 1, 1, 0}));
}

TEST(Reduce, SumToUndoesBroadcasting) {
  const Tensor g = rnd({4, 3, 5}, 25);
  const Tensor s = sum_to(g, {3, 1});
  EXPECT_EQ(s.shape(), (Shape{3, 1}));
  const auto ref = ref_reduce(g, {0, 2}, false);
  const auto got = s.to_vector<double>();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-14);
  EXPECT_TRUE(sum_to(g, g.shape()).is_same(g));
  EXPECT_THROW(sum_to(g, {2, 5}), Error);
}

TEST(Reduce, ForwardMode) {
  expect_jvp_matches_vjp([](const std::vector<Tensor>& x) { return sum(x[0], {1}); },
                         {rnd({3, 4}, 26)});
  expect_jvp_matches_vjp([](const std::vector<Tensor>& x) { return max(x[0], {0}); },
                         {rnd({3, 4}, 27)});
}

TEST(Reduce, BadInput) {
  const Tensor x = rnd({2, 3}, 28);
  EXPECT_THROW(sum(x, {2}), Error);
  EXPECT_THROW(sum(x, {1, -1}), Error);  // the same dim twice
  EXPECT_THROW(max(rnd({0, 3}, 1), {0}), Error);
  EXPECT_THROW(sum(arange(3, {DType::i32})), Error);
  try {
    sum(x, {5});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sum"), std::string::npos);
  }
}

}  // namespace
}  // namespace tgtest
