// Where a tensor's bytes live. Only the cpu backend exists in this build; cuda registers itself
// below the ops (backend/ and memory/) when the CUDA backend is built.
#pragma once

#include <cstdint>
#include <string>

namespace tilegrad {

enum class DeviceType : uint8_t { cpu = 0, cuda = 1 };
constexpr int kNumDeviceTypes = 2;

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool operator==(const Device&) const = default;
  std::string str() const {
    return type == DeviceType::cpu ? "cpu" : "cuda:" + std::to_string(index);
  }
};

}  // namespace tilegrad
