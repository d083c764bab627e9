// Tensor maps of the attention operands (flash_tma.h): the driver's encoder, reached through the
// runtime.
#include "kernels/cuda/flash_tma.h"

#include <algorithm>
#include <array>

namespace tilegrad::cuda::flash {
namespace {

using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                   const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                   const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                   CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

// The driver's cuTensorMapEncodeTiled through the runtime, so that nothing links libcuda; looked
// up once (a function-local static: thread-safe, and the entry point never changes).
EncodeTiledFn encode_tiled() {
  static const EncodeTiledFn fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult status{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault,
                                         &status) != cudaSuccess ||
        status != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(ptr);
  }();
  return fn;
}

}  // namespace

bool make_operand_map(CUtensorMap* map, MapOrder* order, const void* base, const FlashStrides& st,
                      int B, int N, int heads, int D, int box_rows, bool bf16) {
  const EncodeTiledFn encode = encode_tiled();
  if (encode == nullptr) return false;
  struct Dim {
    int role;  // 0 row, 1 head, 2 batch
    uint64_t size, stride_bytes;
  };
  std::array<Dim, 3> dims{{{0, static_cast<uint64_t>(N), static_cast<uint64_t>(st.row) * 2},
                           {1, static_cast<uint64_t>(heads), static_cast<uint64_t>(st.head) * 2},
                           {2, static_cast<uint64_t>(B), static_cast<uint64_t>(st.batch) * 2}}};
  // A dimension of extent 1 is never stepped, so its stride is free (a caller may pass 0): give it
  // one past every other extent, so that it sorts last and the strides stay increasing.
  uint64_t span = static_cast<uint64_t>(D) * 2;
  for (const Dim& d : dims) {
    if (d.size > 1) span = std::max(span, d.size * d.stride_bytes);
  }
  for (Dim& d : dims) {
    if (d.size == 1) d.stride_bytes = (span + 15) / 16 * 16;
  }
  std::stable_sort(dims.begin(), dims.end(),
                   [](const Dim& a, const Dim& b) { return a.stride_bytes < b.stride_bytes; });
  cuuint64_t size[4] = {static_cast<cuuint64_t>(D), 0, 0, 0};
  cuuint64_t stride[3] = {};
  cuuint32_t box[4] = {static_cast<cuuint32_t>(kBoxCols), 1, 1, 1};
  const cuuint32_t elem_stride[4] = {1, 1, 1, 1};
  for (int i = 0; i < 3; ++i) {
    size[i + 1] = dims[i].size;
    stride[i] = dims[i].stride_bytes;
    const auto pos = static_cast<int8_t>(i);
    if (dims[i].role == 0) {
      box[i + 1] = static_cast<cuuint32_t>(box_rows);
      order->row = pos;
    } else if (dims[i].role == 1) {
      order->head = pos;
    } else {
      order->batch = pos;
    }
  }
  const CUresult r =
      encode(map, bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4,
             const_cast<void*>(base), size, stride, box, elem_stride, CU_TENSOR_MAP_INTERLEAVE_NONE,
             CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS;
}

bool make_bwd_maps(BwdTensorMaps* maps, const FlashBwdParams& p, int block_m, int block_n) {
  const FlashFwdParams& f = p.fwd;
  const bool bf16 = f.dtype == FlashDType::bf16;
  return make_operand_map(&maps->q, &maps->order.q, f.q, f.q_strides, f.B, f.Nq, f.H, f.D, block_m,
                          bf16) &&
         make_operand_map(&maps->dout, &maps->order.dout, p.dout, p.dout_strides, f.B, f.Nq, f.H,
                          f.D, block_m, bf16) &&
         make_operand_map(&maps->k, &maps->order.k, f.k, f.k_strides, f.B, f.Nk, f.Hkv, f.D,
                          block_n, bf16) &&
         make_operand_map(&maps->v, &maps->order.v, f.v, f.v_strides, f.B, f.Nk, f.Hkv, f.D,
                          block_n, bf16);
}

}  // namespace tilegrad::cuda::flash
