#include "optim/fused_update.h"

#include <optional>
#include <vector>

#include "autograd/grad_mode.h"
#include "backend/backend.h"
#include "core/error.h"
#include "memory/category.h"

namespace tilegrad::optim {

namespace {

void check_like(const char* op, const Tensor& t, const Tensor& param, DType dt, const char* what) {
  TG_ASSERT(t.defined(), op, ": missing ", what);
  TG_ASSERT(t.shape() == param.shape() && t.dtype() == dt && t.is_contiguous() &&
                t.device() == param.device(),
            op, ": ", what, " ", t.str(), " does not match parameter ", param.str());
}

// The dtype optimizer state is kept in for a parameter dtype (acc_t: float64 stays float64).
DType state_dtype(DType param) {
  return param == DType::f64 ? DType::f64 : DType::f32;
}

float* master_ptr(const char* op, const Tensor& param, const Tensor& master) {
  const bool needs = param.dtype() == DType::bf16 || param.dtype() == DType::f16;
  if (!needs) {
    TG_ASSERT(!master.defined(), op, ": master weights for a ", dtype_name(param.dtype()),
              " parameter");
    return nullptr;
  }
  check_like(op, master, param, DType::f32, "master weights");
  return master.data_ptr<float>();
}

void check_param_and_grad(const char* op, const Tensor& param, const Tensor& grad) {
  TG_ASSERT(param.is_contiguous(), op, ": parameter ", param.str(), " is not contiguous");
  TG_CHECK(grad.shape() == param.shape() && grad.dtype() == param.dtype() && grad.is_contiguous() &&
               grad.device() == param.device(),
           op, ": gradient ", grad.str(), " does not match parameter ", param.str());
}

// The checked raw operands of one AdamW update.
AdamWTensor adamw_tensor(const char* op, const AdamWOperands& x) {
  check_param_and_grad(op, x.param, x.grad);
  const DType sd = state_dtype(x.param.dtype());
  check_like(op, x.m, x.param, sd, "first moment");
  check_like(op, x.v, x.param, sd, "second moment");
  return {x.param.data(), master_ptr(op, x.param, x.master),
          x.grad.data(),  x.m.data(),
          x.v.data(),     x.param.numel(),
          x.step};
}

}  // namespace

void fused_adamw_multi(const char* op, std::span<const AdamWOperands> xs) {
  // Everything is checked before anything is updated, so a bad entry changes no parameter.
  std::vector<AdamWTensor> ts;
  ts.reserve(xs.size());
  for (const AdamWOperands& x : xs) ts.push_back(adamw_tensor(op, x));
  for (size_t i = 0; i < xs.size();) {
    size_t j = i + 1;
    while (j < xs.size() && xs[j].param.device() == xs[i].param.device() &&
           xs[j].param.dtype() == xs[i].param.dtype())
      ++j;
    backend(xs[i].param.device())
        .adamw_update_multi(xs[i].param.dtype(), std::span(ts).subspan(i, j - i));
    i = j;
  }
}

void fused_sgd(const char* op, const Tensor& param, const Tensor& master, const Tensor& grad,
               const Tensor& momentum_buf, const SgdStep& s) {
  check_param_and_grad(op, param, grad);
  void* buf = nullptr;
  if (s.momentum != 0.0) {
    check_like(op, momentum_buf, param, state_dtype(param.dtype()), "momentum buffer");
    buf = momentum_buf.data();
  }
  backend(param.device())
      .sgd_update(param.dtype(), param.data(), master_ptr(op, param, master), grad.data(), buf,
                  param.numel(), s);
}

double grad_sum_squares(const Tensor& g) {
  TG_ASSERT(g.is_contiguous(), "grad_sum_squares: gradient ", g.str(), " is not contiguous");
  return backend(g.device()).sum_squares(g.dtype(), g.data(), g.numel());
}

Tensor contiguous_grad(const Tensor& param) {
  Tensor g = param.grad();
  if (!g.defined() || g.is_contiguous()) return g;
  NoGradGuard no_grad;
  CategoryScope scratch(Category::workspace);
  return g.contiguous();
}

double grad_sum_squares_list(const std::vector<Tensor>& gs) {
  std::vector<SumSquaresInput> xs;
  std::optional<Device> device;
  bool one_device = true;
  for (const Tensor& g : gs) {
    if (!g.defined()) continue;
    TG_ASSERT(g.is_contiguous(), "grad_sum_squares_list: gradient ", g.str(), " is not contiguous");
    if (device && *device != g.device()) one_device = false;
    device = g.device();
    xs.push_back({g.dtype(), g.data(), g.numel()});
  }
  if (!device) return 0.0;
  if (one_device) return backend(*device).sum_squares_list(xs);
  double total = 0.0;
  for (const Tensor& g : gs)
    if (g.defined()) total += grad_sum_squares(g);
  return total;
}

}  // namespace tilegrad::optim
