// Optimizer state: save after some steps, restore into a fresh optimizer over copies of the
// parameters, continue — every later update is bit-identical to the uninterrupted run (AdamW in
// float32, bfloat16 with masters, float16 with a loss scale that changes after the restore; SGD
// with Nesterov momentum), also through the JSON text a checkpoint stores. And mismatches.
#include "optim/adamw.h"
#include "optim/optim_testing.h"
#include "optim/sgd.h"

namespace tgtest {
namespace {

using optim::AdamW;
using optim::Optimizer;
using optim::SGD;

NamedTensors make_params(DType dt) {
  return {{"transformer.h.0.attn.c_attn.weight", param({24, 72}, 1, dt)},
          {"transformer.h.0.attn.c_attn.bias", param({72}, 2, dt)},
          {"transformer.ln_f.weight", param({24}, 3, dt, 0.5, 1.5)}};
}

NamedTensors clone_params(const NamedTensors& ps) {
  NamedTensors out;
  for (const NamedTensor& p : ps) {
    Tensor c = p.tensor.detach().clone();
    c.set_requires_grad();
    out.push_back({p.name, c});
  }
  return out;
}

// Gradients for step `step`: scaled by the optimizer's current loss scale, with an overflow at
// step 4 (to exercise the skip when loss scaling is on).
void give_grads(const NamedTensors& ps, int step, const Optimizer& opt) {
  for (size_t k = 0; k < ps.size(); ++k) {
    const Tensor& p = ps[k].tensor;
    std::vector<double> g = values(rnd(p.shape(), 1000 * step + k, DType::f64, -0.01, 0.01));
    for (double& x : g) x *= opt.loss_scale();
    if (step == 4 && k == 0 && opt.loss_scaler().enabled()) g[5] = INFINITY;
    p.set_grad(from_vector(g, p.shape(), {p.dtype()}));
  }
}

template <class Make>
void expect_bit_exact_resume(DType dt, Make make, bool through_json) {
  NamedTensors a = make_params(dt), b = clone_params(a);
  std::unique_ptr<Optimizer> oa = make(a);
  for (int step = 0; step < 3; ++step) {
    give_grads(a, step, *oa);
    oa->step({.max_grad_norm = 0.05});
  }
  // Snapshot: parameters and optimizer state, as a checkpoint would hold them.
  optim::OptimizerState saved = oa->state_dict();
  if (through_json) saved.scalars = nlohmann::json::parse(saved.scalars.dump(2));
  for (size_t k = 0; k < a.size(); ++k) {
    NoGradGuard no_grad;
    b[k].tensor.copy_(a[k].tensor);
  }
  std::unique_ptr<Optimizer> ob = make(b);  // fresh: zero moments, masters from b
  ob->load_state_dict(saved);
  EXPECT_EQ(ob->step_count(), oa->step_count());
  for (int step = 3; step < 9; ++step) {
    give_grads(a, step, *oa);
    give_grads(b, step, *ob);
    const optim::StepResult ra = oa->step({.max_grad_norm = 0.05});
    const optim::StepResult rb = ob->step({.max_grad_norm = 0.05});
    EXPECT_EQ(ra.skipped, rb.skipped);
    EXPECT_EQ(ra.grad_norm, rb.grad_norm);
    EXPECT_EQ(ra.loss_scale, rb.loss_scale);
  }
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_TRUE(bitwise_equal(a[k].tensor, b[k].tensor)) << a[k].name << " " << dtype_name(dt);
  }
  const NamedTensors sa = oa->state_tensors(), sb = ob->state_tensors();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t k = 0; k < sa.size(); ++k) {
    EXPECT_EQ(sa[k].name, sb[k].name);
    EXPECT_TRUE(bitwise_equal(sa[k].tensor, sb[k].tensor)) << sa[k].name;
  }
  EXPECT_EQ(oa->state_scalars(), ob->state_scalars());
}

auto adamw(optim::LossScalerConfig scaling = {}) {
  return [scaling](const NamedTensors& ps) -> std::unique_ptr<Optimizer> {
    return std::make_unique<AdamW>(
        ps, optim::AdamWOptions{
                .lr = 1e-2, .beta2 = 0.95, .weight_decay = 0.1, .loss_scaling = scaling});
  };
}

TEST(OptimizerState, AdamWFloat32ResumesBitExactly) {
  expect_bit_exact_resume(DType::f32, adamw(), false);
  expect_bit_exact_resume(DType::f32, adamw(), true);
}

TEST(OptimizerState, AdamWBfloat16MastersResumeBitExactly) {
  expect_bit_exact_resume(DType::bf16, adamw(), true);
}

TEST(OptimizerState, Float16LossScaleResumesBitExactly) {
  // growth_interval 2: the scale grows after the restore, and step 4 overflows and backs it off.
  expect_bit_exact_resume(
      DType::f16, adamw({.enabled = true, .init_scale = 128.0, .growth_interval = 2}), true);
}

TEST(OptimizerState, SgdNesterovResumesBitExactly) {
  expect_bit_exact_resume(
      DType::f32,
      [](const NamedTensors& ps) -> std::unique_ptr<Optimizer> {
        return std::make_unique<SGD>(
            ps,
            optim::SgdOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-3});
      },
      true);
}

TEST(OptimizerState, NamesAndScalars) {
  NamedTensors ps = make_params(DType::bf16);
  AdamW opt(ps, {.loss_scaling = {.enabled = true}});
  std::vector<std::string> names;
  for (const NamedTensor& t : opt.state_tensors()) names.push_back(t.name);
  EXPECT_EQ(names[0], "master/transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(names[1], "exp_avg/transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(names[2], "exp_avg_sq/transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(names.size(), 9u);
  const nlohmann::json s = opt.state_scalars();
  EXPECT_EQ(s["optimizer"], "AdamW");
  EXPECT_EQ(s["step"], 0);
  EXPECT_EQ(s["loss_scaler"]["scale"], 65536.0);
}

TEST(OptimizerState, MismatchesAreClearErrors) {
  NamedTensors ps = make_params(DType::f32);
  AdamW adam(ps);
  SGD sgd(clone_params(ps), {.momentum = 0.9});
  EXPECT_NE(error_of([&] { adam.load_state_dict(sgd.state_dict()); }).find("missing exp_avg/"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              adam.load_state_scalars(sgd.state_scalars());
            }).find("the saved optimizer state is SGD's"),
            std::string::npos);
  // Another model: a renamed and a reshaped parameter.
  NamedTensors other = {{"transformer.h.0.attn.c_attn.weight", param({24, 96}, 1)},
                        {"transformer.h.0.attn.c_attn.bias", param({72}, 2)},
                        {"transformer.ln_f.bias", param({24}, 3)}};
  AdamW theirs(other);
  const std::string msg = error_of([&] { adam.load_state_dict(theirs.state_dict()); });
  EXPECT_NE(msg.find("exp_avg/transformer.h.0.attn.c_attn.weight is Tensor([24, 96]"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("missing exp_avg/transformer.ln_f.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected exp_avg/transformer.ln_f.bias"), std::string::npos) << msg;
  const std::string smsg = error_of([&] { adam.load_state_scalars(theirs.state_scalars()); });
  EXPECT_NE(smsg.find("missing: [transformer.ln_f.weight]"), std::string::npos) << smsg;
  EXPECT_NE(smsg.find("unexpected: [transformer.ln_f.bias]"), std::string::npos) << smsg;
  EXPECT_EQ(adam.step_count(), 0);  // a refused state changes nothing
}

}  // namespace
}  // namespace tgtest
