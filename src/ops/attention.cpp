// attention: argument checks, forward, backward node, cost.
//
// The op passes q, k and v to the kernels as they are when their D axis is contiguous (a [B, N, H,
// D] projection viewed as [B, H, N, D] is read in place, no transpose copy), and copies them
// otherwise. On a backend that writes strided outputs (the CUDA flash kernels), the output and the
// gradients of q, k and v follow the inputs' layout, so a transformer layer's head split and merge
// cost no copies in either pass. What the node saves depends on the implementation:
//   standard: q, k, v and P [B, H, Nq, Nk] — the backward reads P (Algorithm 0);
//   flash:    q, k, v, the output and the logsumexp [B, H, Nq] — the backward recomputes P.
// So the flash node's saved bytes are linear in N and the standard node's quadratic, which is what
// the tracker shows.
#include "ops/attention.h"

#include <cmath>
#include <vector>

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/factory.h"
#include "ops/op_scope.h"

namespace tilegrad {

namespace {

constexpr int64_t kMaxHeadDim = 256;

DType acc_dtype(DType dt) {
  return dt == DType::f64 ? DType::f64 : DType::f32;
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

struct Dims {
  int64_t B = 0, H = 0, Hkv = 0, Nq = 0, Nk = 0, D = 0;
};

Dims check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  check_defined("attention", q, "q");
  check_defined("attention", k, "k");
  check_defined("attention", v, "v");
  check_compatible("attention", {q, k, v});
  check_floating("attention", q);
  TG_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
           "attention: q must be [B, H, Nq, D] and k, v [B, Hkv, Nk, D], got q ",
           shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  TG_CHECK(k.shape() == v.shape(),
           "attention: k and v must have the same shape [B, Hkv, Nk, D], got k ",
           shape_str(k.shape()), " and v ", shape_str(v.shape()));
  Dims d{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3)};
  TG_CHECK(k.size(0) == d.B, "attention: batch sizes differ: q ", shape_str(q.shape()),
           " has B=", d.B, ", k and v ", shape_str(k.shape()), " have B=", k.size(0));
  TG_CHECK(k.size(3) == d.D, "attention: head dims differ: q ", shape_str(q.shape()),
           " has D=", d.D, ", k and v ", shape_str(k.shape()), " have D=", k.size(3));
  TG_CHECK(d.D >= 1 && d.D <= kMaxHeadDim, "attention: head dim D=", d.D,
           " is not supported (1 <= D <= ", kMaxHeadDim, "), q ", shape_str(q.shape()));
  TG_CHECK(d.Hkv >= 1 && d.H % d.Hkv == 0, "attention: k and v have Hkv=", d.Hkv,
           " heads, which must divide the H=", d.H, " query heads (q ", shape_str(q.shape()),
           ", k ", shape_str(k.shape()), ")");
  TG_CHECK(o.window_left >= -1 && o.window_right >= -1, "attention: window sizes must be >= 0 or ",
           "-1 (unlimited), got left=", o.window_left, ", right=", o.window_right);
  TG_CHECK(o.dropout_p >= 0.0 && o.dropout_p <= 1.0,
           "attention: dropout probability must be in [0, 1], got ", o.dropout_p);
  TG_CHECK(!o.scale || std::isfinite(*o.scale), "attention: scale must be finite, got ",
           o.scale.value_or(0.0));
  if (o.block_layout.defined()) {
    const Tensor& l = o.block_layout;
    TG_CHECK(o.layout_block_q >= 1 && o.layout_block_k >= 1,
             "attention: a block layout needs block sizes >= 1, got layout_block_q=",
             o.layout_block_q, ", layout_block_k=", o.layout_block_k);
    const Shape want{ceil_div(d.Nq, o.layout_block_q), ceil_div(d.Nk, o.layout_block_k)};
    TG_CHECK(l.shape() == want, "attention: block layout has shape ", shape_str(l.shape()),
             ", expected [ceil(Nq/", o.layout_block_q, "), ceil(Nk/", o.layout_block_k,
             ")] = ", shape_str(want), " for Nq=", d.Nq, ", Nk=", d.Nk);
    TG_CHECK(l.dtype() == DType::u8 || l.dtype() == DType::i32 || l.dtype() == DType::i64,
             "attention: block layout must be u8 (bool), int32 or int64, got ",
             dtype_name(l.dtype()));
    TG_CHECK(l.device() == q.device(), "attention: block layout is on ", l.device().str(),
             " but q is on ", q.device().str());
  }
  if (o.impl == AttentionImpl::flash) {
    TG_CHECK(o.fast_memory >= 1 && o.block_r >= 0 && o.block_c >= 0,
             "attention: flash needs fast_memory >= 1 and block sizes >= 0 (0 = from fast_memory), "
             "got fast_memory=",
             o.fast_memory, ", block_r=", o.block_r, ", block_c=", o.block_c);
  }
  return d;
}

// t itself when the kernels can read it (D axis contiguous, rows at least D apart), else a copy.
Tensor kernel_layout(const Tensor& t) {
  const int64_t D = t.size(3);
  if ((t.stride(3) == 1 || D == 1) && t.stride(2) >= D) return t;
  return t.contiguous();
}

// The layout as u8 0/1 on q's device (small: one entry per layout block).
Tensor layout_u8(const Tensor& layout, Device device) {
  const std::vector<double> values = layout.to_vector<double>();
  std::vector<double> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = values[i] != 0.0 ? 1.0 : 0.0;
  return from_vector(bits, layout.shape(), {DType::u8, device, Category::other});
}

void set_strides(int64_t (&dst)[3], const Tensor& t) {
  for (int i = 0; i < 3; ++i) dst[i] = t.stride(i);
}
// Strides for an output or gradient: zero (contiguous) when t is contiguous, else t's.
void set_output_strides(int64_t (&dst)[3], const Tensor& t) {
  for (int i = 0; i < 3; ++i) dst[i] = t.is_contiguous() ? 0 : t.stride(i);
}

// Whether t [B, heads, N, D] is a view of a [B, N, heads, D] layout (heads inside rows), the
// layout of a projection's output split into heads.
bool heads_inside_rows(const Tensor& t) {
  return t.size(1) > 1 && t.size(2) > 1 && t.stride(1) < t.stride(2);
}

// A fresh [B, heads, N, D] tensor laid out as [B, N, heads, D] when `rows_outer`, else contiguous.
Tensor bhnd_output(int64_t B, int64_t heads, int64_t N, int64_t D, DType dt, Device dev,
                   bool rows_outer) {
  if (!rows_outer) return empty_output({B, heads, N, D}, dt, dev);
  return empty_output({B, N, heads, D}, dt, dev).transpose(1, 2);
}

// Whether q, k, v are the three slices of one packed [B, N, 3, H, D] buffer (a fused q/k/v
// projection split into heads): then their gradients can be written into one buffer of that
// layout, which is the projection's gradient as it stands.
bool packed_qkv(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t H = q.size(1), N = q.size(2), D = q.size(3);
  if (k.shape() != q.shape() || v.shape() != q.shape()) return false;
  if (k.storage() != q.storage() || v.storage() != q.storage()) return false;
  const Strides packed{N * 3 * H * D, D, 3 * H * D, 1};
  for (const Tensor* t : {&q, &k, &v}) {
    for (int i = 0; i < 4; ++i) {
      if (t->size(i) > 1 && t->stride(i) != packed[static_cast<size_t>(i)]) return false;
    }
  }
  return k.offset() == q.offset() + H * D && v.offset() == q.offset() + 2 * H * D;
}

// Everything but the pointers and strides, which come from the tensors of each call.
AttentionArgs make_args(const Dims& d, DType dt, const AttentionOptions& o) {
  AttentionArgs a;
  a.dtype = dt;
  a.B = d.B;
  a.H = d.H;
  a.Hkv = d.Hkv;
  a.Nq = d.Nq;
  a.Nk = d.Nk;
  a.D = d.D;
  a.scale = o.scale.value_or(1.0 / std::sqrt(static_cast<double>(d.D)));
  a.causal = o.causal;
  a.window_left = o.window_left;
  a.window_right = o.window_right;
  a.layout_block_q = o.layout_block_q;
  a.layout_block_k = o.layout_block_k;
  a.dropout_p = o.dropout_p;
  a.seed = o.dropout_seed;
  a.offset = o.dropout_offset;
  const FlashBlocks fb = flash_blocks(o.fast_memory, d.D);
  a.block_r = o.block_r > 0 ? o.block_r : fb.r;
  a.block_c = o.block_c > 0 ? o.block_c : fb.c;
  // Tiles set directly apply to both passes; otherwise the backward has its own (flash_blocks).
  const bool direct = o.block_r > 0 || o.block_c > 0;
  a.bwd_block_r = direct ? a.block_r : fb.bwd;
  a.bwd_block_c = direct ? a.block_c : fb.bwd;
  return a;
}

void bind(AttentionArgs& a, const Tensor& q, const Tensor& k, const Tensor& v,
          const Tensor& layout) {
  a.q = q.data();
  a.k = k.data();
  a.v = v.data();
  set_strides(a.q_strides, q);
  set_strides(a.k_strides, k);
  set_strides(a.v_strides, v);
  a.layout = layout.defined() ? static_cast<const uint8_t*>(layout.data()) : nullptr;
}

class AttentionBackward final : public Node {
 public:
  // standard: `p_or_out` is P; flash: the output (and lse the logsumexp).
  AttentionBackward(AttentionImpl impl, const AttentionArgs& args, const Tensor& q, const Tensor& k,
                    const Tensor& v, const Tensor& layout, const Tensor& p_or_out,
                    const Tensor& lse)
      : Node("attention"), impl_(impl), args_(args) {
    q_ = save(q);
    k_ = save(k);
    v_ = save(v);
    layout_ = save(layout);
    p_or_out_ = save(p_or_out);
    lse_ = save(impl == AttentionImpl::flash ? lse : Tensor());
  }

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& gout = grads[0];
    const Tensor& glse = grads[1];
    if ((!gout.defined() && !glse.defined()) ||
        !(needs_input_grad(0) || needs_input_grad(1) || needs_input_grad(2))) {
      return {Tensor(), Tensor(), Tensor()};
    }
    const Tensor q = saved(q_), k = saved(k_), v = saved(v_), layout = saved(layout_);
    Tensor p_or_out = saved(p_or_out_);
    AttentionArgs a = args_;
    bind(a, q, k, v, layout);
    const DType dt = q.dtype(), acc = acc_dtype(dt);
    const Device dev = q.device();
    Backend& be = backend(dev);
    // Flash on a backend that takes strided outputs: dout is read in place when its D axis is
    // contiguous, and the gradients take q, k and v's layout (one packed buffer when they are the
    // slices of one), so that neither side of the op copies to or from [B, H, N, D].
    const bool strided = impl_ == AttentionImpl::flash && be.attention_strided_outputs(a);
    if (!strided) p_or_out = p_or_out.contiguous();
    // A missing gradient reads as zero.
    Tensor dout =
        gout.defined() ? gout.to(dt) : zeros({a.B, a.H, a.Nq, a.D}, {dt, dev, Category::gradient});
    if (!strided || !(dout.stride(3) == 1 || a.D == 1) || dout.stride(2) < a.D)
      dout = dout.contiguous();
    const Tensor gl = glse.defined() ? glse.to(acc).contiguous() : Tensor();
    const void* glp = gl.defined() ? gl.data() : nullptr;
    Tensor dq, dk, dv;
    if (strided && packed_qkv(q, k, v)) {
      const int64_t HD = a.H * a.D;
      const Tensor g = empty_output({a.B, a.Nq, 3, a.H, a.D}, dt, dev);
      const Strides st{a.Nq * 3 * HD, a.D, 3 * HD, 1};
      const Shape shape{a.B, a.H, a.Nq, a.D};
      dq = make_view(g, shape, st, g.offset());
      dk = make_view(g, shape, st, g.offset() + HD);
      dv = make_view(g, shape, st, g.offset() + 2 * HD);
    } else {
      dq = bhnd_output(a.B, a.H, a.Nq, a.D, dt, dev, strided && heads_inside_rows(q));
      dk = bhnd_output(a.B, a.Hkv, a.Nk, a.D, dt, dev, strided && heads_inside_rows(k));
      dv = bhnd_output(a.B, a.Hkv, a.Nk, a.D, dt, dev, strided && heads_inside_rows(v));
    }
    if (impl_ == AttentionImpl::flash) set_output_strides(a.o_strides, p_or_out);
    set_output_strides(a.dout_strides, dout);
    set_output_strides(a.dq_strides, dq);
    set_output_strides(a.dk_strides, dk);
    set_output_strides(a.dv_strides, dv);
    if (impl_ == AttentionImpl::standard) {
      Tensor ds = empty({a.Nq, a.Nk}, {dt, dev, Category::workspace});  // [Nq, Nk] scratch
      be.attention_standard_backward(a, p_or_out.data(), dout.data(), glp, ds.data(), dq.data(),
                                     dk.data(), dv.data());
    } else {
      const Tensor lse = saved(lse_);
      be.attention_flash_backward(a, p_or_out.data(), lse.data(), dout.data(), glp, dq.data(),
                                  dk.data(), dv.data());
    }
    return {needs_input_grad(0) ? dq : Tensor(), needs_input_grad(1) ? dk : Tensor(),
            needs_input_grad(2) ? dv : Tensor()};
  }

