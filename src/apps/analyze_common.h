// What the `tilegrad analyze` subcommands share: the device options (a built-in spec, a JSON file,
// or measured figures given as flags), the roofline columns of their tables, and the JSON forms of
// a device and a roofline point. Each subcommand lives in its own file (analyze_attention.cpp,
// analyze_transformer.cpp) and registers itself under `analyze` through the functions below.
#pragma once

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "analysis/device_spec.h"
#include "analysis/roofline.h"
#include "core/dtype.h"

namespace tilegrad::apps {

struct DeviceOptions {
  std::string device = "a100";  // a built-in name or a JSON file
  double peak_tflops = 0;       // > 0: replaces the peak for the command's dtype
  double bandwidth_gbs = 0;     // > 0: replaces the bandwidth
  bool tf32 = false;            // f32 matmuls on tf32 tensor cores
  double time_ms = 0;           // > 0: a measured time, for MFU
};

void add_device_options(CLI::App* cmd, DeviceOptions& o);

// The device the options name, with the flags' figures applied; throws tilegrad::Error for an
// unknown name, an unreadable or malformed file, or invalid figures.
analysis::DeviceSpec resolve_device(const DeviceOptions& o, DType dt);

// A spec from JSON text: {"name": ..., "bf16_flops": ..., "tf32_flops": ..., "fp32_flops": ...,
// "fp64_flops": ..., "bandwidth": bytes/s, "sram_per_sm": bytes, "sms": ..., "source": ...};
// name and bandwidth and at least one peak are required, other keys are refused. `origin` names
// the file in errors.
analysis::DeviceSpec parse_device_json(std::string_view text, std::string_view origin);

nlohmann::ordered_json device_json(const analysis::DeviceSpec& d, DType dt, bool tf32);
nlohmann::ordered_json roofline_json(const analysis::Roofline& r);

// Text columns shared by the tables: intensity, bound, attainable TFLOP/s, minimum time in ms.
std::string roofline_header();
std::string roofline_cells(const analysis::Roofline& r);
// One line describing the device for the dtype: peak, bandwidth, ridge point.
std::string device_line(const analysis::DeviceSpec& d, DType dt, bool tf32);

// Subcommands of `analyze`.
void add_analyze_attention(CLI::App& analyze);
void add_analyze_mlp(CLI::App& analyze);
void add_analyze_transformer(CLI::App& analyze);

}  // namespace tilegrad::apps
