// cuda/entry_profiler.h.
#include "cuda/entry_profiler.h"

#include <map>
#include <tuple>

#include "cuda/check.h"
#include "cuda/stream.h"
#include "memory/category.h"

namespace tilegrad::cuda {

EntryProfiler::~EntryProfiler() {
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);  // best effort: the process may be ending
}

cudaEvent_t EntryProfiler::event() {
  if (used_ == pool_.size()) {
    cudaEvent_t e = nullptr;
    TG_CUDA_CHECK(cudaEventCreate(&e));
    pool_.push_back(e);
  }
  return pool_[used_++];
}

void EntryProfiler::start() {
  marks_.clear();
  used_ = 0;
  active_ = true;
}

std::vector<ProfileRow> EntryProfiler::stop() {
  active_ = false;
  TG_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  std::map<std::tuple<std::string, std::string, std::string>, ProfileRow> by_key;
  for (const Mark& m : marks_) {
    float ms = 0;
    TG_CUDA_CHECK(cudaEventElapsedTime(&ms, m.begin, m.end));
    ProfileRow& r = by_key[{m.category, m.op, m.entry}];
    r.category = m.category;
    r.op = m.op;
    r.entry = m.entry;
    r.calls += 1;
    r.seconds += 1e-3 * static_cast<double>(ms);
  }
  marks_.clear();
  std::vector<ProfileRow> rows;
  rows.reserve(by_key.size());
  for (auto& [key, row] : by_key) rows.push_back(std::move(row));
  return rows;
}

EntryProfiler::Range::Range(EntryProfiler& p, const char* entry, const char* detail) {
  if (!p.active_) return;
  p_ = &p;
  mark_ = p.marks_.size();
  Mark m;
  m.category = std::string(category_name(current_category_or(Category::activation)));
  m.op = current_op_name();
  m.entry = entry;
  if (detail != nullptr) m.entry += std::string(":") + detail;
  m.begin = p.event();
  m.end = p.event();
  TG_CUDA_CHECK(cudaEventRecord(m.begin, current_stream()));
  p.marks_.push_back(std::move(m));
}

EntryProfiler::Range::~Range() {
  if (p_ != nullptr) cudaEventRecord(p_->marks_[mark_].end, current_stream());
}

}  // namespace tilegrad::cuda
