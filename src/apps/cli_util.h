// Small helpers the CLI's subcommands share: printf-style formatting into a string, byte and
// integer conversions for printing, and the positive-integer flag validator.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

namespace tilegrad::apps {

// printf into a std::string (GCC 12 has no std::format).
template <class... Args>
std::string strf(const char* format, Args... args) {
  const int n = std::snprintf(nullptr, 0, format, args...);
  std::string s(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(s.data(), s.size(), format, args...);
  s.pop_back();
  return s;
}

// Bytes as MB (10^6 bytes), the unit the CLI prints.
inline double mb(int64_t bytes) {
  return static_cast<double>(bytes) / 1e6;
}

// For printf's %lld.
inline long long ll(int64_t v) {
  return static_cast<long long>(v);
}

// Accepts integers >= 1. CLI11's own Range would print INT64_MAX as the upper bound.
inline CLI::Validator at_least_one() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        int64_t v = 0;
        if (!CLI::detail::lexical_cast(value, v) || v < 1) {
          return "must be an integer >= 1, got '" + value + "'";
        }
        return {};
      },
      "POSITIVE", "AT_LEAST_ONE");
}

}  // namespace tilegrad::apps
