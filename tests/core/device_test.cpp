// Devices: parsing, the default-device scope, and copies between devices. On the GPU machine the
// suite also runs with TILEGRAD_TEST_DEVICE=cuda, where default_device() is the GPU and these
// copies cross the PCIe bus.
#include "testing.h"

namespace tgtest {
namespace {

TEST(Device, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  for (const char* bad : {"gpu", "cuda:", "cuda:x", "CPU", ""}) {
    EXPECT_NE(error_of([&] { parse_device(bad); }).find("unknown device"), std::string::npos)
        << bad;
  }
}

TEST(Device, ScopeSetsTheDefaultAndRestoresIt) {
  const Device before = default_device();
  {
    DeviceScope scope(Device::cpu());
    EXPECT_EQ(empty({2}).device(), Device::cpu());
    EXPECT_EQ(default_device(), Device::cpu());
  }
  EXPECT_EQ(default_device(), before);
}

TEST(Device, CopyToTheSameDeviceIsTheTensorItself) {
  const Tensor x = rnd({3, 4}, 1, DType::f32);
  const Tensor y = x.to(x.device());
  EXPECT_EQ(y.storage(), x.storage());
}

// A round trip through the default device and back keeps every value and the category; a copy
// (to another device) of a non-contiguous source is contiguous.
TEST(Device, RoundTripKeepsValuesAndCategory) {
  for (const DType dt : {DType::f64, DType::f32, DType::bf16, DType::i64}) {
    const Tensor host = rnd({5, 7}, 2, DType::f64, -100, 100).to(dt).to(Device::cpu());
    const Tensor dev = noncontiguous(host).to(default_device());
    EXPECT_EQ(dev.device(), default_device());
    const Tensor back = dev.to(Device::cpu());
    EXPECT_TRUE(default_device().is_cpu() || back.is_contiguous());
    EXPECT_EQ(back.to_vector<double>(), host.to_vector<double>()) << dtype_name(dt);
  }
  const Tensor p = empty({4}, {DType::f32, Device::cpu(), Category::parameter});
  p.fill_(1.5);
  EXPECT_EQ(p.to(default_device()).to(Device::cpu()).storage()->category(), Category::parameter);
}

// The gradient of a copy flows back to the source's device.
TEST(Device, CopyIsDifferentiable) {
  const Tensor x = rnd({6}, 3, DType::f64).to(Device::cpu());
  x.set_requires_grad();
  const Tensor y = x.to(default_device());
  sum(y * y).backward();
  const std::vector<double> xv = x.to_vector<double>(), g = x.grad().to_vector<double>();
  ASSERT_EQ(g.size(), xv.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_DOUBLE_EQ(g[i], 2 * xv[i]);
  EXPECT_EQ(x.grad().device(), Device::cpu());
}

}  // namespace
}  // namespace tgtest
