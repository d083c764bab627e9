// The CPU backend: forwards every Backend entry to kernels/cpu/.
#include <cstring>

#include "backend/backend.h"
#include "core/error.h"
#include "kernels/cpu/attention_flash.h"
#include "kernels/cpu/attention_standard.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/gelu_backward.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/optim.h"
#include "kernels/cpu/random.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cpu/softmax.h"

namespace tilegrad {

namespace {

namespace k = kernels::cpu;

class CpuBackend final : public Backend {
 public:
  void copy_from_host(const void* host, void* dst, int64_t bytes) override {
    if (bytes > 0) std::memcpy(dst, host, static_cast<size_t>(bytes));
  }
  void copy_to_host(const void* src, void* host, int64_t bytes) override {
    if (bytes > 0) std::memcpy(host, src, static_cast<size_t>(bytes));
  }
  void copy(const StridedView& src, const StridedView& dst) override { k::copy(src, dst); }
  void fill(const StridedView& dst, double value) override { k::fill(dst, value); }
  void unary(UnaryOp op, const StridedView& x, const StridedView& y) override {
    k::unary(op, x, y);
  }
  void unary_backward(UnaryOp op, const StridedView& gy, const StridedView& saved,
                      const StridedView& gx) override {
    k::unary_backward(op, gy, saved, gx);
  }
  void binary(BinaryOp op, const StridedView& a, const StridedView& b,
              const StridedView& out) override {
    k::binary(op, a, b, out);
  }
  void scalar(ScalarOp op, const StridedView& a, double s, const StridedView& out) override {
    k::scalar(op, a, s, out);
  }
  void add_scaled(const StridedView& src, double alpha, const StridedView& dst) override {
    k::add_scaled(src, alpha, dst);
  }
  void reduce(ReduceOp op, const StridedView& x, const StridedView& out) override {
    k::reduce(op, x, out);
  }
  void gemm(const GemmArgs& args) override { k::gemm(args); }
  void softmax_forward(DType dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner,
                       bool log) override {
    k::softmax_forward(dt, x, y, outer, n, inner, log);
  }
  void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n,
                        int64_t inner, bool log) override {
    k::softmax_backward(dt, y, gy, gx, outer, n, inner, log);
  }
  void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y, void* mean,
                         void* rstd, int64_t rows, int64_t C, double eps) override {
    k::layernorm_forward(dt, x, w, b, y, mean, rstd, rows, C, eps);
  }
  void layernorm_backward(DType dt, const void* gy, const LayerNormSaved& saved, const void* w,
                          void* gx, void* gw, void* gb, int64_t rows, int64_t C, const void* gx_add,
                          void* gx_sum) override {
    k::layernorm_backward(dt, gy, saved, w, gx, gw, gb, rows, C, gx_add, gx_sum);
  }
  void gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                           int64_t rows, int64_t M) override {
    k::gelu_backward_fused(dt, pre, grad, h, grad_sum, rows, M);
  }
  void embedding_forward(DType dt, const void* weight, DType idx_dt, const void* idx, void* out,
                         int64_t n, int64_t C) override {
    k::embedding_forward(dt, weight, idx_dt, idx, out, n, C);
  }
  void embedding_backward(DType dt, const void* gout, DType idx_dt, const void* idx, void* gweight,
                          int64_t n, int64_t C, int64_t V, bool accumulate) override {
    k::embedding_backward(dt, gout, idx_dt, idx, gweight, n, C, V, accumulate);
  }
  int64_t find_out_of_range(DType idx_dt, const void* idx, int64_t n, int64_t lo, int64_t hi,
                            int64_t ignore, int64_t* bad_value) override {
    return k::find_out_of_range(idx_dt, idx, n, lo, hi, ignore, bad_value);
  }
  void cross_entropy_forward(DType dt, const void* logits, DType t_dt, const void* targets,
                             void* losses, void* lse, int64_t rows, int64_t V, int64_t ld,
                             int64_t ignore_index) override {
    k::cross_entropy_forward(dt, logits, t_dt, targets, losses, lse, rows, V, ld, ignore_index);
  }
  void cross_entropy_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                              const void* lse, const void* gloss, double scale, void* glogits,
                              int64_t rows, int64_t V, int64_t ld, int64_t ignore_index) override {
    k::cross_entropy_backward(dt, logits, t_dt, targets, lse, gloss, scale, glogits, rows, V, ld,
                              ignore_index);
  }
  void attention_standard_forward(const AttentionArgs& args, void* s, void* p, void* o,
                                  void* lse) override {
    k::attention_standard_forward(args, s, p, o, lse);
  }
  void attention_standard_backward(const AttentionArgs& args, const void* p, const void* dout,
                                   const void* glse, void* ds, void* dq, void* dk,
                                   void* dv) override {
    k::attention_standard_backward(args, p, dout, glse, ds, dq, dk, dv);
  }
  void attention_flash_forward(const AttentionArgs& args, void* o, void* lse) override {
    k::attention_flash_forward(args, o, lse);
  }
  void attention_flash_backward(const AttentionArgs& args, const void* o, const void* lse,
                                const void* dout, const void* glse, void* dq, void* dk,
                                void* dv) override {
    k::attention_flash_backward(args, o, lse, dout, glse, dq, dk, dv);
  }
  void adamw_update(DType dt, void* param, float* master, const void* grad, void* m, void* v,
                    int64_t n, const AdamWStep& s) override {
    k::adamw_update(dt, param, master, grad, m, v, n, s);
  }
  void sgd_update(DType dt, void* param, float* master, const void* grad, void* momentum_buf,
                  int64_t n, const SgdStep& s) override {
    k::sgd_update(dt, param, master, grad, momentum_buf, n, s);
  }
  double sum_squares(DType dt, const void* x, int64_t n) override {
    return k::sum_squares(dt, x, n);
  }
  void dropout(DType dt, const void* x, void* y, int64_t n, double p, uint64_t seed,
               uint64_t offset) override {
    k::dropout(dt, x, y, n, p, seed, offset);
  }
  void fill_uniform(DType dt, void* dst, int64_t n, double lo, double hi, uint64_t seed,
                    uint64_t offset) override {
    k::fill_uniform(dt, dst, n, lo, hi, seed, offset);
  }
  void fill_normal(DType dt, void* dst, int64_t n, double mean, double std, uint64_t seed,
                   uint64_t offset) override {
    k::fill_normal(dt, dst, n, mean, std, seed, offset);
  }
};

