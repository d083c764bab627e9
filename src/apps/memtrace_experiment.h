// The memtrace experiment: how much memory a chain of matmuls holds in the forward and frees in the
// backward, measured by the memory tracker.
//
// A chain x_i = matmul(x_{i-1}, W_i), i = 1..L, followed by sum(x_L) and a backward. The experiment
// records the tracker after every forward layer and after every backward node, so the cost of one
// layer is a measured difference, never a formula. With lazily allocated gradients each layer keeps
// its output alive for the backward (one [batch, dim] activation); with eager gradient buffers
// (EagerGradScope) every layer also carries a zero gradient buffer of the same size from the start.
//
// With a rematerialization policy other than "none" (config.remat: any name plan_executable in
// remat/executor.h accepts, e.g. "every:4", "revolve:2", "naive:5"; "budget:BYTES" is a budget
// for the engine's measured peak, remat/engine_chain.h), the chain runs through the
// chain rematerializer (Note [Executing a schedule]) with the planner's schedule for this chain;
// the result carries the planner's predictions next to the measurements. "none" runs the plain
// chain exactly as without the option.
//
// The function is separate from the CLI's printing so that tests can assert on the numbers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "memory/category.h"
#include "memory/tracker.h"
#include "remat/chain.h"
#include "remat/plan.h"

namespace tilegrad::apps {

struct MemtraceConfig {
  int64_t layers = 30;
  int64_t batch = 4000;
  int64_t dim = 1000;
  DType dtype = DType::f64;
  bool eager_grads = false;      // allocate a gradient buffer with every tensor that requires grad
  uint64_t seed = 0;             // Philox stream of the weights and the input
  bool record_timeline = false;  // keep every allocate/free event of the forward and backward
  std::string remat = "none";    // rematerialization policy (see above)
};

// Live bytes at one point of the run, relative to the start of the experiment (before the weights
// and the input were created), so figures do not depend on what else the process holds.
struct MemoryPoint {
  int64_t live = 0;   // total
  int64_t delta = 0;  // live minus the live bytes of the previous point
  std::array<int64_t, kNumCategories> by_category{};
  int64_t of(Category c) const { return by_category[static_cast<int>(c)]; }
};

struct ForwardStep {
  std::string label;  // "1".."L" for the matmul layers, "sum" for the loss
  int64_t layer = 0;  // 1..L; 0 for the sum
  MemoryPoint mem;
};

struct BackwardStep {
  int64_t step = 0;  // 1-based order in which the engine ran the node
  std::string node;  // Node::name(): "sum", "matmul", "AccumulateGrad"
  int64_t layer =
      0;  // the layer the node belongs to (matmul i, or the AccumulateGrad of W_i); 0 if none
  MemoryPoint mem;
};

struct MemtraceResult {
  MemtraceConfig config;
  MemoryPoint setup;  // after creating the weights and the input (delta = their bytes)
  std::vector<ForwardStep> forward;
  std::vector<BackwardStep> backward;

  // The median of the per-layer forward deltas (the lower median for an even count, so that the
  // figure is always one of the measured deltas).
  int64_t bytes_per_layer = 0;
  int64_t peak_bytes = 0;              // peak live bytes, relative to the experiment's start
  int64_t peak_bytes_above_setup = 0;  // the same, minus the weights and the input

  int64_t matmul_calls = 0;  // forward and backward
  int64_t forward_matmul_calls = 0;
  int64_t backward_matmul_calls = 0;
  double forward_flops = 0;  // of all ops in the forward (OpCounter)
  double backward_flops = 0;
  double forward_seconds = 0;
  double backward_seconds = 0;

  // Rematerialization: the plan's figures from the simulator (chain model, remat/chain.h, with
  // a_i = the bytes of one x_i) and what the run measured.
  std::string remat_policy;                // the plan's policy name
  int64_t predicted_recomputed_steps = 0;  // forward steps the schedule repeats in the backward
  // Byte-exact prediction of peak_bytes and of the tracker's per-category peaks
  // (remat/engine_chain.h); computed for lazy gradients, 0 with eager_grads.
  int64_t predicted_peak_bytes = 0;
  std::array<int64_t, kNumCategories> predicted_peak_by_category{};
  int64_t recomputed_steps = 0;  // forward steps the executor re-ran (0 for "none")
  // backward_matmul_calls minus a plain backward's 2L - 1 (layer 1 computes no dx because x_0
  // does not require grad): the matmuls rematerialization added, one per recomputed step.
  int64_t extra_backward_matmul_calls = 0;

  // The tracker's statistics over the whole experiment (live and peak relative to its start).
  MemoryStats stats;
  // Events of the forward and backward, live_after and live_by_category relative to the
  // experiment's start; empty unless config.record_timeline.
  std::vector<MemoryEvent> timeline;
  // Index in the timeline of the backward's first event; -1 when not recorded or none.
  int64_t timeline_backward_start = -1;
};

// Runs the experiment; throws tilegrad::Error for an invalid configuration.
MemtraceResult run_memtrace(const MemtraceConfig& config);

// Throws tilegrad::Error naming the offending field when the configuration is invalid (an unknown
// or infeasible remat policy included).
void validate(const MemtraceConfig& config);

// The chain model of the experiment's chain: L layers, a_i = batch·dim·itemsize bytes for x_0..x_L,
// 2·batch·dim·dim FLOPs per layer.
remat::ChainSpec memtrace_chain_spec(const MemtraceConfig& config);
// The plan that config.remat names for that chain (budget:BYTES in engine bytes, with units as
// parse_bytes takes them). Throws tilegrad::Error for a bad policy or an infeasible budget.
remat::Plan memtrace_plan(const MemtraceConfig& config);

}  // namespace tilegrad::apps
