// Elementwise ops: broadcasting binary ops, ops with a scalar, and unary math.
// Forward, backward (autograd nodes) and forward-mode rules are in elementwise.cpp and unary.cpp.
#pragma once

#include "backend/backend.h"
#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

// Broadcasting (NumPy rules); both operands of one dtype and device.
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// 1 where a == b, else 0 (broadcasting); piecewise constant, so it has no gradient.
Tensor eq(const Tensor& a, const Tensor& b);

// With a scalar.
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor rdiv(double s, const Tensor& a);  // s / a
Tensor pow(const Tensor& a, double exponent);

// Unary.
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
Tensor sigmoid(const Tensor& x);
Tensor sqrt(const Tensor& x);
// g · f'(.) for unary op f, where `saved` is f's input or output as unary_backward_reads(op) says:
// one kernel, no graph (what the ops' backward and JVP rules apply).
Tensor unary_derivative(UnaryOp op, const Tensor& g, const Tensor& saved);

inline Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
inline Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
inline Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
inline Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
inline Tensor operator+(const Tensor& a, double s) {
  return add(a, s);
}
inline Tensor operator+(double s, const Tensor& a) {
  return add(a, s);
}
inline Tensor operator-(const Tensor& a, double s) {
  return add(a, -s);
}
inline Tensor operator-(double s, const Tensor& a) {
  return rsub(s, a);
}
inline Tensor operator*(const Tensor& a, double s) {
  return mul(a, s);
}
inline Tensor operator*(double s, const Tensor& a) {
  return mul(a, s);
}
inline Tensor operator/(const Tensor& a, double s) {
  return mul(a, 1.0 / s);
}
inline Tensor operator/(double s, const Tensor& a) {
  return rdiv(s, a);
}
inline Tensor operator-(const Tensor& a) {
  return neg(a);
}

// Costs. Bytes: every input element read once and every output element written once.
Cost binary_cost(BinaryOp op, const Shape& a, const Shape& b, DType dt);
Cost scalar_cost(ScalarOp op, const Shape& a, DType dt);
Cost unary_cost(UnaryOp op, const Shape& x, DType dt);
// FLOPs per element of a unary op (exp, tanh and friends count as in the usual FLOP tables: a
// transcendental is one FLOP; gelu's tanh form is 8: the cubic, the affine part and the product).
double unary_flops_per_element(UnaryOp op);

}  // namespace tilegrad
