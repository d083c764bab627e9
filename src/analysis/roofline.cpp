// The roofline classification and MFU (see roofline.h).
#include "analysis/roofline.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace tilegrad::analysis {

std::string_view bound_name(Bound b) {
  return b == Bound::memory ? "memory" : "compute";
}

Roofline roofline(double flops, double bytes, double peak_flops, double bandwidth) {
  TG_CHECK(flops >= 0 && bytes >= 0, "roofline: FLOPs and bytes must be >= 0, got ", flops, " and ",
           bytes);
  TG_CHECK(peak_flops > 0 && bandwidth > 0,
           "roofline: the peak and the bandwidth must be > 0, got ", peak_flops, " and ",
           bandwidth);
  Roofline r;
  r.flops = flops;
  r.bytes = bytes;
  r.ridge = peak_flops / bandwidth;
  r.intensity = bytes > 0 ? flops / bytes : std::numeric_limits<double>::infinity();
  // At the ridge both limits coincide; it is counted as compute-bound (the peak is reachable).
  r.bound = r.intensity < r.ridge ? Bound::memory : Bound::compute;
  r.attainable = r.bound == Bound::memory ? r.intensity * bandwidth : peak_flops;
  r.min_seconds = std::max(flops / peak_flops, bytes / bandwidth);
  return r;
}

double utilization(double flops, double seconds, double peak_flops) {
  TG_CHECK(seconds > 0, "MFU: the measured time must be > 0, got ", seconds, " s");
  TG_CHECK(peak_flops > 0, "MFU: the peak must be > 0, got ", peak_flops);
  TG_CHECK(flops >= 0, "MFU: FLOPs must be >= 0, got ", flops);
  return flops / seconds / peak_flops;
}

}  // namespace tilegrad::analysis
