// The roofline model: an op that performs F FLOPs and moves Q bytes to and from slow memory has
// arithmetic intensity I = F/Q. On a device with peak P FLOP/s and bandwidth W bytes/s it can
// attain at most min(P, I·W) FLOP/s and takes at least max(F/P, Q/W) seconds. Below the ridge
// point I* = P/W it is memory-bound, at or above it compute-bound.
//
// MFU (model FLOPs utilisation) is achieved FLOP/s over the peak, with the FLOPs the model needs
// (recomputation not counted); HFU counts the FLOPs the hardware performed, recomputation included.
#pragma once

#include <string_view>

namespace tilegrad::analysis {

enum class Bound { memory, compute };
std::string_view bound_name(Bound b);  // "memory", "compute"

struct Roofline {
  double flops = 0;
  double bytes = 0;
  double intensity = 0;    // FLOPs per byte (infinite when no bytes move)
  double ridge = 0;        // peak / bandwidth, FLOPs per byte
  double attainable = 0;   // FLOP/s: min(peak, intensity · bandwidth)
  double min_seconds = 0;  // max(flops / peak, bytes / bandwidth)
  Bound bound = Bound::memory;
};

// Throws tilegrad::Error for negative work or a non-positive peak or bandwidth.
Roofline roofline(double flops, double bytes, double peak_flops, double bandwidth);

// Achieved FLOP/s (flops / seconds) over peak_flops; throws tilegrad::Error for non-positive
// seconds or peak.
double utilization(double flops, double seconds, double peak_flops);

}  // namespace tilegrad::analysis
