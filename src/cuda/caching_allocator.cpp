#include "cuda/caching_allocator.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/check.h"
#include "cuda/graph.h"
#include "cuda/stream.h"
#include "memory/tracker.h"

namespace tilegrad::cuda {

namespace {

constexpr size_t kMinBlock = 512;                  // rounding unit and smallest block
constexpr size_t kSmallRequest = size_t{1} << 20;  // requests up to this use the small pool
constexpr size_t kSmallSegment = size_t{2} << 20;
constexpr size_t kMidRequest = size_t{10} << 20;  // large requests under this share 20 MiB segments
constexpr size_t kMidSegment = size_t{20} << 20;
constexpr size_t kLargeRound = size_t{2} << 20;

size_t round_up(size_t n, size_t unit) {
  return (n + unit - 1) / unit * unit;
}

size_t segment_size(size_t size) {
  if (size <= kSmallRequest) return kSmallSegment;
  if (size < kMidRequest) return kMidSegment;
  return round_up(size, kLargeRound);
}

cudaError_t cuda_malloc(void** p, size_t bytes) {
  const RelaxedCapture relaxed;  // allowed while the thread captures a graph (cuda/graph.h)
  return cudaMalloc(p, bytes);
}

uintptr_t addr(const void* p) {
  return reinterpret_cast<uintptr_t>(p);
}

std::string fmt_bytes(int64_t b) {
  char buf[96];
  const double v = static_cast<double>(b);
  if (b >= (int64_t{1} << 30)) {
    std::snprintf(buf, sizeof buf, "%.2f GiB (%lld bytes)", v / (1 << 30),
                  static_cast<long long>(b));
  } else if (b >= (int64_t{1} << 20)) {
    std::snprintf(buf, sizeof buf, "%.2f MiB (%lld bytes)", v / (1 << 20),
                  static_cast<long long>(b));
  } else {
    std::snprintf(buf, sizeof buf, "%lld bytes", static_cast<long long>(b));
  }
  return buf;
}

// A piece of a segment: free in a pool, handed out, or freed but waiting for events.
struct Block {
  int device = 0;
  cudaStream_t stream = nullptr;  // the segment's stream; the block serves no other
  char* ptr = nullptr;
  size_t size = 0;
  bool small = false;      // from the small pool
  bool in_pool = false;    // free and available
  bool unusable = false;   // an event could not be recorded: never reused
  int pending_events = 0;  // events to complete before the block may be reused
  Block* prev = nullptr;   // neighbours within the segment, by address
  Block* next = nullptr;
  std::vector<cudaStream_t> uses;  // other streams declared by record_stream
};

// Pools are ordered by (stream, size, address), so lower_bound finds the best fit on a stream.
struct BlockOrder {
  bool operator()(const Block* a, const Block* b) const {
    if (a->stream != b->stream) return addr(a->stream) < addr(b->stream);
    if (a->size != b->size) return a->size < b->size;
    return addr(a->ptr) < addr(b->ptr);
  }
};
using Pool = std::set<Block*, BlockOrder>;

struct DeviceState {
  Pool small, large;
  std::vector<std::pair<cudaEvent_t, Block*>> pending;  // events recorded at cross-stream frees
  std::vector<cudaEvent_t> spare_events;
  AllocatorStats stats;
};

// Makes a device current for a scope: the runtime's current device is per thread, and events,
// frees and queries must run on the block's device.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    int current = 0;
    TG_CUDA_CHECK(cudaGetDevice(&current));
    if (current != device) {
      TG_CUDA_CHECK(cudaSetDevice(device));
      prev_ = current;
    }
  }
  ~DeviceGuard() {
    if (prev_ >= 0) (void)cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

struct DeviceCount {
  int count = 0;
  cudaError_t err = cudaSuccess;
};

// Read once: the set of visible devices is fixed when the runtime initialises.
const DeviceCount& devices() {
  static const DeviceCount dc = [] {
    DeviceCount d;
    d.err = cudaGetDeviceCount(&d.count);
    if (d.err != cudaSuccess) {
      (void)cudaGetLastError();
      d.count = 0;
    }
    return d;
  }();
  return dc;
}

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Category c) override {
    if (bytes == 0) return nullptr;
    const int dev = current_device();
    const cudaStream_t stream = current_stream();
    const size_t size = std::max(kMinBlock, round_up(bytes, kMinBlock));
    std::lock_guard lock(mu_);
    DeviceState& d = state(dev);
    process_events(d, /*wait=*/false);
    Pool& pool = size <= kSmallRequest ? d.small : d.large;
    Block* b = take_free(d, pool, stream, size);
    if (b) {
      ++d.stats.cache_hits;
    } else {
      b = new_segment(d, dev, stream, size, bytes);
    }
    split(d, pool, b, size);
    active_.emplace(b->ptr, b);
    d.stats.allocated += static_cast<int64_t>(b->size);
    ++d.stats.allocations;
    tracker(Device::cuda(dev)).on_alloc(c, static_cast<int64_t>(bytes));
    publish(dev, d);
    return b->ptr;
  }

