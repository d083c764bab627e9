// Device specifications for the roofline: peak FLOP/s per precision, slow-memory bandwidth, and the
// fast memory per streaming multiprocessor that sizes attention's blocks.
//
// A100, H100 and H200 carry their datasheet figures (sources in device_spec.cpp). A measured spec
// (this CPU's GEMM GFLOP/s and copy GB/s, say) is an ordinary DeviceSpec filled in by the caller;
// the CLI reads one from a JSON file or from flags (apps/analyze_device.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace tilegrad::analysis {

struct DeviceSpec {
  std::string name;
  // Dense peak FLOP/s (no structured sparsity). 0 means "not available" (tf32 on a CPU, say).
  double bf16_flops = 0;  // matrix units (tensor cores) in bf16 and fp16
  double tf32_flops = 0;  // matrix units in tf32
  double fp32_flops = 0;  // fp32 without matrix units
  double fp64_flops = 0;
  double bandwidth = 0;     // slow memory (HBM / DRAM), bytes per second
  int64_t sram_per_sm = 0;  // fast memory per SM (L1 + shared), bytes; 0 if unknown
  int64_t sms = 0;          // streaming multiprocessors (or cores)
  std::string source;       // where the figures come from

  // The peak for arithmetic in `dt`: bf16/f16 -> bf16_flops; f32 -> tf32_flops when `tf32` is set
  // and the device has it, else fp32_flops; f64 -> fp64_flops. Throws tilegrad::Error when the
  // device has no figure for it (0).
  double peak_flops(DType dt, bool tf32 = false) const;
  // Throws tilegrad::Error naming the field when a figure is negative or the bandwidth or every
  // peak is missing.
  void validate() const;
};

// "a100" (SXM4 80GB), "h100" (SXM5), "h200" (SXM); case-insensitive. Throws tilegrad::Error for
// another name.
DeviceSpec builtin_device(std::string_view name);
std::vector<std::string> builtin_device_names();
bool is_builtin_device(std::string_view name);

}  // namespace tilegrad::analysis
