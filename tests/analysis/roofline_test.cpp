// Device specs, the roofline classification at known intensities, MFU, and device JSON files.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "analysis/device_spec.h"
#include "analysis/roofline.h"
#include "apps/analyze_common.h"
#include "testing.h"

namespace {

using namespace tilegrad::analysis;
using tgtest::error_of;
using tilegrad::DType;

TEST(DeviceSpec, DatasheetFigures) {
  const DeviceSpec a = builtin_device("a100");
  EXPECT_DOUBLE_EQ(a.peak_flops(DType::bf16), 312e12);
  EXPECT_DOUBLE_EQ(a.peak_flops(DType::f16), 312e12);
  EXPECT_DOUBLE_EQ(a.peak_flops(DType::f32), 19.5e12);
  EXPECT_DOUBLE_EQ(a.peak_flops(DType::f32, /*tf32=*/true), 156e12);
  EXPECT_DOUBLE_EQ(a.bandwidth, 2039e9);
  EXPECT_EQ(a.sram_per_sm, 192 * 1024);
  EXPECT_EQ(a.sms, 108);
  const DeviceSpec h = builtin_device("H100");  // case-insensitive
  EXPECT_DOUBLE_EQ(h.peak_flops(DType::bf16), 989.5e12);
  EXPECT_DOUBLE_EQ(h.bandwidth, 3.35e12);
  EXPECT_EQ(h.sms, 132);
  const DeviceSpec h2 = builtin_device("h200");
  EXPECT_DOUBLE_EQ(h2.peak_flops(DType::bf16), h.peak_flops(DType::bf16));  // same compute
  EXPECT_DOUBLE_EQ(h2.bandwidth, 4.8e12);
  EXPECT_NE(error_of([] { builtin_device("b200"); }).find("unknown device 'b200'"),
            std::string::npos);
  DeviceSpec cpu;
  cpu.name = "cpu";
  cpu.fp32_flops = 2e11;
  cpu.bandwidth = 4e10;
  EXPECT_NE(error_of([&] { cpu.peak_flops(DType::bf16); }).find("no bf16/fp16 peak"),
            std::string::npos);
}

// A100 bf16: ridge = 312e12 / 2039e9 = 153.0 FLOP/byte.
TEST(Roofline, ClassifiesAtKnownIntensities) {
  const double P = 312e12, W = 2039e9;
  const Roofline low = roofline(10e9, 1e9, P, W);  // 10 FLOP/byte
  EXPECT_EQ(low.bound, Bound::memory);
  EXPECT_DOUBLE_EQ(low.intensity, 10);
  EXPECT_DOUBLE_EQ(low.attainable, 10 * W);
  EXPECT_DOUBLE_EQ(low.min_seconds, 1e9 / W);
  EXPECT_NEAR(low.ridge, 153.016, 1e-3);
  const Roofline high = roofline(200e9, 1e9, P, W);
  EXPECT_EQ(high.bound, Bound::compute);
  EXPECT_DOUBLE_EQ(high.attainable, P);
  EXPECT_DOUBLE_EQ(high.min_seconds, 200e9 / P);
  // Exactly at the ridge both limits meet: compute-bound, the peak attainable.
  const Roofline ridge = roofline(P, W, P, W);
  EXPECT_EQ(ridge.bound, Bound::compute);
  EXPECT_DOUBLE_EQ(ridge.attainable, P);
  // A square bf16 matmul of n = 4096: 2n³ FLOPs over 3n² elements of 2 bytes = n/3 FLOP/byte.
  const double n = 4096;
  const Roofline mm = roofline(2 * n * n * n, 3 * n * n * 2, P, W);
  EXPECT_NEAR(mm.intensity, n / 3, 1e-9);
  EXPECT_EQ(mm.bound, Bound::compute);
  // An elementwise bf16 add: 1 FLOP per 6 bytes.
  EXPECT_EQ(roofline(n, 6 * n, P, W).bound, Bound::memory);
  // No bytes: infinitely intense.
  EXPECT_TRUE(std::isinf(roofline(1, 0, P, W).intensity));
  EXPECT_NE(error_of([] { roofline(1, 1, 0, 1); }).find("must be > 0"), std::string::npos);
}

TEST(Roofline, Mfu) {
  // 1e12 FLOPs in 10 ms on 312 TFLOP/s: 1e14 / 312e12.
  EXPECT_DOUBLE_EQ(utilization(1e12, 0.01, 312e12), 1e14 / 312e12);
  EXPECT_NE(error_of([] { utilization(1, 0, 1); }).find("measured time must be > 0"),
            std::string::npos);
}

TEST(DeviceJson, ParsesAMeasuredSpecAndRefusesMistakes) {
  const DeviceSpec d = tilegrad::apps::parse_device_json(
      R"({"name": "cpu", "fp32_flops": 2.13e11, "fp64_flops": 1e11, "bandwidth": 3.9e10,
          "sram_per_sm": 1048576, "sms": 2, "source": "bench_matmul"})",
      "cpu.json");
  EXPECT_EQ(d.name, "cpu");
  EXPECT_DOUBLE_EQ(d.peak_flops(DType::f32), 2.13e11);
  EXPECT_DOUBLE_EQ(d.bandwidth, 3.9e10);
  EXPECT_EQ(d.sram_per_sm, 1048576);
  EXPECT_NE(error_of([] {
              tilegrad::apps::parse_device_json(R"({"name": "x", "bandwith": 1})", "x.json");
            }).find("unknown key 'bandwith'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              tilegrad::apps::parse_device_json(R"({"name": "x", "fp32_flops": 1})", "x.json");
            }).find("bandwidth must be > 0"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { tilegrad::apps::parse_device_json("{", "x.json"); }).find("not valid JSON"),
      std::string::npos);
  // Flags override a built-in spec's figures for the command's dtype.
  tilegrad::apps::DeviceOptions o;
  o.peak_tflops = 0.2;
  o.bandwidth_gbs = 40;
  const DeviceSpec m = tilegrad::apps::resolve_device(o, DType::f32);
  EXPECT_DOUBLE_EQ(m.peak_flops(DType::f32), 0.2e12);
  EXPECT_DOUBLE_EQ(m.bandwidth, 40e9);
}

}  // namespace
