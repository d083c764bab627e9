// The pieces of a training step (step.h).
#include "train/step.h"

#include "autograd/grad_mode.h"

namespace tilegrad::train {

optim::AdamWOptions adamw_options(const TrainConfig& c) {
  optim::AdamWOptions ao;
  ao.lr = c.lr;
  ao.beta2 = c.beta2;
  ao.weight_decay = c.weight_decay;
  return ao;
}

double forward_backward(const models::GPT& model, const data::Batch& batch, const TrainConfig& c,
                        Generator& dropout_gen) {
  Tensor loss = model.loss(batch.x.to(c.device), batch.y.to(c.device), dropout_gen);
  loss.backward();
  // Read after the backward is queued: item() waits for the device, and read before it, the
  // device would drain and then wait for the backward's first launches.
  return loss.item();
}

double forward_backward(const models::GPT& model, data::BatchSampler& sampler,
                        int64_t micro_batches, const TrainConfig& c, Generator& dropout_gen) {
  double loss_sum = 0;
  for (int64_t micro = 0; micro < micro_batches; ++micro)
    loss_sum += forward_backward(model, sampler.next(), c, dropout_gen);
  return loss_sum;
}

optim::StepResult update(optim::Optimizer& opt, int64_t micro_batches, const TrainConfig& c,
                         bool keep_grads) {
  optim::StepOptions so;
  so.max_grad_norm = c.grad_clip;
  so.accumulation_steps = micro_batches;
  const optim::StepResult r = opt.step(so);
  if (!keep_grads) opt.zero_grad();
  return r;
}

double evaluate(models::GPT& model, const std::shared_ptr<const data::TokenFile>& data,
                const TrainConfig& c, int64_t step, int64_t iters) {
  NoGradGuard no_grad;
  model.eval();
  data::BatchSampler sampler(data, c.batch, c.model.T,
                             Generator(c.seed ^ 0x5eedull, static_cast<uint64_t>(step) << 32));
  Generator unused(0);  // dropout is off in eval mode
  double sum = 0;
  for (int64_t i = 0; i < iters; ++i) {
    const data::Batch b = sampler.next();
    sum += model.loss(b.x.to(c.device), b.y.to(c.device), unused).item();
  }
  model.train();
  return sum / static_cast<double>(iters);
}

}  // namespace tilegrad::train
