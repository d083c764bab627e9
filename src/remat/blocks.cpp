// The block model, its simulator, the schedule of a policy, and the exact DP: Note [Block model] in
// blocks.h and docs/REMAT.md ("Blocks with per-op choices").
#include "remat/blocks.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>

#include "core/error.h"

namespace tilegrad::remat {

void BlockChainSpec::validate() const {
  TG_CHECK(input_bytes >= 1, "blocks: input_bytes must be >= 1, got ", input_bytes);
  TG_CHECK(!blocks.empty(), "blocks: need at least one block");
  for (size_t b = 0; b < blocks.size(); ++b) {
    TG_CHECK(!blocks[b].empty() && blocks[b].size() <= 16, "blocks: block ", b, " has ",
             blocks[b].size(), " ops; expected 1..16");
    for (size_t j = 0; j < blocks[b].size(); ++j) {
      const BlockOp& op = blocks[b][j];
      TG_CHECK(op.out_bytes >= 1, "blocks: block ", b, " op ", j, " (", op.name,
               "): out_bytes must be >= 1");
      TG_CHECK(op.flops >= 0, "blocks: block ", b, " op ", j, " (", op.name,
               "): flops must be >= 0");
      TG_CHECK(op.param_grad_bytes >= 0, "blocks: block ", b, " op ", j, " (", op.name,
               "): param_grad_bytes must be >= 0");
    }
  }
}

int BlockChainSpec::num_ops() const {
  int n = 0;
  for (const auto& b : blocks) n += static_cast<int>(b.size());
  return n;
}

int64_t BlockChainSpec::total_flops() const {
  int64_t f = 0;
  for (const auto& b : blocks)
    for (const BlockOp& op : b) f += op.flops;
  return f;
}

BlockChainSpec BlockChainSpec::mlp_blocks(int count, int64_t bytes, int64_t flops, int ratio) {
  BlockChainSpec s;
  s.input_bytes = bytes;
  for (int b = 0; b < count; ++b)
    s.blocks.push_back({{"matmul_up", ratio * bytes, ratio * flops, true, false},
                        {"gelu", ratio * bytes, 0, true, false},
                        {"matmul_down", bytes, ratio * flops, true, false}});
  return s;
}

BlockChainSpec BlockChainSpec::attention_blocks(int count, int64_t bytes, int64_t flops,
                                                int score_ratio) {
  BlockChainSpec s;
  s.input_bytes = bytes;
  for (int b = 0; b < count; ++b)
    s.blocks.push_back({{"matmul_scores", score_ratio * bytes, score_ratio * flops, true, false},
                        {"softmax", score_ratio * bytes, 0, false, true},
                        {"matmul_values", bytes, score_ratio * flops, true, false}});
  return s;
}

std::string to_string(const BlockAction& a) {
  switch (a.kind) {
    case BlockActionKind::compute:
      return "compute(" + std::to_string(a.k) + ")";
    case BlockActionKind::free:
      return "free(" + std::to_string(a.k) + ")";
    case BlockActionKind::loss:
      return "loss";
    case BlockActionKind::backward:
      return "backward(" + std::to_string(a.k) + ")";
  }
  return "?";
}

namespace {

// The flattened view: sizes s_0..s_n, flops and flags of ops 1..n, block starts P_0..P_N.
struct Flat {
  std::vector<int64_t> s, f, pg;
  std::vector<char> reads_in, reads_out;
  std::vector<int> P;
  int n = 0, N = 0;

