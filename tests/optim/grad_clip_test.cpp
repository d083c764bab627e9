// Global gradient norm against a float64 sum of squares; clip_grad_norm_ in place; clipping folded
// into the optimizer's step; non-finite norms; the same bits for any thread count.
#include <omp.h>

#include "kernels/cpu/optim.h"
#include "optim/grad_clip.h"
#include "optim/optim_testing.h"
#include "optim/sgd.h"

namespace tgtest {
namespace {

double ref_norm(const std::vector<std::vector<double>>& grads) {
  double ss = 0;
  for (const auto& g : grads) {
    for (double x : g) ss += x * x;
  }
  return std::sqrt(ss);
}

TEST(GradClip, NormMatchesFloat64SumOfSquares) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::f64}) {
    NamedTensors params = {{"a", param({13, 17}, 1, dt)},
                           {"b", param({5}, 2, dt)},
                           {"c", param({250, 201}, 3, dt)},  // threaded
                           {"no_grad", param({4}, 4, dt)}};
    std::vector<std::vector<double>> grads;
    for (size_t k = 0; k < 3; ++k) grads.push_back(give_grad(params[k].tensor, 10 + k, -3, 3));
    const double want = ref_norm(grads);
    EXPECT_NEAR(optim::global_grad_norm(params), want, 1e-12 * want) << dtype_name(dt);
  }
}

TEST(GradClip, NonContiguousGradient) {
  const Tensor p = param({6, 4}, 1);
  const Tensor g = noncontiguous(rnd({6, 4}, 2, DType::f32));
  ASSERT_FALSE(g.is_contiguous());
  p.set_grad(g);
  EXPECT_NEAR(optim::global_grad_norm({{"p", p}}), ref_norm({values(g)}), 1e-12);
}

TEST(GradClip, ClipsInPlaceAndReturnsTheNormBefore) {
  NamedTensors params = {{"a", param({40, 30}, 1)}, {"b", param({30}, 2)}};
  std::vector<std::vector<double>> g = {give_grad(params[0].tensor, 3),
                                        give_grad(params[1].tensor, 4)};
  const double norm = ref_norm(g);
  ASSERT_GT(norm, 1.0);
  EXPECT_NEAR(optim::clip_grad_norm_(params, 1.0), norm, 1e-12 * norm);
  // Now (almost exactly) max_norm: PyTorch's coefficient max / (norm + 1e-6).
  EXPECT_NEAR(optim::global_grad_norm(params), 1.0 * norm / (norm + 1e-6), 1e-6);
  const std::vector<double> scaled = values(params[0].tensor.grad());
  EXPECT_NEAR(scaled[7], g[0][7] / (norm + 1e-6), 1e-7);
  // Below the threshold nothing changes.
  const std::vector<double> before = values(params[0].tensor.grad());
  optim::clip_grad_norm_(params, 100.0);
  EXPECT_EQ(values(params[0].tensor.grad()), before);
  EXPECT_EQ(optim::clip_coefficient(5.0, 0.0), 1.0);  // max <= 0: off
}

TEST(GradClip, InfAndNanGiveNonFiniteNorms) {
  const Tensor p = param({4}, 1);
  p.set_grad(from_vector(std::vector<double>{1.0, INFINITY, 2.0, 3.0}, {4}));
  EXPECT_TRUE(std::isinf(optim::global_grad_norm({{"p", p}})));
  p.set_grad(from_vector(std::vector<double>{1.0, NAN, 2.0, 3.0}, {4}));
  EXPECT_TRUE(std::isnan(optim::clip_grad_norm_({{"p", p}}, 1.0)));
  EXPECT_EQ(values(p.grad())[0], 1.0);  // left alone
}

TEST(GradClip, FoldedIntoTheStepAsScalingTheGradient) {
  // SGD without momentum: θ - lr · coef · g, with coef from the float64 norm.
  NamedTensors params = {{"a", param({64, 33}, 1, DType::f64)}, {"b", param({33}, 2, DType::f64)}};
  std::vector<std::vector<double>> p = {values(params[0].tensor), values(params[1].tensor)};
  std::vector<std::vector<double>> g = {give_grad(params[0].tensor, 5, -2, 2),
                                        give_grad(params[1].tensor, 6, -2, 2)};
  const double norm = ref_norm(g), coef = 0.5 / (norm + 1e-6);
  optim::SGD opt(params, {.lr = 0.1});
  const optim::StepResult r = opt.step({.max_grad_norm = 0.5});
  EXPECT_NEAR(r.grad_norm, norm, 1e-12 * norm);
  EXPECT_NEAR(r.clip_coef, coef, 1e-15);
  for (size_t k = 0; k < 2; ++k) {
    const std::vector<double> got = values(params[k].tensor);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], p[k][i] - 0.1 * coef * g[k][i], 1e-15);
  }
  // The gradients themselves are not rewritten.
  EXPECT_EQ(values(params[0].tensor.grad()), g[0]);
}

TEST(GradClip, SameBitsForAnyThreadCount) {
  const Tensor x = rnd({1000003}, 7, DType::f32, -1, 1).to(Device::cpu());  // the CPU kernel's
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = kernels::cpu::sum_squares(DType::f32, x.data(), x.numel());
  omp_set_num_threads(2);
  const double two = kernels::cpu::sum_squares(DType::f32, x.data(), x.numel());
  omp_set_num_threads(saved);
  EXPECT_EQ(one, two);
  EXPECT_NEAR(one, ref_norm({values(x)}) * ref_norm({values(x)}), 1e-9 * one);
}

}  // namespace
}  // namespace tgtest
