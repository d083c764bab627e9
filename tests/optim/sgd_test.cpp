// SGD against a float64 reference: plain, momentum, dampening, Nesterov, weight decay on the decay
// group only; float32 and float64; and argument errors.
#include "optim/sgd.h"
#include "optim/optim_testing.h"

namespace tgtest {
namespace {

using optim::SGD;
using optim::SgdOptions;

struct Variant {
  double momentum, dampening;
  bool nesterov;
  double weight_decay;
};

void run(DType dt, const Variant& var, double tol) {
  NamedTensors params = {
      {"w", param({9, 7}, 11, dt)}, {"b", param({7}, 12, dt)}, {"big", param({200, 170}, 13, dt)}};
  SgdOptions o;
  o.lr = 0.05;
  o.momentum = var.momentum;
  o.dampening = var.dampening;
  o.nesterov = var.nesterov;
  o.weight_decay = var.weight_decay;
  SGD opt(params, o);
  std::vector<std::vector<double>> p(3);
  std::vector<RefSGD> ref(3);
  for (size_t k = 0; k < 3; ++k) {
    p[k] = values(params[k].tensor);
    ref[k].lr = o.lr;
    ref[k].momentum = var.momentum;
    ref[k].dampening = var.dampening;
    ref[k].nesterov = var.nesterov;
  }
  const double decay[3] = {var.weight_decay, 0.0, var.weight_decay};
  for (int step = 0; step < 5; ++step) {
    for (size_t k = 0; k < 3; ++k)
      ref[k].step(p[k], give_grad(params[k].tensor, 50 * step + k), decay[k]);
    opt.step();
  }
  for (size_t k = 0; k < 3; ++k) {
    const std::vector<double> got = values(params[k].tensor);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - p[k][i]));
    EXPECT_LE(worst, tol) << params[k].name << " momentum " << var.momentum << " nesterov "
                          << var.nesterov;
  }
  // State: a momentum buffer per parameter exactly when momentum is on.
  EXPECT_EQ(opt.state_tensors().size(), var.momentum != 0 ? 3u : 0u);
}

const Variant kVariants[] = {{0.0, 0.0, false, 0.0},
                             {0.0, 0.0, false, 0.01},
                             {0.9, 0.0, false, 0.01},
                             {0.9, 0.1, false, 0.0},
                             {0.9, 0.0, true, 0.01}};

TEST(SGD, Float32MatchesFloat64Reference) {
  // |θ| stays below ~2 and each of 5 steps rounds it once: 5 · 2 · 2^-24 + slack < 2e-6.
  for (const Variant& v : kVariants) run(DType::f32, v, 2e-6);
}

TEST(SGD, Float64MatchesFloat64Reference) {
  for (const Variant& v : kVariants) run(DType::f64, v, 1e-14);
}

TEST(SGD, RejectsBadArguments) {
  const Tensor p = param({3}, 1);
  EXPECT_NE(error_of([&] {
              SGD({{"p", p}}, {.momentum = 0.0, .nesterov = true});
            }).find("Nesterov"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              SGD({{"p", p}}, {.momentum = -0.5});
            }).find("momentum"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              SGD({{"p", p}}, {.dampening = 2});
            }).find("dampening"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
