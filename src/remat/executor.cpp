// The chain rematerializer (executor.h, Note [Executing a schedule]).
#include "remat/executor.h"

#include <algorithm>
#include <any>
#include <charconv>
#include <utility>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/saved_hooks.h"
#include "core/error.h"
#include "memory/category.h"
#include "remat/simulate.h"

namespace tilegrad::remat {

std::vector<Action> naive_schedule(int L, int C) {
  TG_CHECK(L >= 1, "naive: the chain needs at least one layer, got L = ", L);
  TG_CHECK(C >= 0 && C <= L - 1, "naive:", C, ": the checkpoint must be one of x_0..x_", L - 1,
           " (L = ", L, ")");
  auto kept = [C](int j) { return j == 0 || j == C; };
  std::vector<Action> s;
  // The sweep drops every x but the checkpoints as soon as the next layer has consumed it.
  for (int i = 1; i <= L; ++i) {
    s.push_back(Action::forward(i));
    if (i - 1 >= 1 && !kept(i - 1)) s.push_back(Action::free(i - 1));
  }
  s.push_back(Action::loss());
  for (int i = L; i >= 1; --i) {
    const int need = i - 1;
    // backward(C+1) releases x_C (nothing above it is left to recompute), so below it the recipe
    // starts from x_0 again, as "the nearest kept checkpoint below" says.
    if (!kept(need)) {
      const int c = (C >= 1 && C < need) ? C : 0;
      for (int j = c + 1; j <= need; ++j) {
        s.push_back(Action::forward(j));
        if (j - 1 > c) s.push_back(Action::free(j - 1));  // no caching of the way up
      }
    }
    s.push_back(Action::backward(i));
  }
  return s;
}

Plan plan_naive(const ChainSpec& spec, int C) {
  spec.validate();
  return make_plan(spec, "naive:" + std::to_string(C), naive_schedule(spec.L(), C));
}

Plan plan_executable(const ChainSpec& spec, const std::string& policy) {
  const std::string prefix = "naive:";
  if (policy.compare(0, prefix.size(), prefix) != 0) return plan_policy(spec, policy);
  const std::string arg = policy.substr(prefix.size());
  int C = -1;
  const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), C);
  TG_CHECK(ec == std::errc() && end == arg.data() + arg.size() && !arg.empty(), "policy '", policy,
           "': naive:C needs an integer checkpoint index C");
  return plan_naive(spec, C);
}

struct ChainRematerializer::State {
  std::vector<LayerFn> layers;
  std::vector<Action> schedule;
  int L = 0;
  size_t loss_pos = 0;
  std::vector<size_t> backward_pos;  // by layer i (1..L): position of backward(i)
  std::vector<bool> at_loss;         // x_j in S at the loss (j = 0..L)

  bool forwarded = false;
  size_t cursor = 0;           // next action to execute
  std::vector<Tensor> stored;  // S: detached aliases of the stored x's
  std::vector<Shape> shapes;   // of x_j as the recorded forward produced it
  std::vector<DType> dtypes;
  std::vector<Tensor> given;  // by layer i: x_{i-1} as handed to its node's unpack
  std::vector<int> handles;   // by layer i: handles its nodes still hold
  int64_t recomputed = 0;

  // While F_i records: i, and the tensor it was called on.
  int recording = 0;
  Tensor recording_input;

  Tensor unpack(int i);
  void release(int i) {
    if (--handles[static_cast<size_t>(i)] == 0) given[static_cast<size_t>(i)] = Tensor();
  }
};

namespace {

// What a node holds instead of layer i's input x_{i-1}: the layer index, its recipe.
struct InputHandle {
  std::shared_ptr<ChainRematerializer::State> state;
  int layer;
  InputHandle(std::shared_ptr<ChainRematerializer::State> s, int i)
      : state(std::move(s)), layer(i) {}
  ~InputHandle() { state->release(layer); }
  InputHandle(const InputHandle&) = delete;
  InputHandle& operator=(const InputHandle&) = delete;
};

}  // namespace

