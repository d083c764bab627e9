#include "autograd/grad_col_sums.h"

#include <utility>

#include "autograd/meta.h"
#include "core/error.h"

namespace tilegrad {

void attach_col_sums(const Tensor& grad, Tensor sums) {
  TG_ASSERT(grad.defined() && grad.dim() >= 1 && grad.is_contiguous() && sums.defined() &&
                sums.shape() == Shape{grad.size(-1)} && sums.dtype() == grad.dtype() &&
                sums.device() == grad.device(),
            "attach_col_sums: the sums must be [N] beside a contiguous [..., N] gradient");
  AutogradMeta& m = autograd_meta(grad);
  m.col_sums = std::move(sums);
  m.col_sums_version = grad.storage()->version();
}

Tensor take_col_sums(const Tensor& grad, int64_t N) {
  AutogradMeta* m = grad.defined() ? autograd_meta_or_null(grad) : nullptr;
  if (m == nullptr || !m->col_sums.defined()) return Tensor();
  // attach_col_sums checked their shape, dtype and device against grad's, which do not change;
  // what can change is grad's values.
  Tensor sums = std::exchange(m->col_sums, Tensor());
  const bool holds = m->col_sums_version == grad.storage()->version() && grad.size(-1) == N;
  return holds ? sums : Tensor();
}

}  // namespace tilegrad