  explicit Flat(const BlockChainSpec& spec) {
    spec.validate();
    s.push_back(spec.input_bytes);
    f.push_back(0);
    pg.push_back(0);
    reads_in.push_back(0);
    reads_out.push_back(0);
    P.push_back(0);
    for (const auto& blk : spec.blocks) {
      for (const BlockOp& op : blk) {
        s.push_back(op.out_bytes);
        f.push_back(op.flops);
        pg.push_back(op.param_grad_bytes);
        reads_in.push_back(op.bwd_reads_input);
        reads_out.push_back(op.bwd_reads_output);
      }
      P.push_back(static_cast<int>(s.size()) - 1);
    }
    n = P.back();
    N = static_cast<int>(spec.blocks.size());
  }
  // K_b: block b's input and the outputs its mask saves (tensor indices, increasing).
  std::vector<int> kept(int b, uint32_t mask) const {
    std::vector<int> k{P[static_cast<size_t>(b)]};
    const int ops = P[static_cast<size_t>(b) + 1] - P[static_cast<size_t>(b)];
    for (int j = 0; j + 1 < ops; ++j)
      if (mask >> j & 1u) k.push_back(P[static_cast<size_t>(b)] + j + 1);
    return k;
  }
};

// Emits block b's backward (Note [Block model]) into `out`, with `stored` the global stored flags.
// The same procedure measures the block's own peak and recompute in the DP (BlockLocal below), but
// through its own bookkeeping, so the tests' brute force over simulate_blocks checks both.
void emit_block_backward(const Flat& F, int b, std::vector<char>& stored,
                         std::vector<BlockAction>& out) {
  const int lo = F.P[static_cast<size_t>(b)], hi = F.P[static_cast<size_t>(b) + 1];
  auto st = [&](int i) -> char& { return stored[static_cast<size_t>(i)]; };
  for (int k = hi; k > lo; --k) {
    std::vector<int> need;
    if (F.reads_in[static_cast<size_t>(k)]) need.push_back(k - 1);
    if (F.reads_out[static_cast<size_t>(k)]) need.push_back(k);
    std::vector<int> missing;
    for (int i : need)
      if (!st(i)) missing.push_back(i);
    if (!missing.empty()) {
      int r = missing.front() - 1;
      while (!st(r)) --r;  // X_b = z_lo is stored throughout the block
      const int target = missing.back();
      for (int j = r + 1; j <= target; ++j) {
        out.push_back({BlockActionKind::compute, j});
        st(j) = 1;
        if (j - 1 > r && std::find(need.begin(), need.end(), j - 1) == need.end()) {
          out.push_back({BlockActionKind::free, j - 1});
          st(j - 1) = 0;
        }
      }
    }
    out.push_back({BlockActionKind::backward, k});
    for (int i = k; i <= hi; ++i)
      if (st(i)) {
        out.push_back({BlockActionKind::free, i});
        st(i) = 0;
      }
    const bool keep_below = k - 1 == lo || F.reads_out[static_cast<size_t>(k - 1)];
    if (!keep_below && st(k - 1)) {
      out.push_back({BlockActionKind::free, k - 1});
      st(k - 1) = 0;
    }
  }
  if (lo > 0) {
    out.push_back({BlockActionKind::free, lo});
    st(lo) = 0;
  }
}

void check_policy(const Flat& F, const BlockPolicy& p) {
  TG_CHECK(static_cast<int>(p.checkpoint.size()) == F.N && static_cast<int>(p.save.size()) == F.N,
           "blocks: a policy needs ", F.N, " checkpoint flags and save masks");
  TG_CHECK(p.checkpoint[0] != 0, "blocks: block 0's input is always a checkpoint");
  for (int b = 0; b < F.N; ++b) {
    const int ops = F.P[static_cast<size_t>(b) + 1] - F.P[static_cast<size_t>(b)];
    TG_CHECK((p.save[static_cast<size_t>(b)] >> (ops - 1)) == 0, "blocks: block ", b,
             "'s save mask names ops beyond its ", ops - 1, " internal outputs");
  }
}

}  // namespace

BlockSim simulate_blocks(const BlockChainSpec& spec, const std::vector<BlockAction>& schedule) {
  const Flat F(spec);
  const int n = F.n;
  std::vector<char> stored(static_cast<size_t>(n) + 1, 0);
  stored[0] = 1;
  // act: stored z's (z_0 included); grad: the live activation gradient; pg: parameter gradients
  // accumulated by the backward steps so far.
  int64_t act = F.s[0], grad = 0, pg = 0, flops = 0;
  int t = n + 1;  // next backward; n+1 before the loss
  BlockSim r;
  r.peak_bytes = act;
  // One moment: `acts` bytes of z's (z_0 included) and `grads` bytes of gradients live.
  auto moment = [&](int64_t acts, int64_t grads) {
    r.peak_bytes = std::max(r.peak_bytes, acts + grads);
    r.peak_act_bytes = std::max(r.peak_act_bytes, acts - F.s[0]);
    r.peak_grad_bytes = std::max(r.peak_grad_bytes, grads);
  };
  auto st = [&](int i) { return stored[static_cast<size_t>(i)] != 0; };
  for (size_t x = 0; x < schedule.size(); ++x) {
    const BlockAction& a = schedule[x];
    const int k = a.k;
    auto where = [&] {
      return detail::cat("simulate_blocks: action ", x, " (", to_string(a), "): ");
    };
    switch (a.kind) {
      case BlockActionKind::compute:
        TG_CHECK(k >= 1 && k <= n, where(), "op out of range 1..", n);
        TG_CHECK(k <= t, where(), "op ", k, "'s output is never read again");
        TG_CHECK(st(k - 1), where(), "its input z_", k - 1, " is not stored");
        TG_CHECK(!st(k), where(), "z_", k, " is already stored");
        moment(act + F.s[static_cast<size_t>(k)], grad + pg);
        stored[static_cast<size_t>(k)] = 1;
        act += F.s[static_cast<size_t>(k)];
        flops += F.f[static_cast<size_t>(k)];
        r.computes += 1;
        break;
      case BlockActionKind::free:
        TG_CHECK(k >= 1 && k <= n, where(), "out of range 1..", n, " (z_0 is never freed)");
        TG_CHECK(st(k), where(), "z_", k, " is not stored");
        stored[static_cast<size_t>(k)] = 0;
        act -= F.s[static_cast<size_t>(k)];
        break;
      case BlockActionKind::loss:
        TG_CHECK(t == n + 1, where(), "the loss has already run");
        TG_CHECK(st(n), where(), "the loss reads z_", n, ", which is not stored");
        moment(act, F.s[static_cast<size_t>(n)]);
        stored[static_cast<size_t>(n)] = 0;
        act -= F.s[static_cast<size_t>(n)];
        grad = F.s[static_cast<size_t>(n)];
        t = n;
        break;
      case BlockActionKind::backward:
        TG_CHECK(t <= n, where(), "the loss has not run yet");
        TG_CHECK(k == t, where(), "expected backward(", t, ") next");
        TG_CHECK(!F.reads_in[static_cast<size_t>(k)] || st(k - 1), where(), "it reads z_", k - 1,
                 ", which is not stored");
        TG_CHECK(!F.reads_out[static_cast<size_t>(k)] || st(k), where(), "it reads z_", k,
                 ", which is not stored");
        pg += F.pg[static_cast<size_t>(k)];
        moment(act, F.s[static_cast<size_t>(k)] + F.s[static_cast<size_t>(k - 1)] + pg);
        grad = F.s[static_cast<size_t>(k - 1)];
        t = k - 1;
        break;
    }
  }
  TG_CHECK(t == 0, "simulate_blocks: the schedule ends before every op is backpropagated");
  TG_CHECK(act == F.s[0], "simulate_blocks: tensors other than z_0 are still stored at the end");
  r.recompute_flops = flops - spec.total_flops();
  return r;
}

std::vector<BlockPolicy> all_block_policies(const BlockChainSpec& spec) {
  spec.validate();
  std::vector<BlockPolicy> out{{{}, {}}};
  for (int b = 0; b < spec.num_blocks(); ++b) {
    std::vector<BlockPolicy> next;
    const uint32_t masks = 1u << (spec.blocks[static_cast<size_t>(b)].size() - 1);
    for (const BlockPolicy& p : out)
      for (int c = b == 0 ? 1 : 0; c <= 1; ++c)
        for (uint32_t m = 0; m < masks; ++m) {
          BlockPolicy q = p;
          q.checkpoint.push_back(static_cast<char>(c));
          q.save.push_back(m);
          next.push_back(q);
        }
    out = std::move(next);
  }
  return out;
}

std::vector<BlockAction> block_schedule(const BlockChainSpec& spec, const BlockPolicy& policy) {
  const Flat F(spec);
  check_policy(F, policy);
  const int n = F.n, N = F.N;
  std::vector<int> starts;  // segment starts (blocks)
  for (int b = 0; b < N; ++b)
    if (policy.checkpoint[static_cast<size_t>(b)]) starts.push_back(b);
  // keep[i]: z_i is in K of its segment.
  std::vector<char> keep(static_cast<size_t>(n) + 1, 0);
  for (int b = 0; b < N; ++b)
    for (int i : F.kept(b, policy.save[static_cast<size_t>(b)])) keep[static_cast<size_t>(i)] = 1;
  const int last_start = F.P[static_cast<size_t>(starts.back())];

  std::vector<BlockAction> out;
  std::vector<char> stored(static_cast<size_t>(n) + 1, 0);
  stored[0] = 1;
  // The sweep: checkpoints stay, and so does K of the last segment.
  for (int k = 1; k <= n; ++k) {
    out.push_back({BlockActionKind::compute, k});
    stored[static_cast<size_t>(k)] = 1;
    const int i = k - 1;
    bool stay = i == 0 || (i >= last_start && keep[static_cast<size_t>(i)]);
    for (int c : starts) stay = stay || i == F.P[static_cast<size_t>(c)];
    if (!stay) {
      out.push_back({BlockActionKind::free, i});
      stored[static_cast<size_t>(i)] = 0;
    }
  }
  out.push_back({BlockActionKind::loss, 0});
  stored[static_cast<size_t>(n)] = 0;
  for (size_t si = starts.size(); si-- > 0;) {
    const int p = starts[si];
    const int q = si + 1 < starts.size() ? starts[si + 1] : N;
    if (q < N) {  // re-forward up to the highest kept tensor of the segment
      int top = F.P[static_cast<size_t>(p)];
      for (int i = F.P[static_cast<size_t>(p)]; i < F.P[static_cast<size_t>(q)]; ++i)
        if (keep[static_cast<size_t>(i)]) top = i;
      for (int k = F.P[static_cast<size_t>(p)] + 1; k <= top; ++k) {
        out.push_back({BlockActionKind::compute, k});
        stored[static_cast<size_t>(k)] = 1;
        if (!keep[static_cast<size_t>(k - 1)]) {
          out.push_back({BlockActionKind::free, k - 1});
          stored[static_cast<size_t>(k - 1)] = 0;
        }
      }
    }
    for (int b = q - 1; b >= p; --b) emit_block_backward(F, b, stored, out);
  }
  return out;
}

namespace {

constexpr int64_t kInf = INT64_MAX / 4;

// Per block and mask, the block's own part of every moment, in units (Note [Block model]).
struct BlockLocal {
  int64_t kept = 0;       // K_b's units
  int64_t fwd_all = 0;    // peak of computing all its ops above the stored part below it
  int64_t fwd_top = 0;    // the same, computing only up to max K_b (the top block of a segment)
  int64_t flops_all = 0;  // flops of all its ops
  int64_t flops_top = 0;  // flops of its ops up to max K_b
  int64_t bwd = 0;        // peak of its backward, from K_b stored and its output gradient live
  int64_t rc = 0;         // recompute flops of its backward
};

class BlockSolver {
 public:
  explicit BlockSolver(const BlockChainSpec& spec) : F_(spec) {
    u_ = 0;
    for (int64_t x : F_.s) u_ = std::gcd(u_, x);
    for (int64_t x : F_.pg) u_ = std::gcd(u_, x);
    for (int64_t x : F_.s) w_.push_back(x / u_);
    // pa_[k]: units of the parameter gradients of ops k+1..n, live once backward(k+1) has run.
    pa_.assign(static_cast<size_t>(F_.n) + 1, 0);
    for (int k = F_.n - 1; k >= 0; --k)
      pa_[static_cast<size_t>(k)] =
          pa_[static_cast<size_t>(k) + 1] + F_.pg[static_cast<size_t>(k) + 1] / u_;
    local_.resize(static_cast<size_t>(F_.N));
    for (int b = 0; b < F_.N; ++b) {
      const int ops = F_.P[static_cast<size_t>(b) + 1] - F_.P[static_cast<size_t>(b)];
      for (uint32_t m = 0; m < (1u << (ops - 1)); ++m)
        local_[static_cast<size_t>(b)].push_back(measure(b, m));
    }
  }

