// ChainSpec checks and helpers, and the text form of actions.
#include "remat/chain.h"

#include <sstream>

#include "core/error.h"

namespace tilegrad::remat {

void ChainSpec::validate() const {
  TG_CHECK(act_bytes.size() >= 2, "chain: act_bytes needs L+1 >= 2 entries (x_0..x_L), got ",
           act_bytes.size());
  TG_CHECK(fwd_flops.size() == act_bytes.size(), "chain: fwd_flops has ", fwd_flops.size(),
           " entries but act_bytes has ", act_bytes.size(), " (both are indexed 0..L)");
  TG_CHECK(fwd_flops[0] == 0, "chain: fwd_flops[0] must be 0 (x_0 is the input), got ",
           fwd_flops[0]);
  for (size_t i = 0; i < act_bytes.size(); ++i) {
    TG_CHECK(act_bytes[i] >= 1, "chain: act_bytes[", i, "] must be >= 1, got ", act_bytes[i]);
    TG_CHECK(fwd_flops[i] >= 0, "chain: fwd_flops[", i, "] must be >= 0, got ", fwd_flops[i]);
  }
}

bool ChainSpec::uniform() const {
  for (size_t i = 1; i < act_bytes.size(); ++i) {
    if (act_bytes[i] != act_bytes[0]) return false;
    if (i >= 2 && fwd_flops[i] != fwd_flops[1]) return false;
  }
  return true;
}

int64_t ChainSpec::total_fwd_flops() const {
  int64_t s = 0;
  for (size_t i = 1; i < fwd_flops.size(); ++i) s += fwd_flops[i];
  return s;
}

ChainSpec ChainSpec::uniform_chain(int L, int64_t bytes, int64_t flops) {
  TG_CHECK(L >= 1, "chain: L must be >= 1, got ", L);
  ChainSpec spec;
  spec.act_bytes.assign(static_cast<size_t>(L) + 1, bytes);
  spec.fwd_flops.assign(static_cast<size_t>(L) + 1, flops);
  spec.fwd_flops[0] = 0;
  spec.validate();
  return spec;
}

std::string to_string(const Action& a) {
  switch (a.kind) {
    case ActionKind::forward:
      return "forward(" + std::to_string(a.i) + ")";
    case ActionKind::free:
      return "free(" + std::to_string(a.i) + ")";
    case ActionKind::loss:
      return "loss";
    case ActionKind::backward:
      return "backward(" + std::to_string(a.i) + ")";
  }
  return "?";
}

std::string to_string(const std::vector<Action>& schedule) {
  std::ostringstream s;
  for (size_t k = 0; k < schedule.size(); ++k) s << (k ? " " : "") << to_string(schedule[k]);
  return s.str();
}

}  // namespace tilegrad::remat
