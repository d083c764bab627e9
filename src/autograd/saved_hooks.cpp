#include "autograd/saved_hooks.h"

#include <vector>

#include "core/error.h"

namespace tilegrad {

namespace {
thread_local std::vector<std::shared_ptr<const SavedTensorHooks>> t_stack;
thread_local bool t_disabled = false;
}  // namespace

SavedTensorHooksScope::SavedTensorHooksScope(SavedTensorHooks hooks) {
  TG_CHECK(hooks.pack && hooks.unpack, "saved-tensor hooks: both pack and unpack are required");
  t_stack.push_back(std::make_shared<const SavedTensorHooks>(std::move(hooks)));
}

SavedTensorHooksScope::~SavedTensorHooksScope() {
  t_stack.pop_back();
}

const std::shared_ptr<const SavedTensorHooks>* current_saved_tensor_hooks() {
  if (t_stack.empty() || t_disabled) return nullptr;
  return &t_stack.back();
}

SavedTensorHooksDisabled::SavedTensorHooksDisabled() : prev_(t_disabled) {
  t_disabled = true;
}

SavedTensorHooksDisabled::~SavedTensorHooksDisabled() {
  t_disabled = prev_;
}

}  // namespace tilegrad
