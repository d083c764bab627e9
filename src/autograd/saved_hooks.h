// Saved-tensor hooks: a thread-local stack of (pack, unpack) pairs that intercepts what nodes save.
//
// Note [Saved-tensor hooks]: while a SavedTensorHooksScope is open, every defined tensor that a
// node saves goes through the innermost pair's pack hook, and the node keeps the hook's opaque
// result instead of the tensor; unpacking calls the unpack hook on that result. So a pack hook can
// drop the value (checkpointing keeps only a slot number and recomputes it), move it elsewhere, or
// compress it, and the memory the saved tensor held is freed as soon as nothing else refers to it.
// Only the innermost pair applies (hooks do not compose), and hooks are off while a pack hook runs,
// so ops a pack hook calls save normally. A pack hook may decline a tensor by returning an empty
// std::any: the node then saves it exactly as without hooks. Without any open scope, saving costs
// one thread-local check more than before and keeps the tensor alias as always.
//
// Version checking: the node remembers the storage's version and a weak reference to the storage.
// If the unpack hook returns a tensor on that same storage, it is checked as an ordinary saved
// tensor (an in-place write after the save is an error). A tensor on another storage (recomputed,
// restored from a copy) is the hooks' responsibility; checkpoint, for one, checks its inputs.
// The unpacked tensor must have the saved shape and dtype.
#pragma once

#include <any>
#include <functional>
#include <memory>

#include "core/tensor.h"

namespace tilegrad {

class Node;

struct SavedTensorHooks {
  // Called when `owner` (under construction; its name() is valid) saves the defined tensor `t`.
  // `t` is a detached alias of the saved tensor (same storage and layout, no autograd history), so
  // a hook may keep it without making a reference cycle through the tensor's grad_fn.
  std::function<std::any(const Tensor& t, const Node& owner)> pack;
  // Called with pack's result each time the node unpacks the tensor (in the backward).
  std::function<Tensor(const std::any& packed)> unpack;
};

// Pushes a hook pair for the scope's lifetime (this thread only). The pair stays alive as long as
// some saved tensor packed by it does, so the scope may close long before the backward.
class SavedTensorHooksScope {
 public:
  explicit SavedTensorHooksScope(SavedTensorHooks hooks);
  ~SavedTensorHooksScope();
  SavedTensorHooksScope(const SavedTensorHooksScope&) = delete;
  SavedTensorHooksScope& operator=(const SavedTensorHooksScope&) = delete;
};

// The innermost pair on this thread, or null when none is open or a pack hook is running.
const std::shared_ptr<const SavedTensorHooks>* current_saved_tensor_hooks();

// Turns the hooks off while alive (set while a pack hook runs; see Note [Saved-tensor hooks]).
class SavedTensorHooksDisabled {
 public:
  SavedTensorHooksDisabled();
  ~SavedTensorHooksDisabled();
  SavedTensorHooksDisabled(const SavedTensorHooksDisabled&) = delete;
  SavedTensorHooksDisabled& operator=(const SavedTensorHooksDisabled&) = delete;

 private:
  bool prev_;
};

}  // namespace tilegrad
