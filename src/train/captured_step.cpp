// A training step recorded as a device graph (captured_step.h, Note [Captured steps]).
#include "train/captured_step.h"

#include "backend/backend.h"
#include "core/error.h"
#include "memory/allocator.h"

namespace tilegrad::train {

std::string CapturedStep::unsupported_reason(const TrainConfig& c) {
  if (!c.cuda_graph) return "turned off (--no-cuda-graph)";
  if (!(c.device.type == DeviceType::cuda)) return "not on a CUDA device";
  if (c.model.dropout > 0)
    return "dropout draws a new mask every step, which a recording would repeat";
  if (c.model.head_chunk == 0)
    return "the full-logits head (--head-chunk 0) counts its targets on the host";
  if (c.accumulation > 1) return "more than one micro-batch per step";
  if (c.profile_steps > 0) return "profiling times each backend entry, outside a recording";
  return "";
}

std::unique_ptr<CapturedStep> CapturedStep::record(const models::GPT& model,
                                                   const data::Batch& first, const TrainConfig& c,
                                                   Generator& dropout_gen) {
  backend(c.device).synchronize();
  allocator_for(c.device).empty_cache();
  return std::make_unique<CapturedStep>(model, first, c, dropout_gen);
}

CapturedStep::CapturedStep(const models::GPT& model, const data::Batch& first, const TrainConfig& c,
                           Generator& dropout_gen)
    : V_(c.model.V), params_(model.named_parameters()) {
  for (const NamedTensor& p : params_) {
    TG_CHECK(!p.tensor.grad().defined(), "CapturedStep: parameter '", p.name,
             "' has a gradient; the recorded backward must write every gradient, not add to one");
  }
  x_ = checked(first.x, Tensor()).to(c.device);
  y_ = checked(first.y, Tensor()).to(c.device);
  try {
    graph_ = backend(c.device).capture_graph([&] {
      loss_ = model.loss(x_, y_, dropout_gen);
      loss_.backward();
    });
    TG_CHECK(graph_ != nullptr, "CapturedStep: ", c.device.str(), " cannot record graphs");
  } catch (...) {
    // The backward may have set gradients that nothing computed: drop them.
    loss_ = Tensor();
    for (const NamedTensor& p : params_) p.tensor.set_grad(Tensor());
    throw;
  }
}

CapturedStep::~CapturedStep() = default;

Tensor CapturedStep::checked(const Tensor& ids, const Tensor& recorded) const {
  TG_CHECK(ids.device().is_cpu() && ids.dtype() == DType::i64,
           "CapturedStep: a batch holds int64 ids on the host, got ", ids.str());
  TG_CHECK(!recorded.defined() || ids.shape() == recorded.shape(), "CapturedStep: the batch's ",
           ids.str(), " does not match the recorded ", recorded.str());
  const Tensor h = ids.contiguous();
  const auto* v = static_cast<const int64_t*>(h.data());
  for (int64_t i = 0; i < h.numel(); ++i) {
    TG_CHECK(v[i] >= 0 && v[i] < V_, "CapturedStep: token id ", v[i], " at position ", i,
             " is outside the vocabulary [0, ", V_, ")");
  }
  return h;
}

void CapturedStep::load(const data::Batch& b) {
  const Tensor x = checked(b.x, x_), y = checked(b.y, y_);  // both, before either is copied
  Backend& be = backend(x_.device());
  be.copy_from_host(x.data(), x_.data(), x_.nbytes());
  be.copy_from_host(y.data(), y_.data(), y_.nbytes());
}

void CapturedStep::replay() {
  graph_->replay();
}

double CapturedStep::loss() const {
  return loss_.item();
}

}  // namespace tilegrad::train
