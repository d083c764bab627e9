// Extrapolating a timeline's peak along a repeated unit: given the tracker's timelines of the same
// computation with g and g + 1 copies of a unit (a model's blocks), the live bytes at the peak of
// the computation with g + n copies, by category, without running it.
//
// Note [Extrapolating event by event]
// A computation made of identical units run one after the other (a forward over blocks, then the
// backward over them in reverse) has a timeline of the form  P U^g H V^g S : a prologue, the
// units' events, a middle part, the units' events again, an epilogue. Every event's live bytes
// are linear in the number of units before and after it (each one's activations, or gradients,
// are live or not), so each event "type" — the prologue's k-th event, the first unit's k-th event,
// the last unit's k-th event, the middle part's k-th event, ... — has live bytes linear in g. The
// peak of the computation with G units is the largest of these over all its events; and since,
// within a run of units, the bytes are linear in the unit's position, the largest is at a run's
// first or last unit, or outside the runs: at an event type present in both timelines.
//
// Extrapolating only the two timelines' peaks (peak to peak) is exact when both peak at the same
// type. It is not when they peak at different types — a small model late in its backward with
// every gradient live, a larger one at the backward's start with every activation live — because
// the maximum of two lines is not a line. Here each event of the smaller timeline is paired with
// the event of the same type in the larger one, and every type is extrapolated by itself:
//   bytes(g + n) = bytes(g) + n (bytes(g + 1) - bytes(g))      per category, per event type
// The pairing: the smaller timeline is the larger one with the events of one unit taken out (per
// run of units), so its event series is a subsequence of the larger one's, events matched by
// kind (allocation or free, category, op). Embeddings that take each unit out whole are valid
// pairings of types (taking a unit out before a run's first unit pairs the last units; after its
// last, the first ones), and they are those with the fewest gaps, one per run: with more, the
// events of one unit could pair with parts of two, whose bytes are no event's. Sizes are to match
// too, except where none can (a table with an entry per parameter grows with the units): the
// embeddings used have the fewest pairs of different sizes, then the fewest gaps, and the pairs
// used are all pairs of all such embeddings: those include each run's first and last unit, where
// the maxima are. A dynamic program over (event, offset) finds them in O(events x one unit's
// events).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "memory/category.h"
#include "memory/tracker.h"

namespace tilegrad {

using CategoryBytes = std::array<int64_t, kNumCategories>;

// One tracking window's timeline: live bytes by category when it opened, then its events (whose
// live_by_category are compared with `open` as recorded, so both may be relative to any base).
struct Timeline {
  CategoryBytes open{};
  std::vector<MemoryEvent> events;
};

struct ExtrapolatedPeak {
  CategoryBytes at_peak{};  // live bytes by category at the peak
  int64_t total = 0;        // their sum
};

// The peak of the timeline with n more units than `small`, where `large` has one more than
// `small` (Note [Extrapolating event by event]); with n = 0 and large = small, small's own peak.
// nullopt when small's events are not a subsequence of large's (the two are not of that form).
std::optional<ExtrapolatedPeak> extrapolate_peak(const Timeline& small, const Timeline& large,
                                                 int64_t n);

// Where the pairing fails: the index of the first event of `small` that follows no embedding of
// the events before it in `large` (the leftmost embedding is the one to try), or -1 when small's
// events are, kind for kind, a subsequence of large's.
int64_t first_unpaired_event(const Timeline& small, const Timeline& large);

}  // namespace tilegrad
