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
// and, when the run will record its steps in a CUDA graph (train/captured_step.h: from its second
// step on), that step as the trainer runs it: the recorded forward+backward, the optimizer step
// keeping the gradients (the recording writes them in place), and an evaluation in the
// recording's pool beside them, the gradients and the recording's inputs live.
// For each phase the tracker's timeline gives the live bytes by category after every event.
// The blocks are identical and run one after the other, so each phase's bytes grow by the same
// amount with every block — or, with remat every:K, with every group of K blocks, which is one
// checkpointed segment (K = 1 for none and selective, ceil(sqrt(L)) for sqrt). A model of
// g = ceil(L / K) groups, the last of r <= K blocks, is probed at L1 and L2 = L1 + K blocks (one
// full group more), where L1 holds the first group, the last one and, when that one is short, a
// full group between them. The first group differs from the others (its events free what the
// embedding made, theirs what a group made), and a short last group from a full one, so the
// smaller probe holds one of each kind, as the model does; the backward's largest recomputation
// (a full group) is then in both probes. Each phase is extrapolated over the n = (L - L1) / K
// groups the probe lacks, event by event (memory/extrapolate.h, Note [Extrapolating event by
// event]): each event of the L1 probe's phase is paired with the same event of the L2 probe's, and
//   bytes(L) = bytes(L1) + n (bytes(L2) - bytes(L1))      per category, per event
// (L itself is probed when n < 2). The phase's peak is the largest of these, and the run's peak
// the largest phase's. Extrapolating the probes' peaks alone would be exact only where both peak
// at the same event: not so where a small probe peaks late in its backward, with all gradients
// live, and a larger one at the backward's start, with all activations live.
// tests/train/memory_check_test.cpp checks equality with the tracker's peak of whole runs for
// none, every:1, every:2 (short and full last group), sqrt, selective, the plain and the chunked
// head, accumulation, a model whose gradients outweigh its activations, and a case where probes
// of one and two blocks peak at different points of the step. Should the probes' event series not
// pair up (one not a subsequence of the other: the step would not be made of identical groups),
// each phase's probes' peaks are extrapolated instead, and `aligned` says so.
//
// Cost: the probe runs one step of L1 and one of L2 blocks (plus a validation batch each), i.e.
// (L1 + L2) / L of one step and of one evaluation batch (5/L for none and every:1; one step of
// the model itself where L1 + L2 would be more; twice that where the run records its steps),
// plus building the probe models: a small fraction of any run of more than a few steps. For
// scripts/main-job.sh's config on this machine's 2-core CPU (4 blocks, B 16, T 128, 800 steps of
// ~0.25 s) the check takes ~0.45 s, about 0.2% of the run; on an H100, 0.6-1.8 s for GPT-2 124M
// (T = 1,024 to 65,536). It runs only when there is something to compare with: a CUDA device, or
// --memory-limit.
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
  // event by event from the probes' timelines: exact, total and split.
  std::array<int64_t, kNumCategories> at_peak{};
  // Whether every phase's probes paired up event by event. When not, each phase's probes' peaks
  // were extrapolated: the total is then a guess, and where the probes peaked at different
  // points a category can come out negative (categories_exact() false). probe_at_peak, the
  // larger probe's own split at its peak, is then the one shown.
  bool aligned = true;
  std::string unpaired;  // when not aligned: the first event without a partner, in words
  std::array<int64_t, kNumCategories> probe_at_peak{};
  int64_t peak = 0;   // baseline + the sum of at_peak: the tracker's peak while the run runs
  std::string phase;  // where the peak falls: "setup", "forward+backward", "optimizer step",
                      // "evaluation", or one of the recorded step's (memory_check.cpp)
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
// Allocates on c.device (a model of fewer than 4K blocks, or the model itself) and frees everything
// before it returns.
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
