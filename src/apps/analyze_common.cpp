// Device options, device JSON files and roofline columns for `tilegrad analyze` (see
// analyze_common.h).
#include "apps/analyze_common.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "apps/cli_util.h"
#include "core/error.h"

namespace tilegrad::apps {

using analysis::DeviceSpec;
using analysis::Roofline;

void add_device_options(CLI::App* cmd, DeviceOptions& o) {
  cmd->add_option("--device", o.device,
                  "a100, h100, h200 (datasheet figures) or a JSON file with a measured spec")
      ->capture_default_str();
  cmd->add_option("--peak-tflops", o.peak_tflops,
                  "Peak TFLOP/s for the dtype (e.g. this CPU's measured GEMM rate)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bandwidth-gbs", o.bandwidth_gbs,
                  "Memory bandwidth in GB/s (e.g. this CPU's measured copy rate)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--tf32", o.tf32, "float32 matmuls on TF32 tensor cores (the tf32 peak)");
  cmd->add_option("--time-ms", o.time_ms, "A measured time in ms, for MFU")
      ->check(CLI::PositiveNumber);
}

DeviceSpec parse_device_json(std::string_view text, std::string_view origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::cat("device file ", origin, ": not valid JSON: ", e.what()));
  }
  TG_CHECK(j.is_object(), "device file ", origin, ": expected a JSON object");
  static const std::set<std::string> kKeys = {"name",        "bf16_flops", "tf32_flops",
                                              "fp32_flops",  "fp64_flops", "bandwidth",
                                              "sram_per_sm", "sms",        "source"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    TG_CHECK(kKeys.count(it.key()), "device file ", origin, ": unknown key '", it.key(),
             "'; expected name, bf16_flops, tf32_flops, fp32_flops, fp64_flops, bandwidth, ",
             "sram_per_sm, sms, source");
  }
  DeviceSpec d;
  auto number = [&](const char* key, double& out) {
    if (!j.contains(key)) return;
    TG_CHECK(j[key].is_number(), "device file ", origin, ": '", key, "' must be a number");
    out = j[key].get<double>();
  };
  TG_CHECK(j.contains("name") && j["name"].is_string(), "device file ", origin,
           ": 'name' (a string) is required");
  d.name = j["name"].get<std::string>();
  number("bf16_flops", d.bf16_flops);
  number("tf32_flops", d.tf32_flops);
  number("fp32_flops", d.fp32_flops);
  number("fp64_flops", d.fp64_flops);
  number("bandwidth", d.bandwidth);
  double sram = 0, sms = 0;
  number("sram_per_sm", sram);
  number("sms", sms);
  d.sram_per_sm = static_cast<int64_t>(sram);
  d.sms = static_cast<int64_t>(sms);
  d.source = j.contains("source") && j["source"].is_string()
                 ? j["source"].get<std::string>()
                 : std::string("file ") + std::string(origin);
  try {
    d.validate();
  } catch (const Error& e) {
    throw Error(detail::cat("device file ", origin, ": ", e.what()));
  }
  return d;
}

DeviceSpec resolve_device(const DeviceOptions& o, DType dt) {
  DeviceSpec d;
  if (analysis::is_builtin_device(o.device)) {
    d = analysis::builtin_device(o.device);
  } else {
    std::ifstream in(o.device);
    TG_CHECK(in.good(), "--device: '", o.device,
             "' is neither a built-in device (a100, h100, h200) nor a readable file");
    std::stringstream s;
    s << in.rdbuf();
    d = parse_device_json(s.str(), o.device);
  }
  if (o.peak_tflops > 0) {
    const double p = o.peak_tflops * 1e12;
    switch (dt) {
      case DType::bf16:
      case DType::f16:
        d.bf16_flops = p;
        break;
      case DType::f32:
        (o.tf32 && d.tf32_flops > 0 ? d.tf32_flops : d.fp32_flops) = p;
        break;
      default:
        d.fp64_flops = p;
    }
    d.source += "; peak given by --peak-tflops";
  }
  if (o.bandwidth_gbs > 0) {
    d.bandwidth = o.bandwidth_gbs * 1e9;
    d.source += "; bandwidth given by --bandwidth-gbs";
  }
  d.validate();
  return d;
}

nlohmann::ordered_json device_json(const DeviceSpec& d, DType dt, bool tf32) {
  const double peak = d.peak_flops(dt, tf32);
  return {{"name", d.name},
          {"dtype", std::string(dtype_name(dt))},
          {"peak_flops", peak},
          {"bandwidth", d.bandwidth},
          {"ridge_flops_per_byte", peak / d.bandwidth},
          {"sram_per_sm", d.sram_per_sm},
          {"sms", d.sms},
          {"source", d.source}};
}

nlohmann::ordered_json roofline_json(const Roofline& r) {
  return {{"flops", r.flops},
          {"bytes", r.bytes},
          {"intensity", std::isfinite(r.intensity) ? nlohmann::ordered_json(r.intensity)
                                                   : nlohmann::ordered_json(nullptr)},
          {"bound", std::string(analysis::bound_name(r.bound))},
          {"attainable_flops", r.attainable},
          {"min_seconds", r.min_seconds}};
}

std::string roofline_header() {
  return strf("%10s %8s %11s %10s", "FLOP/byte", "bound", "TFLOP/s", "min ms");
}

std::string roofline_cells(const Roofline& r) {
  const std::string intensity =
      std::isfinite(r.intensity) ? strf("%10.2f", r.intensity) : strf("%10s", "inf");
  return intensity + strf(" %8s %11.2f %10.4f", std::string(analysis::bound_name(r.bound)).c_str(),
                          r.attainable / 1e12, r.min_seconds * 1e3);
}

std::string device_line(const DeviceSpec& d, DType dt, bool tf32) {
  const double peak = d.peak_flops(dt, tf32);
  return strf("device %s: peak %.4g TFLOP/s (%s), bandwidth %.4g GB/s, ridge %.4g FLOP/byte",
              d.name.c_str(), peak / 1e12, std::string(dtype_name(dt)).c_str(), d.bandwidth / 1e9,
              peak / d.bandwidth);
}

}  // namespace tilegrad::apps
