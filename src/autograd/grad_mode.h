// Thread-local switches of the autograd engine: whether ops record graph, and whether gradient
// buffers are allocated eagerly with every tensor (the wasteful variant the memtrace lecture
// shows).
#pragma once

namespace tilegrad {

bool grad_enabled();

// Ops inside the scope record no graph (their results do not require grad).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// Ops inside the scope record graph again, even within a NoGradGuard (a backward that recomputes a
// checkpointed forward needs the recomputation's saved tensors).
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

bool eager_grad_buffers();

// Inside the scope every tensor that requires grad gets its (zero) gradient buffer when it is
// created, instead of at the first accumulation in the backward. Exists to measure what lazy
// buffers save.
class EagerGradScope {
 public:
  explicit EagerGradScope(bool enabled = true);
  ~EagerGradScope();
  EagerGradScope(const EagerGradScope&) = delete;
  EagerGradScope& operator=(const EagerGradScope&) = delete;

 private:
  bool prev_;
};

}  // namespace tilegrad
