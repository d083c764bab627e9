#include "autograd/grad_mode.h"

namespace tilegrad {

namespace {
thread_local bool t_grad_enabled = true;
thread_local bool t_eager = false;
}  // namespace

bool grad_enabled() {
  return t_grad_enabled;
}
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) {
  t_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  t_grad_enabled = prev_;
}
EnableGradGuard::EnableGradGuard() : prev_(t_grad_enabled) {
  t_grad_enabled = true;
}
EnableGradGuard::~EnableGradGuard() {
  t_grad_enabled = prev_;
}

bool eager_grad_buffers() {
  return t_eager;
}
EagerGradScope::EagerGradScope(bool enabled) : prev_(t_eager) {
  t_eager = enabled;
}
EagerGradScope::~EagerGradScope() {
  t_eager = prev_;
}

}  // namespace tilegrad