  int64_t unit() const { return u_; }
  // A policy's peak is at most everything stored plus two gradients.
  int64_t upper_units() const {
    int64_t all = 0, mx = 0;
    for (int64_t x : w_) {
      all += x;
      mx = std::max(mx, x);
    }
    return all + 2 * mx + pa_[0];
  }

  // Least recompute within M units; fills `policy` if given and feasible.
  int64_t solve(int64_t M, BlockPolicy* policy) {
    const int N = F_.N;
    // best[p][ckb]: least cost with a checkpoint at block p and ckb units of checkpoints below.
    std::vector<std::vector<int64_t>> best(static_cast<size_t>(N),
                                           std::vector<int64_t>(static_cast<size_t>(M) + 1, kInf));
    std::vector<std::vector<std::pair<int, int64_t>>> from(
        static_cast<size_t>(N),
        std::vector<std::pair<int, int64_t>>(static_cast<size_t>(M) + 1, {-1, 0}));
    best[0][0] = 0;
    int64_t answer = kInf;
    int end_p = -1;
    int64_t end_ckb = 0;
    for (int p = 0; p < N; ++p)
      for (int64_t ckb = 0; ckb <= M; ++ckb) {
        const int64_t here = best[static_cast<size_t>(p)][static_cast<size_t>(ckb)];
        if (here >= kInf) continue;
        const int64_t last = segment(p, N, M - ckb, nullptr);
        if (here + last < answer) {
          answer = here + last;
          end_p = p;
          end_ckb = ckb;
        }
        const int64_t ckb_next = ckb + w_[static_cast<size_t>(F_.P[static_cast<size_t>(p)])];
        if (ckb_next > M) continue;
        for (int q = p + 1; q < N; ++q) {
          if (ckb + sweep_peak(p, q) > M) break;  // a longer sweep only adds moments
          const int64_t c = segment(p, q, M - ckb, nullptr);
          if (c >= kInf) continue;
          auto& slot = best[static_cast<size_t>(q)][static_cast<size_t>(ckb_next)];
          if (here + c < slot) {
            slot = here + c;
            from[static_cast<size_t>(q)][static_cast<size_t>(ckb_next)] = {p, ckb};
          }
        }
      }
    if (answer >= kInf) return -1;
    if (policy) {
      policy->checkpoint.assign(static_cast<size_t>(N), 0);
      policy->save.assign(static_cast<size_t>(N), 0);
      int q = N, p = end_p;
      int64_t ckb = end_ckb;
      while (p >= 0) {
        policy->checkpoint[static_cast<size_t>(p)] = 1;
        std::vector<uint32_t> masks;
        segment(p, q, M - ckb, &masks);
        for (int b = p; b < q; ++b)
          policy->save[static_cast<size_t>(b)] = masks[static_cast<size_t>(b - p)];
        const auto [pp, pc] = from[static_cast<size_t>(p)][static_cast<size_t>(ckb)];
        q = p;
        p = pp;
        ckb = pc;
      }
    }
    return answer;
  }

