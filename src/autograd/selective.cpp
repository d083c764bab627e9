#include "autograd/selective.h"

#include <algorithm>
#include <utility>

namespace tilegrad {

namespace {
thread_local SavePolicy t_policy;
}  // namespace

SelectivePolicyScope::SelectivePolicyScope(SavePolicy keep) : prev_(std::move(t_policy)) {
  t_policy = std::move(keep);
}

SelectivePolicyScope::~SelectivePolicyScope() {
  t_policy = std::move(prev_);
}

const SavePolicy& current_save_policy() {
  return t_policy;
}

SavePolicy keep_ops(std::vector<std::string> ops) {
  return [ops = std::move(ops)](std::string_view op) {
    return std::find(ops.begin(), ops.end(), op) != ops.end();
  };
}

}  // namespace tilegrad
