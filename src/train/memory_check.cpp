// The memory check (memory_check.h, Note [Predicting the peak by measurement]).
#include "train/memory_check.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "backend/backend.h"
#include "core/error.h"
#include "data/tokenizer_file.h"
#include "memory/extrapolate.h"
#include "memory/tracker.h"
#include "train/captured_step.h"
#include "train/step.h"

namespace tilegrad::train {

namespace {

// The last three are the steps recorded in a CUDA graph (captured_step.h), when the run records.
constexpr int kPhases = 7;
constexpr const char* kPhaseNames[kPhases] = {"setup",
                                              "forward+backward",
                                              "optimizer step",
                                              "evaluation",
                                              "recorded forward+backward",
                                              "optimizer step keeping the gradients",
                                              "evaluation beside the recorded step"};

int64_t sum(const CategoryBytes& b) {
  int64_t s = 0;
  for (const int64_t v : b) s += v;
  return s;
}

std::string mb(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / 1e6);
  return buf;
}

// What `scope` recorded, with `open` (live when it opened) and every event's live bytes counted
// from `start`.
Timeline timeline(const MemoryScope& scope, const CategoryBytes& open, const CategoryBytes& start) {
  Timeline t;
  for (int k = 0; k < kNumCategories; ++k) t.open[k] = open[k] - start[k];
  t.events = scope.events();
  for (MemoryEvent& e : t.events) {
    for (int k = 0; k < kNumCategories; ++k) e.live_by_category[k] -= start[k];
  }
  return t;
}

struct Probe {
  std::array<Timeline, kPhases> phases{};  // each phase's timeline, counted from the probe's start
  bool left_bytes = false;  // bytes stayed live after the probe (lazily made persistent buffers)
};

// One training step of c's model cut to `layers` blocks with remat `remat`, phase by phase.
Probe probe(const TrainConfig& c, int layers, const std::string& remat,
            const std::shared_ptr<const data::TokenFile>& train_data,
            const std::shared_ptr<const data::TokenFile>& val_data) {
  TrainConfig pc = c;
  pc.model.L = layers;
  pc.model.remat = remat;
  const DeviceScope on_device(c.device);
  MemoryTracker& t = tracker(c.device);
  const CategoryBytes before = t.stats().live;
  Probe out;
  // Each phase's bytes are counted from `before`: parameters and optimizer state, live through
  // every phase, are part of each one's peak.
  auto phase = [&](int i, const auto& body) {
    const CategoryBytes open = t.stats().live;
    const MemoryScope scope(true, c.device);
    body();
    out.phases[static_cast<size_t>(i)] = timeline(scope, open, before);
  };
  {
    Generator init(c.seed), dropout_gen(c.seed + 1);
    data::BatchSampler sampler(train_data, c.batch, c.model.T, Generator(c.seed + 2));
    const int64_t micro = std::min<int64_t>(c.accumulation, 2);
    std::optional<models::GPT> model;
    std::optional<optim::AdamW> opt;
    phase(0, [&] {
      model.emplace(pc.model, init);
      opt.emplace(model->named_parameters(), adamw_options(pc));
    });
    phase(1, [&] { forward_backward(*model, sampler, micro, pc, dropout_gen); });
    phase(2, [&] { update(*opt, micro, pc); });
    phase(3, [&] { evaluate(*model, val_data, pc, 0, 1); });
    // From its second step on, a run that records its steps (Note [Captured steps]) keeps the
    // gradients, the recording's inputs and loss between steps, and evaluates beside them: that
    // step too, as the trainer runs it. Should the recording fail, the run goes on eagerly, and
    // so does this.
    if (CapturedStep::unsupported_reason(c).empty() && c.steps >= 2) {
      std::unique_ptr<CapturedStep> captured;
      try {
        phase(4, [&] {
          captured = CapturedStep::record(*model, sampler.next(), pc, dropout_gen);
          captured->replay();
        });
      } catch (const Error&) {
        out.phases[4] = Timeline{};
      }
      if (captured) {
        phase(5, [&] { update(*opt, 1, pc, true); });
        phase(6, [&] { captured->run_in_pool([&] { evaluate(*model, val_data, pc, 0, 1); }); });
      }
    }
  }
  out.left_bytes = t.live_total() != sum(before);
  return out;
}

// Options that lower the peak, given what the run uses now.
std::string advice(const TrainConfig& c) {
  std::string s = detail::cat("a smaller --batch (now ", c.batch,
                              "; --accumulation keeps the tokens per step) or --block (now ",
                              c.model.T, "), which shrink the activations");
  if (c.model.remat != "every:1") {
    s += detail::cat("; --remat every:1 (now ", c.model.remat,
                     "), which keeps only each block's input and recomputes the rest in the "
                     "backward");
  }
  if (c.model.head_chunk == 0) {
    s += "; --head-chunk 4096 (now 0), which never holds the full logits";
  }
  return s + "; or --no-memory-check to run anyway";
}

}  // namespace

