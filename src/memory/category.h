// What a block of memory is for. Every storage allocation carries one category, so the tracker can
// say where each byte goes (the lectures' tracemalloc experiments, by kind of tensor).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tilegrad {

enum class Category : uint8_t {
  parameter,        // model weights
  gradient,         // anything allocated while the backward engine runs a node, and .grad buffers
  optimizer_state,  // moments, master weights
  activation,       // results of ops in the forward, including what is saved for the backward
  workspace,        // temporaries inside a kernel (e.g. a float copy of bf16 operands)
  other,            // user-created tensors (inputs, constants)
};
constexpr int kNumCategories = 6;

std::string_view category_name(Category c);

// The category for allocations on this thread. An explicit scope wins; otherwise ops tag their
// outputs `activation` and factories tag theirs `other` (see current_category_or).
class CategoryScope {
 public:
  explicit CategoryScope(Category c);
  ~CategoryScope();
  CategoryScope(const CategoryScope&) = delete;
  CategoryScope& operator=(const CategoryScope&) = delete;

 private:
  std::optional<Category> prev_;
};

Category current_category_or(Category fallback);

// The op name attached to allocation events on this thread (set by ops; see ops/op_scope.h).
class OpNameScope {
 public:
  explicit OpNameScope(const char* name);
  ~OpNameScope();
  OpNameScope(const OpNameScope&) = delete;
  OpNameScope& operator=(const OpNameScope&) = delete;

 private:
  const char* prev_;
};

const char* current_op_name();  // "" outside any op

}  // namespace tilegrad
