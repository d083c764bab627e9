#include "optim/grad_clip.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/grad_mode.h"
#include "optim/fused_update.h"

namespace tilegrad::optim {

double global_grad_norm(const NamedTensors& params) {
  std::vector<Tensor> grads;
  grads.reserve(params.size());
  for (const NamedTensor& p : params) grads.push_back(contiguous_grad(p.tensor));
  return std::sqrt(grad_sum_squares_list(grads));
}

double clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  return std::min(1.0, max_norm / (norm + 1e-6));
}

double clip_grad_norm_(const NamedTensors& params, double max_norm) {
  const double norm = global_grad_norm(params);
  const double coef = clip_coefficient(norm, max_norm);
  if (!std::isfinite(norm) || coef >= 1.0) return norm;
  NoGradGuard no_grad;
  for (const NamedTensor& p : params) {
    const Tensor g = p.tensor.grad();
    if (g.defined()) g.mul_(coef);
  }
  return norm;
}

}  // namespace tilegrad::optim
