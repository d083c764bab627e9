// The memory tracker: exact live and peak payload bytes, per category and in total, per device.
//
// Allocators report every allocation and free here, so any statement tilegrad makes about memory is
// this tracker's number. Figures are payload bytes (numel * itemsize), not allocator-rounded sizes,
// so tests can assert equality with a hand count; what the allocator holds beyond that is reported
// separately as `reserved`.
//
// Scoped tracking works like tracemalloc: a MemoryScope remembers the live bytes at its start and
// keeps its own peak, so scopes nest and each reports the peak reached while it was open; it can
// also record a timeline of allocate/free events carrying the op name.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"
#include "memory/category.h"

namespace tilegrad {

struct MemoryEvent {
  int64_t seq = 0;    // order of the event within the timeline
  bool alloc = true;  // allocation (true) or free (false)
  Category category = Category::other;
  int64_t bytes = 0;
  std::string op;                                          // op that was running ("" outside ops)
  int64_t live_after = 0;                                  // total live bytes after the event
  std::array<int64_t, kNumCategories> live_by_category{};  // after the event
};

struct MemoryStats {
  std::array<int64_t, kNumCategories> live{};
  std::array<int64_t, kNumCategories> peak{};  // each category's own peak
  int64_t live_total = 0;
  int64_t peak_total = 0;  // peak of the total (not the sum of per-category peaks)
  int64_t reserved = 0;    // bytes the allocator holds from the system, including its cache
  int64_t num_allocs = 0;
  int64_t num_frees = 0;

  int64_t live_of(Category c) const { return live[static_cast<int>(c)]; }
  int64_t peak_of(Category c) const { return peak[static_cast<int>(c)]; }
  // A fixed-width table: category, live, peak (in bytes and MB).
  std::string table() const;
};

class MemoryTracker;

// Opens a tracking window: baseline at construction, own peak, optional timeline.
class MemoryScope {
 public:
  explicit MemoryScope(bool record_timeline = false, Device device = default_device());
  ~MemoryScope();
  MemoryScope(const MemoryScope&) = delete;
  MemoryScope& operator=(const MemoryScope&) = delete;

  // Live bytes now minus live bytes at the start (per category and total).
  MemoryStats delta() const;
  // Peak total live bytes seen while open, minus the baseline total.
  int64_t peak_delta() const;
  // Absolute figures: live now, peak while open.
  MemoryStats snapshot() const;
  // Restarts this scope's peaks from the current live bytes.
  void reset_peak();
  // Stops recording and returns the events (empty if not recording).
  std::vector<MemoryEvent> events() const;

 private:
  friend class MemoryTracker;
  MemoryTracker* tracker_;
  MemoryStats start_;
  std::array<int64_t, kNumCategories> peak_{};
  int64_t peak_total_ = 0;
  bool record_;
  std::vector<MemoryEvent> events_;
};

class MemoryTracker {
 public:
  void on_alloc(Category c, int64_t bytes);
  void on_free(Category c, int64_t bytes);
  // Moves live bytes from one category to another (a tensor becomes a parameter, say).
  void on_retag(Category from, Category to, int64_t bytes);
  void set_reserved(int64_t bytes);

  MemoryStats stats() const;
  void reset_peak();
  int64_t live_total() const;

 private:
  friend class MemoryScope;
  void record(bool alloc, Category c, int64_t bytes);  // called with mu_ held

  mutable std::mutex mu_;
  MemoryStats s_;
  int64_t seq_ = 0;
  std::vector<MemoryScope*> scopes_;
};

// The tracker of a device; all allocators for that device report to it.
MemoryTracker& tracker(Device device = default_device());

}  // namespace tilegrad
