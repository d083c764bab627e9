// The caching CUDA allocator: tilegrad's Allocator for DeviceType::cuda (Note [CUDA caching
// allocator]; docs/CUDA.md has the figures measured on the device).
//
// cudaMalloc and cudaFree are slow (tens to hundreds of microseconds) and cudaFree synchronises the
// device, while a training step allocates and frees the same sizes every iteration. So memory is
// taken from the driver in segments and kept: a freed block goes back to a pool and the next
// request of a fitting size is served from there, on the host, without the driver.
//
// Note [CUDA caching allocator]
// - Sizes. Requests are rounded up to 512 bytes. Requests up to 1 MiB come from the small pool,
//   whose segments are 2 MiB; larger ones from the large pool, whose segments are 20 MiB for
//   requests under 10 MiB and the request rounded up to 2 MiB otherwise. Separating the pools keeps
//   short-lived small blocks (scalars, reductions) from fragmenting the segments that hold large
//   tensors. A free block is found best-fit (smallest size that fits, then lowest address) and
//   split when the rest is worth keeping (at least 512 bytes in the small pool, over 1 MiB in the
//   large one); freed blocks merge with free neighbours of their segment, so a segment whose blocks
//   are all free is one block again and can be handed back to the driver.
// - Streams. Every segment belongs to the stream that was current (cuda/stream.h) when it was
//   allocated, and its blocks serve that stream only. A block freed on its stream is reusable at
//   once: work queued later on the same stream runs after every kernel that used the block, so no
//   synchronisation is needed. Work on *another* stream that uses a block is invisible to the
//   allocator; the user of such a block must do one of these before freeing it:
//     * call record_stream(ptr, other_stream): at the free the allocator records an event on each
//       such stream and reuses the block only once those events have completed; or
//     * make the block's own stream wait for the other stream (cudaEventRecord on the other stream,
//       cudaStreamWaitEvent on the block's stream) before the free; or
//     * synchronise the other stream before the free.
//   Without one of these, a later allocation on the block's stream may overwrite data the other
//   stream is still reading.
// - Accounting. Every allocation and free is reported to tracker(Device::cuda(i)) with its category
//   and the exact requested bytes, as the CPU allocator does; the bytes held in segments (live,
//   cached and waiting on events) are the tracker's `reserved`. allocator_stats() adds what only
//   the allocator knows (segments, cache hits, retries).
// - Out of memory. When cudaMalloc fails, the allocator waits for blocks held by other streams'
//   events, returns every fully free segment to the driver and tries once more; if that fails too
//   it throws OutOfMemoryError with the request, the tracker's live bytes, the reserved and cached
//   bytes and the device's free and total memory. Nothing is lost: blocks that were live stay live
//   and the allocator can be used afterwards.
// - Graphs. Inside a graph capture (cuda/graph.h, Note [Graph capture]) the capture stream's pool
//   is the graph's private memory; cudaMalloc runs in the relaxed capture mode, and an
//   out-of-memory is not retried after emptying the cache (cudaFree would wait for the device).
// - Devices. An allocation goes to the calling thread's current device (cudaGetDevice); a free goes
//   to the device the block came from.
//
// The allocator registers itself for DeviceType::cuda when the program is loaded (builds with
// CUDA only); it makes no CUDA call until the first allocation, so a program that never touches the
// GPU runs on a machine without one.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "memory/allocator.h"

namespace tilegrad::cuda {

// Thrown when a request cannot be met even after the cache was returned to the driver.
class OutOfMemoryError : public Error {
 public:
  OutOfMemoryError(const std::string& what, int device, int64_t requested, int64_t live,
                   int64_t reserved, int64_t device_free, int64_t device_total)
      : Error(what),
        device(device),
        requested(requested),
        live(live),
        reserved(reserved),
        device_free(device_free),
        device_total(device_total) {}
  int device;
  int64_t requested;     // bytes asked for
  int64_t live;          // the tracker's live bytes on the device
  int64_t reserved;      // bytes the allocator held in segments after emptying its cache
  int64_t device_free;   // cudaMemGetInfo's free bytes after emptying the cache
  int64_t device_total;  // and the device's total
};

// What the allocator knows about one device beyond the tracker's figures.
struct AllocatorStats {
  int64_t reserved = 0;      // bytes held in segments from cudaMalloc
  int64_t allocated = 0;     // bytes in blocks handed out, rounded sizes
  int64_t cached = 0;        // bytes in free blocks, ready for reuse
  int64_t pending = 0;       // bytes in freed blocks waiting for other streams' events
  int64_t segments = 0;      // segments held
  int64_t cuda_mallocs = 0;  // successful cudaMalloc calls, ever
  int64_t cuda_frees = 0;    // cudaFree calls, ever
  int64_t allocations = 0;   // allocations served, ever
  int64_t cache_hits = 0;    // of which from a cached block, without cudaMalloc
  int64_t retries = 0;       // cudaMalloc failures retried after emptying the cache
  int64_t ooms = 0;          // OutOfMemoryErrors thrown
};

// The process's CUDA allocator (the one allocator_for(Device::cuda(i)) returns).
Allocator& caching_allocator();
// Figures for device `device`, or the current device when -1.
AllocatorStats allocator_stats(int device = -1);
// Declares that work on `stream` uses the block at `ptr` (a pointer returned by the allocator); see
// the note on streams. A no-op for the block's own stream and for nullptr.
void record_stream(void* ptr, cudaStream_t stream);

// The number of usable devices; 0 when there is no GPU or no driver (never throws).
int device_count();
// The calling thread's current device; throws Error naming the device when none is usable.
int current_device();

}  // namespace tilegrad::cuda

// Defined next to the allocator's registration; the build asks the linker to keep it (and with it
// the registration) in every program linked against the engine, since nothing else refers to it.
extern "C" void tilegrad_cuda_allocator_anchor();
