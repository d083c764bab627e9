// Segment checkpointing (Chen et al. 2016): plan_none, plan_segments, plan_every, plan_sqrt, and
// the shared make_plan.
#include "core/error.h"
#include "remat/plan.h"

namespace tilegrad::remat {

Plan make_plan(const ChainSpec& spec, std::string policy, std::vector<Action> schedule) {
  Plan p;
  p.sim = simulate(spec, schedule);
  p.policy = std::move(policy);
  p.schedule = std::move(schedule);
  return p;
}

Plan plan_none(const ChainSpec& spec) {
  spec.validate();
  return plan_segments(spec, {}, "none");
}

Plan plan_segments(const ChainSpec& spec, const std::vector<int>& checkpoints, std::string policy) {
  spec.validate();
  const int L = spec.L();
  std::vector<char> is_ckpt(static_cast<size_t>(L) + 1, 0);
  is_ckpt[0] = 1;
  for (size_t j = 0; j < checkpoints.size(); ++j) {
    const int c = checkpoints[j];
    TG_CHECK(c >= 1 && c <= L - 1, "segments: checkpoint ", c, " is outside 1..", L - 1);
    TG_CHECK(j == 0 || checkpoints[j - 1] < c, "segments: checkpoints must strictly increase");
    is_ckpt[static_cast<size_t>(c)] = 1;
  }
  // The last segment starts at the last checkpoint; its activations are kept from the forward sweep
  // (recomputing them right after the sweep would only repeat work).
  const int last = checkpoints.empty() ? 0 : checkpoints.back();
  std::vector<Action> s;
  for (int i = 1; i <= L; ++i) {
    s.push_back(Action::forward(i));
    if (i - 1 < last && !is_ckpt[static_cast<size_t>(i - 1)]) s.push_back(Action::free(i - 1));
  }
  s.push_back(Action::loss());
  int end = L;  // B_end is next; x_{end-1} back to the segment's checkpoint are stored
  for (int j = static_cast<int>(checkpoints.size()); j >= 0; --j) {
    const int start = j == 0 ? 0 : checkpoints[static_cast<size_t>(j) - 1];
    if (end != L) {
      // Recompute the segment from its checkpoint, keeping everything: x_{start+1}..x_{end-1}.
      for (int i = start + 1; i <= end - 1; ++i) s.push_back(Action::forward(i));
    }
    for (int i = end; i >= start + 1; --i) s.push_back(Action::backward(i));
    end = start;
  }
  return make_plan(spec, std::move(policy), std::move(s));
}

Plan plan_every(const ChainSpec& spec, int K) {
  spec.validate();
  TG_CHECK(K >= 1, "every:K: K must be >= 1, got ", K);
  std::vector<int> ck;
  for (int c = K; c < spec.L(); c += K) ck.push_back(c);
  return plan_segments(spec, ck, "every:" + std::to_string(K));
}

int ceil_sqrt(int L) {
  TG_CHECK(L >= 0, "ceil_sqrt: negative argument ", L);
  int K = 0;
  while (static_cast<int64_t>(K) * K < L) ++K;
  return K;
}

Plan plan_sqrt(const ChainSpec& spec) {
  spec.validate();
  Plan p = plan_every(spec, ceil_sqrt(spec.L()));
  p.policy = "sqrt";
  return p;
}

}  // namespace tilegrad::remat
