#include "memory/tracker.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "core/error.h"

namespace tilegrad {

namespace {
std::string fmt_row(std::string_view name, int64_t live, int64_t peak) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-16.*s %16lld %12.3f %16lld %12.3f\n",
                static_cast<int>(name.size()), name.data(), static_cast<long long>(live),
                live / 1e6, static_cast<long long>(peak), peak / 1e6);
  return buf;
}
}  // namespace

std::string MemoryStats::table() const {
  std::string out;
  char head[160];
  std::snprintf(head, sizeof head, "%-16s %16s %12s %16s %12s\n", "category", "live bytes",
                "live MB", "peak bytes", "peak MB");
  out += head;
  for (int c = 0; c < kNumCategories; ++c) {
    out += fmt_row(category_name(static_cast<Category>(c)), live[c], peak[c]);
  }
  out += fmt_row("total", live_total, peak_total);
  char tail[120];
  std::snprintf(tail, sizeof tail, "reserved by allocator: %lld bytes\n",
                static_cast<long long>(reserved));
  return out + tail;
}

// --- MemoryScope --------------------------------------------------------------------------------

MemoryScope::MemoryScope(bool record_timeline, Device device)
    : tracker_(&tracker(device)), record_(record_timeline) {
  std::lock_guard lock(tracker_->mu_);
  start_ = tracker_->s_;
  peak_ = start_.live;
  peak_total_ = start_.live_total;
  tracker_->scopes_.push_back(this);
}

MemoryScope::~MemoryScope() {
  std::lock_guard lock(tracker_->mu_);
  auto& v = tracker_->scopes_;
  v.erase(std::remove(v.begin(), v.end(), this), v.end());
}

MemoryStats MemoryScope::snapshot() const {
  std::lock_guard lock(tracker_->mu_);
  MemoryStats s = tracker_->s_;
  s.peak = peak_;
  s.peak_total = peak_total_;
  return s;
}

MemoryStats MemoryScope::delta() const {
  MemoryStats s = snapshot();
  for (int c = 0; c < kNumCategories; ++c) {
    s.live[c] -= start_.live[c];
    s.peak[c] -= start_.live[c];
  }
  s.live_total -= start_.live_total;
  s.peak_total -= start_.live_total;
  s.num_allocs -= start_.num_allocs;
  s.num_frees -= start_.num_frees;
  return s;
}

int64_t MemoryScope::peak_delta() const {
  std::lock_guard lock(tracker_->mu_);
  return peak_total_ - start_.live_total;
}

void MemoryScope::reset_peak() {
  std::lock_guard lock(tracker_->mu_);
  peak_ = tracker_->s_.live;
  peak_total_ = tracker_->s_.live_total;
}

std::vector<MemoryEvent> MemoryScope::events() const {
  std::lock_guard lock(tracker_->mu_);
  return events_;
}

// --- MemoryTracker ------------------------------------------------------------------------------

void MemoryTracker::record(bool alloc, Category c, int64_t bytes) {
  const int ci = static_cast<int>(c);
  for (MemoryScope* scope : scopes_) {
    scope->peak_[ci] = std::max(scope->peak_[ci], s_.live[ci]);
    scope->peak_total_ = std::max(scope->peak_total_, s_.live_total);
    if (scope->record_) {
      scope->events_.push_back(
          MemoryEvent{seq_, alloc, c, bytes, current_op_name(), s_.live_total, s_.live});
    }
  }
  ++seq_;
}

void MemoryTracker::on_alloc(Category c, int64_t bytes) {
  std::lock_guard lock(mu_);
  const int ci = static_cast<int>(c);
  s_.live[ci] += bytes;
  s_.live_total += bytes;
  s_.peak[ci] = std::max(s_.peak[ci], s_.live[ci]);
  s_.peak_total = std::max(s_.peak_total, s_.live_total);
  ++s_.num_allocs;
  record(true, c, bytes);
}

void MemoryTracker::on_free(Category c, int64_t bytes) {
  std::lock_guard lock(mu_);
  const int ci = static_cast<int>(c);
  TG_ASSERT(s_.live[ci] >= bytes, "freeing more ", category_name(c), " bytes than are live");
  s_.live[ci] -= bytes;
  s_.live_total -= bytes;
  ++s_.num_frees;
  record(false, c, bytes);
}

void MemoryTracker::on_retag(Category from, Category to, int64_t bytes) {
  if (from == to) return;
  std::lock_guard lock(mu_);
  s_.live[static_cast<int>(from)] -= bytes;
  s_.live[static_cast<int>(to)] += bytes;
  const int ti = static_cast<int>(to);
  s_.peak[ti] = std::max(s_.peak[ti], s_.live[ti]);
  // In the timeline a retag reads as the bytes leaving one category and entering the other.
  record(false, from, bytes);
  record(true, to, bytes);
}

void MemoryTracker::set_reserved(int64_t bytes) {
  std::lock_guard lock(mu_);
  s_.reserved = bytes;
}

MemoryStats MemoryTracker::stats() const {
  std::lock_guard lock(mu_);
  return s_;
}

int64_t MemoryTracker::live_total() const {
  std::lock_guard lock(mu_);
  return s_.live_total;
}

void MemoryTracker::reset_peak() {
  std::lock_guard lock(mu_);
  s_.peak = s_.live;
  s_.peak_total = s_.live_total;
}

MemoryTracker& tracker(Device device) {
  // One tracker per device, created on first use and never destroyed (storages may be freed during
  // static destruction).
  static std::mutex mu;
  static auto* trackers = new std::map<std::pair<int, int>, MemoryTracker*>();
  std::lock_guard lock(mu);
  auto& t = (*trackers)[{static_cast<int>(device.type), device.index}];
  if (!t) t = new MemoryTracker();
  return *t;
}

}  // namespace tilegrad
