// Built-in device figures, from the vendor's datasheets and architecture whitepapers. Datasheets
// quote tensor-core peaks "with sparsity" (2:4 structured sparsity doubles them); the dense figures
// here are half of those, which is what dense training can reach.
#include "analysis/device_spec.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace tilegrad::analysis {

namespace {

constexpr double kT = 1e12;

std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return r;
}

// NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM column): FP16/BF16 tensor 312 TFLOPS
// (624 with sparsity), TF32 tensor 156 (312 with sparsity), FP32 19.5, FP64 9.7, HBM2e 2,039
// GB/s. NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): 108 SMs, 192 KB of combined
// L1 data cache and shared memory per SM (up to 164 KB of it as shared memory).
DeviceSpec a100() {
  DeviceSpec s;
  s.name = "a100";
  s.bf16_flops = 312 * kT;
  s.tf32_flops = 156 * kT;
  s.fp32_flops = 19.5 * kT;
  s.fp64_flops = 9.7 * kT;
  s.bandwidth = 2039e9;
  s.sram_per_sm = 192 * 1024;
  s.sms = 108;
  s.source = "NVIDIA A100 datasheet (80GB SXM) and A100 architecture whitepaper";
  return s;
}

// NVIDIA H100 Tensor Core GPU datasheet (H100 SXM column): BF16/FP16 tensor 1,979 TFLOPS with
// sparsity (989.5 dense), TF32 tensor 989 with sparsity (494.5 dense), FP32 67, FP64 34, HBM3
// 3.35 TB/s. NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): 132 SMs on the SXM5 part,
// 256 KB of combined L1 data cache and shared memory per SM (up to 228 KB of it as shared memory).
DeviceSpec h100() {
  DeviceSpec s;
  s.name = "h100";
  s.bf16_flops = 989.5 * kT;
  s.tf32_flops = 494.5 * kT;
  s.fp32_flops = 67 * kT;
  s.fp64_flops = 34 * kT;
  s.bandwidth = 3.35e12;
  s.sram_per_sm = 256 * 1024;
  s.sms = 132;
  s.source = "NVIDIA H100 datasheet (SXM) and H100 architecture whitepaper";
  return s;
}

// NVIDIA H200 Tensor Core GPU datasheet (H200 SXM column): the same Hopper compute as H100 SXM
// (BF16/FP16 tensor 1,979 TFLOPS with sparsity, TF32 989 with sparsity, FP32 67, FP64 34) with
// 141 GB of HBM3e at 4.8 TB/s; the same GH100 die (132 SMs, 256 KB L1/shared per SM).
DeviceSpec h200() {
  DeviceSpec s = h100();
  s.name = "h200";
  s.bandwidth = 4.8e12;
  s.source = "NVIDIA H200 datasheet (SXM); SM figures as H100 SXM (same GH100 die)";
  return s;
}

}  // namespace

double DeviceSpec::peak_flops(DType dt, bool tf32) const {
  double p = 0;
  const char* what = "";
  switch (dt) {
    case DType::bf16:
    case DType::f16:
      p = bf16_flops;
      what = "bf16/fp16";
      break;
    case DType::f32:
      p = tf32 && tf32_flops > 0 ? tf32_flops : fp32_flops;
      what = tf32 && tf32_flops > 0 ? "tf32" : "fp32";
      break;
    case DType::f64:
      p = fp64_flops;
      what = "fp64";
      break;
    default:
      throw Error(detail::cat("device ", name, ": no peak FLOP/s for dtype ", dtype_name(dt)));
  }
  TG_CHECK(p > 0, "device ", name, ": no ", what, " peak FLOP/s is given");
  return p;
}

void DeviceSpec::validate() const {
  TG_CHECK(bf16_flops >= 0 && tf32_flops >= 0 && fp32_flops >= 0 && fp64_flops >= 0, "device ",
           name, ": peak FLOP/s must be >= 0");
  TG_CHECK(bf16_flops > 0 || tf32_flops > 0 || fp32_flops > 0 || fp64_flops > 0, "device ", name,
           ": at least one peak FLOP/s must be given");
  TG_CHECK(bandwidth > 0, "device ", name, ": the memory bandwidth must be > 0, got ", bandwidth);
  TG_CHECK(sram_per_sm >= 0 && sms >= 0, "device ", name,
           ": sram_per_sm and sms must be >= 0, got ", sram_per_sm, " and ", sms);
}

DeviceSpec builtin_device(std::string_view name) {
  const std::string n = lower(name);
  if (n == "a100") return a100();
  if (n == "h100") return h100();
  if (n == "h200") return h200();
  throw Error(detail::cat("unknown device '", name, "'; expected a100, h100, h200 or a JSON file"));
}

std::vector<std::string> builtin_device_names() {
  return {"a100", "h100", "h200"};
}

bool is_builtin_device(std::string_view name) {
  const std::string n = lower(name);
  return n == "a100" || n == "h100" || n == "h200";
}

}  // namespace tilegrad::analysis
