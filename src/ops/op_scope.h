// OpScope and OpCounter: how an op call announces itself.
//
// Every op opens an OpScope with its name and cost. The scope labels the op's allocations in the
// memory timeline and adds the call to every OpCounter open on the thread, so a caller can count,
// say, the matmuls a forward and backward performed and the FLOPs and bytes they moved.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/cost.h"
#include "memory/category.h"

namespace tilegrad {

struct OpStats {
  int64_t calls = 0;
  double flops = 0;
  double bytes = 0;
};

// Counts op calls on this thread while alive (counters nest; each sees every call).
class OpCounter {
 public:
  OpCounter();
  ~OpCounter();
  OpCounter(const OpCounter&) = delete;
  OpCounter& operator=(const OpCounter&) = delete;

  const std::map<std::string, OpStats>& by_op() const { return by_op_; }
  OpStats total() const;
  int64_t calls(const std::string& op) const;
  void add(const char* op, const Cost& cost);

 private:
  std::map<std::string, OpStats> by_op_;
};

class OpScope {
 public:
  OpScope(const char* name, const Cost& cost);
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpNameScope name_;
};

}  // namespace tilegrad
