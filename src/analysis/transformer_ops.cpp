// The per-op rows of a GPT-like model (see transformer_ops.h). Each row calls the engine op's cost
// function with the shapes that op sees, so a change to an op's cost shows up here too; the test
// in tests/analysis/analyze_gpt_test.cpp checks the rows against the OpCounter of a real forward.
#include "analysis/transformer_ops.h"

#include "backend/backend.h"
#include "core/error.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "ops/softmax.h"

namespace tilegrad::analysis {

namespace {

std::string dims_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

OpRow matmul_row(const char* name, const Shape& a, const Shape& b, DType dt) {
  return {name, "matmul", dims_str(a) + "x" + dims_str(b), matmul_cost(a, b, dt)};
}

OpRow add_row(const char* name, const Shape& a, const Shape& b, DType dt) {
  return {name, "add", dims_str(a) + "+" + dims_str(b), binary_cost(BinaryOp::add, a, b, dt)};
}

// contiguous() of a strided view: no arithmetic, the bytes read once and written once (the cost
// ops/view.cpp reports for "copy").
OpRow copy_row(const char* name, const Shape& s, DType dt) {
  return {name, "copy", dims_str(s),
          Cost{0, 2.0 * static_cast<double>(numel(s)) * static_cast<double>(dtype_size(dt))}};
}

// A linear layer: x [rows, in] · W [in, out] (+ b [out]). The engine folds x's batch dimensions
// into rows when x is contiguous, which it always is here.
void linear_rows(std::vector<OpRow>& rows, const char* name, const char* bias_name, int64_t n,
                 int64_t in, int64_t out, DType dt, bool bias) {
  rows.push_back(matmul_row(name, {n, in}, {in, out}, dt));
  if (bias) rows.push_back(add_row(bias_name, {n, out}, {out}, dt));
}

}  // namespace

void GptDims::validate() const {
  TG_CHECK(B >= 1 && T >= 1 && d >= 1 && H >= 1 && L >= 1 && V >= 1,
           "transformer: batch, seq, dim, heads, layers and vocab must be >= 1, got B=", B,
           " T=", T, " d=", d, " H=", H, " L=", L, " V=", V);
  TG_CHECK(d % H == 0, "transformer: --heads ", H, " must divide --dim ", d);
  TG_CHECK(is_floating(dtype), "transformer: the dtype must be a float type, got ",
           dtype_name(dtype));
}

std::vector<OpRow> mlp_ops(int64_t B, int64_t T, int64_t d, int64_t hidden, DType dt, bool bias) {
  TG_CHECK(B >= 1 && T >= 1 && d >= 1 && hidden >= 1,
           "mlp: batch, seq, dim and hidden must be >= 1, got B=", B, " T=", T, " d=", d,
           " hidden=", hidden);
  std::vector<OpRow> rows;
  const int64_t n = B * T;
  linear_rows(rows, "fc", "fc_bias", n, d, hidden, dt, bias);
  rows.push_back(
      {"gelu", "gelu", dims_str({B, T, hidden}), unary_cost(UnaryOp::gelu, {B, T, hidden}, dt)});
  linear_rows(rows, "proj", "proj_bias", n, hidden, d, dt, bias);
  return rows;
}

std::vector<OpRow> gpt_layer_ops(const GptDims& g) {
  g.validate();
  const int64_t B = g.B, T = g.T, d = g.d, H = g.H, D = d / H, n = B * T;
  const DType dt = g.dtype;
  std::vector<OpRow> rows;
  rows.push_back({"ln_1", "layer_norm", dims_str({B, T, d}), layer_norm_cost({B, T, d}, dt)});
  linear_rows(rows, "qkv", "qkv_bias", n, d, 3 * d, dt, g.bias);
  for (const char* name : {"q_heads", "k_heads", "v_heads"}) {
    rows.push_back(copy_row(name, {B, H, T, D}, dt));
  }
  rows.push_back({"q_scale", "mul_scalar", dims_str({B, H, T, D}),
                  scalar_cost(ScalarOp::mul, {B, H, T, D}, dt)});
  rows.push_back(matmul_row("scores", {B, H, T, D}, {B, H, D, T}, dt));
  rows.push_back(add_row("causal_mask", {B, H, T, T}, {T, T}, dt));
  rows.push_back({"softmax", "softmax", dims_str({B, H, T, T}), softmax_cost({B, H, T, T}, dt)});
  rows.push_back(matmul_row("attn_v", {B, H, T, T}, {B, H, T, D}, dt));
  rows.push_back(copy_row("merge_heads", {B, T, H, D}, dt));
  linear_rows(rows, "attn_proj", "attn_proj_bias", n, d, d, dt, g.bias);
  rows.push_back(add_row("residual_1", {B, T, d}, {B, T, d}, dt));
  rows.push_back({"ln_2", "layer_norm", dims_str({B, T, d}), layer_norm_cost({B, T, d}, dt)});
  for (OpRow& r : mlp_ops(B, T, d, 4 * d, dt, g.bias)) {
    r.name = "mlp_" + r.name;
    rows.push_back(std::move(r));
  }
  rows.push_back(add_row("residual_2", {B, T, d}, {B, T, d}, dt));
  return rows;
}

std::vector<OpRow> gpt_embed_ops(const GptDims& g) {
  g.validate();
  std::vector<OpRow> rows;
  rows.push_back({"wte", "embedding", dims_str({g.V, g.d}) + "[" + dims_str({g.B, g.T}) + "]",
                  embedding_cost({g.V, g.d}, {g.B, g.T}, g.dtype, DType::i64)});
  rows.push_back(add_row("wpe", {g.B, g.T, g.d}, {g.T, g.d}, g.dtype));
  return rows;
}

std::vector<OpRow> gpt_head_ops(const GptDims& g) {
  g.validate();
  std::vector<OpRow> rows;
  rows.push_back(
      {"ln_f", "layer_norm", dims_str({g.B, g.T, g.d}), layer_norm_cost({g.B, g.T, g.d}, g.dtype)});
  rows.push_back(matmul_row("lm_head", {g.B * g.T, g.d}, {g.d, g.V}, g.dtype));
  rows.push_back({"loss", "cross_entropy", dims_str({g.B, g.T, g.V}),
                  cross_entropy_cost({g.B, g.T, g.V}, g.dtype)});
  return rows;
}

Cost total_cost(const std::vector<OpRow>& rows) {
  Cost c;
  for (const OpRow& r : rows) c += r.cost;
  return c;
}

Cost gpt_forward_cost(const GptDims& g) {
  Cost c = total_cost(gpt_embed_ops(g));
  const Cost layer = total_cost(gpt_layer_ops(g));
  c.flops += static_cast<double>(g.L) * layer.flops;
  c.bytes += static_cast<double>(g.L) * layer.bytes;
  c += total_cost(gpt_head_ops(g));
  return c;
}

}  // namespace tilegrad::analysis
