// Saved-tensor hooks (Note [Saved-tensor hooks]): what pack sees, what the node keeps, the memory a
// dropping hook frees, declining, nesting, version checks and the unpacked tensor's shape check.
#include <any>
#include <vector>

#include "testing.h"

namespace tgtest {
namespace {

// Moves saved tensors out of the tracker's sight into a host vector, and back on unpack.
SavedTensorHooks host_copy_hooks(int* packs, int* unpacks) {
  SavedTensorHooks h;
  h.pack = [packs](const Tensor& t, const Node&) -> std::any {
    ++*packs;
    return std::make_pair(t.to_vector<double>(), t.shape());
  };
  h.unpack = [unpacks](const std::any& v) {
    ++*unpacks;
    const auto& [values, shape] = std::any_cast<const std::pair<std::vector<double>, Shape>&>(v);
    return from_vector(values, shape, {DType::f64});
  };
  return h;
}

TEST(SavedHooks, PackedTensorsAreFreedAndGradientsUnchanged) {
  const Tensor x = rnd({64, 64}, 1).set_requires_grad(true);
  sum(exp(x)).backward();
  const auto plain = x.grad().to_vector<double>();
  x.set_grad(Tensor());

  int packs = 0, unpacks = 0;
  MemoryScope scope;
  Tensor loss;
  {
    SavedTensorHooksScope hooks(host_copy_hooks(&packs, &unpacks));
    Tensor y = exp(x);  // exp saves its output
    EXPECT_TRUE(y.grad_fn()->saved_tensors()[0].is_packed());
    EXPECT_EQ(y.grad_fn()->saved_bytes(), 0);
    loss = sum(y);
  }
  // Without hooks y (32 KB) would stay alive in the graph; with them only the loss scalar does.
  EXPECT_EQ(scope.delta().live_of(Category::activation), 8);
  EXPECT_EQ(packs, 1);
  loss.backward();
  EXPECT_EQ(unpacks, 1);
  EXPECT_EQ(x.grad().to_vector<double>(), plain);
}

TEST(SavedHooks, WithoutHooksNothingIsPacked) {
  const Tensor x = rnd({4, 4}, 2).set_requires_grad(true);
  const Tensor y = exp(x);
  EXPECT_FALSE(y.grad_fn()->saved_tensors()[0].is_packed());
  EXPECT_EQ(y.grad_fn()->saved_bytes(), x.nbytes());
  EXPECT_EQ(current_saved_tensor_hooks(), nullptr);
}

TEST(SavedHooks, PackSeesEveryDefinedSavedTensorWithItsNode) {
  const Tensor a = rnd({3, 4}, 3).set_requires_grad(true);
  const Tensor b = rnd({4, 5}, 4);  // no grad: matmul then saves b but not a
  std::vector<std::string> seen;
  SavedTensorHooks h;
  h.pack = [&](const Tensor& t, const Node& n) -> std::any {
    seen.push_back(std::string(n.name()) + shape_str(t.shape()));
    return t;
  };
  h.unpack = [](const std::any& v) { return std::any_cast<Tensor>(v); };
  SavedTensorHooksScope scope(h);
  const Tensor y = tanh(matmul(a, b));
  EXPECT_EQ(seen, (std::vector<std::string>{"matmul[4, 5]", "tanh[3, 5]"}));
}

TEST(SavedHooks, DecliningSavesAsWithoutHooks) {
  const Tensor x = rnd({4, 4}, 5).set_requires_grad(true);
  SavedTensorHooks h;
  h.pack = [](const Tensor&, const Node&) { return std::any(); };
  h.unpack = [](const std::any&) -> Tensor { throw std::logic_error("never unpacked"); };
  SavedTensorHooksScope scope(h);
  const Tensor y = exp(x);
  EXPECT_FALSE(y.grad_fn()->saved_tensors()[0].is_packed());
  EXPECT_EQ(y.grad_fn()->saved_bytes(), y.nbytes());
  EXPECT_NO_THROW(sum(y).backward());
}

TEST(SavedHooks, OnlyTheInnermostPairAppliesAndScopesEnd) {
  int outer = 0, inner = 0, unpacks = 0;
  const Tensor x = rnd({2, 2}, 6).set_requires_grad(true);
  {
    SavedTensorHooksScope a(host_copy_hooks(&outer, &unpacks));
    (void)exp(x);
    {
      SavedTensorHooksScope b(host_copy_hooks(&inner, &unpacks));
      (void)exp(x);
    }
    (void)exp(x);
  }
  EXPECT_EQ(outer, 2);
  EXPECT_EQ(inner, 1);
  EXPECT_EQ(current_saved_tensor_hooks(), nullptr);
  EXPECT_FALSE(exp(x).grad_fn()->saved_tensors()[0].is_packed());
}

TEST(SavedHooks, HooksAreOffWhileAPackHookRuns) {
  const Tensor x = rnd({3}, 7).set_requires_grad(true);
  int packs = 0;
  SavedTensorHooks h;
  h.pack = [&](const Tensor&, const Node&) -> std::any {
    ++packs;
    return exp(x);  // an op that saves: must not re-enter this hook
  };
  h.unpack = [](const std::any& v) { return std::any_cast<Tensor>(v).detach(); };
  SavedTensorHooksScope scope(h);
  (void)sigmoid(x);
  EXPECT_EQ(packs, 1);
}

TEST(SavedHooks, InPlaceChangeIsStillDetectedWhenUnpackReturnsTheSavedStorage) {
  const Tensor x = rnd({4}, 8).set_requires_grad(true);
  SavedTensorHooks h;
  h.pack = [](const Tensor& t, const Node&) -> std::any { return t; };
  h.unpack = [](const std::any& v) { return std::any_cast<Tensor>(v); };
  Tensor y, loss;
  {
    SavedTensorHooksScope scope(h);
    y = exp(x);
    loss = sum(y);
  }
  {
    NoGradGuard g;
    y.mul_(2.0);
  }
  const std::string msg = error_of([&] { loss.backward(); });
  EXPECT_NE(msg.find("modified in place"), std::string::npos) << msg;
}

TEST(SavedHooks, AnUnpackedTensorOfTheWrongShapeIsAnError) {
  const Tensor x = rnd({4}, 9).set_requires_grad(true);
  SavedTensorHooks h;
  h.pack = [](const Tensor&, const Node&) -> std::any { return 0; };
  h.unpack = [](const std::any&) { return zeros({5}, {DType::f64}); };
  Tensor loss;
  {
    SavedTensorHooksScope scope(h);
    loss = sum(exp(x));
  }
  const std::string msg = error_of([&] { loss.backward(); });
  EXPECT_NE(msg.find("unpack hook returned"), std::string::npos) << msg;
}

TEST(SavedHooks, ReleaseDropsThePackedValueAndBackwardTwiceStillNeedsRetainGraph) {
  const Tensor x = rnd({4}, 10).set_requires_grad(true);
  auto alive = std::make_shared<int>(0);
  SavedTensorHooks h;
  h.pack = [alive](const Tensor& t, const Node&) -> std::any {
    return std::make_pair(alive, t.detach());  // counts as a reference to `alive` while held
  };
  h.unpack = [](const std::any& v) {
    return std::any_cast<const std::pair<std::shared_ptr<int>, Tensor>&>(v).second;
  };
  Tensor loss;
  {
    SavedTensorHooksScope scope(std::move(h));
    loss = sum(exp(x));
  }
  // Here, in the pack closure (the node keeps the hooks for unpacking), and in the packed value.
  EXPECT_EQ(alive.use_count(), 3);
  loss.backward();
  EXPECT_EQ(alive.use_count(), 1);  // the node released its packed value and the hooks
  const std::string msg = error_of([&] { loss.backward(); });
  EXPECT_NE(msg.find("retain_graph"), std::string::npos) << msg;
}

}  // namespace
}  // namespace tgtest
