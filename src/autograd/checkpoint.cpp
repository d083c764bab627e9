#include "autograd/checkpoint.h"

#include <any>
#include <memory>
#include <utility>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/saved_hooks.h"
#include "autograd/selective.h"
#include "core/error.h"
#include "memory/category.h"

namespace tilegrad {

namespace {

// Set while a checkpointed fn runs (forward or recomputation), to refuse nesting.
thread_local bool t_in_segment = false;

class SegmentGuard {
 public:
  SegmentGuard() {
    TG_CHECK(!t_in_segment,
             "checkpoint: nested checkpoints are not supported (checkpoint was called inside a "
             "checkpointed function)");
    t_in_segment = true;
  }
  ~SegmentGuard() { t_in_segment = false; }
  SegmentGuard(const SegmentGuard&) = delete;
  SegmentGuard& operator=(const SegmentGuard&) = delete;
};

struct GeneratorState {
  uint64_t seed = 0, offset = 0;
  bool operator==(const GeneratorState&) const = default;
};

GeneratorState state_of(const Generator& g) {
  return {g.seed(), g.offset()};
}

// One call of checkpoint: what the recomputation needs, and the recomputed tensors by slot.
struct Frame {
  struct Slot {
    Shape shape;
    DType dtype = DType::f32;
    bool dropped = false;  // packed to a slot number (not kept by a selective policy)
    bool held = false;     // a node still holds the slot (it may unpack it)
  };

  CheckpointFn fn;
  std::vector<Tensor> inputs;  // detached aliases of the inputs
  std::vector<bool> input_requires_grad;
  std::vector<uint64_t> input_versions;
  std::vector<Generator*> generators;
  std::vector<GeneratorState> generators_before, generators_after;  // around the forward's fn
  std::vector<Slot> slots;
  std::vector<Tensor> recomputed;  // by slot; defined from a recomputation until unpacked
  bool recomputing = false;

  Tensor unpack(size_t slot) {
    if (!recomputed[slot].defined()) recompute();
    TG_ASSERT(recomputed[slot].defined(), "checkpoint: slot ", slot, " was not recomputed");
    // Dropped once unpacked, so the segment's recomputed memory shrinks as its backward proceeds.
    return std::move(recomputed[slot]);
  }

  void release(size_t slot) {
    slots[slot].held = false;
    recomputed[slot] = Tensor();
  }

  void check_inputs_unmodified(const char* when) const {
    for (size_t i = 0; i < inputs.size(); ++i) {
      TG_CHECK(inputs[i].storage()->version() == input_versions[i], "checkpoint: input ", i,
               " of shape ", shape_str(inputs[i].shape()), " was modified in place ", when,
               " (version ", input_versions[i], " -> ", inputs[i].storage()->version(),
               "); the recomputation would not reproduce the forward");
    }
  }

  void recompute();
};

// What a node holds for a dropped slot. Releasing it (the node's release_saved, or the graph's
// destruction) drops the slot's recomputed tensor if it was never unpacked, and the last handle
// frees the frame and with it the segment's inputs.
struct SlotHandle {
  std::shared_ptr<Frame> frame;
  size_t slot;
  SlotHandle(std::shared_ptr<Frame> f, size_t s) : frame(std::move(f)), slot(s) {}
  ~SlotHandle() { frame->release(slot); }
  SlotHandle(const SlotHandle&) = delete;
  SlotHandle& operator=(const SlotHandle&) = delete;
};

// Puts the generators back where they were when it was created.
class GeneratorRestore {
 public:
  explicit GeneratorRestore(const std::vector<Generator*>& gens) : gens_(gens) {
    for (Generator* g : gens_) states_.push_back(state_of(*g));
  }
  ~GeneratorRestore() {
    for (size_t i = 0; i < gens_.size(); ++i)
      gens_[i]->set_state(states_[i].seed, states_[i].offset);
  }
  GeneratorRestore(const GeneratorRestore&) = delete;
  GeneratorRestore& operator=(const GeneratorRestore&) = delete;

 private:
  const std::vector<Generator*>& gens_;
  std::vector<GeneratorState> states_;
};

void Frame::recompute() {
  TG_CHECK(!recomputing, "checkpoint: the segment unpacked its own saved tensor while recomputing");
  check_inputs_unmodified("after the checkpointed forward");
  recomputing = true;
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{recomputing};

  GeneratorRestore restore(generators);
  for (size_t i = 0; i < generators.size(); ++i) {
    generators[i]->set_state(generators_before[i].seed, generators_before[i].offset);
  }
  std::vector<Tensor> detached;
  detached.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    detached.push_back(inputs[i].detach());
    if (input_requires_grad[i]) detached.back().set_requires_grad(true);
  }

