// The training loop: a GPT, AdamW with nanoGPT's warmup + cosine schedule and gradient clipping,
// random windows of a token file, periodic validation, checkpoints that resume bit-exactly, and a
// metrics stream (one JSON object per line).
//
// Note [Bit-exact resume]: everything a step depends on is saved — the weights, the optimizer's
// moments (and master weights), its step counts and learning rate, the training sampler's
// generator (seed, offset) and the dropout generator's — and the evaluation draws from generators
// of its own, re-seeded at every evaluation from the step number, so evaluating or not does not
// move the training streams. A run resumed from the checkpoint of step s therefore computes the
// same losses, bit for bit, as the run that never stopped (tested).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/profile.h"
#include "models/gpt.h"

namespace tilegrad::train {

struct TrainConfig {
  models::GPTConfig model;
  std::string preset = "custom";   // recorded in checkpoints
  std::filesystem::path data_dir;  // train.bin, val.bin, tokenizer.json
  std::filesystem::path out_dir;   // checkpoints, metrics.jsonl, loss.svg
  int64_t steps = 100;
  int64_t batch = 8;
  int64_t accumulation = 1;
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = 10;
  double weight_decay = 0.1, beta2 = 0.99, grad_clip = 1.0;
  int64_t eval_interval = 50, eval_iters = 10;
  int64_t checkpoint_interval = 0;  // 0: at the end only
  uint64_t seed = 1337;
  bool resume = false;
  // Where the model, its gradients, the optimizer state and every activation live. Batches are
  // read on the host and copied there; checkpoints are written from host copies.
  Device device = Device::cpu();
  // Steps to profile (0: none): device time per backend entry over that many steps, from the
  // third step on (the first ones choose GEMM algorithms and fill the allocator's pools).
  int64_t profile_steps = 0;
};

struct StepMetrics {
  int64_t step = 0;  // 1-based: steps completed
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, mfu = 0;  // mfu against the given peak FLOP/s (0 if none)
  int64_t peak_bytes = 0;            // the tracker's peak since the run started
  double val_loss = -1;              // this step's evaluation, -1 if none
};

struct TrainResult {
  std::vector<StepMetrics> steps;
  int64_t first_step = 0;  // steps completed before this run (resume)
  // With TrainConfig::profile_steps: the rows (summed over the profiled steps, backend/profile.h),
  // how many steps they cover and the wall time of those steps.
  std::vector<ProfileRow> profile;
  int64_t profiled_steps = 0;
  double profiled_wall_s = 0;
};

// Runs config.steps optimizer steps (from the checkpoint in out_dir when resuming). on_step is
// called after every step (progress display). peak_flops() (FLOP/s), asked at every step, sets the
// MFU — the caller may refine its estimate while training runs; empty or 0 leaves the MFU 0.
TrainResult run_training(const TrainConfig& config,
                         const std::function<void(const StepMetrics&)>& on_step = {},
                         const std::function<double()>& peak_flops = {});

// The model configuration as checkpoints record it, and back.
nlohmann::json model_json(const models::GPTConfig& model);
models::GPTConfig model_from_json(const nlohmann::json& j);

// FLOPs of one training step per token: 6 per parameter (forward 2, backward 4) plus attention's
// 12 · L · C · T (PaLM's accounting, as nanoGPT's estimate_mfu).
double flops_per_token(const models::GPTConfig& model, int64_t num_params);

}  // namespace tilegrad::train
