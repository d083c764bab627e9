// Bad input never crashes or corrupts: shape, dtype and device mismatches throw tilegrad::Error
// with a message naming the op and the shapes, and leave every input as it was.
#include <cstdlib>

#include "testing.h"

#include "backend/backend.h"

namespace tgtest {
namespace {

// Expects f() to throw Error whose message contains every string in `parts`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const auto& p : parts)
      EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}

TEST(Errors, ShapeMismatchNamesOpAndShapes) {
  const Tensor a = rnd({2, 3}, 1), b = rnd({4, 3}, 2);
  expect_error([&] { add(a, b); }, {"add", "[2, 3]", "[4, 3]"});
  expect_error([&] { mul(a, b); }, {"mul", "[2, 3]", "[4, 3]"});
  expect_error([&] { sub(a, b); }, {"sub"});
  expect_error([&] { div(a, b); }, {"div"});
  expect_error([&] { matmul(a, b); }, {"matmul", "[2, 3]", "[4, 3]"});
  expect_error([&] { a.reshape({5}); }, {"reshape", "[5]", "6 elements"});
  expect_error([&] { a.copy_(b); }, {"copy_", "[4, 3]", "[2, 3]"});
}

TEST(Errors, DtypeMismatchNamesBothDtypes) {
  const Tensor a = rnd({2, 3}, 1, DType::f64), b = rnd({2, 3}, 2, DType::f32);
  expect_error([&] { add(a, b); }, {"add", "float64", "float32"});
  expect_error([&] { matmul(a, b.t()); }, {"matmul", "float64", "float32"});
  const Tensor i = arange(6, {DType::i64}).reshape({2, 3});
  expect_error([&] { exp(i); }, {"exp", "int64"});
  expect_error([&] { add(i, i); }, {"add", "int64"});
  expect_error([&] { i.set_requires_grad(true); }, {"set_requires_grad", "int64"});
}

// A second device for the test: host memory registered as "cuda", so that tensors on two devices
// can meet in one op.
class HostAsCuda final : public Allocator {
 public:
  void* allocate(size_t bytes, Category c) override {
    if (bytes == 0) return nullptr;
    tracker_ref().on_alloc(c, static_cast<int64_t>(bytes));
    return std::malloc(bytes);
  }
  void deallocate(void* p, size_t bytes, Category c) override {
    if (!p) return;
    tracker_ref().on_free(c, static_cast<int64_t>(bytes));
    std::free(p);
  }
  Device device() const override { return Device::cuda(); }
};

TEST(Errors, DeviceMismatchNamesBothDevices) {
  // The test stands a fake cuda device (host memory) in for the real one; with a GPU present, a
  // kernel of the CUDA backend would run on that host memory and break the CUDA context.
  if (device_available(DeviceType::cuda)) GTEST_SKIP() << "needs a machine without a GPU";
  const DeviceScope on_cpu(Device::cpu());
  static HostAsCuda fake;
  Allocator* const real = register_allocator(DeviceType::cuda, &fake);  // the CUDA one, if built
  {
    const Tensor a = rnd({2, 3}, 1);
    const Tensor b = empty({2, 3}, {DType::f64, Device::cuda()});
    EXPECT_EQ(tracker(Device::cuda()).stats().live_total, 48);  // tracked on its own device
    EXPECT_EQ(b.device(), Device::cuda());
    expect_error([&] { add(a, b); }, {"add", "different devices", "cpu", "cuda:0"});
    expect_error([&] { matmul(a, b.t()); }, {"matmul", "cuda:0"});
    expect_error([&] { a.copy_(b); }, {"copy_", "cuda:0"});
    // Ops on the fake device itself: without a CUDA backend in the build, a clear error naming
    // the device; with one (and no GPU), the CUDA runtime's error as a tilegrad Error.
    const bool has_backend = error_of([] { backend(Device::cuda()); }).empty();
    if (has_backend) {
      expect_error([&] { exp(b); }, {"CUDA"});
    } else {
      expect_error([&] { exp(b); }, {"no backend", "cuda:0"});
    }
  }
  register_allocator(DeviceType::cuda, real);
  EXPECT_EQ(tracker(Device::cuda()).stats().live_total, 0);
}

TEST(Errors, FailedOpsLeaveInputsAndGradientsIntact) {
  const Tensor a = rnd({3, 4}, 3).set_requires_grad(true);
  const Tensor b = rnd({5, 4}, 4);
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  const int64_t live = tracker().stats().live_total;
  EXPECT_THROW(matmul(a, b), Error);
  EXPECT_THROW(add(a, b), Error);
  EXPECT_THROW(a.reshape({7}), Error);
  EXPECT_EQ(tracker().stats().live_total, live);  // nothing leaked by the failed calls
  EXPECT_EQ(a.to_vector<double>(), va);
  EXPECT_EQ(b.to_vector<double>(), vb);
  EXPECT_FALSE(a.grad().defined());
}

TEST(Errors, TooManyDimensionsAndNegativeSizes) {
  expect_error([] { empty({1, 1, 1, 1, 1, 1, 1, 1, 1}); }, {"at most 8"});
  expect_error([] { empty({2, -1}); }, {"negative size", "[2, -1]"});
}

TEST(Errors, UndefinedTensors) {
  const Tensor u;
  expect_error([&] { exp(u); }, {"exp", "undefined"});
  expect_error([&] { add(u, rnd({1}, 1)); }, {"add", "undefined"});
  expect_error([&] { (void)u.shape(); }, {"undefined"});
}

}  // namespace
}  // namespace tgtest
