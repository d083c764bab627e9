// The forward and backward of a training step recorded once as a device graph
// (Backend::capture_graph: CUDA graphs) and replayed at every later step, so that the host queues
// one launch per step instead of hundreds.
//
// Note [Captured steps]
// - When. On a device that records graphs, for steps of one micro-batch without dropout and
//   without profiling (TrainConfig::cuda_graph; unsupported_reason says what stands in the way).
//   The run's first step is eager: it tunes the GEMMs and fills the caches, so that the capture,
//   at the second step, makes only the calls that its replays repeat.
// - Inputs. The ids and targets are two device buffers that the capture reads; each batch is
//   checked on the host (ids in [0, V): the captured index checks cannot look) and copied in.
// - Gradients. The captured backward starts with no .grad, so it writes every parameter's gradient
//   rather than adding into one. Those buffers stay the parameters' .grad between steps, in the
//   graph's memory, and each replay overwrites them: the trainer does not free them. The update
//   (the gradient norm, clipping and AdamW) stays outside the graph, eager.
// - Same bits. A replay runs the kernels of an eager step with the same arguments on buffers of
//   the same alignment: losses and weights are those of the eager run, bit for bit (checked on the
//   GPU by tests/cuda/run_engine.sh --only train).
// - Memory. The tracker counts the capture's allocations as an eager step's, so its peak is the
//   eager one. The graph's pool keeps the step's memory between steps, and the evaluations run in
//   it (run_in_pool), on the recording's idle temporaries, so that the driver does not hold an
//   evaluation's memory beside it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "data/batch_sampler.h"
#include "models/gpt.h"
#include "train/trainer.h"

namespace tilegrad::train {

class CapturedStep {
 public:
  // Why the steps of config c cannot be recorded, or "" when they can.
  static std::string unsupported_reason(const TrainConfig& c);

  // Records the forward and backward of `model` with `first` as the inputs. Nothing runs until
  // replay(). Throws Error, leaving no gradient behind, when the capture fails.
  CapturedStep(const models::GPT& model, const data::Batch& first, const TrainConfig& c,
               Generator& dropout_gen);
  ~CapturedStep();
  // The same, as a run records its step (the trainer, and the memory check's probe of it): the
  // eager steps' cached blocks go back to the driver first, for the graph's pool to take.
  static std::unique_ptr<CapturedStep> record(const models::GPT& model, const data::Batch& first,
                                              const TrainConfig& c, Generator& dropout_gen);
  CapturedStep(const CapturedStep&) = delete;
  CapturedStep& operator=(const CapturedStep&) = delete;

  // Copies `b` into the inputs (after checking its ids on the host).
  void load(const data::Batch& b);
  // Queues the recorded step on the inputs loaded last (asynchronous to the host).
  void replay();
  // The loss of the last replay (waits for the device).
  double loss() const;
  // Runs `work` (an evaluation between steps) with its device memory from the recording's pool
  // (DeviceGraph::run_in_pool): the driver then holds one step's memory, not a step's and an
  // evaluation's.
  void run_in_pool(const std::function<void()>& work) { graph_->run_in_pool(work); }
  // Operations in the recording (kernels, copies, memsets).
  int64_t operations() const { return graph_->operations(); }

 private:
  // `ids`, contiguous, once checked: int64 on the host, in [0, V), shaped as `recorded` (when
  // defined); throws Error otherwise.
  Tensor checked(const Tensor& ids, const Tensor& recorded) const;

  int64_t V_;
  Tensor x_, y_, loss_;
  NamedParameters params_;
  std::unique_ptr<DeviceGraph> graph_;
};

}  // namespace tilegrad::train
