// The schedule simulator: a direct transcription of the memory rules in chain.h.
#include "remat/simulate.h"

#include "core/error.h"

namespace tilegrad::remat {

namespace {

struct State {
  std::vector<char> stored;  // stored[j]: x_j is live
  int64_t act = 0;           // bytes of the stored x's
  int n_acts = 0;            // how many x's are stored
  int64_t grad = 0;          // bytes of the live gradient
  int t = 0;                 // next layer to backpropagate; L+1 before the loss
};

}  // namespace

SimResult simulate(const ChainSpec& spec, const std::vector<Action>& schedule) {
  spec.validate();
  const int L = spec.L();
  const auto& a = spec.act_bytes;
  State st;
  st.stored.assign(static_cast<size_t>(L) + 1, 0);
  st.stored[0] = 1;
  st.act = a[0];
  st.n_acts = 1;
  st.t = L + 1;

  SimResult r;
  int64_t flops = 0;
  // A moment during an action: `act_live` activation bytes (with `acts_live` x's) and `grad_live`
  // gradient bytes. The first moment that reaches the maximum defines the split.
  auto moment = [&](int64_t act_live, int acts_live, int64_t grad_live) {
    if (act_live + grad_live > r.peak_bytes) {
      r.peak_bytes = act_live + grad_live;
      r.peak_act_bytes = act_live;
      r.peak_grad_bytes = grad_live;
    }
    if (act_live > r.max_act_bytes) r.max_act_bytes = act_live;
    if (acts_live > r.max_live_acts) r.max_live_acts = acts_live;
  };
  auto stored = [&](int j) { return st.stored[static_cast<size_t>(j)] != 0; };
  auto drop = [&](int j) {
    st.stored[static_cast<size_t>(j)] = 0;
    st.act -= a[static_cast<size_t>(j)];
    st.n_acts -= 1;
  };
  moment(st.act, st.n_acts, 0);

  for (size_t k = 0; k < schedule.size(); ++k) {
    const Action& x = schedule[k];
    const int i = x.i;
    auto where = [&] { return detail::cat("simulate: action ", k, " (", to_string(x), "): "); };
    switch (x.kind) {
      case ActionKind::forward: {
        TG_CHECK(i >= 1 && i <= L, where(), "layer out of range 1..", L);
        TG_CHECK(
            i < st.t, where(), "layer ", i, " is already backpropagated or its output is never ",
            "read again (next backward is ", st.t <= L ? std::to_string(st.t) : "the loss", ")");
        TG_CHECK(stored(i - 1), where(), "its input x_", i - 1, " is not stored");
        TG_CHECK(!stored(i), where(), "x_", i, " is already stored");
        const int64_t ai = a[static_cast<size_t>(i)];
        moment(st.act + ai, st.n_acts + 1, st.grad);
        st.stored[static_cast<size_t>(i)] = 1;
        st.act += ai;
        st.n_acts += 1;
        flops += spec.fwd_flops[static_cast<size_t>(i)];
        r.forward_steps += 1;
        break;
      }
      case ActionKind::free:
        TG_CHECK(i >= 1 && i <= L, where(), "layer out of range 1..", L,
                 " (x_0 is the input and is never freed)");
        TG_CHECK(stored(i), where(), "x_", i, " is not stored");
        drop(i);
        r.free_actions += 1;
        break;
      case ActionKind::loss:
        TG_CHECK(st.t == L + 1, where(), "the loss has already run");
        TG_CHECK(stored(L), where(), "the loss reads x_", L, ", which is not stored");
        moment(st.act, st.n_acts, a[static_cast<size_t>(L)]);
        drop(L);
        st.grad = a[static_cast<size_t>(L)];
        st.t = L;
        break;
      case ActionKind::backward: {
        TG_CHECK(st.t <= L, where(), "the loss has not run yet (it produces g_", L, ")");
        TG_CHECK(i == st.t, where(), "expected backward(", st.t, ") next (backward runs L..1, ",
                 "each once)");
        TG_CHECK(stored(i - 1), where(), "its input x_", i - 1, " is not stored");
        const int64_t g_out = a[static_cast<size_t>(i - 1)];
        moment(st.act, st.n_acts, st.grad + g_out);
        if (i - 1 >= 1) drop(i - 1);
        st.grad = g_out;
        st.t = i - 1;
        break;
      }
    }
  }
  TG_CHECK(st.t != L + 1, "simulate: the schedule ends before the loss (every layer must be ",
           "backpropagated once)");
  TG_CHECK(st.t == 0, "simulate: the schedule ends before backward(", st.t,
           ") (every layer must be backpropagated once)");
  TG_ASSERT(st.n_acts == 1, "only x_0 can be stored at the end");
  r.recomputed_steps = r.forward_steps - L;
  r.recompute_flops = flops - spec.total_fwd_flops();
  return r;
}

}  // namespace tilegrad::remat
