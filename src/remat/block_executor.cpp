// The block rematerializer (block_executor.h, Note [Executing a block schedule]).
#include "remat/block_executor.h"

#include <any>
#include <utility>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/saved_hooks.h"
#include "core/error.h"
#include "memory/category.h"

namespace tilegrad::remat {

namespace {

// What a node saved while F_k recorded: z_{k-1}, z_k, or another tensor it keeps itself.
enum class Slot : uint8_t { pending, input, output, plain };

}  // namespace

struct BlockRematerializer::State {
  std::vector<LayerFn> ops;
  std::vector<BlockAction> schedule;
  int n = 0;
  std::vector<int64_t> out_bytes;  // s_k, k = 0..n
  size_t loss_pos = 0;

  bool forwarded = false, backwarded = false;
  size_t cursor = 0;               // next action to execute
  std::vector<Tensor> stored;      // S: detached aliases of the stored z's
  std::vector<const Node*> nodes;  // by op k: z_k's grad_fn as recorded (compared, never used)
  int next_backward = 0;           // the op whose node the schedule runs next
  int64_t recomputed = 0;

  Tensor get(int j, int k, const char* role) const {
    const Tensor& z = stored[static_cast<size_t>(j)];
    TG_CHECK(z.defined(), "remat: op ", k, "'s backward reads its ", role, " z_", j,
             ", which the schedule does not store at backward(", k,
             "); the spec's read flags for op ", k, " do not match the op");
    return z;
  }

  // Executes compute and free actions up to the next backward action (or the end).
  void run_until_backward() {
    NoGradGuard no_grad;
    CategoryScope category(Category::activation);  // recomputed z's, not gradients
    while (cursor < schedule.size() && schedule[cursor].kind != BlockActionKind::backward) {
      const BlockAction a = schedule[cursor++];
      const size_t j = static_cast<size_t>(a.k);
      if (a.kind == BlockActionKind::free) {
        stored[j] = Tensor();
        continue;
      }
      TG_ASSERT(a.kind == BlockActionKind::compute, "remat: a second loss in the schedule");
      Tensor z = ops[j - 1](stored[j - 1]);
      TG_CHECK(z.defined() && z.nbytes() == out_bytes[j], "remat: F_", a.k, " recomputed z_", a.k,
               " as ", z.defined() ? z.str() : "none", " but the forward produced ", out_bytes[j],
               " bytes");
      stored[j] = std::move(z);
      ++recomputed;
    }
    next_backward = cursor < schedule.size() ? schedule[cursor].k : 0;
  }

  void node_done(const Node& node) {
    if (next_backward == 0 || &node != nodes[static_cast<size_t>(next_backward)]) return;
    ++cursor;  // backward(next_backward) has run
    run_until_backward();
  }
};

namespace {

struct SavedHandle {
  std::shared_ptr<BlockRematerializer::State> state;
  int op;
  Slot slot = Slot::pending;
  Tensor kept;  // plain (and pending) slots only
};

}  // namespace

BlockRematerializer::BlockRematerializer(BlockChainSpec spec, std::vector<LayerFn> ops,
                                         std::vector<BlockAction> schedule)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  simulate_blocks(spec, schedule);  // validates both, naming the first invalid action
  s.n = spec.num_ops();
  TG_CHECK(static_cast<int>(ops.size()) == s.n, "remat: the spec has ", s.n, " ops but ",
           ops.size(), " functions were given");
  for (size_t k = 0; k < ops.size(); ++k)
    TG_CHECK(ops[k] != nullptr, "remat: op F_", k + 1, " is empty");
  s.out_bytes.push_back(spec.input_bytes);
  for (const auto& block : spec.blocks)
    for (const BlockOp& op : block) s.out_bytes.push_back(op.out_bytes);

  int swept = 0;
  for (size_t p = 0; p < schedule.size(); ++p) {
    const BlockAction& a = schedule[p];
    if (a.kind == BlockActionKind::loss) {
      s.loss_pos = p;
      break;
    }
    if (a.kind == BlockActionKind::compute) {
      TG_CHECK(a.k == swept + 1, "remat: action ", p, " (", to_string(a),
               ") computes an op before the loss that is not the next of the forward sweep (",
               swept + 1, "); the executor records each F_k once, in order");
      swept = a.k;
    }
  }
  s.ops = std::move(ops);
  s.schedule = std::move(schedule);
  s.stored.resize(static_cast<size_t>(s.n) + 1);
  s.nodes.assign(static_cast<size_t>(s.n) + 1, nullptr);
}

BlockRematerializer::~BlockRematerializer() = default;

