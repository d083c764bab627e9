// Mixed precision: float32 master weights keep updates a 16-bit parameter would round away; a
// bfloat16 run's masters equal a float32 run's parameters bit for bit; where the bytes go by
// category; float16 dynamic loss scaling (skip and back off on inf/NaN, grow after an interval,
// rescue gradients that underflow float16).
#include "optim/adamw.h"
#include "optim/optim_testing.h"
#include "optim/sgd.h"

namespace tgtest {
namespace {

using optim::AdamW;
using optim::SGD;

Tensor master_of(const optim::Optimizer& opt, const std::string& name) {
  const NamedTensors st = opt.state_tensors();
  const Tensor* m = find_tensor(st, "master/" + name);
  EXPECT_NE(m, nullptr) << name;
  return m ? *m : Tensor();
}

TEST(MixedPrecision, MasterKeepsUpdatesBelowTheBfloat16Spacing) {
  // bfloat16 has 8 significant bits: just below 1.0 the spacing is 2^-8, so 1 - 1e-3 (less than
  // half a spacing away) rounds straight back to 1.
  ASSERT_EQ(static_cast<float>(bfloat16(1.0f - 1e-3f)), 1.0f);
  const Tensor p = ones({64}, {DType::bf16});
  p.set_requires_grad();
  SGD opt({{"p", p}}, {.lr = 1e-3});
  float expected = 1.0f;
  for (int step = 0; step < 10; ++step) {
    p.set_grad(ones({64}, {DType::bf16}));
    opt.step();
    expected -= 1e-3f * 1.0f;  // the update in float32, as the master sees it
  }
  const Tensor master = master_of(opt, "p");
  EXPECT_EQ(master.dtype(), DType::f32);
  EXPECT_EQ(values(master)[0], static_cast<double>(expected));
  EXPECT_NEAR(values(master)[0], 0.99, 1e-6);
  // The parameter is the master rounded to nearest: 0.99 · 256 = 253.44 -> 253/256.
  EXPECT_TRUE(bitwise_equal(p, master.to(DType::bf16)));
  EXPECT_EQ(values(p)[0], 0.98828125);
}

TEST(MixedPrecision, Bfloat16MastersEqualAFloat32Run) {
  // Values and gradients that bfloat16 holds exactly: the float32 run and the bfloat16 run's
  // masters see the same numbers and do the same float32 arithmetic.
  const Tensor init = rnd({37, 29}, 1, DType::bf16);
  const Tensor p16 = init.clone(), p32 = init.to(DType::f32);
  p16.set_requires_grad();
  p32.set_requires_grad();
  AdamW a16({{"w", p16}}, {.lr = 3e-3, .weight_decay = 0.1});
  AdamW a32({{"w", p32}}, {.lr = 3e-3, .weight_decay = 0.1});
  for (int step = 0; step < 5; ++step) {
    const Tensor g = rnd({37, 29}, 100 + step, DType::bf16, -0.5, 0.5);
    p16.set_grad(g);
    p32.set_grad(g.to(DType::f32));
    a16.step();
    a32.step();
  }
  EXPECT_TRUE(bitwise_equal(master_of(a16, "w"), p32));
  EXPECT_TRUE(bitwise_equal(p16, p32.to(DType::bf16)));
  EXPECT_GT(max_abs_diff(p32, init.to(DType::f32)), 1e-3);  // it did move
}

TEST(MixedPrecision, OptimizerStateBytesByCategory) {
  const int64_t n = 37 * 29 + 29;
  struct Case {
    DType dt;
    bool adam;
    double momentum;
    int64_t bytes_per_param;  // of optimizer state
  };
  // AdamW: m, v (4 + 4) plus a float32 master for 16-bit parameters (+4): ZeRO's 12 bytes.
  // SGD: the momentum buffer (4) when momentum is on, plus the master for 16-bit parameters.
  // float64 parameters keep float64 state.
  const Case cases[] = {{DType::f32, true, 0, 8},    {DType::bf16, true, 0, 12},
                        {DType::f16, true, 0, 12},   {DType::f64, true, 0, 16},
                        {DType::bf16, false, 0, 4},  {DType::f32, false, 0.9, 4},
                        {DType::bf16, false, 0.9, 8}};
  for (const Case& c : cases) {
    const NamedTensors params = {{"w", param({37, 29}, 1, c.dt)}, {"b", param({29}, 2, c.dt)}};
    MemoryScope scope;
    std::unique_ptr<optim::Optimizer> opt;
    if (c.adam) {
      opt = std::make_unique<AdamW>(params);
    } else {
      opt = std::make_unique<SGD>(params, optim::SgdOptions{.momentum = c.momentum});
    }
    const MemoryStats d = scope.delta();
    EXPECT_EQ(d.live_of(Category::optimizer_state), c.bytes_per_param * n)
        << dtype_name(c.dt) << (c.adam ? " AdamW" : " SGD");
    EXPECT_EQ(d.live_of(Category::parameter), 0);
    EXPECT_EQ(d.live_total, c.bytes_per_param * n);
    EXPECT_EQ(opt->state_bytes(), c.bytes_per_param * n);
    // A step allocates nothing that outlives it.
    for (const NamedTensor& p : params) p.tensor.set_grad(rnd(p.tensor.shape(), 3, c.dt));
    const int64_t before = scope.delta().live_total;
    opt->step();
    EXPECT_EQ(scope.delta().live_total, before);
  }
}

TEST(MixedPrecision, Float16InfSkipsTheStepAndHalvesTheScale) {
  const Tensor p = param({300, 7}, 1, DType::f16);
  AdamW opt({{"p", p}},
            {.lr = 1e-2,
             .weight_decay = 0.0,
             .loss_scaling = {.enabled = true, .init_scale = 1024.0, .growth_interval = 3}});
  EXPECT_EQ(opt.loss_scale(), 1024.0);
  const Tensor p_before = p.clone(), master_before = master_of(opt, "p").clone();

  for (const double bad : {INFINITY, NAN}) {
    std::vector<double> g = values(rnd({300, 7}, 2, DType::f64, -1, 1));
    g[123] = bad;
    const double scale = opt.loss_scale();
    p.set_grad(from_vector(g, {300, 7}, {DType::f16}));
    const optim::StepResult r = opt.step();
    EXPECT_TRUE(r.skipped);
    EXPECT_FALSE(std::isfinite(r.grad_norm));
    EXPECT_EQ(opt.loss_scale(), scale / 2);
    EXPECT_EQ(r.loss_scale, scale / 2);
    EXPECT_TRUE(bitwise_equal(p, p_before));
    EXPECT_TRUE(bitwise_equal(master_of(opt, "p"), master_before));
    EXPECT_EQ(max_abs(*find_tensor(opt.state_tensors(), "exp_avg/p")), 0.0);
  }
  EXPECT_EQ(opt.step_count(), 0);
  EXPECT_EQ(opt.skipped_steps(), 2);
  EXPECT_EQ(opt.loss_scale(), 256.0);

  // Good steps: the gradient is divided by the scale inside the update. Reference: AdamW on the
  // unscaled float16 gradient values, in float64.
  std::vector<double> ref_p = values(master_before);
  RefAdamW ref;
  ref.lr = 1e-2;
  for (int step = 0; step < 4; ++step) {
    const double scale = opt.loss_scale();
    const Tensor g16 = mul(rnd({300, 7}, 10 + step, DType::f32, -1e-3, 1e-3), scale).to(DType::f16);
    std::vector<double> true_g = values(g16);
    for (double& x : true_g) x /= scale;
    ref.step(ref_p, true_g, 0.0);
    p.set_grad(g16);
    const optim::StepResult r = opt.step();
    EXPECT_FALSE(r.skipped);
    // growth_interval 3: the third good step doubles the scale.
    EXPECT_EQ(opt.loss_scale(), step < 2 ? 256.0 : 512.0) << step;
  }
  EXPECT_EQ(opt.step_count(), 4);
  const std::vector<double> master = values(master_of(opt, "p"));
  for (size_t i = 0; i < master.size(); ++i) ASSERT_NEAR(master[i], ref_p[i], 1e-6) << i;
  EXPECT_TRUE(bitwise_equal(p, master_of(opt, "p").to(DType::f16)));
}

TEST(MixedPrecision, LossScalingRescuesGradientsThatUnderflowFloat16) {
  // A true gradient of 1e-8 is below float16's smallest subnormal (2^-24 ≈ 6e-8): unscaled it
  // arrives as 0 and Adam does not move; scaled by 2^16 it survives and is divided out again.
  const float true_g = 1e-8f;
  ASSERT_EQ(static_cast<float>(float16(true_g)), 0.0f);
  for (const bool scaled : {false, true}) {
    const Tensor p = param({8}, 1, DType::f16);
    const Tensor before = p.clone();
    AdamW opt({{"p", p}}, {.lr = 1e-2,
                           .weight_decay = 0.0,
                           .loss_scaling = {.enabled = scaled, .init_scale = 65536.0}});
    p.set_grad(full({8}, true_g * opt.loss_scale(), {DType::f16}));
    opt.step();
    if (scaled) {
      // First Adam step: θ - lr · m̂ / (√v̂ + eps) = θ - lr · 1e-8 / (1e-8 + 1e-8) = θ - lr / 2.
      EXPECT_GT(max_abs_diff(p, before), 2e-3);
    } else {
      EXPECT_EQ(max_abs_diff(p, before), 0.0);
    }
  }
}

TEST(MixedPrecision, NonFiniteWithoutScalingStillSkips) {
  const Tensor p = param({5}, 1, DType::bf16);
  const Tensor before = p.clone();
  AdamW opt({{"p", p}});
  p.set_grad(from_vector(std::vector<double>{0.1, 0.2, NAN, 0.3, 0.4}, {5}, {DType::bf16}));
  const optim::StepResult r = opt.step();
  EXPECT_TRUE(r.skipped);
  EXPECT_EQ(r.loss_scale, 1.0);
  EXPECT_TRUE(bitwise_equal(p, before));
}

TEST(MixedPrecision, RefreshMastersAfterLoadingWeights) {
  const Tensor p = param({6}, 1, DType::bf16);
  SGD opt({{"p", p}}, {.lr = 0.0});
  {
    NoGradGuard no_grad;
    p.copy_(full({6}, 0.5, {DType::bf16}));  // e.g. weights loaded after the optimizer was made
  }
  p.set_grad(zeros({6}, {DType::bf16}));
  opt.step();  // lr 0: the parameter becomes the stale master again
  EXPECT_NE(values(p)[0], 0.5);
  {
    NoGradGuard no_grad;
    p.copy_(full({6}, 0.5, {DType::bf16}));
  }
  opt.refresh_masters();
  opt.step();
  EXPECT_EQ(values(p)[0], 0.5);
}

}  // namespace
}  // namespace tgtest
