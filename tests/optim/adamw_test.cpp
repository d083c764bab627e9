// AdamW against a float64 reference (tests/optim/optim_testing.h): float32 and float64 parameters,
// with the no-decay group (dim < 2), a parameter without a gradient at one step, a learning rate
// that changes every step, a tensor large enough for the threaded path; and argument errors.
#include "optim/adamw.h"
#include "optim/optim_testing.h"

namespace tgtest {
namespace {

using optim::AdamW;
using optim::AdamWOptions;

struct Case {
  DType dt;
  double tol;  // absolute, on values of magnitude <= ~1
};

void run_against_reference(const Case& c, double weight_decay) {
  // w and big decay (dim 2), b does not (dim 1). big has > 32768 elements: threads split it.
  NamedTensors params = {{"h.0.w", param({17, 33}, 1, c.dt)},
                         {"h.0.b", param({33}, 2, c.dt)},
                         {"big", param({300, 130}, 3, c.dt)}};
  AdamWOptions o;
  o.lr = 1e-2;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weight_decay = weight_decay;
  AdamW opt(params, o);
  ASSERT_EQ(opt.groups().size(), 2u);
  EXPECT_EQ(opt.groups()[0].params.size(), 2u);  // w, big
  EXPECT_EQ(opt.groups()[1].params[0].name, "h.0.b");

  std::vector<std::vector<double>> p(3);
  std::vector<RefAdamW> ref(3);
  for (size_t k = 0; k < 3; ++k) {
    p[k] = values(params[k].tensor);
    ref[k].beta1 = o.beta1;
    ref[k].beta2 = o.beta2;
    ref[k].eps = o.eps;
  }
  const double decay[3] = {weight_decay, 0.0, weight_decay};
  for (int step = 0; step < 6; ++step) {
    const double lr = 1e-2 * (1.0 + 0.25 * step);
    opt.set_lr(lr);
    for (size_t k = 0; k < 3; ++k) {
      if (step == 3 && k == 1) {  // no gradient for b at this step: b and its state stay put
        params[k].tensor.set_grad(Tensor());
        continue;
      }
      const std::vector<double> g = give_grad(params[k].tensor, 100 * step + k);
      ref[k].lr = lr;
      ref[k].step(p[k], g, decay[k]);
    }
    const optim::StepResult r = opt.step();
    EXPECT_FALSE(r.skipped);
    EXPECT_EQ(r.params_updated, step == 3 ? 2 : 3);
  }
  EXPECT_EQ(opt.step_count(), 6);
  EXPECT_EQ(opt.state_scalars()["param_steps"]["h.0.b"], 5);
  for (size_t k = 0; k < 3; ++k) {
    const std::vector<double> got = values(params[k].tensor);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - p[k][i]));
    EXPECT_LE(worst, c.tol) << params[k].name << " " << dtype_name(c.dt);
    // The moments too, as the reference holds them.
    const NamedTensors st = opt.state_tensors();
    const std::vector<double> m = values(*find_tensor(st, "exp_avg/" + params[k].name));
    const std::vector<double> v = values(*find_tensor(st, "exp_avg_sq/" + params[k].name));
    for (size_t i = 0; i < m.size(); ++i) {
      ASSERT_NEAR(m[i], ref[k].m[i], c.tol) << params[k].name << " m " << i;
      ASSERT_NEAR(v[i], ref[k].v[i], c.tol) << params[k].name << " v " << i;
    }
  }
}

TEST(AdamW, Float32MatchesFloat64Reference) {
  // Six float32 steps: each rounds θ (|θ| <= 1.1) to 2^-24 relative and the update (<= 3.5e-2)
  // to a few ulp, so 6 · 2^-24 · 1.1 + slack < 1e-6. Decaying the bias by mistake would be off
  // by lr·λ·|θ| ~ 1e-3.
  run_against_reference({DType::f32, 1e-6}, 0.1);
}

TEST(AdamW, Float32WithoutWeightDecay) {
  run_against_reference({DType::f32, 1e-6}, 0.0);
}

TEST(AdamW, Float64MatchesFloat64Reference) {
  run_against_reference({DType::f64, 1e-14}, 0.1);
}

TEST(AdamW, ExplicitGroupsAndPredicate) {
  // A custom predicate: decay only names ending in ".weight" (embeddings included), whatever rank.
  NamedTensors params = {{"wte.weight", param({5, 4}, 1)},
                         {"ln_f.weight", param({4}, 2)},
                         {"ln_f.bias", param({4}, 3)}};
  auto groups = optim::weight_decay_groups(
      params, 0.5, [](const NamedTensor& p) { return p.name.ends_with(".weight"); });
  ASSERT_EQ(groups[0].params.size(), 2u);
  ASSERT_EQ(groups[1].params.size(), 1u);
  AdamW opt(groups, {.lr = 0.1, .weight_decay = 0.0});  // options' λ is ignored for explicit groups
  // With a zero gradient m = v = 0 and the Adam term vanishes: only the decay moves θ.
  const std::vector<double> before = values(params[1].tensor), bias = values(params[2].tensor);
  for (const NamedTensor& p : params) p.tensor.set_grad(zeros_like(p.tensor));
  opt.step();
  const std::vector<double> after = values(params[1].tensor);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_NEAR(after[i], before[i] * (1 - 0.1 * 0.5), 1e-7);
  }
  EXPECT_EQ(values(params[2].tensor), bias);
}

TEST(AdamW, RejectsBadArguments) {
  const Tensor p = param({3}, 1);
  EXPECT_NE(error_of([&] { AdamW({{"p", p}}, {.beta1 = 1.0}); }).find("betas"), std::string::npos);
  EXPECT_NE(error_of([&] {
              AdamW({{"p", p}}, {.lr = -1});
            }).find("learning rate"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              AdamW({{"p", p}, {"p", param({2}, 2)}});
            }).find("appears twice"),
            std::string::npos);
  // A tied weight listed twice would be updated twice.
  EXPECT_NE(error_of([&] {
              AdamW({{"wte", p}, {"lm_head", p}});
            }).find("shares its storage"),
            std::string::npos);
  const Tensor ints = zeros({3}, {DType::i64});
  EXPECT_NE(error_of([&] {
              AdamW({{"i", ints}});
            }).find("must be float tensors"),
            std::string::npos);
  const Tensor strided = param({4, 6}, 3).t();
  EXPECT_NE(error_of([&] {
              AdamW({{"s", strided.detach()}});
            }).find("not contiguous"),
            std::string::npos);
  AdamW opt({{"p", p}});
  EXPECT_NE(error_of([&] { opt.step({.accumulation_steps = 0}); }).find("accumulation_steps"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
