// CUDA graphs (cuda/graph.h, Note [Graph capture]).
#include "cuda/graph.h"

#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/stream.h"

namespace tilegrad::cuda {

namespace {

// Pinned host buffers, freed with their owner: the capture's until it succeeds, then the graph's.
class HostCopies {
 public:
  HostCopies() = default;
  ~HostCopies() {
    for (void* p : ptrs_) (void)cudaFreeHost(p);
  }
  HostCopies(HostCopies&& o) noexcept : ptrs_(std::move(o.ptrs_)) { o.ptrs_.clear(); }
  HostCopies(const HostCopies&) = delete;
  HostCopies& operator=(const HostCopies&) = delete;
  HostCopies& operator=(HostCopies&&) = delete;
  void add(void* p) { ptrs_.push_back(p); }

 private:
  std::vector<void*> ptrs_;
};

// The pinned host copies of the capture in progress on this thread (capture_graph sets it).
thread_local HostCopies* t_host_copies = nullptr;

// The capture stream of each device, created at its first capture and kept: the caching
// allocator's pool for the stream holds the memory of every graph recorded on it.
cudaStream_t capture_stream(int device) {
  static std::mutex mu;
  static std::vector<cudaStream_t> streams;
  std::lock_guard lock(mu);
  const auto i = static_cast<size_t>(device);
  if (streams.size() <= i) streams.resize(i + 1, nullptr);
  // Blocking (Note [Graph capture]): work that strays onto the legacy stream fails the capture.
  if (streams[i] == nullptr)
    TG_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[i], cudaStreamDefault));
  return streams[i];
}

class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(cudaGraph_t graph, cudaGraphExec_t exec, HostCopies host_copies, int64_t operations,
            cudaStream_t pool_stream)
      : graph_(graph),
        exec_(exec),
        host_copies_(std::move(host_copies)),
        operations_(operations),
        pool_stream_(pool_stream) {}
  ~CudaGraph() override {
    // A replay may still be running, reading the pinned copies: wait for it before they go.
    if (last_stream_) (void)cudaStreamSynchronize(*last_stream_);
    (void)cudaGraphExecDestroy(exec_);
    (void)cudaGraphDestroy(graph_);
    if (order_event_ != nullptr) (void)cudaEventDestroy(order_event_);
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void replay() override {
    last_stream_ = current_stream();
    TG_CUDA_CHECK(cudaGraphLaunch(exec_, *last_stream_));
  }
  int64_t operations() const override { return operations_; }

  // On the capture stream, whose pool is the graph's: its free blocks are the recording's
  // temporaries, idle between replays. Events order the work after what the calling thread's
  // stream has queued and that stream's next work after it, whatever kind of stream it is.
  void run_in_pool(const std::function<void()>& work) override {
    const cudaStream_t from = current_stream();
    if (order_event_ == nullptr)
      TG_CUDA_CHECK(cudaEventCreateWithFlags(&order_event_, cudaEventDisableTiming));
    TG_CUDA_CHECK(cudaEventRecord(order_event_, from));
    TG_CUDA_CHECK(cudaStreamWaitEvent(pool_stream_, order_event_, 0));
    struct Back {  // also when `work` throws
      cudaEvent_t ev;
      cudaStream_t pool, to;
      ~Back() {
        if (cudaEventRecord(ev, pool) == cudaSuccess) (void)cudaStreamWaitEvent(to, ev, 0);
      }
    } back{order_event_, pool_stream_, from};
    const StreamScope scope(pool_stream_);
    work();
  }

 private:
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
  HostCopies host_copies_;
  int64_t operations_;
  cudaStream_t pool_stream_;
  cudaEvent_t order_event_ = nullptr;
  std::optional<cudaStream_t> last_stream_;  // of the last replay (the legacy stream is nullptr)
};

// Ends the capture on `stream` and drops whatever it recorded, keeping the first error.
void abandon_capture(cudaStream_t stream) {
  cudaGraph_t g = nullptr;
  (void)cudaStreamEndCapture(stream, &g);
  if (g != nullptr) (void)cudaGraphDestroy(g);
  (void)cudaGetLastError();  // the capture's errors are not sticky: clear them
}

}  // namespace

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  TG_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
  return st != cudaStreamCaptureStatusNone;
}

bool capturing() {
  return capturing(current_stream());
}

RelaxedCapture::RelaxedCapture() : prev_(cudaStreamCaptureModeRelaxed) {
  TG_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&prev_));
}

RelaxedCapture::~RelaxedCapture() {
  (void)cudaThreadExchangeStreamCaptureMode(&prev_);
}

const void* keep_host_copy(const void* host, size_t bytes) {
  TG_CHECK(t_host_copies != nullptr,
           "cuda: a copy from the host inside a stream capture that capture_graph did not begin "
           "(nothing would own the host data at the replays)");
  void* p = nullptr;
  {
    const RelaxedCapture relaxed;
    TG_CUDA_CHECK(cudaMallocHost(&p, bytes));
  }
  t_host_copies->add(p);
  std::memcpy(p, host, bytes);
  return p;
}

std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& work) {
  TG_CHECK(t_host_copies == nullptr,
           "capture_graph: a capture is already in progress on this thread");
  const cudaStream_t stream = capture_stream(current_device());
  HostCopies host_copies;  // freed on every failure below
  cudaGraph_t graph = nullptr;
  {
    const StreamScope scope(stream);
    // Thread-local mode: this thread's unsafe calls fail the capture; other threads' are theirs.
    TG_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    struct Recording {  // this thread's host copies go to `host_copies` while `work` runs
      explicit Recording(HostCopies* h) { t_host_copies = h; }
      ~Recording() { t_host_copies = nullptr; }
    } recording(&host_copies);
    try {
      work();
    } catch (...) {
      // The caller's error as it was (an out-of-memory error stays one); the capture is over.
      abandon_capture(stream);
      throw;
    }
    const cudaError_t err = cudaStreamEndCapture(stream, &graph);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      if (graph != nullptr) (void)cudaGraphDestroy(graph);
      TG_CHECK(false, "CUDA graph capture failed: cudaStreamEndCapture: ", cudaGetErrorString(err),
               " (something in the captured work waited for the device or used another stream)");
    }
  }
  size_t nodes = 0;
  cudaGraphExec_t exec = nullptr;
  cudaError_t err = cudaGraphGetNodes(graph, nullptr, &nodes);
  if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cudaGraphDestroy(graph);
    TG_CHECK(false, "CUDA graph capture failed: cudaGraphInstantiate: ", cudaGetErrorString(err));
  }
  return std::make_unique<CudaGraph>(graph, exec, std::move(host_copies),
                                     static_cast<int64_t>(nodes), stream);
}

}  // namespace tilegrad::cuda
