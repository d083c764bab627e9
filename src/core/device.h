// Where a tensor's bytes live. The cpu backend always exists; cuda registers itself below the ops
// (backend/ and memory/) when the CUDA backend is built (cmake/cuda.cmake).
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

// The device a tensor is created on when its TensorOptions name none: cpu, unless a DeviceScope
// is active on this thread. A model built inside `DeviceScope scope(Device::cuda())` has its
// parameters on the GPU, as PyTorch's `with torch.device("cuda"):` does. Code that writes tensor
// bytes from the host (data loaders, file readers) names Device::cpu() explicitly.
Device default_device();

class DeviceScope {
 public:
  explicit DeviceScope(Device device);
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  Device prev_;
};

// Parses "cpu", "cuda" or "cuda:N"; throws Error naming the text otherwise.
Device parse_device(const std::string& text);

}  // namespace tilegrad
