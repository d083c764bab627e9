// Errors: one user-facing type, plus internal-invariant assertions.
//
// User mistakes (shapes, dtypes, devices, files, budgets) throw tilegrad::Error with a message that
// names the op and the values involved, e.g. "matmul: inner dimensions differ: a [2, 3], b [4, 5]".
// Broken internal invariants throw tilegrad::InternalError (with file and line) rather than abort,
// so a test can observe them and a long run can stop cleanly. Nothing below main() calls exit().
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tilegrad {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {

template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}

[[noreturn]] void throw_internal(const char* file, int line, const char* cond,
                                 const std::string& msg);

}  // namespace detail
}  // namespace tilegrad

// TG_CHECK(cond, parts...): user-facing precondition; parts are streamed into the message.
#define TG_CHECK(cond, ...)                                                     \
  do {                                                                          \
    if (!(cond)) throw ::tilegrad::Error(::tilegrad::detail::cat(__VA_ARGS__)); \
  } while (0)

// TG_ASSERT(cond, parts...): internal invariant; a failure is a bug in tilegrad.
#define TG_ASSERT(cond, ...)                                                                      \
  do {                                                                                            \
    if (!(cond))                                                                                  \
      ::tilegrad::detail::throw_internal(__FILE__, __LINE__, #cond,                               \
                                         ::tilegrad::detail::cat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)
