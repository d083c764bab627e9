// The abstract chain model that the checkpointing planners work on, and the schedule they produce.
//
// Note [Chain model]
// A chain of L layers: x_0 is the input (always kept, never freed), x_i = F_i(x_{i-1}) for
// i = 1..L, and a loss reads x_L. ChainSpec gives act_bytes[i] = bytes of x_i (i = 0..L) and
// fwd_flops[i] = cost of F_i (i = 1..L; fwd_flops[0] is unused and must be 0). The gradient g_i
// (i = 0..L) has the same bytes as x_i. The backward step B_i (i = L..1) reads x_{i-1} and g_i
// and produces g_{i-1}; it does not read x_i. The loss reads x_L and produces g_L.
//
// A schedule is a sequence of actions, the same representation for every planner:
//   forward(i)  compute x_i from x_{i-1} and store it            (1 <= i <= L)
//   free(i)     discard the stored x_i                           (1 <= i <= L; x_0 is never freed)
//   loss        form g_L from x_L; x_L is released after it       (exactly once)
//   backward(i) run B_i: read x_{i-1}, g_i, produce g_{i-1}; g_i is released after it, and so is
//               x_{i-1} unless i = 1 (x_0 stays)                 (i = L, L-1, ..., 1 in order)
// The loss and the backward steps release what they consume because nothing can read it later:
// after B_i no forward(j) with j >= i may run, and only forward(i) and B_i read x_{i-1}. So every
// free in a schedule is a choice of the planner (discarding something it will recompute or no
// longer needs), and an executor can run any schedule action by action.
//
// Memory rules (the simulator, simulate.h, and the exact planner, budget.h, use exactly these):
//   Let S be the set of stored x's (x_0 always in it) and G the live gradient: none (0 bytes)
//   before the loss, g_L after it, g_{i-1} after B_i. Between actions, live = sum_{j in S} a_j + G.
//   During forward(i):   live = sum_S a + G + a_i            (x_{i-1} and the new x_i both live)
//   During the loss:     live = sum_S a + a_L                (x_L in S, the new g_L; G is none)
//   During backward(i):  live = sum_S a + a_i + a_{i-1}      (x_{i-1} in S, g_i, the new g_{i-1})
// where a_j = act_bytes[j] and S is the set before the action. The peak is the largest of these
// over the schedule; free actions only lower `live`. Nothing else is counted (parameters, their
// gradients, workspaces and the loss's own scratch are outside the model).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tilegrad::remat {

struct ChainSpec {
  std::vector<int64_t> act_bytes;  // L+1 entries: bytes of x_0..x_L, each >= 1
  std::vector<int64_t> fwd_flops;  // L+1 entries: fwd_flops[0] = 0, cost of F_1..F_L, each >= 0

  int L() const { return static_cast<int>(act_bytes.size()) - 1; }
  // Throws tilegrad::Error naming the first inconsistency (sizes, L < 1, a_i < 1, f_i < 0).
  void validate() const;
  // True when all act_bytes are equal and all fwd_flops[1..L] are equal.
  bool uniform() const;
  int64_t total_fwd_flops() const;  // sum of fwd_flops[1..L]: the cost of the first forward sweep

  // L layers of `bytes` each (x_0 included) and `flops` each.
  static ChainSpec uniform_chain(int L, int64_t bytes = 1, int64_t flops = 1);
};

enum class ActionKind : uint8_t { forward, free, loss, backward };

struct Action {
  ActionKind kind;
  int i;  // layer index; 0 for loss (it has none)

  static Action forward(int i) { return {ActionKind::forward, i}; }
  static Action free(int i) { return {ActionKind::free, i}; }
  static Action loss() { return {ActionKind::loss, 0}; }
  static Action backward(int i) { return {ActionKind::backward, i}; }
  bool operator==(const Action&) const = default;
};

std::string to_string(const Action& a);  // "forward(3)", "free(3)", "loss", "backward(3)"
// The whole schedule, actions separated by spaces (for messages and debugging).
std::string to_string(const std::vector<Action>& schedule);

}  // namespace tilegrad::remat