 private:
  // The sweep through a segment [p, q) that is not the last: only its checkpoint stays.
  int64_t sweep_peak(int p, int q) const {
    const int lo = F_.P[static_cast<size_t>(p)];
    int64_t peak = 0;
    for (int k = lo + 1; k <= F_.P[static_cast<size_t>(q)]; ++k)
      peak = std::max(peak, (k - 1 != lo ? w_[static_cast<size_t>(lo)] : 0) +
                                w_[static_cast<size_t>(k - 1)] + w_[static_cast<size_t>(k)]);
    return peak;
  }

  BlockLocal measure(int b, uint32_t mask) const {
    BlockLocal L;
    const int lo = F_.P[static_cast<size_t>(b)], hi = F_.P[static_cast<size_t>(b) + 1];
    const std::vector<int> K = F_.kept(b, mask);
    std::vector<char> inK(static_cast<size_t>(hi - lo) + 1, 0);
    for (int i : K) {
      inK[static_cast<size_t>(i - lo)] = 1;
      L.kept += w_[static_cast<size_t>(i)];
    }
    // Forward through the block: the kept tensors below k-1, then z_{k-1} and the new z_k.
    int64_t below = 0;
    for (int k = lo + 1; k <= hi; ++k) {
      const int64_t m = below + w_[static_cast<size_t>(k - 1)] + w_[static_cast<size_t>(k)];
      L.fwd_all = std::max(L.fwd_all, m);
      L.flops_all += F_.f[static_cast<size_t>(k)];
      if (k <= K.back()) {
        L.fwd_top = std::max(L.fwd_top, m);
        L.flops_top += F_.f[static_cast<size_t>(k)];
      }
      if (inK[static_cast<size_t>(k - 1 - lo)]) below += w_[static_cast<size_t>(k - 1)];
    }
    // Backward: the procedure of Note [Block model], counting the block's own units only.
    std::vector<char> st = inK;
    int64_t stored = L.kept;
    auto S = [&](int i) -> char& { return st[static_cast<size_t>(i - lo)]; };
    auto w = [&](int i) { return w_[static_cast<size_t>(i)]; };
    int64_t grad = w(hi);
    for (int k = hi; k > lo; --k) {
      const bool ni = F_.reads_in[static_cast<size_t>(k)] != 0;
      const bool no = F_.reads_out[static_cast<size_t>(k)] != 0;
      const int first_missing = ni && !S(k - 1) ? k - 1 : (no && !S(k) ? k : -1);
      if (first_missing >= 0) {
        const int target = no && !S(k) ? k : k - 1;
        int r = first_missing - 1;
        while (!S(r)) --r;
        for (int j = r + 1; j <= target; ++j) {
          L.bwd = std::max(L.bwd, stored + grad + w(j) + pa_[static_cast<size_t>(k)]);
          L.rc += F_.f[static_cast<size_t>(j)];
          S(j) = 1;
          stored += w(j);
          const bool needed = (j - 1 == k - 1 && ni) || (j - 1 == k && no);
          if (j - 1 > r && !needed) {
            S(j - 1) = 0;
            stored -= w(j - 1);
          }
        }
      }
      L.bwd = std::max(L.bwd, stored + w(k) + w(k - 1) + pa_[static_cast<size_t>(k) - 1]);
      grad = w(k - 1);
      for (int i = k; i <= hi; ++i)
        if (S(i)) {
          S(i) = 0;
          stored -= w(i);
        }
      if (!(k - 1 == lo || F_.reads_out[static_cast<size_t>(k - 1)]) && S(k - 1)) {
        S(k - 1) = 0;
        stored -= w(k - 1);
      }
    }
    return L;
  }

