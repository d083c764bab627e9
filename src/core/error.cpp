#include "core/error.h"

namespace tilegrad::detail {

void throw_internal(const char* file, int line, const char* cond, const std::string& msg) {
  throw InternalError(cat("internal error at ", file, ":", line, ": assertion `", cond, "` failed",
                          msg.empty() ? "" : ": ", msg));
}

}  // namespace tilegrad::detail
