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
//
// Note [Failing cleanly]: before the first step the memory check (memory_check.h) refuses a run
// whose predicted peak the device cannot hold, before anything is written to the output
// directory. A step that throws (a CUDA error, a lost device, out of disk while saving) ends the
// run with a StepError naming the step and the last complete checkpoint; checkpoints are written
// atomically (io/checkpoint.h, Note [Checkpoint atomicity]), so that checkpoint is intact and
// `--resume` continues from it (tested with TrainConfig::fault_at_step).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/profile.h"
#include "core/error.h"
#include "models/gpt.h"
#include "train/memory_check.h"

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
  // The memory check (memory_check.h): before the first step, refuse a run whose predicted peak
  // exceeds the device's free memory (CUDA) or memory_limit bytes (when > 0, on any device).
  bool memory_check = true;
  int64_t memory_limit = 0;
  // Time each GEMM problem's candidate algorithms at its first call and keep the fastest
  // (Backend::set_gemm_tuning; CUDA). The choices are written to out_dir/gemm_tuning.json with
  // every checkpoint and taken from there by --resume, so that a resumed run computes with the
  // same algorithms, bit for bit. Off: the library's heuristic choice.
  bool gemm_tuning = true;
  // Record the forward and backward of a step as a CUDA graph at the second step and replay it at
  // every later one (captured_step.h, Note [Captured steps]), where the config allows.
  bool cuda_graph = true;
  // Testing seam: fail inside this step (0: never). `error` throws a tilegrad::Error after the
  // step's backward and before its update, as a failing kernel would; `device` makes the device
  // fail for real before the step's forward (Backend::inject_device_fault: on CUDA a trapping
  // kernel, whose sticky error the step's next CUDA call reports).
  int64_t fault_at_step = 0;
  enum class FaultKind { error, device };
  FaultKind fault_kind = FaultKind::error;
};

struct StepMetrics {
  int64_t step = 0;  // 1-based: steps completed
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, mfu = 0;  // mfu against the given peak FLOP/s (0 if none)
  int64_t peak_bytes = 0;            // the tracker's peak since the run started
  double val_loss = -1;              // this step's evaluation, -1 if none
  bool replayed = false;             // forward and backward ran as a replay of the recorded step
};

struct TrainResult {
  std::vector<StepMetrics> steps;
  int64_t first_step = 0;  // steps completed before this run (resume)
  // With TrainConfig::profile_steps: the rows (summed over the profiled steps, backend/profile.h),
  // how many steps they cover and the wall time of those steps.
  std::vector<ProfileRow> profile;
  int64_t profiled_steps = 0;
  double profiled_wall_s = 0;
  // The memory check's prediction and what it was compared with; empty when it did not run (off,
  // or nothing to compare with: the CPU without a memory limit).
  std::optional<MemoryPrediction> memory_prediction;
  std::optional<AvailableMemory> memory_available;
  // The recorded step (Note [Captured steps]): the step it was captured at (0: never) and its
  // operations, or why the steps ran eagerly.
  int64_t graph_step = 0;
  int64_t graph_operations = 0;
  std::string graph_off_reason;
};

// What run_training throws when a step fails with a tilegrad::Error (Note [Failing cleanly]). The
// original exception is nested (std::rethrow_if_nested). Other exceptions (internal errors, a
// failed host allocation) are nested in a std::runtime_error with the same message.
class StepError : public Error {
 public:
  StepError(const std::string& what, int64_t step,
            std::optional<std::filesystem::path> last_checkpoint)
      : Error(what), step(step), last_checkpoint(std::move(last_checkpoint)) {}
  int64_t step;  // 1-based: the step that failed
  // The run's last complete checkpoint (written by it, or the one it resumed from), if any.
  std::optional<std::filesystem::path> last_checkpoint;
};

// Runs config.steps optimizer steps (from the checkpoint in out_dir when resuming). on_step is
// called after every step (progress display). peak_flops() (FLOP/s), asked at every step, sets the
// MFU — the caller may refine its estimate while training runs; empty or 0 leaves the MFU 0.
// on_memory_check is called once the memory check has passed, before the first step. Throws
// tilegrad::Error for a refused run and StepError for a failed step (Note [Failing cleanly]).
TrainResult run_training(const TrainConfig& config,
                         const std::function<void(const StepMetrics&)>& on_step = {},
                         const std::function<double()>& peak_flops = {},
                         const std::function<void(const MemoryPrediction&, const AvailableMemory&)>&
                             on_memory_check = {});

// The model configuration as checkpoints record it, and back.
nlohmann::json model_json(const models::GPTConfig& model);
models::GPTConfig model_from_json(const nlohmann::json& j);

// FLOPs of one training step per token: 6 per parameter (forward 2, backward 4) plus attention's
// 12 · L · C · T (PaLM's accounting, as nanoGPT's estimate_mfu).
double flops_per_token(const models::GPTConfig& model, int64_t num_params);

}  // namespace tilegrad::train
