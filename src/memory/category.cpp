#include "memory/category.h"

namespace tilegrad {

namespace {
thread_local std::optional<Category> t_category;
thread_local const char* t_op_name = "";
}  // namespace

std::string_view category_name(Category c) {
  switch (c) {
    case Category::parameter:
      return "parameter";
    case Category::gradient:
      return "gradient";
    case Category::optimizer_state:
      return "optimizer_state";
    case Category::activation:
      return "activation";
    case Category::workspace:
      return "workspace";
    case Category::other:
      return "other";
  }
  return "?";
}

CategoryScope::CategoryScope(Category c) : prev_(t_category) {
  t_category = c;
}
CategoryScope::~CategoryScope() {
  t_category = prev_;
}
Category current_category_or(Category fallback) {
  return t_category.value_or(fallback);
}

OpNameScope::OpNameScope(const char* name) : prev_(t_op_name) {
  t_op_name = name;
}
OpNameScope::~OpNameScope() {
  t_op_name = prev_;
}
const char* current_op_name() {
  return t_op_name;
}

}  // namespace tilegrad