Backend* g_backends[kNumDeviceTypes] = {};

}  // namespace

Backend& backend(Device device) {
  static Backend* cpu = [] {
    auto* b = new CpuBackend();  // never destroyed: tensors may be freed during static destruction
    g_backends[static_cast<int>(DeviceType::cpu)] = b;
    return b;
  }();
  (void)cpu;
  Backend* b = g_backends[static_cast<int>(device.type)];
  TG_CHECK(b != nullptr, "no backend for device ", device.str(), " in this build of tilegrad");
  return *b;
}

bool device_available(DeviceType type) {
  backend(Device::cpu());  // registers the CPU backend
  Backend* b = g_backends[static_cast<int>(type)];
  return b != nullptr && b->device_count() > 0;
}

void register_backend(DeviceType type, Backend* b) {
  g_backends[static_cast<int>(type)] = b;
}

// The optional attention entries of a backend that does not provide them.
void Backend::attention_standard_forward(const AttentionArgs&, void*, void*, void*, void*) {
  throw Error("attention: this device's backend has no standard attention kernel");
}
void Backend::attention_standard_backward(const AttentionArgs&, const void*, const void*,
                                          const void*, void*, void*, void*, void*) {
  throw Error("attention: this device's backend has no standard attention backward kernel");
}
void Backend::attention_flash_forward(const AttentionArgs&, void*, void*) {
  throw Error("attention: this device's backend has no flash attention kernel");
}
void Backend::attention_flash_backward(const AttentionArgs&, const void*, const void*, const void*,
                                       const void*, void*, void*, void*) {
  throw Error("attention: this device's backend has no flash attention backward kernel");
}

// The GELU backward as the three entries it stands for, for a backend without a one-pass kernel
// (and the GPU's for what its kernel does not take).
void Backend::gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                                  int64_t rows, int64_t M) {
  const StridedView p = matrix_view(pre, dt, rows, M, M), g = matrix_view(grad, dt, rows, M, M);
  unary_backward(UnaryOp::gelu, g, p, g);  // elementwise: in place is safe
  if (h != nullptr) unary(UnaryOp::gelu, p, matrix_view(h, dt, rows, M, M));
  if (grad_sum != nullptr) reduce(ReduceOp::sum, g, matrix_view(grad_sum, dt, 1, M, M));
}

const char* unary_op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg:
      return "neg";
    case UnaryOp::exp:
      return "exp";
    case UnaryOp::log:
      return "log";
    case UnaryOp::tanh:
      return "tanh";
    case UnaryOp::relu:
      return "relu";
    case UnaryOp::gelu:
      return "gelu";
    case UnaryOp::sigmoid:
      return "sigmoid";
    case UnaryOp::sqrt:
      return "sqrt";
  }
  return "?";
}

const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add:
      return "add";
    case BinaryOp::sub:
      return "sub";
    case BinaryOp::mul:
      return "mul";
    case BinaryOp::div:
      return "div";
    case BinaryOp::eq:
      return "eq";
  }
  return "?";
}

const char* scalar_op_name(ScalarOp op) {
  switch (op) {
    case ScalarOp::add:
      return "add_scalar";
    case ScalarOp::mul:
      return "mul_scalar";
    case ScalarOp::rsub:
      return "rsub_scalar";
    case ScalarOp::rdiv:
      return "rdiv_scalar";
    case ScalarOp::pow:
      return "pow_scalar";
  }
  return "?";
}

SavedOperand unary_backward_reads(UnaryOp op) {
  switch (op) {
    case UnaryOp::exp:
    case UnaryOp::tanh:
    case UnaryOp::sigmoid:
    case UnaryOp::sqrt:
      return SavedOperand::output;
    default:
      return SavedOperand::input;
  }
}

}  // namespace tilegrad
