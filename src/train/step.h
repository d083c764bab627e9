// The pieces of a training step, shared by the training loop (trainer.cpp) and the memory check's
// probe runs (memory_check.cpp): the probe measures the code that the run executes, not a copy of
// it, so that its byte counts are the run's.
#pragma once

#include <cstdint>
#include <memory>

#include "data/batch_sampler.h"
#include "data/token_file.h"
#include "models/gpt.h"
#include "optim/adamw.h"
#include "train/trainer.h"

namespace tilegrad::train {

// The run's AdamW options: learning rate, beta2 and weight decay from the config.
optim::AdamWOptions adamw_options(const TrainConfig& c);

// Forward and backward of one batch, copied to c.device; the gradients are added into the
// parameters' .grad buffers. Returns the loss.
double forward_backward(const models::GPT& model, const data::Batch& batch, const TrainConfig& c,
                        Generator& dropout_gen);

// Forward and backward of `micro_batches` batches from `sampler`; the parameters' .grad buffers
// hold the sum of the micro-batch gradients. Returns the sum of the micro-batch losses.
double forward_backward(const models::GPT& model, data::BatchSampler& sampler,
                        int64_t micro_batches, const TrainConfig& c, Generator& dropout_gen);

// The update for gradients summed over `micro_batches` (clipped to c.grad_clip), then the gradient
// buffers are freed unless `keep_grads` (a captured step rewrites them: captured_step.h).
optim::StepResult update(optim::Optimizer& opt, int64_t micro_batches, const TrainConfig& c,
                         bool keep_grads = false);

// Mean loss over `iters` batches of `data` (eval mode, no graph), from a generator seeded by the
// step so that it never touches the training streams.
double evaluate(models::GPT& model, const std::shared_ptr<const data::TokenFile>& data,
                const TrainConfig& c, int64_t step, int64_t iters);

}  // namespace tilegrad::train
