// CUDA embedding: a row gather forward, a deterministic backward, and index range validation.
//
// Forward: one thread row of a block copies one embedding row, in the widest unit (16 down to 1
// bytes) that the row size and both base addresses allow; any dtype, since it only moves bytes.
//
// Backward: gweight[v] = Σ gout[i] over the positions i with idx[i] = v. Float atomics would add in
// a different order on every run, so instead the positions are sorted by index, stably, and each
// output row then adds its own positions in increasing order — the same order as the CPU kernel,
// hence the same bits as it, on every run. The sort is an LSD radix sort on the index, 8 bits a
// pass (2 passes for V = 50304), each pass three small kernels:
//   histogram: block b counts the digits of its tile of kSortTile keys -> hist[digit][b];
//   scan:      one block turns hist, read digit-major, into exclusive prefix sums: the first output
//              slot of (digit, tile);
//   scatter:   each key goes to that slot plus the number of equal digits before it in its tile,
//              which keeps equal digits in input order (stable), so that after the last pass the
//              positions of each index are in increasing order.
// Then bucket_starts finds, for every v in [0, V], the first sorted key >= v by binary search, and
// in gather one block at a time owns a (row v, column tile) item and adds the gout rows of the
// positions starts[v] .. starts[v + 1], each thread one column. The work is O(n · C) for the sums
// plus O(V · C) to write gweight (rows without hits get zeros) and O(n · kSortTile) for the ranks
// within tiles. A row hit by most positions (a padding token) is summed by its few column-tile
// blocks alone, one position after another: correct, but the slow case.
//
// find_out_of_range: every thread checks its positions; the smallest bad position is kept with an
// integer atomicMin (order-independent), its value read next to it, and both copied to the host.
#include "kernels/cuda/embedding.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"
#include "memory/workspace.h"

namespace tilegrad::kernels::cuda {

namespace {

// Forward: a block of kCopyRows rows, kCopyLanes threads each.
constexpr int kCopyLanes = 32;
constexpr int kCopyRows = 8;
constexpr int kCopyThreads = kCopyLanes * kCopyRows;
// Radix sort: one key per thread in blocks (tiles) of kSortTile keys; digits of kDigitBits bits.
constexpr int kDigitBits = 8;
constexpr int kDigits = 1 << kDigitBits;
constexpr int kSortTile = kDigits;  // the histogram kernel has one thread per digit
constexpr int kScanThreads = 1024;
static_assert(kScanThreads == 32 * 32, "the scan's second level is one warp over 32 warp sums");
// Gather: columns per block; also the positions staged in shared memory at a time. Blocks stride
// over the (row, column tile) items, at most kGatherMaxBlocks of them: most rows have no hits, and
// one block per item would spend its time being scheduled.
constexpr int kGatherThreads = 128;
constexpr int64_t kGatherMaxBlocks = 4096;
// find_out_of_range: threads per block, and blocks at most.
constexpr int kFindThreads = 256;
constexpr int64_t kFindMaxBlocks = 4096;
constexpr unsigned long long kNotFound = ~0ull;

// ---- forward

template <class U, class I>
__global__ void __launch_bounds__(kCopyThreads)
    forward_kernel(const U* __restrict__ weight, const I* __restrict__ idx, U* __restrict__ out,
                   int64_t n, int64_t units) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kCopyRows + threadIdx.y; i < n;
       i += static_cast<int64_t>(gridDim.x) * kCopyRows) {
    const U* src = weight + static_cast<int64_t>(idx[i]) * units;  // (units)
    U* dst = out + i * units;                                      // (units)
    for (int64_t k = threadIdx.x; k < units; k += kCopyLanes) dst[k] = src[k];
  }
}

// ---- backward: radix sort of (index, position) by index

// keys[i] = idx[i], or V for an index outside [0, V): it sorts after every valid one and no row
// gathers it. vals[i] = i.
template <class I>
__global__ void sort_init_kernel(const I* __restrict__ idx, uint32_t* __restrict__ keys,
                                 int32_t* __restrict__ vals, int64_t n, int64_t V) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t v = static_cast<int64_t>(idx[i]);
    keys[i] = static_cast<uint32_t>(v >= 0 && v < V ? v : V);
    vals[i] = static_cast<int32_t>(i);
  }
}

// Block b: hist[d * tiles + b] = the number of keys in tile b whose digit at `shift` is d.
__global__ void __launch_bounds__(kSortTile)
    digit_histogram_kernel(const uint32_t* __restrict__ keys, int64_t n, int shift,
                           int32_t* __restrict__ hist, int64_t tiles) {
  __shared__ int32_t s_count[kDigits];
  s_count[threadIdx.x] = 0;
  __syncthreads();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kSortTile + threadIdx.x;
  // Integer shared-memory atomics: the counts do not depend on the order of the additions.
  if (i < n) atomicAdd(&s_count[(keys[i] >> shift) & (kDigits - 1)], 1);
  __syncthreads();
  hist[threadIdx.x * tiles + blockIdx.x] = s_count[threadIdx.x];
}

