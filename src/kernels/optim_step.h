// The hyperparameters of one optimizer step for one tensor, shared by the optimizer kernels of
// every device (kernels/cpu/optim.h, kernels/cuda/optim.h) and the Backend interface.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "core/error.h"

namespace tilegrad {

// Whether parameters stored as T keep float32 master weights that the update works on: the 16-bit
// types do; float32 and float64 parameters are their own master.
template <class T>
inline constexpr bool kHasMaster = std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>;

// Checks that an update of T parameters got a master pointer exactly when it needs one.
template <class T>
void check_master(const float* master) {
  if constexpr (kHasMaster<T>) {
    TG_ASSERT(master != nullptr, "16-bit parameters need float32 master weights");
  } else {
    TG_ASSERT(master == nullptr, "float32/float64 parameters are their own master");
  }
}

// One AdamW step for one tensor (PyTorch's formulation, decoupled weight decay):
//   g = grad * grad_scale
//   p = p * (1 - lr * weight_decay)
//   m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g²
//   p = p - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
struct AdamWStep {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  int64_t step = 1;         // 1 at the first update of this tensor (bias correction)
  double grad_scale = 1.0;  // folds loss-scale removal, accumulation averaging and clipping in
};

// One SGD step for one tensor (PyTorch's formulation, L2 weight decay added to the gradient):
//   g = grad * grad_scale + weight_decay * p
//   b = first_step ? g : momentum b + (1 - dampening) g      (when momentum != 0)
//   g = nesterov ? g + momentum b : b                         (when momentum != 0)
//   p = p - lr g
struct SgdStep {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = true;  // the momentum buffer starts as the first gradient
  double grad_scale = 1.0;
};

// One tensor of a multi-tensor AdamW step (Backend::adamw_update_multi): the operands of
// adamw_update (param and grad of the step's dtype, master float32 for 16-bit parameters or null,
// m and v in the accumulation type) and the tensor's own hyperparameters and step count.
struct AdamWTensor {
  void* param = nullptr;
  float* master = nullptr;
  const void* grad = nullptr;
  void* m = nullptr;
  void* v = nullptr;
  int64_t n = 0;
  AdamWStep step;
};

// One operand of a sum of squares over many tensors (Backend::sum_squares_list).
struct SumSquaresInput {
  DType dtype = DType::f32;
  const void* x = nullptr;
  int64_t n = 0;
};

}  // namespace tilegrad
