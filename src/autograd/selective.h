// Selective recomputation: which saved tensors a checkpointed segment keeps and which it drops.
//
// Note [Selective recomputation]: a policy is a predicate over the name of the op whose node saves
// a tensor ("matmul", "softmax", "gelu", "layer_norm", ...): true keeps the tensor, false drops it
// for recomputation. It takes effect in every checkpoint() called while a SelectivePolicyScope is
// open (checkpoint reads the policy when it is called and keeps it for its segment); outside a
// checkpoint it has no effect, because recomputing a tensor needs the function that produced it.
// Within a segment:
//   - a tensor saved by a kept op is saved as without hooks (the node holds it, version-checked);
//   - a tensor saved by a dropped op is packed to a slot number, as checkpoint does for all;
//   - the first unpack of a dropped slot re-runs the whole segment once and captures the dropped
//     slots only; the recomputed values of kept slots are not stored and die with the recomputed
//     graph at the end of the re-run.
// Picking recomputed tensors by slot stays right although some slots were kept: every defined
// saved tensor takes a slot number, kept or not, in the order the segment saves them, and the
// re-run (same inputs, same requires_grad flags, same generator states) saves the same sequence,
// which checkpoint verifies (count, shapes and dtypes). The kept values are never mixed with
// recomputed ones of the same slot, and the recomputed ones are bitwise equal to the originals
// because the re-run executes the same kernels on the same data.
//
// What this buys is memory, not compute: the segment is re-run in full (kernel by kernel there is
// no way to skip a kept op's computation), but only when some dropped tensor is needed, and only
// the dropped tensors are held after the forward. A policy that keeps everything means no
// recomputation at all; one that keeps nothing is plain checkpointing.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tilegrad {

// True: keep the tensors that ops of this name save; false: drop and recompute them.
using SavePolicy = std::function<bool(std::string_view op)>;

class SelectivePolicyScope {
 public:
  explicit SelectivePolicyScope(SavePolicy keep);
  ~SelectivePolicyScope();
  SelectivePolicyScope(const SelectivePolicyScope&) = delete;
  SelectivePolicyScope& operator=(const SelectivePolicyScope&) = delete;

 private:
  SavePolicy prev_;
};

// The policy of the innermost open scope on this thread; empty (keep nothing) when none.
const SavePolicy& current_save_policy();

// A policy that keeps what the named ops save and recomputes the rest.
SavePolicy keep_ops(std::vector<std::string> ops);

}  // namespace tilegrad