__device__ __forceinline__ int32_t warp_inclusive_scan(int32_t v) {
  const int lane = threadIdx.x % 32;
  for (int o = 1; o < 32; o <<= 1) {
    const int32_t u = __shfl_up_sync(kFullMask, v, o);
    if (lane >= o) v += u;
  }
  return v;
}

// data[0, len) becomes its exclusive prefix sum, by one block: thread t owns a contiguous chunk,
// sums it, the chunk sums are scanned across the block, and each thread rewrites its chunk.
__global__ void __launch_bounds__(kScanThreads)
    exclusive_scan_kernel(int32_t* __restrict__ data, int64_t len) {
  __shared__ int32_t s_warp[kScanThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t per = (len + kScanThreads - 1) / kScanThreads;
  const int64_t first = threadIdx.x * per;
  const int64_t begin = first < len ? first : len;
  const int64_t end = begin + per < len ? begin + per : len;
  int32_t sum = 0;
  for (int64_t k = begin; k < end; ++k) sum += data[k];
  const int32_t incl = warp_inclusive_scan(sum);
  if (lane == 31) s_warp[warp] = incl;
  __syncthreads();
  if (warp == 0) s_warp[lane] = warp_inclusive_scan(s_warp[lane]);
  __syncthreads();
  int32_t offset = (warp > 0 ? s_warp[warp - 1] : 0) + incl - sum;
  for (int64_t k = begin; k < end; ++k) {
    const int32_t c = data[k];
    data[k] = offset;
    offset += c;
  }
}

// Key i of tile b goes to offsets[d * tiles + b] + (keys before it in the tile with digit d).
__global__ void __launch_bounds__(kSortTile)
    radix_scatter_kernel(const uint32_t* __restrict__ keys_in, const int32_t* __restrict__ vals_in,
                         uint32_t* __restrict__ keys_out, int32_t* __restrict__ vals_out, int64_t n,
                         int shift, const int32_t* __restrict__ offsets, int64_t tiles) {
  __shared__ uint32_t s_digit[kSortTile];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kSortTile + threadIdx.x;
  const bool valid = i < n;
  const uint32_t key = valid ? keys_in[i] : 0u;
  const uint32_t d = valid ? (key >> shift) & (kDigits - 1) : kDigits;  // kDigits: no digit
  s_digit[threadIdx.x] = d;
  __syncthreads();
  if (!valid) return;
  int32_t rank = 0;
  for (unsigned j = 0; j < threadIdx.x; ++j) rank += s_digit[j] == d ? 1 : 0;
  const int64_t dst = offsets[d * tiles + blockIdx.x] + rank;
  keys_out[dst] = key;
  vals_out[dst] = vals_in[i];
}

// starts[v] = the number of sorted keys below v, for v in [0, V]: row v's positions are
// vals[starts[v] .. starts[v + 1]).
__global__ void bucket_starts_kernel(const uint32_t* __restrict__ keys, int64_t n,
                                     int32_t* __restrict__ starts, int64_t V) {
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v <= V;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (static_cast<int64_t>(keys[mid]) < v) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    starts[v] = static_cast<int32_t>(lo);
  }
}

// Block `blk`: row v = blk / col_tiles, columns of tile blk % col_tiles, one per thread. The
// positions are staged kGatherThreads at a time in shared memory, so each thread's loads of gout
// rows do not wait on loads of positions.
template <class T>
__global__ void __launch_bounds__(kGatherThreads)
    gather_kernel(const T* __restrict__ gout, const int32_t* __restrict__ pos,
                  const int32_t* __restrict__ starts, T* __restrict__ gweight, int64_t C, int64_t V,
                  int64_t col_tiles, bool accumulate) {
  using A = acc_t<T>;
  __shared__ int32_t s_pos[kGatherThreads];
  for (int64_t blk = blockIdx.x; blk < V * col_tiles; blk += gridDim.x) {
    const int64_t v = blk / col_tiles;
    const int64_t c = (blk % col_tiles) * kGatherThreads + threadIdx.x;
    const int32_t lo = starts[v], hi = starts[v + 1];
    if (accumulate && lo == hi) continue;  // the whole block: a row no index hits keeps its values
    A acc = 0;
    for (int32_t k0 = lo; k0 < hi; k0 += kGatherThreads) {
      const int cnt = hi - k0 < kGatherThreads ? hi - k0 : kGatherThreads;
      __syncthreads();  // every thread is done with the previous chunk
      if (static_cast<int>(threadIdx.x) < cnt) s_pos[threadIdx.x] = pos[k0 + threadIdx.x];
      __syncthreads();
      if (c < C) {
        const T* g = gout + c;  // column c of gout; row p at g[p * C]
        if (cnt == kGatherThreads) {
          // A full chunk: a fixed trip count, unrolled so that many loads are in flight (the adds
          // still run in position order).
#pragma unroll 16
          for (int k = 0; k < kGatherThreads; ++k) acc += A(g[static_cast<int64_t>(s_pos[k]) * C]);
        } else {
          for (int k = 0; k < cnt; ++k) acc += A(g[static_cast<int64_t>(s_pos[k]) * C]);
        }
      }
    }
    if (c < C) gweight[v * C + c] = accumulate ? T(A(gweight[v * C + c]) + A(T(acc))) : T(acc);
  }
}

