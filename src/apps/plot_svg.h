// An SVG picture of live memory over time, by category, from a tracker timeline (MemoryEvent).
//
// The x axis is the event sequence (each allocate or free is one step), the y axis live MB
// (10^6 bytes), and each category that is ever non-zero is one stacked step area, so the top of the
// stack is the total live bytes. The forward/backward boundary is a dashed line. The file is
// self-contained (no fonts, scripts or links) and every text is escaped.
//
// The plotted data travel with the picture, so that a reader (and the tests) can check it without
// inverting pixel coordinates: the root <svg> carries data-max-bytes (the largest stacked total)
// and data-states (the number of plotted states, events + 1), and each series' <path> carries
// data-category and data-bytes, its live bytes at every state, separated by spaces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apps/memtrace_experiment.h"
#include "memory/tracker.h"

namespace tilegrad::apps {

struct TimelinePlot {
  std::string title;
  std::string subtitle;         // a second, smaller line under the title; may be empty
  int64_t backward_start = -1;  // index in the events of the first backward event; -1: no mark
};

// State 0 is the live bytes before the first event (the first event undone); state i+1 is after
// event i. live_by_category must be relative to a point before everything in the timeline was
// allocated, as memtrace's is, so that no category is negative.
std::string timeline_svg(const std::vector<MemoryEvent>& events, const TimelinePlot& plot);

// The picture of a memtrace run recorded with config.record_timeline, titled with its
// configuration.
std::string memtrace_svg(const MemtraceResult& r);

// Escapes &, <, >, " and ' for SVG text and attribute values.
std::string xml_escape(const std::string& text);

}  // namespace tilegrad::apps