bool same_alias(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset() == b.offset() && a.shape() == b.shape() &&
         a.strides() == b.strides() && a.dtype() == b.dtype();
}

Tensor ChainRematerializer::State::unpack(int i) {
  const size_t li = static_cast<size_t>(i);
  if (given[li].defined()) return given[li];  // another saved alias of the same input
  TG_CHECK(cursor <= backward_pos[li], "remat: layer ", i,
           "'s input was unpacked after the schedule's backward(", i,
           ") had run; a rematerialized chain can be backpropagated only once");
  NoGradGuard no_grad;
  CategoryScope category(Category::activation);  // recomputed x's, not gradients
  while (cursor < backward_pos[li]) {
    const Action a = schedule[cursor++];
    const size_t j = static_cast<size_t>(a.i);
    switch (a.kind) {
      case ActionKind::forward: {
        Tensor x = layers[j - 1](stored[j - 1]);
        TG_CHECK(x.defined() && x.shape() == shapes[j] && x.dtype() == dtypes[j], "remat: F_", a.i,
                 " recomputed x_", a.i, " as ", x.defined() ? x.str() : "none",
                 " but the forward produced shape ", shape_str(shapes[j]), " and dtype ",
                 dtype_name(dtypes[j]));
        stored[j] = std::move(x);
        ++recomputed;
        break;
      }
      case ActionKind::free:
        stored[j] = Tensor();
        break;
      case ActionKind::backward:
        // A layer whose nodes saved no alias of its input: its backward ran without us.
        if (j > 1) stored[j - 1] = Tensor();
        break;
      case ActionKind::loss:
        TG_ASSERT(false, "remat: the loss cannot follow itself");
        break;
    }
  }
  ++cursor;  // backward(i): hands x_{i-1} over and releases it (x_0 stays)
  TG_ASSERT(stored[li - 1].defined(), "remat: x_", i - 1, " is not stored at backward(", i, ")");
  given[li] = i > 1 ? std::move(stored[li - 1]) : stored[li - 1];
  return given[li];
}

ChainRematerializer::ChainRematerializer(std::vector<LayerFn> layers, std::vector<Action> schedule)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  s.L = static_cast<int>(layers.size());
  TG_CHECK(s.L >= 1, "remat: the chain has no layers");
  for (size_t i = 0; i < layers.size(); ++i) {
    TG_CHECK(layers[i] != nullptr, "remat: layer F_", i + 1, " is empty");
  }
  int schedule_L = 0;
  for (const Action& a : schedule) schedule_L = std::max(schedule_L, a.i);
  TG_CHECK(schedule_L == s.L, "remat: the schedule is for a chain of ", schedule_L,
           " layers (its largest layer index) but the chain has L = ", s.L,
           " layers; plan it for this chain");
  simulate(ChainSpec::uniform_chain(s.L), schedule);  // throws naming the first invalid action

  s.backward_pos.assign(static_cast<size_t>(s.L) + 1, 0);
  std::vector<bool> in_s(static_cast<size_t>(s.L) + 1, false);
  in_s[0] = true;
  int swept = 0;
  bool after_loss = false;
  for (size_t p = 0; p < schedule.size(); ++p) {
    const Action& a = schedule[p];
    const size_t j = static_cast<size_t>(a.i);
    if (a.kind == ActionKind::loss) {
      s.loss_pos = p;
      s.at_loss = in_s;
      after_loss = true;
    } else if (a.kind == ActionKind::backward) {
      s.backward_pos[j] = p;
    } else if (!after_loss) {
      if (a.kind == ActionKind::forward) {
        TG_CHECK(a.i == swept + 1, "remat: action ", p, " (", to_string(a),
                 ") computes a layer before the loss that is not the next of the forward sweep (",
                 swept + 1, "); the executor records each F_i once, in order");
        swept = a.i;
      }
      in_s[j] = a.kind == ActionKind::forward;
    }
  }
  s.layers = std::move(layers);
  s.schedule = std::move(schedule);
  s.stored.resize(static_cast<size_t>(s.L) + 1);
  s.shapes.resize(static_cast<size_t>(s.L) + 1);
  s.dtypes.resize(static_cast<size_t>(s.L) + 1);
  s.given.resize(static_cast<size_t>(s.L) + 1);
  s.handles.assign(static_cast<size_t>(s.L) + 1, 0);
}

