// The SVG memory timeline (see plot_svg.h): states from events, stacked step areas, axes with
// round MB ticks, a legend, the forward/backward mark, and the data attributes a reader checks.
#include "apps/plot_svg.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "apps/cli_util.h"
#include "core/dtype.h"
#include "core/error.h"

namespace tilegrad::apps {

namespace {

// Bottom to top: what stays put through a step (weights, optimizer state, inputs) lies under what
// the forward builds and the backward trades (activations for gradients), so the moving part of
// the stack is drawn on a flat floor.
constexpr std::array<Category, kNumCategories> kStackOrder = {
    Category::parameter,  Category::optimizer_state, Category::other,
    Category::activation, Category::gradient,        Category::workspace};

const char* color_of(Category c) {
  switch (c) {
    case Category::parameter:
      return "#4e79a7";
    case Category::optimizer_state:
      return "#b07aa1";
    case Category::other:
      return "#bab0ac";
    case Category::activation:
      return "#f28e2b";
    case Category::gradient:
      return "#59a14f";
    case Category::workspace:
      return "#e15759";
  }
  return "#000000";
}

// Geometry of the picture, in SVG user units.
constexpr double kWidth = 900, kHeight = 460;
constexpr double kLeft = 80, kRight = 170, kTop = 62, kBottom = 55;
constexpr double kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;

// The smallest of 1, 2, 2.5, 5 times a power of ten that is >= x (x > 0): a round tick step.
double nice_step(double x) {
  const double p = std::pow(10.0, std::floor(std::log10(x)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * p >= x * (1 - 1e-12)) return m * p;
  }
  return 10 * p;
}

// Tick labels without trailing zeros: 0, 0.5, 2.5, 1000.
std::string tick_label(double v) {
  std::string s = strf("%.6f", v);
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string timeline_svg(const std::vector<MemoryEvent>& events, const TimelinePlot& plot) {
  // states[s][c]: live bytes of category c in state s (0 = before the first event).
  const size_t n_states = events.size() + 1;
  std::vector<std::array<int64_t, kNumCategories>> states(n_states);
  if (!events.empty()) {
    states[0] = events.front().live_by_category;
    const int c0 = static_cast<int>(events.front().category);
    states[0][static_cast<size_t>(c0)] +=
        events.front().alloc ? -events.front().bytes : events.front().bytes;
  }
  for (size_t i = 0; i < events.size(); ++i) states[i + 1] = events[i].live_by_category;
  for (auto& s : states) {
    for (int64_t& v : s) v = std::max<int64_t>(v, 0);
  }

  std::vector<Category> present;
  for (Category c : kStackOrder) {
    const size_t ci = static_cast<size_t>(c);
    if (std::any_of(states.begin(), states.end(), [&](const auto& s) { return s[ci] != 0; })) {
      present.push_back(c);
    }
  }
  int64_t max_total = 0;
  size_t max_state = 0;
  for (size_t s = 0; s < n_states; ++s) {
    int64_t total = 0;
    for (Category c : present) total += states[s][static_cast<size_t>(c)];
    if (total > max_total) {
      max_total = total;
      max_state = s;
    }
  }

  // Axes: y in MB up to a round multiple of a round step; x over the states.
  const double max_mb = static_cast<double>(max_total) / 1e6;
  const double y_step = max_mb > 0 ? nice_step(max_mb / 5) : 0.2;
  const double y_top = max_mb > 0 ? std::ceil(max_mb / y_step - 1e-9) * y_step : 1.0;
  const double x_units = static_cast<double>(n_states);
  auto X = [&](double u) { return kLeft + kPlotW * u / x_units; };
  auto Y = [&](double bytes) { return kTop + kPlotH * (1 - bytes / 1e6 / y_top); };

  std::string svg;
  svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += strf(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\" "
      "data-max-bytes=\"%lld\" data-states=\"%zu\">\n",
      kWidth, kHeight, kWidth, kHeight, static_cast<long long>(max_total), n_states);
  svg += "<title>" + xml_escape(plot.title) + "</title>\n";
  svg +=
      "<desc>Live bytes by category after each allocate/free event, stacked (1 MB = 10^6 bytes). "
      "Each series' path lists its bytes at every state in data-bytes.</desc>\n";
  svg += strf("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", kWidth,
              kHeight);
  svg += strf("<text x=\"%.1f\" y=\"22\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", kLeft,
              xml_escape(plot.title).c_str());
  if (!plot.subtitle.empty()) {
    svg += strf("<text x=\"%.1f\" y=\"40\" fill=\"#444444\">%s</text>\n", kLeft,
                xml_escape(plot.subtitle).c_str());
  }

  // Grid lines and y tick labels.
  svg += "<g stroke=\"#dddddd\" stroke-width=\"1\">\n";
  const int n_ticks = static_cast<int>(std::lround(y_top / y_step));
  for (int k = 0; k <= n_ticks; ++k) {
    const double y = Y(k * y_step * 1e6);
    svg += strf("<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", kLeft, y,
                kLeft + kPlotW, y);
  }
  svg += "</g>\n<g text-anchor=\"end\">\n";
  for (int k = 0; k <= n_ticks; ++k) {
    svg += strf("<text x=\"%.2f\" y=\"%.2f\">%s</text>\n", kLeft - 6, Y(k * y_step * 1e6) + 4,
                tick_label(k * y_step).c_str());
  }
  svg += "</g>\n";

  // One closed path per category: its upper step line left to right, then its lower one back.
  std::vector<int64_t> floor(n_states, 0);
  svg += "<g stroke=\"none\">\n";
  for (Category c : present) {
    const size_t ci = static_cast<size_t>(c);
    std::vector<int64_t> top(n_states);
    for (size_t s = 0; s < n_states; ++s) top[s] = floor[s] + states[s][ci];
    // A horizontal run ends only where the value changes, so flat stretches cost one command.
    std::string d = strf("M%.2f %.2f", X(0), Y(static_cast<double>(top[0])));
    for (size_t s = 1; s < n_states; ++s) {
      if (top[s] == top[s - 1]) continue;
      d += strf("H%.2fV%.2f", X(static_cast<double>(s)), Y(static_cast<double>(top[s])));
    }
    d += strf("H%.2fV%.2f", X(x_units), Y(static_cast<double>(floor[n_states - 1])));
    for (size_t s = n_states - 1; s > 0; --s) {
      if (floor[s - 1] == floor[s]) continue;
      d += strf("H%.2fV%.2f", X(static_cast<double>(s)), Y(static_cast<double>(floor[s - 1])));
    }
    d += strf("H%.2fZ", X(0));
    std::string values;
    for (size_t s = 0; s < n_states; ++s) {
      if (s > 0) values += ' ';
      values += std::to_string(states[s][ci]);
    }
    const std::string name(category_name(c));
    svg += strf("<path d=\"%s\" fill=\"%s\" data-category=\"%s\" data-bytes=\"%s\"/>\n", d.c_str(),
                color_of(c), xml_escape(name).c_str(), values.c_str());
    floor = std::move(top);
  }
  svg += "</g>\n";

  // The forward/backward boundary: where the first backward event changes the state.
  if (plot.backward_start >= 0 && static_cast<size_t>(plot.backward_start) < events.size()) {
    const double x = X(static_cast<double>(plot.backward_start + 1));
    svg += strf(
        "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#333333\" "
        "stroke-dasharray=\"5,4\"/>\n",
        x, kTop, x, kTop + kPlotH);
    svg +=
        strf("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">forward</text>\n", x - 4, kTop + 14);
    svg += strf("<text x=\"%.2f\" y=\"%.2f\">backward</text>\n", x + 4, kTop + 14);
  }
  // The peak, labelled where it is first reached.
  if (max_total > 0) {
    const double x = X(static_cast<double>(max_state) + 0.5);
    const double y = Y(static_cast<double>(max_total));
    svg += strf("<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"#000000\"/>\n", x, y);
    svg += strf("<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">peak %.3f MB</text>\n", x,
                y - 7, max_mb);
  }

  // Axes, their ticks and labels.
  svg += strf(
      "<path d=\"M%.2f %.2fV%.2fH%.2f\" fill=\"none\" stroke=\"#000000\" stroke-width=\"1\"/>\n",
      kLeft, kTop, kTop + kPlotH, kLeft + kPlotW);
  const double x_step = nice_step(std::max(1.0, x_units / 8));
  svg += "<g text-anchor=\"middle\">\n";
  for (double u = 0; u <= x_units + 1e-9; u += x_step) {
    svg += strf("<text x=\"%.2f\" y=\"%.2f\">%s</text>\n", X(u), kTop + kPlotH + 16,
                tick_label(u).c_str());
  }
  svg += strf("<text x=\"%.2f\" y=\"%.2f\">allocate/free events</text>\n", kLeft + kPlotW / 2,
              kHeight - 12);
  svg += "</g>\n";
  svg += strf(
      "<text x=\"18\" y=\"%.2f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.2f)\">live "
      "MB</text>\n",
      kTop + kPlotH / 2, kTop + kPlotH / 2);

  // Legend, top of the stack first so that it reads in the order of the picture.
  svg += "<g>\n";
  double ly = kTop + 4;
  for (auto it = present.rbegin(); it != present.rend(); ++it) {
    const double lx = kLeft + kPlotW + 16;
    svg += strf("<rect x=\"%.2f\" y=\"%.2f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, ly,
                color_of(*it));
    svg += strf("<text x=\"%.2f\" y=\"%.2f\">%s</text>\n", lx + 18, ly + 10,
                xml_escape(std::string(category_name(*it))).c_str());
    ly += 20;
  }
  svg += "</g>\n</svg>\n";
  return svg;
}

std::string memtrace_svg(const MemtraceResult& r) {
  const MemtraceConfig& c = r.config;
  TimelinePlot plot;
  plot.title = strf("tilegrad memtrace: L = %lld, batch %lld, dim %lld, %s, %s gradients",
                    static_cast<long long>(c.layers), static_cast<long long>(c.batch),
                    static_cast<long long>(c.dim), std::string(dtype_name(c.dtype)).c_str(),
                    c.eager_grads ? "eager" : "lazy");
  plot.subtitle =
      strf("live MB by category, stacked, after each allocate/free event; tracker peak %.3f MB",
           static_cast<double>(r.peak_bytes) / 1e6);
  plot.backward_start = r.timeline_backward_start;
  return timeline_svg(r.timeline, plot);
}

}  // namespace tilegrad::apps