 private:
  AttentionImpl impl_;
  AttentionArgs args_;  // pointers unbound: the saved tensors supply them
  size_t q_, k_, v_, layout_, p_or_out_, lse_;
};

}  // namespace

FlashBlocks flash_blocks(int64_t fast_memory, int64_t D) {
  TG_CHECK(fast_memory >= 1 && D >= 1,
           "attention: flash blocks need M >= 1 and D >= 1, got M=", fast_memory, ", D=", D);
  const int64_t c = ceil_div(fast_memory, 4 * D);
  return {std::min(c, D), c, std::min<int64_t>(2 * c, 256)};
}

AttentionResult attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                          const AttentionOptions& options) {
  const Dims d = check_inputs(q_in, k_in, v_in, options);
  TG_CHECK(!forward_ad::any_tangent({q_in, k_in, v_in}),
           "attention: forward-mode AD (tangents on q, k or v) is not supported");
  const Tensor q = kernel_layout(q_in), k = kernel_layout(k_in), v = kernel_layout(v_in);
  const Tensor layout =
      options.block_layout.defined() ? layout_u8(options.block_layout, q.device()) : Tensor();
  const DType dt = q.dtype();
  const Device dev = q.device();

  const Cost cost = attention_cost(q.shape(), k.shape(), dt, options);
  OpScope scope("attention", cost);
  AttentionArgs args = make_args(d, dt, options);
  bind(args, q, k, v, layout);
  Backend& be = backend(dev);
  // The output takes q's layout where the backend can write it (see the backward).
  const bool strided = options.impl == AttentionImpl::flash && be.attention_strided_outputs(args);
  Tensor out = bhnd_output(d.B, d.H, d.Nq, d.D, dt, dev, strided && heads_inside_rows(q));
  set_output_strides(args.o_strides, out);
  Tensor lse = empty_output({d.B, d.H, d.Nq}, acc_dtype(dt), dev);
  Tensor p;
  if (options.impl == AttentionImpl::standard) {
    p = empty_output({d.B, d.H, d.Nq, d.Nk}, dt, dev);
    Tensor s = empty({d.Nq, d.Nk}, {dt, dev, Category::workspace});  // S, one head at a time
    be.attention_standard_forward(args, s.data(), p.data(), out.data(), lse.data());
  } else {
    be.attention_flash_forward(args, out.data(), lse.data());
  }

  if (any_requires_grad({q, k, v})) {
    const bool flash = options.impl == AttentionImpl::flash;
    auto node = std::make_shared<AttentionBackward>(options.impl, args, q, k, v, layout,
                                                    flash ? out : p, lse);
    node->cost = cost;
    set_history(node, {q, k, v}, {out, lse});
  }
  return {out, lse};
}

AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          AttentionOptions options, Generator& gen) {
  const Dims d = check_inputs(q, k, v, options);
  if (options.dropout_p > 0.0) {
    options.dropout_seed = gen.seed();
    options.dropout_offset = gen.reserve(static_cast<uint64_t>(d.B * d.H * d.Nq * d.Nk));
  }
  return attention(q, k, v, options);
}

int64_t attention_visible_pairs(int64_t Nq, int64_t Nk, const AttentionOptions& o) {
  // Row i sees the keys of [lo, hi] (bottom-right aligned band) that the layout allows.
  const int64_t shift = Nk - Nq;
  std::vector<double> layout;
  int64_t layout_cols = 0;
  if (o.block_layout.defined()) {
    layout = o.block_layout.to_vector<double>();
    layout_cols = ceil_div(Nk, o.layout_block_k);
  }
  int64_t right = o.window_right;
  if (o.causal) right = right >= 0 ? std::min<int64_t>(right, 0) : 0;
  int64_t total = 0;
  for (int64_t i = 0; i < Nq; ++i) {
    const int64_t lo = o.window_left >= 0 ? std::max<int64_t>(0, i + shift - o.window_left) : 0;
    const int64_t hi = right >= 0 ? std::min<int64_t>(Nk - 1, i + shift + right) : Nk - 1;
    if (lo > hi) continue;
    if (layout.empty()) {
      total += hi - lo + 1;
      continue;
    }
    for (int64_t bj = 0; bj < layout_cols; ++bj) {
      if (layout[static_cast<size_t>((i / o.layout_block_q) * layout_cols + bj)] == 0.0) continue;
      const int64_t j0 = std::max(lo, bj * o.layout_block_k);
      const int64_t j1 = std::min(hi + 1, (bj + 1) * o.layout_block_k);
      if (j1 > j0) total += j1 - j0;
    }
  }
  return total;
}

Cost attention_cost(const Shape& q, const Shape& k, DType dt, const AttentionOptions& o) {
  const double B = static_cast<double>(q[0]), H = static_cast<double>(q[1]);
  const double Nq = static_cast<double>(q[2]), D = static_cast<double>(q[3]);
  const double Hkv = static_cast<double>(k[1]), Nk = static_cast<double>(k[2]);
  const double pairs = static_cast<double>(attention_visible_pairs(q[2], k[2], o));
  const double size = static_cast<double>(dtype_size(dt));
  const double acc = static_cast<double>(dtype_size(acc_dtype(dt)));
  Cost c;
  c.flops = 4.0 * B * H * pairs * D;
  c.bytes = (2.0 * B * H * Nq * D + 2.0 * B * Hkv * Nk * D) * size + B * H * Nq * acc;
  if (o.impl == AttentionImpl::standard) c.bytes += 4.0 * B * H * Nq * Nk * size;
  return c;
}

}  // namespace tilegrad