  size_t next = 0;
  SavedTensorHooks capture;
  capture.pack = [this, &next](const Tensor& t, const Node& owner) -> std::any {
    const size_t s = next++;
    TG_CHECK(s < slots.size(),
             "checkpoint: the recomputation saved more tensors than the forward (", slots.size(),
             "; the extra one by ", owner.name(),
             "): fn must record the same graph every time it runs");
    TG_CHECK(t.shape() == slots[s].shape && t.dtype() == slots[s].dtype,
             "checkpoint: saved tensor ", s, " (by ", owner.name(), ") was recomputed as ", t.str(),
             " but the forward saved shape ", shape_str(slots[s].shape), " and dtype ",
             dtype_name(slots[s].dtype), ": fn must record the same graph every time it runs");
    if (slots[s].dropped && slots[s].held) recomputed[s] = t.alias();
    return std::any();  // the re-run's own nodes save normally; their graph is discarded
  };
  capture.unpack = [](const std::any&) -> Tensor {
    TG_ASSERT(false, "checkpoint: recomputation hooks never pack a value");
    return Tensor();
  };
  {
    SegmentGuard segment;
    EnableGradGuard grad;                          // the engine runs nodes with grad mode off
    EagerGradScope no_eager(false);                // the re-run's graph never runs a backward
    CategoryScope category(Category::activation);  // recomputed activations, not gradients
    SavedTensorHooksScope hooks(std::move(capture));
    fn(detached);  // outputs and graph are dropped here; the captured slots stay
  }
  TG_CHECK(next == slots.size(), "checkpoint: the recomputation saved ", next,
           " tensors but the forward saved ", slots.size(),
           ": fn must record the same graph every time it runs");
  for (size_t i = 0; i < generators.size(); ++i) {
    TG_CHECK(state_of(*generators[i]) == generators_after[i], "checkpoint: generator ", i,
             " ended the recomputation at offset ", generators[i]->offset(),
             " but the forward at offset ", generators_after[i].offset,
             ": fn must draw the same random numbers every time it runs");
  }
}

}  // namespace

std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                               const std::vector<Generator*>& generators) {
  TG_CHECK(fn != nullptr, "checkpoint: fn is empty");
  for (size_t i = 0; i < inputs.size(); ++i) {
    TG_CHECK(inputs[i].defined(), "checkpoint: input ", i, " is undefined");
  }
  for (size_t i = 0; i < generators.size(); ++i) {
    TG_CHECK(generators[i] != nullptr, "checkpoint: generator ", i, " is null");
  }
  if (!grad_enabled()) {
    // Nothing is saved without grad mode, so there is nothing to drop (but nesting is still
    // refused, to behave the same in both modes).
    SegmentGuard segment;
    return fn(inputs);
  }

  auto frame = std::make_shared<Frame>();
  frame->fn = fn;
  for (const Tensor& t : inputs) {
    frame->inputs.push_back(t.detach());
    frame->input_requires_grad.push_back(t.requires_grad());
    frame->input_versions.push_back(t.storage()->version());
  }
  frame->generators = generators;
  for (Generator* g : generators) frame->generators_before.push_back(state_of(*g));

  SavedTensorHooks hooks;
  // Weak: the handles the nodes hold keep the frame alive, not the hooks.
  hooks.pack = [weak = std::weak_ptr<Frame>(frame), policy = current_save_policy()](
                   const Tensor& t, const Node& owner) -> std::any {
    const std::shared_ptr<Frame> f = weak.lock();
    TG_ASSERT(f != nullptr);
    const bool keep = policy && policy(owner.name());
    f->slots.push_back({t.shape(), t.dtype(), !keep, !keep});
    f->recomputed.emplace_back();
    if (keep) return std::any();  // saved as without hooks
    return std::make_shared<SlotHandle>(f, f->slots.size() - 1);
  };
  hooks.unpack = [](const std::any& packed) -> Tensor {
    const auto& h = std::any_cast<const std::shared_ptr<SlotHandle>&>(packed);
    return h->frame->unpack(h->slot);
  };

  std::vector<Tensor> outputs;
  {
    SegmentGuard segment;
    SavedTensorHooksScope scope(std::move(hooks));
    outputs = fn(inputs);
  }
  frame->check_inputs_unmodified("by the checkpointed function");
  for (size_t i = 0; i < outputs.size(); ++i) {
    TG_CHECK(outputs[i].defined(), "checkpoint: output ", i,
             " of the checkpointed function is undefined");
  }
  for (Generator* g : generators) frame->generators_after.push_back(state_of(*g));
  return outputs;
}

Tensor checkpoint(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                  const std::vector<Tensor>& inputs, const std::vector<Generator*>& generators) {
  TG_CHECK(fn != nullptr, "checkpoint: fn is empty");
  return checkpoint(
      CheckpointFn([fn](const std::vector<Tensor>& in) { return std::vector<Tensor>{fn(in)}; }),
      inputs, generators)[0];
}

}  // namespace tilegrad
