// FlashAttention's own accuracy criterion, on the shapes: against a float64 reference (on
// the very same rounded inputs), the flash output's max abs error is at most 2x that of the
// standard implementation in the same precision, and dq, dk, dv at most 3x. Both errors must also
// be small in absolute terms, so that a standard implementation sharing a bug with flash cannot
// make the ratio pass.
//
// The full cross-product of shapes, head dims, masks and dtypes would take far too long in the
// sanitizer build, so each case below is one sampled combination (fixed seeds): every (Nq, Nk) of
// the issue and every D appear with B = H = 1, and causal, windows, GQA/MQA, dropout 0.17 and
// block-sparse layouts are spread over them; the 2048 x 2048 shape appears once, with D = 256.
#include <string>

#include "ops/attention_harness.h"

namespace tgtest {
namespace {

struct Case {
  const char* name;
  int64_t Nq, Nk, D;
  bool causal = false;
  int64_t left = -1, right = -1;
  double p = 0.0;
  int64_t B = 1, H = 1, Hkv = 1;
  int64_t bq = 0, bk = 0;  // a block layout when > 0
};

// Absolute sanity bound on either implementation's error, relative to the reference's magnitude.
double abs_bound(DType dt) {
  return dt == DType::f32 ? 1e-4 : 5e-2;
}

void check(const Case& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(std::string(c.name) + " in " + std::string(dtype_name(dt)));
  const Shape qs{c.B, c.H, c.Nq, c.D}, ks{c.B, c.Hkv, c.Nk, c.D};
  const Tensor q = randn_rounded(qs, seed, dt), k = randn_rounded(ks, seed + 1, dt);
  const Tensor v = randn_rounded(ks, seed + 2, dt), dout = randn_rounded(qs, seed + 3, dt);
  AttentionOptions o;
  o.causal = c.causal;
  o.window_left = c.left;
  o.window_right = c.right;
  o.dropout_p = c.p;
  o.dropout_seed = 1000 + seed;
  o.dropout_offset = 4 * seed;
  if (c.bq > 0) {
    o.block_layout = random_layout((c.Nq + c.bq - 1) / c.bq, (c.Nk + c.bk - 1) / c.bk, 0.6, seed);
    o.layout_block_q = c.bq;
    o.layout_block_k = c.bk;
  }
  const RefResult ref = run_reference(q, k, v, o, dout);
  o.impl = AttentionImpl::standard;
  const AttnRun st = run_attention(q, k, v, dt, o, dout);
  o.impl = AttentionImpl::flash;
  const AttnRun fl = run_attention(q, k, v, dt, o, dout);

  const struct {
    const char* what;
    const std::vector<double>& ref;
    const std::vector<double>& st;
    const std::vector<double>& fl;
    double factor;
  } outputs[] = {{"out", ref.out, st.out, fl.out, 2.0},
                 {"dq", ref.dq, st.dq, fl.dq, 3.0},
                 {"dk", ref.dk, st.dk, fl.dk, 3.0},
                 {"dv", ref.dv, st.dv, fl.dv, 3.0}};
  for (const auto& x : outputs) {
    const double e_st = max_err(x.st, x.ref), e_fl = max_err(x.fl, x.ref);
    const double bound = abs_bound(dt) * (1 + max_abs(x.ref));
    EXPECT_LE(e_fl, x.factor * e_st) << x.what << ": flash error " << e_fl << ", standard error "
                                     << e_st << " (max |ref| " << max_abs(x.ref) << ")";
    EXPECT_LE(e_st, bound) << x.what << ": standard error " << e_st;
    EXPECT_LE(e_fl, bound) << x.what << ": flash error " << e_fl;
  }
  // The logsumexp against the reference: flash forms it from float32 scores, standard from S stored
  // in the input dtype (bfloat16 rounds a score of magnitude 10 by up to 0.02), hence its slack.
  EXPECT_LE(max_err(fl.lse, ref.lse), 1e-4 * (1 + max_abs(ref.lse)));
  EXPECT_LE(max_err(st.lse, ref.lse),
            1e-4 * (1 + max_abs(ref.lse)) + (dt == DType::bf16 ? 0.1 : 0));
}

// name, Nq, Nk, D, causal, left, right, p, B, H, Hkv, bq, bk
const Case kSmallF32[] = {
    {"113x203 D32 causal", 113, 203, 32, true},
    {"113x203 D111 GQA 4:2, B=2", 113, 203, 111, false, -1, -1, 0.0, 2, 4, 2},
    {"128x217 D40 window (48, 16)", 128, 217, 40, false, 48, 16},
    {"1x239 D59 causal", 1, 239, 59, true},
    {"1x239 D256", 1, 239, 256},
    {"3x799 D80 window (100, 3)", 3, 799, 80, false, 100, 3},
    {"3x799 D128 causal", 3, 799, 128, true},
    {"127x513 D96 causal GQA 4:2", 127, 513, 96, true, -1, -1, 0.0, 1, 4, 2},
    {"127x513 D64 block-sparse 16x32", 127, 513, 64, false, -1, -1, 0.0, 1, 1, 1, 16, 32},
};

const Case kDropoutF32[] = {
    {"128x217 D256 causal p=0.17", 128, 217, 256, true, -1, -1, 0.17},
    {"1x239 D96 MQA 3:1 p=0.17", 1, 239, 96, false, -1, -1, 0.17, 1, 3, 1},
    {"127x513 D40 window (64, 64) block-sparse p=0.17", 127, 513, 40, false, 64, 64, 0.17, 1, 1, 1,
     32, 64},
};

const Case kLargeF32[] = {
    {"1023x1024 D64 causal", 1023, 1024, 64, true},
    {"1023x1024 D111 causal window 200 p=0.17", 1023, 1024, 111, true, 200, -1, 0.17},
    {"1024x1023 D96", 1024, 1023, 96},
    {"1024x1023 D64 block-sparse on the flash tiles", 1024, 1023, 64, false, -1, -1, 0.0, 1, 1, 1,
     64, 256},
    {"2048x2048 D256 causal", 2048, 2048, 256, true},
};

const Case kBf16[] = {
    {"113x203 D64 causal", 113, 203, 64, true},
    {"1x239 D128", 1, 239, 128},
    {"3x799 D40 block-sparse 1x100", 3, 799, 40, false, -1, -1, 0.0, 1, 1, 1, 1, 100},
    {"127x513 D96 window (32, 32) p=0.17", 127, 513, 96, false, 32, 32, 0.17},
    {"1024x1023 D64 causal GQA 2:1, B=2", 1024, 1023, 64, true, -1, -1, 0.0, 2, 2, 1},
};

TEST(AttentionCriterion, SmallShapesFloat32) {
  uint64_t seed = 100;
  for (const Case& c : kSmallF32) check(c, DType::f32, seed += 10);
}

TEST(AttentionCriterion, DropoutFloat32) {
  uint64_t seed = 200;
  for (const Case& c : kDropoutF32) check(c, DType::f32, seed += 10);
}

TEST(AttentionCriterion, LargeShapesFloat32) {
  uint64_t seed = 300;
  for (const Case& c : kLargeF32) check(c, DType::f32, seed += 10);
}

TEST(AttentionCriterion, BFloat16) {
  uint64_t seed = 400;
  for (const Case& c : kBf16) check(c, DType::bf16, seed += 10);
}

}  // namespace
}  // namespace tgtest
