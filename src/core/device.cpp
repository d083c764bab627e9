#include "core/device.h"

#include <cctype>

#include "core/error.h"

namespace tilegrad {

namespace {
thread_local Device t_default_device = Device::cpu();
}  // namespace

Device default_device() {
  return t_default_device;
}

DeviceScope::DeviceScope(Device device) : prev_(t_default_device) {
  t_default_device = device;
}

DeviceScope::~DeviceScope() {
  t_default_device = prev_;
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  const std::string prefix = "cuda:";
  if (text.size() > prefix.size() && text.compare(0, prefix.size(), prefix) == 0) {
    const std::string num = text.substr(prefix.size());
    bool digits = num.size() <= 3;
    for (const char c : num) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (digits) return Device::cuda(std::stoi(num));
  }
  TG_CHECK(false, "unknown device '", text, "' (expected cpu, cuda or cuda:N)");
  return Device::cpu();
}

}  // namespace tilegrad