MemoryPrediction predict_memory(const TrainConfig& c,
                                const std::shared_ptr<const data::TokenFile>& train_data,
                                const std::shared_ptr<const data::TokenFile>& val_data) {
  const auto t0 = std::chrono::steady_clock::now();
  const int L = c.model.L;
  // K: blocks per checkpointed segment (GPT's grouping), and the probes' remat policy, which
  // must group as the full model does ("sqrt" of fewer blocks would not).
  int group = 0;
  try {
    group = models::remat_group_size(c.model.remat, L);
  } catch (const Error& e) {
    throw Error(detail::cat("train: memory check: ", e.what()));
  }
  const int K = std::max(group, 1);
  const std::string remat = c.model.remat == "sqrt" ? detail::cat("every:", K) : c.model.remat;
  MemoryPrediction p;
  p.group = K;
  p.groups = L >= 1 ? (L + K - 1) / K : 1;
  // The smaller probe holds the first group, the last one (of r blocks) and, when that one is
  // short, a full group between them (Note [Predicting the peak by measurement]).
  const int64_t r = L - (p.groups - 1) * K;
  const int64_t first_groups = r < K ? 3 : 2;  // groups of the smaller probe
  // Groups the smaller probe lacks. With one, the larger probe would be the model itself: it is
  // probed alone.
  const int64_t added = L >= 1 && p.groups >= first_groups + 2 ? p.groups - first_groups : 0;
  p.probe_layers[0] = static_cast<int>(L - added * K);
  p.probe_layers[1] = static_cast<int>(added > 0 ? p.probe_layers[0] + K : p.probe_layers[0]);

  // The data's own errors (a file shorter than one window) come first, as the run would give them.
  data::BatchSampler(train_data, c.batch, c.model.T, Generator(0));
  data::BatchSampler(val_data, c.batch, c.model.T, Generator(0));
  auto run = [&](int layers) {
    try {
      return probe(c, layers, remat, train_data, val_data);
    } catch (const Error& e) {
      throw Error(detail::cat(
          "train: memory check: a training step of the model cut to ", layers, " of its ", L,
          " blocks (batch ", c.batch, ", T ", c.model.T, ", on ", c.device.str(),
          ") failed: ", e.what(),
          ". If that is the device's memory running out, the run cannot fit either (it holds at "
          "least what this step does); to lower the peak: ",
          advice(c)));
    }
  };
  Probe p1 = run(p.probe_layers[0]);
  // A first step may make buffers that then stay (a persistent GEMM workspace, say): they belong
  // to the baseline of every later step, not to a block, so measure again on the warm device.
  if (p1.left_bytes) p1 = run(p.probe_layers[0]);
  const Probe p2 = added > 0 ? run(p.probe_layers[1]) : p1;

  p.baseline = tracker(c.device).live_total();
  int64_t best = -1;
  for (int i = 0; i < kPhases; ++i) {
    const Timeline& one = p1.phases[static_cast<size_t>(i)];
    const Timeline& two = p2.phases[static_cast<size_t>(i)];
    std::optional<ExtrapolatedPeak> e = extrapolate_peak(one, two, added);
    std::optional<ExtrapolatedPeak> own_peak;  // the larger probe's, for the fallback's split
    if (!e) {
      // Not of the form the extrapolation assumes (memory/extrapolate.h): each probe's own peak,
      // extrapolated peak to peak.
      if (const int64_t i0 = first_unpaired_event(one, two); p.aligned && i0 >= 0) {
        const MemoryEvent& u = one.events[static_cast<size_t>(i0)];
        p.unpaired = detail::cat("in the ", kPhaseNames[i], ", event ", i0, " of ",
                                 one.events.size(), " of the ", p.probe_layers[0], "-block probe (",
                                 u.alloc ? "allocating " : "freeing ", u.bytes, " bytes of ",
                                 category_name(u.category), u.op.empty() ? "" : " in ", u.op,
                                 ") has no partner in the ", p.probe_layers[1], "-block probe");
      }
      p.aligned = false;
      own_peak = extrapolate_peak(two, two, 0);
      // Each probe's peak as a timeline with nothing but its opening bytes.
      e = extrapolate_peak(Timeline{extrapolate_peak(one, one, 0)->at_peak, {}},
                           Timeline{own_peak->at_peak, {}}, added);
    }
    if (e->total > best) {
      best = e->total;
      p.at_peak = e->at_peak;
      p.probe_at_peak = own_peak ? own_peak->at_peak : e->at_peak;
      p.phase = kPhaseNames[i];
    }
  }
  p.peak = p.baseline + best;
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

MemoryPrediction predict_memory(const TrainConfig& c0) {
  TrainConfig c = c0;
  c.model.V = data::load_tokenizer(c.data_dir)->vocab_size();
  auto train_data = std::make_shared<const data::TokenFile>(
      data::TokenFile::open(c.data_dir / "train.bin", c.model.V));
  auto val_data = std::make_shared<const data::TokenFile>(
      data::TokenFile::open(c.data_dir / "val.bin", c.model.V));
  return predict_memory(c, train_data, val_data);
}

std::optional<AvailableMemory> available_memory(const TrainConfig& c) {
  std::optional<AvailableMemory> a;
  // The peak counts what is live before the run, and the driver counts everything the caching
  // allocator holds (live or cached for reuse) as used: what it holds is added back.
  if (const std::optional<DeviceMemoryInfo> m = backend(c.device).device_memory()) {
    const int64_t reserved = tracker(c.device).stats().reserved;
    a = AvailableMemory{
        m->free + reserved,
        detail::cat("the device's free memory ", mb(m->free), " of ", mb(m->total), " MB + ",
                    mb(reserved), " MB the caching allocator already holds")};
  }
  if (c.memory_limit > 0 && (!a || c.memory_limit < a->bytes)) {
    a = AvailableMemory{c.memory_limit, "the limit set by --memory-limit"};
  }
  return a;
}

std::string describe(const MemoryPrediction& p) {
  std::string s = detail::cat(mb(p.peak), " MB (");
  if (!p.aligned) s += detail::cat("extrapolated from the probes' peaks: ", p.unpaired, "; ");
  if (!p.categories_exact())
    s += detail::cat("by category at the peak of the ", p.probe_layers[1], "-block probe: ");
  const char* names[kNumCategories] = {"parameters",  "gradients", "optimizer state",
                                       "activations", "workspace", "other"};
  const auto& split = p.categories_exact() ? p.at_peak : p.probe_at_peak;
  for (int k = 0; k < kNumCategories; ++k) {
    s += detail::cat(k ? ", " : "", names[k], " ", mb(split[static_cast<size_t>(k)]));
  }
  s += detail::cat(" MB, and ", mb(p.baseline), " MB live before the run) in the ", p.phase);
  return s;
}

void check_memory(const MemoryPrediction& p, const AvailableMemory& a, const TrainConfig& c) {
  if (p.peak <= a.bytes) return;
  TG_CHECK(false, "train: out of memory predicted on ", c.device.str(),
           ": the run's predicted peak is ", p.peak, " bytes, ", describe(p), " (measured on ",
           p.probe_layers[0], " and ", p.probe_layers[1], " of ", c.model.L, " blocks), but ",
           a.bytes, " bytes (", mb(a.bytes), " MB) are available: ", a.source,
           ". Nothing was run or written. To lower the peak: ", advice(c));
}

}  // namespace tilegrad::train
