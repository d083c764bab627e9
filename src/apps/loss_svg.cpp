#include "apps/loss_svg.h"

#include <algorithm>
#include <cmath>

#include "apps/cli_util.h"
#include "apps/plot_svg.h"

namespace tilegrad::apps {

std::string loss_svg(const std::vector<train::StepMetrics>& steps, const std::string& title) {
  constexpr double W = 720, Hh = 360, left = 60, right = 20, top = 40, bottom = 40;
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& m : steps) {
    lo = std::min(lo, m.loss);
    hi = std::max(hi, m.loss);
    if (m.val_loss >= 0) {
      lo = std::min(lo, m.val_loss);
      hi = std::max(hi, m.val_loss);
    }
  }
  if (steps.empty()) lo = 0, hi = 1;
  if (hi <= lo) hi = lo + 1;
  const double first = steps.empty() ? 0 : static_cast<double>(steps.front().step);
  const double last = steps.empty() ? 1 : static_cast<double>(steps.back().step);
  const double span = std::max(1.0, last - first);
  auto X = [&](double s) { return left + (W - left - right) * (s - first) / span; };
  auto Y = [&](double v) { return top + (Hh - top - bottom) * (hi - v) / (hi - lo); };
  std::string train_d, val_d, train_data, val_data, steps_data;
  for (const auto& m : steps) {
    const double s = static_cast<double>(m.step);
    train_d += strf("%s%.2f %.2f ", train_d.empty() ? "M" : "L", X(s), Y(m.loss));
    train_data += strf("%.6g ", m.loss);
    steps_data += strf("%lld ", ll(m.step));
    if (m.val_loss >= 0) {
      val_d += strf("%s%.2f %.2f ", val_d.empty() ? "M" : "L", X(s), Y(m.val_loss));
      val_data += strf("%lld:%.6g ", ll(m.step), m.val_loss);
    }
  }
  std::string svg = strf(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\">\n",
      W, Hh, W, Hh);
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += strf("<text x=\"%.0f\" y=\"22\" font-family=\"sans-serif\" font-size=\"15\">%s</text>\n",
              left, xml_escape(title).c_str());
  svg += strf(
      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n"
      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n",
      left, Hh - bottom, W - right, Hh - bottom, left, top, left, Hh - bottom);
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4.0;
    svg += strf(
        "<text x=\"%.0f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
        "text-anchor=\"end\">%.3g</text>\n",
        left - 6, Y(v) + 4, v);
  }
  svg += strf(
      "<text x=\"%.0f\" y=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\">step %lld</text>\n"
      "<text x=\"%.0f\" y=\"%.0f\" font-family=\"sans-serif\" font-size=\"11\" "
      "text-anchor=\"end\">step %lld</text>\n",
      left, Hh - 16, ll(static_cast<int64_t>(first)), W - right, Hh - 16,
      ll(static_cast<int64_t>(last)));
  svg += strf(
      "<path d=\"%s\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" data-series=\"train\" "
      "data-steps=\"%s\" data-loss=\"%s\"/>\n",
      train_d.c_str(), steps_data.c_str(), train_data.c_str());
  if (!val_d.empty())
    svg += strf(
        "<path d=\"%s\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" data-series=\"val\" "
        "data-val=\"%s\"/>\n",
        val_d.c_str(), val_data.c_str());
  svg += strf(
      "<text x=\"%.0f\" y=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\" "
      "fill=\"#1f77b4\">train loss</text>\n<text x=\"%.0f\" y=\"%.0f\" font-family=\"sans-serif\" "
      "font-size=\"12\" fill=\"#d62728\">validation loss</text>\n</svg>\n",
      W - 220, top + 4, W - 120, top + 4);
  return svg;
}

}  // namespace tilegrad::apps