// ---- find_out_of_range

template <class I>
__global__ void __launch_bounds__(kFindThreads)
    find_kernel(const I* __restrict__ idx, int64_t n, int64_t lo, int64_t hi, int64_t ignore,
                unsigned long long* __restrict__ first) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kFindThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kFindThreads) {
    const int64_t v = static_cast<int64_t>(idx[i]);
    if ((v < lo || v >= hi) && v != ignore) {
      atomicMin(first, static_cast<unsigned long long>(i));
      return;  // this thread's later positions are larger
    }
  }
}

// result[1] = idx[result[0]] when a bad position was found.
template <class I>
__global__ void find_value_kernel(const I* __restrict__ idx, unsigned long long* result) {
  if (result[0] != kNotFound) {
    result[1] = static_cast<unsigned long long>(static_cast<int64_t>(idx[result[0]]));
  }
}

int64_t align_up(int64_t bytes) {
  return (bytes + 255) / 256 * 256;
}

// Scratch from the CUDA caching allocator, tracked as workspace. The allocator serves the thread's
// current stream; if `stream` is another one, record_stream keeps the block from being handed out
// again before the work queued on `stream` has finished.
struct StreamWorkspace {
  StreamWorkspace(int64_t bytes, cudaStream_t stream)
      : ws(bytes, Device::cuda(tilegrad::cuda::current_device())) {
    tilegrad::cuda::record_stream(ws.as<void>(), stream);
  }
  Workspace ws;
};

}  // namespace

void embedding_forward(DType dt, const void* weight, DType idx_dt, const void* idx, void* out,
                       int64_t n, int64_t C, cudaStream_t stream) {
  const int64_t row_bytes = C * static_cast<int64_t>(dtype_size(dt));
  dispatch_index(idx_dt, "embedding", [&]<class I>() {
    if (n <= 0 || row_bytes <= 0) return;
    const auto launch = [&]<class U>() {
      const int64_t units = row_bytes / static_cast<int64_t>(sizeof(U));
      forward_kernel<U, I><<<grid_blocks((n + kCopyRows - 1) / kCopyRows, kMaxGridBlocks),
                             dim3(kCopyLanes, kCopyRows), 0, stream>>>(
          static_cast<const U*>(weight), static_cast<const I*>(idx), static_cast<U*>(out), n,
          units);
      TG_CUDA_CHECK_LAUNCH();
    };
    // The widest unit that divides the row and both base addresses.
    const uint64_t align = static_cast<uint64_t>(row_bytes) | reinterpret_cast<uintptr_t>(weight) |
                           reinterpret_cast<uintptr_t>(out);
    if (align % 16 == 0) {
      launch.template operator()<uint4>();
    } else if (align % 8 == 0) {
      launch.template operator()<uint2>();
    } else if (align % 4 == 0) {
      launch.template operator()<uint32_t>();
    } else if (align % 2 == 0) {
      launch.template operator()<uint16_t>();
    } else {
      launch.template operator()<uint8_t>();
    }
  });
}