ChainRematerializer::~ChainRematerializer() = default;

Tensor ChainRematerializer::forward(const Tensor& x0,
                                    const std::function<void(int, const Tensor&)>& on_forward) {
  State& s = *state_;
  TG_CHECK(!s.forwarded, "remat: forward may run once per ChainRematerializer");
  TG_CHECK(grad_enabled(), "remat: the forward needs grad mode on (called inside a NoGradGuard?)");
  TG_CHECK(x0.defined(), "remat: the input x_0 is undefined");
  s.forwarded = true;

  SavedTensorHooks hooks;
  // Weak: the handles keep the state alive, not the hooks (which every packed value holds).
  hooks.pack = [weak = std::weak_ptr<State>(state_)](const Tensor& t, const Node&) -> std::any {
    const std::shared_ptr<State> st = weak.lock();
    TG_ASSERT(st != nullptr);
    if (st->recording == 0 || !same_alias(t, st->recording_input)) return std::any();
    ++st->handles[static_cast<size_t>(st->recording)];
    return std::make_shared<InputHandle>(st, st->recording);
  };
  hooks.unpack = [](const std::any& packed) -> Tensor {
    const auto& h = std::any_cast<const std::shared_ptr<InputHandle>&>(packed);
    return h->state->unpack(h->layer);
  };

  s.stored[0] = x0.detach();
  s.shapes[0] = x0.shape();
  s.dtypes[0] = x0.dtype();
  Tensor x = x0;    // the recorded x_{i-1}: F_i is called on it so that the graph links up
  int pending = 0;  // a forward whose on_forward waits for the frees after it
  for (size_t p = 0; p < s.loss_pos; ++p) {
    const Action& a = s.schedule[p];
    const size_t j = static_cast<size_t>(a.i);
    if (a.kind == ActionKind::free) {
      s.stored[j] = Tensor();
      continue;
    }
    if (pending > 0 && on_forward) on_forward(pending, x);
    // a is forward(swept + 1) (checked by the constructor).
    Tensor y;
    s.recording = a.i;
    s.recording_input = x;
    {
      struct Reset {
        State& st;
        ~Reset() {
          st.recording = 0;
          st.recording_input = Tensor();
        }
      } reset{s};
      SavedTensorHooksScope scope(hooks);
      y = s.layers[j - 1](x);
    }
    TG_CHECK(y.defined(), "remat: F_", a.i, " returned no tensor");
    s.stored[j] = y.detach();
    s.shapes[j] = y.shape();
    s.dtypes[j] = y.dtype();
    x = std::move(y);  // the previous x is dropped here unless S or a node still holds it
    pending = a.i;
  }
  if (pending > 0 && on_forward) on_forward(pending, x);
  s.stored[static_cast<size_t>(s.L)] = Tensor();  // the loss releases x_L: the caller holds it now
  s.cursor = s.loss_pos + 1;
  return x;
}

int ChainRematerializer::L() const {
  return state_->L;
}
const std::vector<bool>& ChainRematerializer::stored_at_loss() const {
  return state_->at_loss;
}
int64_t ChainRematerializer::recomputed_steps() const {
  return state_->recomputed;
}
size_t ChainRematerializer::actions_done() const {
  return state_->cursor;
}

}  // namespace tilegrad::remat