  // Least cost of the masks of blocks p..q-1 as one segment within cap units (the checkpoints
  // below are outside cap); q = N is the last segment. Memoized; `masks` asks for the argmin.
  int64_t segment(int p, int q, int64_t cap, std::vector<uint32_t>* masks) {
    const auto key = std::make_tuple(p, q, cap);
    if (!masks) {
      auto it = memo_.find(key);
      if (it != memo_.end()) return it->second;
    }
    const bool last = q == F_.N;
    // A segment below the last is re-forwarded with dX_q and the parameter gradients above it live.
    const int64_t g = last ? 0
                           : w_[static_cast<size_t>(F_.P[static_cast<size_t>(q)])] +
                                 pa_[static_cast<size_t>(F_.P[static_cast<size_t>(q)])];
    // cost[b - p][acc]: least cost of blocks p..b-1 whose kept sets total acc units.
    const size_t width = static_cast<size_t>(std::max<int64_t>(cap, 0)) + 1;
    std::vector<std::vector<int64_t>> cost(static_cast<size_t>(q - p) + 1,
                                           std::vector<int64_t>(width, kInf));
    std::vector<std::vector<std::pair<uint32_t, int64_t>>> arg(
        static_cast<size_t>(q - p) + 1, std::vector<std::pair<uint32_t, int64_t>>(width));
    if (cap >= 0) cost[0][0] = 0;
    for (int b = p; b < q; ++b) {
      const bool top = b == q - 1;
      const auto& row = cost[static_cast<size_t>(b - p)];
      auto& next = cost[static_cast<size_t>(b - p) + 1];
      for (int64_t acc = 0; acc <= cap; ++acc) {
        if (row[static_cast<size_t>(acc)] >= kInf) continue;
        const auto& opts = local_[static_cast<size_t>(b)];
        for (uint32_t m = 0; m < opts.size(); ++m) {
          const BlockLocal& L = opts[m];
          // Last segment: its sweep is the forward (no gradient), all ops. Others: the
          // re-forward with dX_q live, the top block only up to its highest kept tensor.
          const int64_t fwd = last ? L.fwd_all : (top ? L.fwd_top : L.fwd_all) + g;
          const int64_t fl = last ? 0 : (top ? L.flops_top : L.flops_all);
          const int64_t nacc = acc + L.kept;
          if (acc + fwd > cap || acc + L.bwd > cap || nacc > cap) continue;
          if (last && top && nacc + 2 * w_[static_cast<size_t>(F_.n)] > cap) continue;  // loss
          const int64_t c = row[static_cast<size_t>(acc)] + fl + L.rc;
          if (c < next[static_cast<size_t>(nacc)]) {
            next[static_cast<size_t>(nacc)] = c;
            arg[static_cast<size_t>(b - p) + 1][static_cast<size_t>(nacc)] = {m, acc};
          }
        }
      }
    }
    int64_t best = kInf, at = -1;
    for (int64_t acc = 0; acc <= cap; ++acc)
      if (cost.back()[static_cast<size_t>(acc)] < best) {
        best = cost.back()[static_cast<size_t>(acc)];
        at = acc;
      }
    memo_[key] = best;
    if (masks && best < kInf) {
      masks->assign(static_cast<size_t>(q - p), 0);
      for (int b = q - 1; b >= p; --b) {
        const auto [m, prev] = arg[static_cast<size_t>(b - p) + 1][static_cast<size_t>(at)];
        (*masks)[static_cast<size_t>(b - p)] = m;
        at = prev;
      }
    }
    return best;
  }

