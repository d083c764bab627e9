// Tensor maps of the attention operands for the Hopper kernels' bulk tensor copies (TMA): a
// (B, N, heads, D) operand described to the copy engine as boxes of 64 columns x `box_rows` rows
// with the 128-byte swizzle that wgmma's descriptors read (flash_common_sm90.cuh). Internal to
// src/kernels/cuda.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/flash_api.h"

namespace tilegrad::cuda::flash {

inline constexpr int kBoxCols = 64;  // TMA box width: 64 16-bit elements = one 128-byte line

// Where each of the three outer coordinates (row, head, batch) sits in a tensor map, whose
// dimensions are ordered by stride (see make_operand_map).
struct MapOrder {
  int8_t row = 0, head = 1, batch = 2;

  // The map's coordinates 1..3 of (row, head, batch); coordinate 0 is the column.
  __host__ __device__ void coords(int r, int h, int b, int (&c)[3]) const {
    c[0] = row == 0 ? r : head == 0 ? h : b;
    c[1] = row == 1 ? r : head == 1 ? h : b;
    c[2] = row == 2 ? r : head == 2 ? h : b;
  }
};

// A 4-d map of one (B, N, heads, D) operand of 16-bit elements (bf16 or f16): dimension 0 is D,
// the other three (row, head, batch) follow in increasing stride, which the copy engine is sure to
// accept for both (B, N, H, D) and (B, H, N, D) tensors; `order` tells the kernel where each
// coordinate went. Rows past N read as zeros. False when the driver's encoder is missing or
// refuses the operand (the caller then falls back to a kernel without TMA).
bool make_operand_map(CUtensorMap* map, MapOrder* order, const void* base, const FlashStrides& st,
                      int B, int N, int heads, int D, int box_rows, bool bf16);

// The backward's four operands' places in their maps.
struct BwdMaps {
  MapOrder q, dout, k, v;
};

// The backward's four maps (Q and dO in boxes of block_m rows, K and V of block_n) and their
// orders; false as make_operand_map says it.
struct BwdTensorMaps {
  CUtensorMap q, dout, k, v;
  BwdMaps order;
};
bool make_bwd_maps(BwdTensorMaps* maps, const FlashBwdParams& p, int block_m, int block_n);

}  // namespace tilegrad::cuda::flash
