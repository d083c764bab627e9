// Formatting of device profiles (backend/profile.h).
#include "backend/profile.h"

#include <algorithm>
#include <cstdio>

namespace tilegrad {

std::string format_profile(const std::vector<ProfileRow>& rows0, int64_t per) {
  std::vector<ProfileRow> rows = rows0;
  std::sort(rows.begin(), rows.end(),
            [](const ProfileRow& a, const ProfileRow& b) { return a.seconds > b.seconds; });
  double total = 0;
  for (const ProfileRow& r : rows) total += r.seconds;
  const double n = static_cast<double>(std::max<int64_t>(per, 1));
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %-24s %-26s %8s %10s %6s\n", "category", "op", "entry",
                "calls", "ms", "share");
  out += line;
  for (const ProfileRow& r : rows) {
    std::snprintf(line, sizeof line, "%-16s %-24s %-26s %8.0f %10.3f %5.1f%%\n", r.category.c_str(),
                  r.op.empty() ? "-" : r.op.c_str(), r.entry.c_str(),
                  static_cast<double>(r.calls) / n, 1e3 * r.seconds / n,
                  total > 0 ? 100.0 * r.seconds / total : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-16s %-24s %-26s %8s %10.3f\n", "total", "", "", "",
                1e3 * total / n);
  out += line;
  return out;
}

}  // namespace tilegrad