void embedding_backward(DType dt, const void* gout, DType idx_dt, const void* idx, void* gweight,
                        int64_t n, int64_t C, int64_t V, bool accumulate, cudaStream_t stream) {
  // Index dtype first, then the float dtype: the CPU kernel's order of errors.
  dispatch_index(idx_dt, "embedding backward", [&]<class I>() {
    dispatch_floating(dt, "embedding backward", [&]<class T>() {
      if (V <= 0 || C <= 0) return;  // gweight is empty
      n = std::max<int64_t>(n, 0);
      TG_CHECK(n < (int64_t{1} << 31) && V < (int64_t{1} << 31), "embedding backward: n = ", n,
               " and V = ", V, " must be below 2^31 on the GPU");

      // Workspace: keys and positions twice (the sort ping-pongs), the histogram, the row starts.
      const int64_t tiles = (n + kSortTile - 1) / kSortTile;
      const int64_t keys_bytes = align_up(n * 4);
      const int64_t hist_bytes = align_up(kDigits * tiles * 4);
      const int64_t starts_bytes = align_up((V + 1) * 4);
      StreamWorkspace scratch(4 * keys_bytes + hist_bytes + starts_bytes, stream);
      char* base = scratch.ws.as<char>();
      uint32_t* keys[2] = {reinterpret_cast<uint32_t*>(base),
                           reinterpret_cast<uint32_t*>(base + keys_bytes)};
      int32_t* vals[2] = {reinterpret_cast<int32_t*>(base + 2 * keys_bytes),
                          reinterpret_cast<int32_t*>(base + 3 * keys_bytes)};
      int32_t* hist = reinterpret_cast<int32_t*>(base + 4 * keys_bytes);
      int32_t* starts = reinterpret_cast<int32_t*>(base + 4 * keys_bytes + hist_bytes);

      int cur = 0;
      if (n > 0) {
        sort_init_kernel<I><<<grid_blocks(tiles, kMaxGridBlocks), kSortTile, 0, stream>>>(
            static_cast<const I*>(idx), keys[0], vals[0], n, V);
        TG_CUDA_CHECK_LAUNCH();
        // Keys lie in [0, V]: enough bits to hold V itself (the out-of-range key).
        int bits = 0;
        while ((int64_t{1} << bits) <= V) ++bits;
        for (int shift = 0; shift < bits; shift += kDigitBits) {
          digit_histogram_kernel<<<static_cast<unsigned>(tiles), kSortTile, 0, stream>>>(
              keys[cur], n, shift, hist, tiles);
          TG_CUDA_CHECK_LAUNCH();
          exclusive_scan_kernel<<<1, kScanThreads, 0, stream>>>(hist, kDigits * tiles);
          TG_CUDA_CHECK_LAUNCH();
          radix_scatter_kernel<<<static_cast<unsigned>(tiles), kSortTile, 0, stream>>>(
              keys[cur], vals[cur], keys[1 - cur], vals[1 - cur], n, shift, hist, tiles);
          TG_CUDA_CHECK_LAUNCH();
          cur = 1 - cur;
        }
      }
      bucket_starts_kernel<<<grid_blocks((V + 1 + 255) / 256, kMaxGridBlocks), 256, 0, stream>>>(
          keys[cur], n, starts, V);
      TG_CUDA_CHECK_LAUNCH();
      const int64_t col_tiles = (C + kGatherThreads - 1) / kGatherThreads;
      gather_kernel<T><<<static_cast<unsigned>(std::min(V * col_tiles, kGatherMaxBlocks)),
                         kGatherThreads, 0, stream>>>(static_cast<const T*>(gout), vals[cur],
                                                      starts, static_cast<T*>(gweight), C, V,
                                                      col_tiles, accumulate);
      TG_CUDA_CHECK_LAUNCH();
    });
  });
}

int64_t find_out_of_range(DType idx_dt, const void* idx, int64_t n, int64_t lo, int64_t hi,
                          int64_t ignore, int64_t* bad_value, cudaStream_t stream) {
  return dispatch_index(idx_dt, "find_out_of_range", [&]<class I>() -> int64_t {
    if (n <= 0) return -1;
    // result[0]: the first bad position (all ones = none); result[1]: its value.
    StreamWorkspace scratch(2 * sizeof(unsigned long long), stream);
    auto* result = scratch.ws.as<unsigned long long>();
    TG_CUDA_CHECK(cudaMemsetAsync(result, 0xFF, 2 * sizeof(unsigned long long), stream));
    const int64_t blocks = std::min((n + kFindThreads - 1) / kFindThreads, kFindMaxBlocks);
    find_kernel<I><<<static_cast<unsigned>(blocks), kFindThreads, 0, stream>>>(
        static_cast<const I*>(idx), n, lo, hi, ignore, result);
    TG_CUDA_CHECK_LAUNCH();
    find_value_kernel<I><<<1, 1, 0, stream>>>(static_cast<const I*>(idx), result);
    TG_CUDA_CHECK_LAUNCH();
    unsigned long long host[2];
    TG_CUDA_CHECK(cudaMemcpyAsync(host, result, sizeof(host), cudaMemcpyDeviceToHost, stream));
    TG_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (host[0] == kNotFound) return -1;
    if (bad_value != nullptr) *bad_value = static_cast<int64_t>(host[1]);
    return static_cast<int64_t>(host[0]);
  });
}

}  // namespace tilegrad::kernels::cuda