  Flat F_;
  int64_t u_ = 1;
  std::vector<int64_t> w_;
  std::vector<int64_t> pa_;
  std::vector<std::vector<BlockLocal>> local_;
  std::map<std::tuple<int, int, int64_t>, int64_t> memo_;
};

int64_t min_feasible_units(BlockSolver& s) {
  int64_t lo = 0, hi = s.upper_units();  // hi is feasible: keep everything
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (s.solve(mid, nullptr) >= 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

}  // namespace

int64_t blocks_min_recompute(const BlockChainSpec& spec, int64_t budget_bytes) {
  BlockSolver s(spec);
  if (budget_bytes < 0) return -1;
  return s.solve(std::min(budget_bytes / s.unit(), s.upper_units()), nullptr);
}

int64_t blocks_min_feasible_bytes(const BlockChainSpec& spec) {
  BlockSolver s(spec);
  return min_feasible_units(s) * s.unit();
}

BlockPlan plan_blocks(const BlockChainSpec& spec, int64_t budget_bytes) {
  BlockSolver s(spec);
  BlockPlan plan;
  const int64_t M = budget_bytes < 0 ? -1 : std::min(budget_bytes / s.unit(), s.upper_units());
  const int64_t v = M < 0 ? -1 : s.solve(M, &plan.policy);
  TG_CHECK(v >= 0, "blocks: ", budget_bytes,
           " bytes is infeasible for this model; the smallest feasible budget is ",
           min_feasible_units(s) * s.unit(), " bytes");
  plan.schedule = block_schedule(spec, plan.policy);
  plan.sim = simulate_blocks(spec, plan.schedule);
  // The DP's accounting and the simulator must agree; a mismatch is a bug here.
  TG_ASSERT(plan.sim.peak_bytes <= budget_bytes, "blocks: peak ", plan.sim.peak_bytes,
            " exceeds the budget ", budget_bytes);
  TG_ASSERT(plan.sim.recompute_flops == v, "blocks: simulated recompute ", plan.sim.recompute_flops,
            " differs from the DP's ", v);
  return plan;
}

}  // namespace tilegrad::remat
