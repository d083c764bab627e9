// A small GPT-like transformer built from the engine's ops and run under the memory tracker, so
// that `tilegrad analyze transformer` can print the lectures' memory formulas beside measured
// bytes for the same configuration.
//
// The model is GPT-2's pre-LayerNorm block with biases, learned position embeddings and an untied
// output matrix, and attention written as explicit ops (q kᵀ, + causal mask, softmax, · v) so that
// the H·T² matrices exist as the formulas assume; the op sequence is analysis/transformer_ops.h's.
// Three runs on fresh tensors:
//   inference  a forward under NoGradGuard: its peak is what the "forward memory" formula models;
//   training   a forward that records the graph, then the backward: live bytes when the loss
//              exists are the graph memory; the forward's and the whole step's peaks;
//   the training run can wrap blocks in checkpoint() (option 1: every block; option 2: segments
//   of ⌈√L⌉ blocks), which changes what the forward keeps and what the backward recomputes.
// All figures are tracker bytes relative to the point after the parameters, their gradient buffers
// and the inputs exist.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analysis/transformer_ops.h"
#include "ops/op_scope.h"

namespace tilegrad::apps {

enum class GptCheckpoint { none, every_block, sqrt_segments };

// Storage saved for the backward, grouped by the op that first saved it and its shape.
struct SavedGroup {
  std::string op;
  std::string shape;
  int64_t count = 0;
  int64_t elements = 0;  // of one storage
  int64_t bytes = 0;     // of all `count` storages
};

struct GptMeasurement {
  int64_t parameter_bytes = 0;  // tracker, category parameter
  int64_t parameter_count = 0;  // elements
  int64_t input_bytes = 0;      // token ids, targets, the causal mask
  int64_t inference_peak = 0;   // forward without graph: peak above parameters and inputs
  int64_t graph_bytes = 0;      // training forward: live bytes once the loss exists
  int64_t forward_peak = 0;     // training forward: peak
  int64_t step_peak = 0;        // training forward + backward: peak
  int64_t gradient_bytes = 0;   // parameter gradients, allocated before the step (not in the peaks)
  int64_t saved_bytes = 0;      // distinct storages the graph saves (no checkpointing only)
  std::vector<SavedGroup> saved;
  std::map<std::string, OpStats> forward_ops;  // OpCounter of the training forward
  double loss = 0;
};

// Throws tilegrad::Error for an invalid configuration.
GptMeasurement measure_gpt(const analysis::GptDims& dims, GptCheckpoint mode, uint64_t seed = 0);

}  // namespace tilegrad::apps
