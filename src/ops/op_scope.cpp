#include "ops/op_scope.h"

#include <algorithm>
#include <vector>

namespace tilegrad {

namespace {
thread_local std::vector<OpCounter*> t_counters;
}

OpCounter::OpCounter() {
  t_counters.push_back(this);
}
OpCounter::~OpCounter() {
  t_counters.erase(std::remove(t_counters.begin(), t_counters.end(), this), t_counters.end());
}

OpStats OpCounter::total() const {
  OpStats t;
  for (const auto& [name, s] : by_op_) {
    t.calls += s.calls;
    t.flops += s.flops;
    t.bytes += s.bytes;
  }
  return t;
}

int64_t OpCounter::calls(const std::string& op) const {
  auto it = by_op_.find(op);
  return it == by_op_.end() ? 0 : it->second.calls;
}

void OpCounter::add(const char* op, const Cost& cost) {
  OpStats& s = by_op_[op];
  ++s.calls;
  s.flops += cost.flops;
  s.bytes += cost.bytes;
}

OpScope::OpScope(const char* name, const Cost& cost) : name_(name) {
  for (OpCounter* c : t_counters) c->add(name, cost);
}

}  // namespace tilegrad
