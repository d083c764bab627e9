// CUDA graphs: the device work of a piece of host code, recorded once by stream capture and then
// replayed with one launch (Backend::capture_graph; Note [Graph capture]).
//
// Note [Graph capture]
// - Why. A training step queues hundreds of kernels, each a launch of several microseconds on the
//   host. When the GPU's work per kernel is small (small models, short sequences) the host cannot
//   keep ahead and the GPU idles between kernels; a replay costs one launch for all of them. The
//   host code (the autograd graph, shape checks, plan lookups) runs once, at the capture.
// - The capture stream. Work is recorded on a stream of its own (one per device, never destroyed),
//   which the thread's current stream is switched to for the capture. It is a blocking stream, so
//   that a launch that strays onto the legacy default stream meets it and fails the capture
//   rather than running outside the recording. The caching allocator keys its pools by stream, so
//   every block allocated inside comes from that stream's segments: the graph's private pool. No
//   work outside a capture allocates there, so the blocks the recording uses are never handed to
//   anyone else; a block freed inside the capture is reused inside it, in the recorded order,
//   which a replay keeps. A later capture may reuse the temporaries of an earlier graph — safe,
//   since replays on one stream never overlap — but never a block that is still referenced.
// - What cannot be recorded. The host never sees the device during the capture: copy_to_host and
//   synchronize throw; find_out_of_range checks nothing (the graph's inputs are checked by whoever
//   fills them: the trainer checks each batch on the host); a copy from the host is taken into
//   pinned memory that the graph owns and replayed from there, with the values it had at the
//   capture. Anything else that waits for the device fails the capture with CUDA's error; the
//   device is left as it was before the capture began.
// - Allocation during the capture. cudaMalloc is not a stream operation but CUDA counts it as
//   unsafe during a capture; the allocator calls it in the relaxed capture mode (RelaxedCapture)
//   and does not hand its cache back to the driver (cudaFree would wait for the device).
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <memory>

#include "backend/backend.h"

namespace tilegrad::cuda {

// Whether `stream` (default: the calling thread's current stream) is being captured.
bool capturing(cudaStream_t stream);
bool capturing();

// For its lifetime, lets the calling thread make calls that a capture would refuse (cudaMalloc,
// cudaMallocHost); they must not touch the captured stream.
class RelaxedCapture {
 public:
  RelaxedCapture();
  ~RelaxedCapture();
  RelaxedCapture(const RelaxedCapture&) = delete;
  RelaxedCapture& operator=(const RelaxedCapture&) = delete;

 private:
  cudaStreamCaptureMode prev_;
};

// Inside a capture: a pinned copy of `bytes` bytes at `host`, owned by the graph being recorded,
// for a host-to-device copy to read at every replay.
const void* keep_host_copy(const void* host, size_t bytes);

// Records the device work `work` queues (Note [Graph capture]); throws Error, after ending the
// capture, when `work` throws or the capture fails.
std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& work);

}  // namespace tilegrad::cuda
