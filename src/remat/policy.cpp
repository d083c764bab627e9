// plan_policy: planners by name, the form a command line or a config file gives them.
#include <charconv>

#include "core/error.h"
#include "remat/plan.h"

namespace tilegrad::remat {

namespace {
int64_t parse_arg(const std::string& name, const std::string& arg) {
  int64_t v = 0;
  const char* end = arg.data() + arg.size();
  auto [p, ec] = std::from_chars(arg.data(), end, v);
  TG_CHECK(ec == std::errc() && p == end && !arg.empty(), "remat policy '", name,
           "': expected an integer after ':', got '", arg, "'");
  return v;
}
}  // namespace

Plan plan_policy(const ChainSpec& spec, const std::string& name) {
  const size_t colon = name.find(':');
  const std::string head = name.substr(0, colon);
  const bool has_arg = colon != std::string::npos;
  const std::string arg = has_arg ? name.substr(colon + 1) : "";
  if (head == "none" && !has_arg) return plan_none(spec);
  if (head == "sqrt" && !has_arg) return plan_sqrt(spec);
  if (has_arg) {
    const int64_t v = parse_arg(name, arg);
    auto small = [&] {
      TG_CHECK(v >= 0 && v <= INT32_MAX, "remat policy '", name, "': out of range");
      return static_cast<int>(v);
    };
    if (head == "every") return plan_every(spec, small());
    if (head == "revolve") return plan_revolve(spec, small());
    if (head == "chen") return plan_chen(spec, v);
    if (head == "chen-search") return plan_chen_search(spec, v);
    if (head == "budget") return plan_budget(spec, v);
  }
  TG_CHECK(false, "remat policy '", name,
           "' is unknown; expected none, sqrt, every:K, chen:B, chen-search:BYTES, revolve:C or "
           "budget:BYTES");
  return {};
}

}  // namespace tilegrad::remat