  void deallocate(void* p, size_t bytes, Category c) override {
    if (!p) return;
    std::lock_guard lock(mu_);
    auto it = active_.find(p);
    TG_ASSERT(it != active_.end(), "cuda allocator: ", p,
              " was not allocated by it or was already freed");
    Block* b = it->second;
    active_.erase(it);
    DeviceState& d = *devices_[static_cast<size_t>(b->device)];
    d.stats.allocated -= static_cast<int64_t>(b->size);
    tracker(Device::cuda(b->device)).on_free(c, static_cast<int64_t>(bytes));
    if (b->uses.empty()) {
      return_block(d, b);
    } else {
      defer(d, b);
    }
  }

  void empty_cache() override {
    std::lock_guard lock(mu_);
    for (size_t dev = 0; dev < devices_.size(); ++dev) {
      if (!devices_[dev]) continue;
      DeviceState& d = *devices_[dev];
      process_events(d, /*wait=*/true);
      release_cached(d, static_cast<int>(dev));
      publish(static_cast<int>(dev), d);
    }
  }

  Device device() const override {
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
      (void)cudaGetLastError();
      dev = 0;
    }
    return Device::cuda(dev);
  }

  AllocatorStats stats(int dev) {
    std::lock_guard lock(mu_);
    if (dev < 0 || static_cast<size_t>(dev) >= devices_.size() ||
        !devices_[static_cast<size_t>(dev)]) {
      return {};
    }
    return devices_[static_cast<size_t>(dev)]->stats;
  }

  void record_stream(void* p, cudaStream_t stream) {
    if (!p) return;
    std::lock_guard lock(mu_);
    auto it = active_.find(p);
    TG_CHECK(it != active_.end(), "cuda record_stream: ", p,
             " is not a live allocation of the CUDA allocator");
    Block* b = it->second;
    if (stream == b->stream) return;
    if (std::find(b->uses.begin(), b->uses.end(), stream) == b->uses.end()) {
      b->uses.push_back(stream);
    }
  }

 private:
  DeviceState& state(int dev) {
    const auto i = static_cast<size_t>(dev);
    if (i >= devices_.size()) devices_.resize(i + 1);
    if (!devices_[i]) devices_[i] = std::make_unique<DeviceState>();
    return *devices_[i];
  }

  static Block* take_free(DeviceState& d, Pool& pool, cudaStream_t stream, size_t size) {
    Block probe;
    probe.stream = stream;
    probe.size = size;
    auto it = pool.lower_bound(&probe);  // probe.ptr is null: the first fit of that size
    if (it == pool.end() || (*it)->stream != stream) return nullptr;
    Block* b = *it;
    pool.erase(it);
    b->in_pool = false;
    d.stats.cached -= static_cast<int64_t>(b->size);
    return b;
  }

  Block* new_segment(DeviceState& d, int dev, cudaStream_t stream, size_t size, size_t bytes) {
    const size_t seg = segment_size(size);
    void* p = nullptr;
    // Inside a graph capture (cuda/graph.h) cudaMalloc needs the relaxed mode, and the cache is
    // not handed back: cudaFree would wait for the device, which a capture forbids.
    const bool in_capture = capturing(stream);
    cudaError_t err = cuda_malloc(&p, seg);
    if (err == cudaErrorMemoryAllocation && !in_capture) {
      // Blocks waiting on other streams and whole free segments may be what stands in the way:
      // hand them back and try once more.
      (void)cudaGetLastError();
      ++d.stats.retries;
      process_events(d, /*wait=*/true);
      release_cached(d, dev);
      publish(dev, d);
      err = cuda_malloc(&p, seg);
    }
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      ++d.stats.ooms;
      throw_oom(d, dev, bytes, seg);
    }
    if (err != cudaSuccess) detail::throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
    ++d.stats.cuda_mallocs;
    ++d.stats.segments;
    d.stats.reserved += static_cast<int64_t>(seg);
    auto* b = new Block;
    b->device = dev;
    b->stream = stream;
    b->ptr = static_cast<char*>(p);
    b->size = seg;
    b->small = size <= kSmallRequest;
    return b;
  }

  [[noreturn]] void throw_oom(DeviceState& d, int dev, size_t bytes, size_t seg) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
    const int64_t live = tracker(Device::cuda(dev)).live_total();
    const auto req = static_cast<int64_t>(bytes);
    std::string msg = tilegrad::detail::cat(
        "cuda:", dev, ": out of memory: cannot allocate ", fmt_bytes(req),
        seg != bytes
            ? tilegrad::detail::cat(" (as a segment of ", fmt_bytes(static_cast<int64_t>(seg)), ")")
            : std::string(),
        "; live in tensors ", fmt_bytes(live), ", reserved by tilegrad ",
        fmt_bytes(d.stats.reserved), " (after returning its cache to the driver; ",
        fmt_bytes(d.stats.cached), " still cached in partly used segments), free on the device ",
        fmt_bytes(static_cast<int64_t>(free_b)), " of ", fmt_bytes(static_cast<int64_t>(total_b)));
    throw OutOfMemoryError(msg, dev, req, live, d.stats.reserved, static_cast<int64_t>(free_b),
                           static_cast<int64_t>(total_b));
  }

  // Keeps the first `size` bytes of b and returns the rest to the pool if it is worth keeping.
  static void split(DeviceState& d, Pool& pool, Block* b, size_t size) {
    const size_t rest = b->size - size;
    if (b->small ? rest < kMinBlock : rest <= kSmallRequest) return;
    auto* r = new Block;
    r->device = b->device;
    r->stream = b->stream;
    r->ptr = b->ptr + size;
    r->size = rest;
    r->small = b->small;
    r->prev = b;
    r->next = b->next;
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    r->in_pool = true;
    pool.insert(r);
    d.stats.cached += static_cast<int64_t>(rest);
  }

  // Puts a free block back, merged with free neighbours of its segment.
  static void return_block(DeviceState& d, Block* b) {
    Pool& pool = b->small ? d.small : d.large;
    d.stats.cached += static_cast<int64_t>(b->size);
    if (Block* prev = b->prev; prev && prev->in_pool) {
      pool.erase(prev);  // before its size changes: the pool is ordered by size
      prev->size += b->size;
      prev->next = b->next;
      if (b->next) b->next->prev = prev;
      delete b;
      b = prev;
    }
    if (Block* next = b->next; next && next->in_pool) {
      pool.erase(next);
      b->size += next->size;
      b->next = next->next;
      if (next->next) next->next->prev = b;
      delete next;
    }
    b->in_pool = true;
    pool.insert(b);
  }

  // A block used by other streams: record an event on each and reuse the block once all complete.
  static void defer(DeviceState& d, Block* b) {
    d.stats.pending += static_cast<int64_t>(b->size);
    try {
      DeviceGuard guard(b->device);
      for (cudaStream_t s : b->uses) {
        cudaEvent_t ev;
        if (d.spare_events.empty()) {
          TG_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
        } else {
          ev = d.spare_events.back();
          d.spare_events.pop_back();
        }
        TG_CUDA_CHECK(cudaEventRecord(ev, s));
        ++b->pending_events;
        d.pending.emplace_back(ev, b);
      }
    } catch (const Error&) {
      // Frees run in destructors and must not throw. Without its events the block cannot be shown
      // to be idle, so it is never handed out again; it stays reserved (and `pending`).
      b->unusable = true;
    }
    b->uses.clear();
  }

  // Returns blocks whose events have completed to their pools (waiting for them if `wait`).
  static void process_events(DeviceState& d, bool wait) {
    size_t keep = 0;
    for (size_t i = 0; i < d.pending.size(); ++i) {
      auto [ev, b] = d.pending[i];
      const cudaError_t err = wait ? cudaEventSynchronize(ev) : cudaEventQuery(ev);
      if (err == cudaErrorNotReady) {
        (void)cudaGetLastError();  // not a failure; keep it out of the next launch check
        d.pending[keep++] = d.pending[i];
        continue;
      }
      if (err != cudaSuccess) {
        d.pending.erase(d.pending.begin() + static_cast<std::ptrdiff_t>(keep),
                        d.pending.begin() + static_cast<std::ptrdiff_t>(i));
        detail::throw_cuda_error(err, wait ? "cudaEventSynchronize" : "cudaEventQuery", __FILE__,
                                 __LINE__);
      }
      d.spare_events.push_back(ev);
      if (--b->pending_events == 0 && !b->unusable) {
        d.stats.pending -= static_cast<int64_t>(b->size);
        return_block(d, b);
      }
    }
    d.pending.resize(keep);
  }

  // Hands every segment that is one free block back to the driver.
  static void release_cached(DeviceState& d, int dev) {
    DeviceGuard guard(dev);
    for (Pool* pool : {&d.small, &d.large}) {
      for (auto it = pool->begin(); it != pool->end();) {
        Block* b = *it;
        if (b->prev || b->next) {
          ++it;
          continue;
        }
        TG_CUDA_CHECK(cudaFree(b->ptr));
        it = pool->erase(it);
        d.stats.reserved -= static_cast<int64_t>(b->size);
        d.stats.cached -= static_cast<int64_t>(b->size);
        --d.stats.segments;
        ++d.stats.cuda_frees;
        delete b;
      }
    }
  }

  static void publish(int dev, const DeviceState& d) {
    tracker(Device::cuda(dev)).set_reserved(d.stats.reserved);
  }

  std::mutex mu_;
  std::vector<std::unique_ptr<DeviceState>> devices_;  // by device index, created on first use
  std::unordered_map<void*, Block*> active_;           // handed-out blocks, all devices
};

