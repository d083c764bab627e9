// The Hopper forward's tile schedule (kernels/cuda/flash_tiles.h), checked on the host: every tile
// computed by exactly one CTA, every CTA starting on a tile, paired tiles of equal length under a
// causal mask, and the tiles' first rows. The kernel walks the same functions on the device.
#include "kernels/cuda/flash_tiles.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace tgtest {
namespace {

using tilegrad::cuda::flash::tile_first_row;
using tilegrad::cuda::flash::TileList;

// Walks every CTA's slots as the kernel does and returns, per tile, how many times it was taken;
// checks each CTA's order on the way.
template <bool kPaired>
std::vector<int> walk(const TileList<kPaired>& list) {
  std::vector<int> taken(static_cast<size_t>(list.m_blocks) * list.heads, 0);
  for (int cta = 0; cta < list.ctas; ++cta) {
    const int first = list.first_slot(cta);
    EXPECT_LT(first, list.slots()) << "CTA " << cta << " has no tile";
    EXPECT_GE(list.tile(first), 0) << "CTA " << cta << " starts on an empty slot";
    int previous = -1;
    for (int slot = first; slot < list.slots(); slot = list.next_slot(slot)) {
      const int tile = list.tile(slot);
      EXPECT_GE(tile, 0) << "slot " << slot;
      if (tile < 0) break;
      EXPECT_LT(tile, static_cast<int>(taken.size()));
      if (tile >= static_cast<int>(taken.size())) break;
      ++taken[static_cast<size_t>(tile)];
      if (kPaired && previous >= 0 && slot % 2 == 1) {
        // The second tile of a pair: the same head, and the two query blocks sum to
        // m_blocks - 1, so that under a causal mask the pair's length is the same for every pair.
        EXPECT_EQ(previous / list.m_blocks, tile / list.m_blocks);
        EXPECT_EQ(previous % list.m_blocks + tile % list.m_blocks, list.m_blocks - 1);
      }
      // Heads in order: the CTAs at work at one time share a few heads' K and V.
      if (previous >= 0) {
        EXPECT_LE(previous / list.m_blocks, tile / list.m_blocks);
      }
      previous = tile;
    }
  }
  return taken;
}

template <bool kPaired>
void check_every_tile_once() {
  for (int m_blocks : {1, 2, 3, 4, 5, 6, 11, 22, 86, 128}) {
    for (int heads : {1, 2, 3, 7, 40, 192}) {
      const TileList<kPaired> probe{m_blocks, heads, 0};
      // As many CTAs as the launcher starts on a 132-SM device, and other counts up to one per
      // unit (the launcher never starts more).
      std::vector<int> ctas = {1, 2, 3, 5, std::min(probe.units(), 132), probe.units()};
      for (int n : ctas) {
        if (n > probe.units()) continue;
        SCOPED_TRACE("m_blocks " + std::to_string(m_blocks) + ", heads " + std::to_string(heads) +
                     ", CTAs " + std::to_string(n) + (kPaired ? ", paired" : ""));
        const TileList<kPaired> list{m_blocks, heads, n};
        const std::vector<int> taken = walk(list);
        for (size_t t = 0; t < taken.size(); ++t) ASSERT_EQ(taken[t], 1) << "tile " << t;
      }
    }
  }
}

TEST(FlashTiles, EveryTileOnceInOrder) {
  check_every_tile_once<false>();
}

TEST(FlashTiles, PairedTilesEveryTileOnceAndPairsOfEqualLength) {
  check_every_tile_once<true>();
}

// An odd number of query blocks: the middle one is a pair of its own, and its empty second slot is
// stepped over, also as a CTA's last slot.
TEST(FlashTiles, OddQueryBlocksLeaveTheMiddleTileAlone) {
  const TileList<true> list{5, 2, 1};
  std::vector<int> order;
  for (int slot = list.first_slot(0); slot < list.slots(); slot = list.next_slot(slot)) {
    order.push_back(list.tile(slot));
  }
  EXPECT_EQ(order, (std::vector<int>{4, 0, 3, 1, 2, 9, 5, 8, 6, 7}));
  EXPECT_EQ(list.tile(5), -1);
  EXPECT_EQ(list.units(), 6);
}

// Bottom-aligned tiles end at row nq (the first tile holds the padding); top-aligned ones start at
// row 0. A tile count that divides nq makes them equal.
TEST(FlashTiles, FirstRowsAlignToEitherEnd) {
  for (int nq : {1, 63, 64, 191, 192, 193, 1000, 1024, 4096}) {
    for (int block_m : {128, 192}) {
      SCOPED_TRACE("nq " + std::to_string(nq) + ", block " + std::to_string(block_m));
      const int m_blocks = (nq + block_m - 1) / block_m;
      EXPECT_EQ(tile_first_row(m_blocks - 1, block_m, nq, true) + block_m, nq);
      const int first = tile_first_row(0, block_m, nq, true);
      EXPECT_LE(first, 0);
      EXPECT_GT(first + block_m, 0);
      EXPECT_EQ(tile_first_row(0, block_m, nq, false), 0);
      EXPECT_EQ(tile_first_row(m_blocks - 1, block_m, nq, false), (m_blocks - 1) * block_m);
      if (nq % block_m == 0) {
        for (int m = 0; m < m_blocks; ++m) {
          EXPECT_EQ(tile_first_row(m, block_m, nq, true), tile_first_row(m, block_m, nq, false));
        }
      }
    }
  }
}

}  // namespace
}  // namespace tgtest
