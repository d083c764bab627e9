// Float64 reference optimizers for the tests, written from the papers' update rules rather than
// from the kernels: AdamW as in Loshchilov & Hutter (bias-corrected m̂, v̂; decay λ·lr·θ), SGD with
// momentum as PyTorch documents it. Plus helpers to give parameters gradients.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "io/named_tensors.h"
#include "testing.h"

namespace tgtest {

struct RefAdamW {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<double> m, v;
  int t = 0;

  void step(std::vector<double>& p, const std::vector<double>& g, double weight_decay) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] -= lr * weight_decay * p[i];
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      const double m_hat = m[i] / (1 - std::pow(beta1, t));
      const double v_hat = v[i] / (1 - std::pow(beta2, t));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  }
};

struct RefSGD {
  double lr = 1e-2, momentum = 0, dampening = 0;
  bool nesterov = false;
  std::vector<double> buf;

  void step(std::vector<double>& p, const std::vector<double>& grad, double weight_decay) {
    const bool first = buf.empty();
    if (first) buf.assign(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      double g = grad[i] + weight_decay * p[i];
      if (momentum != 0) {
        buf[i] = first ? g : momentum * buf[i] + (1 - dampening) * g;
        g = nesterov ? g + momentum * buf[i] : buf[i];
      }
      p[i] -= lr * g;
    }
  }
};

inline std::vector<double> values(const Tensor& t) {
  return t.to_vector<double>();
}

// A leaf parameter with values uniform in [lo, hi).
inline Tensor param(const Shape& shape, uint64_t seed, DType dt = DType::f32, double lo = -1.0,
                    double hi = 1.0) {
  Tensor p = rnd(shape, seed, dt, lo, hi);
  p.set_category(Category::parameter);
  p.set_requires_grad();
  return p;
}

// Sets p.grad to uniform values in [lo, hi) of p's dtype; returns them as doubles (as stored).
inline std::vector<double> give_grad(const Tensor& p, uint64_t seed, double lo = -1.0,
                                     double hi = 1.0) {
  const Tensor g = rnd(p.shape(), seed, p.dtype(), lo, hi);
  p.set_grad(g);
  return values(g);
}

}  // namespace tgtest