Tensor BlockRematerializer::forward(const Tensor& z0) {
  State& s = *state_;
  TG_CHECK(!s.forwarded, "remat: forward may run once per BlockRematerializer");
  TG_CHECK(grad_enabled(), "remat: the forward needs grad mode on (called inside a NoGradGuard?)");
  TG_CHECK(z0.defined() && z0.nbytes() == s.out_bytes[0], "remat: the input z_0 has ",
           z0.defined() ? z0.nbytes() : 0, " bytes; the spec says ", s.out_bytes[0]);
  s.forwarded = true;

  // The handles F_k's nodes packed, resolved once z_k exists.
  std::vector<std::shared_ptr<SavedHandle>> pending;
  int recording = 0;
  Tensor recording_input;
  SavedTensorHooks hooks;
  hooks.pack = [&pending, &recording, &recording_input, weak = std::weak_ptr<State>(state_)](
                   const Tensor& t, const Node&) -> std::any {
    if (recording == 0) return std::any();
    auto h = std::make_shared<SavedHandle>();
    h->state = weak.lock();
    h->op = recording;
    if (same_alias(t, recording_input)) {
      h->slot = Slot::input;
    } else {
      h->kept = t;
      pending.push_back(h);
    }
    return h;
  };
  hooks.unpack = [](const std::any& packed) -> Tensor {
    const auto& h = std::any_cast<const std::shared_ptr<SavedHandle>&>(packed);
    switch (h->slot) {
      case Slot::input:
        return h->state->get(h->op - 1, h->op, "input");
      case Slot::output:
        return h->state->get(h->op, h->op, "output");
      case Slot::plain:
      case Slot::pending:
        break;
    }
    return h->kept;
  };

  s.stored[0] = z0.detach();
  Tensor z = z0;  // the recorded z_{k-1}: F_k is called on it so that the graph links up
  for (size_t p = 0; p < s.loss_pos; ++p) {
    const BlockAction& a = s.schedule[p];
    const size_t k = static_cast<size_t>(a.k);
    if (a.kind == BlockActionKind::free) {
      s.stored[k] = Tensor();
      continue;
    }
    Tensor y;
    recording = a.k;
    recording_input = z;
    {
      struct Reset {
        int& r;
        Tensor& in;
        ~Reset() {
          r = 0;
          in = Tensor();
        }
      } reset{recording, recording_input};
      SavedTensorHooksScope scope(hooks);
      y = s.ops[k - 1](z);
    }
    TG_CHECK(y.defined() && y.nbytes() == s.out_bytes[k], "remat: F_", a.k, " produced ",
             y.defined() ? y.str() : "no tensor", " (", y.defined() ? y.nbytes() : 0,
             " bytes); the spec says ", s.out_bytes[k], " bytes");
    TG_CHECK(y.grad_fn() != nullptr, "remat: F_", a.k, "'s output has no grad_fn");
    // One engine op: z_k's node reads z_{k-1} directly, so its completion is backward(k).
    const Edge in = gradient_edge(z);
    bool direct = false;
    for (const Edge& e : y.grad_fn()->next_edges())
      direct = direct || (e.node == in.node && e.input_nr == in.input_nr);
    TG_CHECK(direct, "remat: F_", a.k, " is not a single engine op (its output's node ",
             y.grad_fn()->name(), " does not take z_", a.k - 1, " as an input)");
    s.nodes[k] = y.grad_fn().get();
    for (const auto& h : pending) {
      h->slot = same_alias(h->kept, y) ? Slot::output : Slot::plain;
      if (h->slot == Slot::output) h->kept = Tensor();
    }
    pending.clear();
    s.stored[k] = y.detach();
    z = std::move(y);  // the previous z is dropped here unless S still holds it
  }
  // The loss releases z_n from S: the caller holds it until it hands it to backward().
  s.stored[static_cast<size_t>(s.n)] = Tensor();
  s.cursor = s.loss_pos + 1;
  return z;
}

void BlockRematerializer::backward(Tensor zn, Tensor dzn) {
  State& s = *state_;
  TG_CHECK(s.forwarded && !s.backwarded, "remat: backward runs once, after forward");
  s.backwarded = true;
  BackwardOptions options;
  options.on_start = [&s] { s.run_until_backward(); };
  options.on_node_done = [&s](const Node& node) { s.node_done(node); };
  run_backward(std::move(zn), std::move(dzn), std::move(options));
  TG_CHECK(s.cursor == s.schedule.size(), "remat: the backward ended with ",
           s.schedule.size() - s.cursor, " schedule actions not run");
}

int64_t BlockRematerializer::recomputed_ops() const {
  return state_->recomputed;
}

}  // namespace tilegrad::remat
