// The Hopper forward's tile schedule (flash_fwd_sm90.cu): which query tiles a persistent CTA
// computes, in which order, and where a tile's rows start. Plain C++ for the host and the device,
// so that the CPU tests can check on every shape that each tile is computed exactly once
// (tests/kernels/flash_tiles_test.cpp). Internal to src/kernels/cuda.
//
// The tiles of `heads` sequences (batch x head) of m_blocks query tiles each are numbered
// head-major, tile = head · m_blocks + query block, and dealt to `ctas` CTAs from a list of slots,
// CTA c taking the slots first_slot(c), next_slot(first_slot(c)), ... below slots().
//   - Every tile of the same length (no mask): the list is the tiles in order, CTA c takes c,
//     c + ctas, ... The CTAs at work at one time share a few heads' K and V in the L2.
//   - kPaired (a causal mask: a tile's length grows linearly with its query block): pair u of a
//     head is its query blocks m_blocks - 1 - u and u, so every pair has the same length, and
//     pair u's tiles take the slots 2u and 2u + 1 of the list (head-major again). CTA c takes the
//     pairs c, c + ctas, ... With an odd m_blocks the middle query block has no partner: the
//     second slot of its pair is empty (tile() returns -1) and next_slot() steps over it.
#pragma once

#include "core/dtype.h"  // TG_HOST_DEVICE

namespace tilegrad::cuda::flash {

template <bool kPaired>
struct TileList {
  int m_blocks;  // query tiles per sequence
  int heads;     // sequences: batch x heads
  int ctas;      // persistent CTAs dealing the list

  TG_HOST_DEVICE int pairs_per_head() const { return (m_blocks + 1) / 2; }
  // The list's length: one slot per tile, or two per pair.
  TG_HOST_DEVICE int slots() const {
    return kPaired ? 2 * pairs_per_head() * heads : m_blocks * heads;
  }
  // The units (tiles, or pairs) to deal; a launch needs no more CTAs than this.
  TG_HOST_DEVICE int units() const { return kPaired ? pairs_per_head() * heads : m_blocks * heads; }
  TG_HOST_DEVICE int first_slot(int cta) const { return kPaired ? 2 * cta : cta; }
  // The tile in a slot, or -1 for an empty one.
  TG_HOST_DEVICE int tile(int slot) const {
    if (!kPaired) return slot;
    const int pair = slot / 2, head = pair / pairs_per_head(), k = pair % pairs_per_head();
    const int m = slot % 2 == 0 ? m_blocks - 1 - k : k;
    return slot % 2 == 1 && m == m_blocks - 1 - k ? -1 : head * m_blocks + m;
  }
  // The same CTA's next slot that holds a tile, or slots() when it has none left.
  TG_HOST_DEVICE int next_slot(int slot) const {
    do {
      slot += !kPaired ? ctas : slot % 2 == 0 ? 1 : 2 * ctas - 1;
    } while (slot < slots() && tile(slot) < 0);
    return slot;
  }
};

// The query tiles of block_m rows that cover nq rows.
TG_HOST_DEVICE inline int tile_count(int nq, int block_m) {
  return (nq + block_m - 1) / block_m;
}

// The first row of query tile m_block, tiles of block_m rows over nq rows. Bottom-aligned, the
// tiles end at row nq and a partial tile is the first (rows below 0 are padding); otherwise they
// start at row 0 and a partial tile is the last. Under a causal mask the first tile sees the
// fewest keys, so bottom alignment puts the padding where it costs least.
TG_HOST_DEVICE inline int tile_first_row(int m_block, int block_m, int nq, bool bottom) {
  return m_block * block_m - (bottom ? tile_count(nq, block_m) * block_m - nq : 0);
}

}  // namespace tilegrad::cuda::flash
