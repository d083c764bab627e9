// concat and split: values, gradients (odd sizes, every dimension position, non-contiguous inputs)
// against finite differences, storage sharing, partially used split outputs, errors, forward mode.
#include <string>

#include "testing.h"

namespace tgtest {
namespace {

// Element (i0, i1, i2) of a rank-3 tensor's row-major values.
double at3(const std::vector<double>& v, const Shape& s, int64_t i0, int64_t i1, int64_t i2) {
  return v[static_cast<size_t>((i0 * s[1] + i1) * s[2] + i2)];
}

// Checks out == concat(xs, d) for rank-3 tensors by walking every output element.
void expect_concat_values(const Tensor& out, const std::vector<Tensor>& xs, int d) {
  std::vector<std::vector<double>> vals;
  for (const Tensor& x : xs) vals.push_back(x.to_vector<double>());
  const auto vo = out.to_vector<double>();
  const Shape& s = out.shape();
  int64_t mismatches = 0;
  for (int64_t i0 = 0; i0 < s[0]; ++i0) {
    for (int64_t i1 = 0; i1 < s[1]; ++i1) {
      for (int64_t i2 = 0; i2 < s[2]; ++i2) {
        int64_t idx[3] = {i0, i1, i2};
        size_t k = 0;
        while (idx[d] >= xs[k].size(d)) idx[d] -= xs[k++].size(d);
        mismatches += at3(vo, s, i0, i1, i2) != at3(vals[k], xs[k].shape(), idx[0], idx[1], idx[2]);
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

// Three rank-3 inputs whose sizes differ (odd, one of them 1) only on dimension d.
std::vector<Tensor> inputs_for(int d, uint64_t seed, bool noncontig = false) {
  const int64_t sizes[3] = {3, 1, 5};
  std::vector<Tensor> xs;
  for (int k = 0; k < 3; ++k) {
    Shape s = {2, 3, 4};
    s[d] = sizes[k];
    Tensor x = rnd(s, seed + k);
    if (noncontig && k != 1) x = noncontiguous(x);
    xs.push_back(x.set_requires_grad(true));
  }
  return xs;
}

TEST(Concat, ValuesOnFirstMiddleAndLastDims) {
  for (int d = 0; d < 3; ++d) {
    SCOPED_TRACE(d);
    const auto xs = inputs_for(d, 10 * d);
    const Tensor out = concat(xs, d);
    Shape expected = {2, 3, 4};
    expected[d] = 9;
    ASSERT_EQ(out.shape(), expected);
    expect_concat_values(out, xs, d);
    // Negative dims count from the end.
    EXPECT_EQ(max_abs_diff(concat(xs, d - 3), out), 0.0);
  }
}

TEST(Concat, GradientsMatchFiniteDifferences) {
  for (int d = 0; d < 3; ++d) {
    for (bool noncontig : {false, true}) {
      SCOPED_TRACE(std::to_string(d) + (noncontig ? " non-contiguous" : ""));
      const auto xs = inputs_for(d, 20 + d, noncontig);
      if (noncontig) {
        ASSERT_FALSE(xs[0].is_contiguous());
      }
      expect_concat_values(concat(xs, d), xs, d);
      expect_gradcheck([&](const std::vector<Tensor>& x) { return concat(x, d); }, xs);
    }
  }
}

TEST(Concat, OnlyInputsThatNeedGradientsGetThem) {
  const Tensor a = rnd({2, 3}, 1).set_requires_grad(true);
  const Tensor b = rnd({2, 2}, 2);
  const Tensor c = rnd({2, 1}, 3).set_requires_grad(true);
  const Tensor w = rnd({2, 6}, 4, DType::f64, 0.5, 1.5);
  sum(mul(concat({a, b, c}, 1), w)).backward();
  EXPECT_FALSE(b.grad().defined());
  EXPECT_EQ(max_abs_diff(a.grad(), w.slice(1, 0, 3)), 0.0);
  EXPECT_EQ(max_abs_diff(c.grad(), w.slice(1, 5, 6)), 0.0);
}

TEST(Concat, SingleInputEmptyPiecesAndIntegers) {
  const Tensor a = rnd({3, 2}, 5);
  const Tensor one = concat({a}, 0);
  EXPECT_FALSE(one.storage() == a.storage());  // always a copy
  EXPECT_EQ(max_abs_diff(one, a), 0.0);
  const Tensor with_empty = concat({rnd({0, 2}, 6), a, rnd({0, 2}, 7)}, 0);
  EXPECT_EQ(max_abs_diff(with_empty, a), 0.0);
  const Tensor i = concat({arange(3, {DType::i64}), arange(2, {DType::i64})}, 0);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 0, 1}));
}

TEST(Concat, Errors) {
  const Tensor a = rnd({2, 3}, 8), b = rnd({4, 3}, 9), c = rnd({2, 3, 1}, 10);
  EXPECT_NE(error_of([] { concat({}, 0); }).find("concat"), std::string::npos);
  const std::string size = error_of([&] { concat({a, b}, 1); });
  EXPECT_NE(size.find("concat"), std::string::npos) << size;
  EXPECT_NE(size.find("[2, 3], [4, 3]"), std::string::npos) << size;
  const std::string rank = error_of([&] { concat({a, c, b}, 0); });
  EXPECT_NE(rank.find("concat"), std::string::npos) << rank;
  EXPECT_NE(rank.find("[2, 3], [2, 3, 1], [4, 3]"), std::string::npos) << rank;
  const std::string dtype = error_of([&] { concat({a, a.to(DType::f32)}, 0); });
  EXPECT_NE(dtype.find("concat"), std::string::npos) << dtype;
  EXPECT_NE(error_of([&] { concat({a, b}, 2); }), "");
  EXPECT_NE(error_of([&] { concat({a, Tensor()}, 0); }).find("concat"), std::string::npos);
  EXPECT_EQ(error_of([&] { concat({a, b}, 0); }), "");
}

TEST(Concat, ForwardModeMatchesReverseMode) {
  for (int d = 0; d < 3; ++d) {
    const auto xs = inputs_for(d, 30 + d);
    std::vector<Tensor> plain;
    for (const Tensor& x : xs) plain.push_back(x.detach());
    expect_jvp_matches_vjp([&](const std::vector<Tensor>& x) { return concat(x, d); }, plain);
  }
  // An input without a tangent contributes zeros to the output's tangent.
  const Tensor a = rnd({2, 2}, 11), b = rnd({2, 3}, 12), va = rnd({2, 2}, 13);
  auto [y, t] = jvp([&](const Tensor& x) { return concat({x, b}, 1); }, a, va);
  EXPECT_EQ(max_abs_diff(t.slice(1, 0, 2), va), 0.0);
  EXPECT_EQ(max_abs(t.slice(1, 2, 5)), 0.0);
}

TEST(Split, PiecesAreViewsWithTheRightValues) {
  const Tensor x = rnd({4, 7, 3}, 14);
  const auto pieces = split(x, {2, 0, 4, 1}, 1);
  ASSERT_EQ(pieces.size(), 4u);
  const int64_t starts[] = {0, 2, 2, 6}, sizes[] = {2, 0, 4, 1};
  for (size_t i = 0; i < pieces.size(); ++i) {
    EXPECT_EQ(pieces[i].shape(), (Shape{4, sizes[i], 3}));
    EXPECT_TRUE(pieces[i].storage() == x.storage()) << i;
    EXPECT_EQ(max_abs_diff(pieces[i], x.slice(1, starts[i], starts[i] + sizes[i])), 0.0) << i;
  }
  // Writing through x shows in the pieces: they alias it.
  x.fill_(2.5);
  EXPECT_EQ(pieces[2].to_vector<double>()[0], 2.5);
  // And concat undoes split.
  const Tensor y = rnd({5, 2, 3}, 15);
  for (int d = 0; d < 3; ++d) {
    const int64_t n = y.size(d);
    EXPECT_EQ(max_abs_diff(concat(split(y, {1, n - 1}, d), d), y), 0.0) << d;
  }
}

TEST(Split, GradientsMatchFiniteDifferences) {
  for (int d = -3; d < 3; ++d) {
    SCOPED_TRACE(d);
    for (bool noncontig : {false, true}) {
      Tensor x = rnd({5, 3, 7}, 16 + static_cast<uint64_t>(d + 3));
      if (noncontig) x = noncontiguous(x);
      x.set_requires_grad(true);
      const int64_t n = x.size(d);
      const std::vector<int64_t> sizes = {1, n - 3, 0, 2};
      expect_gradcheck([&](const std::vector<Tensor>& v) { return split(v[0], sizes, d); }, {x});
    }
  }
}

TEST(Split, OneNodeForAllPiecesAndUnusedPiecesGetZeroGradient) {
  const Tensor x = rnd({3, 8}, 17).set_requires_grad(true);
  const auto pieces = split(x, {3, 2, 3}, 1);
  ASSERT_TRUE(pieces[0].grad_fn() != nullptr);
  EXPECT_EQ(pieces[0].grad_fn(), pieces[1].grad_fn());
  EXPECT_EQ(pieces[0].grad_fn(), pieces[2].grad_fn());
  EXPECT_EQ(pieces[0].grad_fn()->num_outputs(), 3u);
  EXPECT_EQ(pieces[0].grad_fn()->saved_bytes(), 0);

  // The loss reads only the last piece (and part of it twice).
  const Tensor w = rnd({3, 3}, 18, DType::f64, 0.5, 1.5);
  sum(add(mul(pieces[2], w), mul(pieces[2], w))).backward();
  const Tensor g = x.grad();
  ASSERT_TRUE(g.defined());
  EXPECT_EQ(max_abs(g.slice(1, 0, 5)), 0.0);
  EXPECT_EQ(max_abs_diff(g.slice(1, 5, 8), mul(w, 2.0)), 0.0);

  // Two of three pieces used, through different paths.
  const Tensor x2 = rnd({3, 8}, 19).set_requires_grad(true);
  expect_gradcheck(
      [&](const std::vector<Tensor>& v) {
        const auto p = split(v[0], {3, 2, 3}, 1);
        return add(exp(p[0]), mul(p[2], p[2]));
      },
      {x2});
}

TEST(Split, GradientsThatAreSlicesOfOneTensorAreJoinedWithoutACopy) {
  const Tensor x = rnd({4, 2, 6}, 20).set_requires_grad(true);
  const auto pieces = split(x, {1, 2, 3}, 2);
  Node& node = *pieces[0].grad_fn();
  // The pieces' gradients as the slices of one [4, 2, 6] buffer, in order: the join is that buffer.
  const Tensor g = rnd({4, 2, 6}, 21);
  std::vector<Tensor> slices{g.slice(2, 0, 1), g.slice(2, 1, 3), g.slice(2, 3, 6)};
  const Tensor joined = node.apply(slices)[0];
  EXPECT_EQ(joined.storage(), g.storage());
  EXPECT_EQ(joined.shape(), x.shape());
  EXPECT_EQ(max_abs_diff(joined, g), 0.0);
  // Slices in another order, or of a buffer with other strides, are copied into a fresh tensor.
  const Tensor h = rnd({4, 2, 7}, 22);
  std::vector<Tensor> strided{h.slice(2, 0, 1), h.slice(2, 1, 3), h.slice(2, 3, 6)};
  const Tensor copied = node.apply(strided)[0];
  EXPECT_NE(copied.storage(), h.storage());
  EXPECT_EQ(max_abs_diff(copied, h.slice(2, 0, 6)), 0.0);
  std::vector<Tensor> shuffled{g.slice(2, 5, 6), g.slice(2, 0, 2), g.slice(2, 2, 5)};
  const Tensor reordered = node.apply(shuffled)[0];
  EXPECT_NE(reordered.storage(), g.storage());
  EXPECT_EQ(max_abs_diff(reordered.slice(2, 0, 1), g.slice(2, 5, 6)), 0.0);
  EXPECT_EQ(max_abs_diff(reordered.slice(2, 1, 3), g.slice(2, 0, 2)), 0.0);
}

TEST(Split, Errors) {
  const Tensor x = rnd({4, 6}, 20);
  const std::string sum_msg = error_of([&] { split(x, {2, 3}, 1); });
  EXPECT_NE(sum_msg.find("split"), std::string::npos) << sum_msg;
  EXPECT_NE(sum_msg.find("[4, 6]"), std::string::npos) << sum_msg;
  EXPECT_NE(error_of([&] { split(x, {7, -1}, 1); }).find("split"), std::string::npos);
  EXPECT_NE(error_of([&] { split(x, {4}, 2); }), "");
  EXPECT_NE(error_of([&] { split(rnd({}, 1), {1}, 0); }), "");
  EXPECT_EQ(error_of([&] { split(x, {6}, 1); }), "");
}

TEST(Split, ForwardModeMatchesReverseMode) {
  const Tensor x = rnd({4, 5}, 21);
  for (size_t k = 0; k < 3; ++k) {
    expect_jvp_matches_vjp(
        [&](const std::vector<Tensor>& v) {
          return split(v[0], {1, 3, 1}, 1)[k];
        },
        {x});
  }
  const Tensor v = rnd({4, 5}, 22);
  auto [ys, ts] = jvp(
      [](const std::vector<Tensor>& in) {
        return split(in[0], {2, 2}, 0);
      },
      {x}, {v});
  ASSERT_EQ(ts.size(), 2u);
  EXPECT_EQ(max_abs_diff(ts[1], v.slice(0, 2, 4)), 0.0);
}

}  // namespace
}  // namespace tgtest