CachingAllocator& instance() {
  // Never destroyed: storages may be freed during static destruction.
  static auto* a = new CachingAllocator();
  return *a;
}

// Registration when the program is loaded; it makes no CUDA call.
[[maybe_unused]] const bool g_registered = [] {
  register_allocator(DeviceType::cuda, &instance());
  return true;
}();

}  // namespace

Allocator& caching_allocator() {
  return instance();
}

AllocatorStats allocator_stats(int device) {
  return instance().stats(device < 0 ? current_device() : device);
}

void record_stream(void* ptr, cudaStream_t stream) {
  instance().record_stream(ptr, stream);
}

int device_count() {
  return devices().count;
}

int current_device() {
  const DeviceCount& dc = devices();
  int dev = 0;
  cudaError_t err = dc.err;
  if (err == cudaSuccess && dc.count > 0) {
    err = cudaGetDevice(&dev);
    if (err == cudaSuccess) return dev;
    (void)cudaGetLastError();
  }
  throw Error(tilegrad::detail::cat(
      "cuda:", dev, ": no usable CUDA device (",
      err == cudaSuccess ? "the driver reports no device" : cudaGetErrorString(err), ")"));
}

}  // namespace tilegrad::cuda

extern "C" void tilegrad_cuda_allocator_anchor() {}
