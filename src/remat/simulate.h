// The simulator: executes a schedule on the chain model (Note [Chain model] in chain.h), checks
// that it is valid, and returns what it would cost: peak bytes, recomputed forward steps and FLOPs.
//
// Validity (each violation throws tilegrad::Error naming the action's position and the reason):
//   forward(i): 1 <= i <= L; x_{i-1} stored; x_i not stored; i < t, where t is the next layer to
//               backpropagate (t = L+1 before the loss, L after it, i-1 after backward(i)), i.e.
//               x_i will still be read (a forward after its layer's backward would be dead work).
//   free(i):    1 <= i <= L and x_i stored (x_0 can never be freed).
//   loss:       not yet run, and x_L stored.
//   backward(i): the loss has run, i = t (so backward(L), ..., backward(1) in order, none
//               skipped), and x_{i-1} stored.
//   The schedule must end with backward(1) (every layer backpropagated exactly once); since each
//   backward releases what it read, nothing but x_0 and g_0 is then live.
// Memory follows the rules in chain.h exactly. "Recomputed" means forward actions beyond the first
// L (each layer is forwarded at least once in any valid schedule, because the loss needs x_L), and
// recompute FLOPs = sum of fwd_flops over all forward actions minus the first sweep's
// total_fwd_flops(). All figures are integers, so comparisons with the planners are exact.
#pragma once

#include <cstdint>
#include <vector>

#include "remat/chain.h"

namespace tilegrad::remat {

struct SimResult {
  int64_t peak_bytes = 0;       // max over the schedule of live bytes (activations + gradients)
  int64_t peak_act_bytes = 0;   // activation part of live bytes at the (first) peak moment
  int64_t peak_grad_bytes = 0;  // gradient part of live bytes at that moment
  int64_t max_act_bytes = 0;    // max over the schedule of the activation part alone
  int max_live_acts = 0;        // max number of x's live at once (x_0 and a forward's output count)
  int64_t forward_steps = 0;    // all forward actions
  int64_t recomputed_steps = 0;  // forward_steps - L
  int64_t recompute_flops = 0;   // flops of all forward actions - total_fwd_flops()
  int64_t free_actions = 0;
};

// Throws tilegrad::Error for an invalid spec or schedule.
SimResult simulate(const ChainSpec& spec, const std::vector<Action>& schedule);

}  // namespace tilegrad::remat
