// The memory check: before the first step, the trainer predicts the run's peak tracked bytes and
// refuses, with the numbers, a run that the device cannot hold — instead of failing at step 1 (or
// at the first evaluation) with an allocator error after the output directory was written.
//
// Note [Predicting the peak by measurement]
// The prediction is measured, not derived from formulas: the model is built cut to a few blocks
// (same width, heads, vocabulary, dtype, batch, sequence length, remat policy and head), and one
// training step of it runs under the tracker with the trainer's own code (step.h), phase by phase:
//   setup             building the model and the optimizer (parameters, optimizer state)
//   forward+backward  the step's micro-batches (two when accumulating: the second one runs with
//                     the first one's gradients live, as every later one does)
//   optimizer step    clipping, the update, freeing the gradients
//   evaluation        one validation batch (every batch of an evaluation is alike)
// For each phase the tracker's timeline gives the live bytes by category at the phase's peak.
// The blocks are identical and run one after the other, so each phase's bytes at its peak grow by
// the same amount with every block — or, with remat every:K, with every group of K blocks, which
// is one checkpointed segment (K = 1 for none and selective, ceil(sqrt(L)) for sqrt). A model of
// g = ceil(L / K) groups, the last of r <= K blocks, is probed at L1 and L2 = L1 + K blocks (one
// full group more), where L1 holds the last group and, when that one is short, one full group
// too (so that the backward's largest recomputation is in both probes, as in the model); each
// phase is extrapolated over the n = (L - L1) / K groups the probe lacks:
//   bytes(L) = bytes(L1) + n (bytes(L2) - bytes(L1))      per category, per phase
// (L itself is probed when n = 0). The run's peak is the largest phase. This is exact when the
// peak of each phase sits at the same place in the block sequence for L1, L2 and L blocks, which
// holds for the engine's allocations: tests/train/memory_check_test.cpp checks equality with the
// tracker's peak of whole runs for none, every:1, every:2 (short last group), sqrt, selective,
// the plain and the chunked head, accumulation, and a model whose gradients outweigh its
// activations. If a phase's peak did move along the blocks as blocks are added (from the head's
// end of the backward, where the activations are, to the embedding's, where all gradients are),
// the extrapolation would be low — but only by the transient bytes of one group's backward, since
// the optimizer step, which starts with every gradient live, grows with the gradients too.
//
// Cost: the probe runs one step of L1 and one of L2 blocks (plus a validation batch each), i.e.
// (L1 + L2) / L of one step and of one evaluation batch (3/L for none and every:1), plus building
// the probe models: a small fraction of any run of more than a few steps. For
// scripts/main-job.sh's config on this machine's 2-core CPU (4 blocks, B 16, T 128, 800 steps of
// ~0.25 s) the check takes ~0.37 s, about 0.2% of the run. It runs only when there is something
// to compare with: a CUDA device, or --memory-limit.
//
// What is compared: the tracker's peak (payload bytes, what `train` prints as the peak) with the
// device's capacity for them — on CUDA, the free bytes of the backend's device_memory() (the
// driver's count) plus what the caching allocator already holds (the tracker's `reserved`);
// --memory-limit caps it on any device. The
// allocator's rounding and fragmentation, and memory outside the tracker (cuBLAS workspaces, the
// CUDA context) are not part of the prediction, so a run that passes can still run out; one
// that is refused could not have run.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data/token_file.h"
#include "memory/category.h"

namespace tilegrad::train {

struct TrainConfig;  // trainer.h

struct MemoryPrediction {
  // Bytes live on the device before the run (the caller's, and what earlier work left): the
  // tracker's peak during the run counts them too.
  int64_t baseline = 0;
  // The run's own bytes at its predicted peak, by category (indexed by Category), extrapolated
  // category by category from the probes' bytes at their peaks. The sum is exact (the total grows
  // by one group's bytes per group); the split is exact where both probes peak at the same point
  // of the step. Where they do not — a small probe peaking late in its backward, gradients live,
  // a larger one at the backward's start — a category can come out negative: categories_exact() is
  // then false, and probe_at_peak, the larger probe's own split at its peak, is the one to show.
  std::array<int64_t, kNumCategories> at_peak{};
  std::array<int64_t, kNumCategories> probe_at_peak{};
  int64_t peak = 0;   // baseline + the sum of at_peak: the tracker's peak while the run runs
  std::string phase;  // where the peak falls: "setup", "forward+backward", "optimizer step",
                      // "evaluation"
  // How it was measured: models of probe_layers[0] and probe_layers[1] blocks (the same twice
  // when the model itself was probed), extrapolated over `groups` groups of `group` blocks.
  int probe_layers[2] = {0, 0};
  int64_t group = 1, groups = 1;
  double seconds = 0;  // wall time of the probe

  int64_t run_bytes() const { return peak - baseline; }
  bool categories_exact() const {
    return std::all_of(at_peak.begin(), at_peak.end(), [](int64_t v) { return v >= 0; });
  }
  int64_t of(Category c) const { return at_peak[static_cast<int>(c)]; }
};

// Predicts the peak of a run of `c` on c.device (Note [Predicting the peak by measurement]).
// c.model.V must be the dataset's vocabulary; the batches come from train_data and val_data.
// Allocates on c.device (a model of at most 2K blocks) and frees everything before it returns.
MemoryPrediction predict_memory(const TrainConfig& c,
                                const std::shared_ptr<const data::TokenFile>& train_data,
                                const std::shared_ptr<const data::TokenFile>& val_data);
// The same, reading the tokenizer and the token files from c.data_dir as the trainer does.
MemoryPrediction predict_memory(const TrainConfig& c);

struct AvailableMemory {
  int64_t bytes = 0;
  std::string source;  // how it was found, e.g. "the limit set by --memory-limit"
};

// What the run's tracked bytes may reach on c.device: where the backend reports the device's
// memory (CUDA) its free bytes plus the caching allocator's reserved bytes, capped by
// c.memory_limit when that is > 0. nullopt when nothing is known (the CPU without a limit). Throws
// Error when c.device has no backend in this build or cannot be queried.
std::optional<AvailableMemory> available_memory(const TrainConfig& c);

// Throws tilegrad::Error when p.peak exceeds a.bytes: the predicted peak by category, the
// available bytes and where they come from, and the options that lower the peak.
void check_memory(const MemoryPrediction& p, const AvailableMemory& a, const TrainConfig& c);

// One line: "X MB (parameters .., gradients .., ...) in the <phase>".
std::string describe(const MemoryPrediction& p);

}  // namespace tilegrad::train
