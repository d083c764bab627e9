// In-place ops (the Tensor methods fill_, copy_, add_, mul_). They are not recorded by autograd;
// each bumps the storage's version counter so a saved tensor that is overwritten is detected.
#include "autograd/grad_mode.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/op_scope.h"

namespace tilegrad {

namespace {

void check_writable(const Tensor& t, const char* op) {
  check_defined(op, t, "destination");
  TG_CHECK(!(grad_enabled() && t.requires_grad()), op, ": in-place write to a tensor of shape ",
           shape_str(t.shape()),
           " that requires grad (it is a leaf or part of a graph); wrap the "
           "update in NoGradGuard");
}

}  // namespace

const Tensor& Tensor::fill_(double value) const {
  check_writable(*this, "fill_");
  OpScope scope("fill_", Cost{0, static_cast<double>(nbytes())});
  backend(device()).fill(strided(*this), value);
  storage()->bump_version();
  return *this;
}

const Tensor& Tensor::copy_(const Tensor& src) const {
  check_writable(*this, "copy_");
  check_defined("copy_", src, "source");
  TG_CHECK(src.device() == device(), "copy_: source on ", src.device().str(), ", destination on ",
           device().str());
  TG_CHECK(broadcast_shapes(src.shape(), shape(), "copy_") == shape(), "copy_: source ",
           shape_str(src.shape()), " does not broadcast to destination ", shape_str(shape()));
  OpScope scope("copy_", Cost{0, static_cast<double>(src.nbytes() + nbytes())});
  backend(device()).copy(strided_as(src, shape()), strided(*this));
  storage()->bump_version();
  return *this;
}

const Tensor& Tensor::add_(const Tensor& other, double alpha) const {
  check_writable(*this, "add_");
  check_compatible("add_", {*this, other});
  TG_CHECK(broadcast_shapes(other.shape(), shape(), "add_") == shape(),
           "add_: ", shape_str(other.shape()), " does not broadcast to ", shape_str(shape()));
  OpScope scope("add_", Cost{static_cast<double>(numel()),
                             static_cast<double>(2 * nbytes() + other.nbytes())});
  backend(device()).add_scaled(strided_as(other, shape()), alpha, strided(*this));
  storage()->bump_version();
  return *this;
}

const Tensor& Tensor::mul_(double value) const {
  check_writable(*this, "mul_");
  OpScope scope("mul_", Cost{static_cast<double>(numel()), static_cast<double>(2 * nbytes())});
  backend(device()).scalar(ScalarOp::mul, strided(*this), value, strided(*this));
  storage()->bump_version();
  return *this;
}

}  // namespace tilegrad
