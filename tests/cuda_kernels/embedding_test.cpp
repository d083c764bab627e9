// GPU embedding (kernels/cuda/embedding) against the CPU kernel on the same inputs: the forward
// copies the same bytes for float and integer dtypes, int32 and int64 indices, aligned and
// misaligned tables; the backward gives the same bits as the CPU (both add each row's gradients in
// position order) and the same bits on two runs, with many repeated indices (a row hit thousands of
// times), vocabularies from 3 to 50257 (one, two and three radix passes) and no indices at all;
// find_out_of_range reports the first bad position, skipping ignored values, as the CPU does; the
// CPU's dtype errors.
#include "kernels/cuda/embedding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_kernels/cuda_testing.h"
#include "kernels/cpu/embedding.h"

namespace {

using namespace tgcuda;  // NOLINT: the GPU tests' shared helpers (cuda_testing.h)
using tilegrad::DType;

const DType kIndexDTypes[] = {DType::i32, DType::i64};

// Indices as bytes of dtype idx_dt.
Bytes encode_indices(DType idx_dt, const std::vector<int64_t>& idx) {
  Bytes out(idx.size() * tilegrad::dtype_size(idx_dt));
  for (size_t i = 0; i < idx.size(); ++i) {
    if (idx_dt == DType::i32) {
      const int32_t v = static_cast<int32_t>(idx[i]);
      std::memcpy(out.data() + i * 4, &v, 4);
    } else {
      std::memcpy(out.data() + i * 8, &idx[i], 8);
    }
  }
  return out;
}

// n indices in [0, V): about half of them one hot index (V - 1, or 0 when `hot_first`), a tenth
// a second one (V / 2), the rest uniform.
std::vector<int64_t> repeated_indices(std::mt19937_64& rng, int64_t n, int64_t V, bool hot_first) {
  std::uniform_int_distribution<int64_t> any(0, V - 1);
  std::uniform_int_distribution<int> pick(0, 9);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t& v : idx) {
    const int k = pick(rng);
    v = k < 5 ? (hot_first ? 0 : V - 1) : k == 5 ? V / 2 : any(rng);
  }
  return idx;
}

struct Case {
  int64_t n, C, V;
};

std::string describe(DType dt, DType idx_dt, const Case& c) {
  return std::string(tilegrad::dtype_name(dt)) + " indices " +
         std::string(tilegrad::dtype_name(idx_dt)) + " n " + std::to_string(c.n) + " C " +
         std::to_string(c.C) + " V " + std::to_string(c.V);
}

TEST(CudaEmbedding, ForwardCopiesTheSameBytesAsTheCpu) {
  TG_REQUIRE_GPU();
  const Case cases[] = {
      {1, 1, 3}, {100, 7, 257}, {33, 64, 50257}, {257, 129, 1000}, {50, 768, 257}};
  const DType dtypes[] = {DType::f64, DType::f32, DType::bf16, DType::f16, DType::i32, DType::u8};
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  for (DType dt : dtypes) {
    const size_t es = tilegrad::dtype_size(dt);
    for (DType idx_dt : kIndexDTypes) {
      for (const Case& cs : cases) {
        // offset 1: the table starts one element past an aligned address, so the copy must use
        // units no wider than an element.
        for (int64_t offset : {0, 1}) {
          SCOPED_TRACE(describe(dt, idx_dt, cs) + " offset " + std::to_string(offset));
          Bytes weight((cs.V * cs.C + offset) * es);
          for (uint8_t& b : weight) b = static_cast<uint8_t>(byte(rng));
          const Bytes idx = encode_indices(idx_dt, repeated_indices(rng, cs.n, cs.V, false));
          Bytes out_cpu(cs.n * cs.C * es);
          tilegrad::kernels::cpu::embedding_forward(dt, weight.data() + offset * es, idx_dt,
                                                    idx.data(), out_cpu.data(), cs.n, cs.C);
          const DeviceBuffer dw(weight.size()), didx(idx.size()), dout(out_cpu.size());
          dw.upload(weight.data());
          didx.upload(idx.data());
          tilegrad::kernels::cuda::embedding_forward(
              dt, static_cast<const uint8_t*>(dw.get()) + offset * es, idx_dt, didx.get(),
              dout.get(), cs.n, cs.C, nullptr);
          EXPECT_TRUE(download(dout) == out_cpu);
        }
      }
    }
  }
}

TEST(CudaEmbedding, BackwardMatchesCpuBitwiseAndIsDeterministic) {
  TG_REQUIRE_GPU();
  cudaStream_t stream;
  TG_CUDA_CHECK(cudaStreamCreate(&stream));
  // V = 3, 255: one radix pass; 256, 257, 50257: two; 70000: three. Rows hit up to ~10000 times.
  const Case cases[] = {{1, 1, 3},        {513, 129, 3},   {100, 7, 257},     {4097, 64, 257},
                        {1000, 33, 255},  {1000, 33, 256}, {20000, 7, 50257}, {3000, 768, 257},
                        {5000, 5, 70000}, {0, 5, 9}};
  std::mt19937_64 rng(8);
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt);
    for (DType idx_dt : kIndexDTypes) {
      for (const Case& cs : cases) {
        SCOPED_TRACE(describe(dt, idx_dt, cs));
        const Bytes idx = encode_indices(idx_dt, repeated_indices(rng, cs.n, cs.V, cs.V % 2 == 0));
        const Bytes gout = encode(dt, uniform(rng, static_cast<size_t>(cs.n * cs.C), -1.0, 1.0));
        Bytes gw_cpu(cs.V * cs.C * es);
        tilegrad::kernels::cpu::embedding_backward(dt, gout.data(), idx_dt, idx.data(),
                                                   gw_cpu.data(), cs.n, cs.C, cs.V);
        const DeviceBuffer dgout(gout.size()), didx(idx.size());
        if (cs.n > 0) {
          dgout.upload(gout.data());
          didx.upload(idx.data());
        }
        Bytes first;
        for (int run = 0; run < 2; ++run) {
          const DeviceBuffer dgw(gw_cpu.size());  // poisoned: every element must be written
          tilegrad::kernels::cuda::embedding_backward(dt, dgout.get(), idx_dt, didx.get(),
                                                      dgw.get(), cs.n, cs.C, cs.V, false, stream);
          TG_CUDA_CHECK(cudaStreamSynchronize(stream));
          const Bytes got = download(dgw);
          if (run == 0) {
            first = got;
            continue;
          }
          EXPECT_TRUE(got == first) << "a second run gave other bits";
        }
        if (first != gw_cpu) {
          // Bitwise equality failed: show the first differing elements as numbers.
          const std::vector<double> g = decode(dt, first), c = decode(dt, gw_cpu);
          int shown = 0;
          for (size_t k = 0; k < g.size() && shown < 5; ++k) {
            if (std::memcmp(first.data() + k * es, gw_cpu.data() + k * es, es) != 0) {
              ADD_FAILURE() << "gweight[" << k / cs.C << ", " << k % cs.C << "]: gpu " << g[k]
                            << ", cpu " << c[k];
              ++shown;
            }
          }
        }
      }
    }
  }
  TG_CUDA_CHECK(cudaStreamDestroy(stream));
}

// Accumulating into a gradient already there (a tied weight): the CPU's bits, which are those of
// the overwriting backward's result added to it; rows no index hits keep their bits, -0.0 included.
TEST(CudaEmbedding, AccumulatingBackwardMatchesCpuBitwise) {
  TG_REQUIRE_GPU();
  const Case cases[] = {{513, 129, 3}, {1000, 33, 256}, {20000, 7, 50257}, {3000, 768, 257}};
  std::mt19937_64 rng(10);
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt);
    for (const Case& cs : cases) {
      SCOPED_TRACE(describe(dt, DType::i64, cs));
      const Bytes idx = encode_indices(DType::i64, repeated_indices(rng, cs.n, cs.V, false));
      const Bytes gout = encode(dt, uniform(rng, static_cast<size_t>(cs.n * cs.C), -1.0, 1.0));
      std::vector<double> before_v = uniform(rng, static_cast<size_t>(cs.V * cs.C), -1.0, 1.0);
      before_v[0] = -0.0;  // kept as it is if row 0 has no hits, else summed
      const Bytes before = encode(dt, before_v);
      Bytes gw_cpu = before, overwritten(before.size());
      tilegrad::kernels::cpu::embedding_backward(dt, gout.data(), DType::i64, idx.data(),
                                                 gw_cpu.data(), cs.n, cs.C, cs.V, true);
      tilegrad::kernels::cpu::embedding_backward(dt, gout.data(), DType::i64, idx.data(),
                                                 overwritten.data(), cs.n, cs.C, cs.V);
      // The CPU's accumulation against the overwriting backward plus the gradient before, in the
      // accumulation type, rows without hits unchanged.
      const std::vector<double> o = decode(dt, overwritten), a = decode(dt, gw_cpu),
                                b = decode(dt, before);
      std::vector<bool> hit(static_cast<size_t>(cs.V), false);
      for (int64_t i = 0; i < cs.n; ++i) {
        int64_t v = 0;
        std::memcpy(&v, idx.data() + i * 8, 8);
        hit[static_cast<size_t>(v)] = true;
      }
      for (int64_t k = 0; k < cs.V * cs.C; ++k) {
        if (!hit[static_cast<size_t>(k / cs.C)]) {
          ASSERT_EQ(0, std::memcmp(gw_cpu.data() + k * es, before.data() + k * es, es)) << k;
        } else {
          ASSERT_NEAR(a[k], b[k] + o[k], 1e-2 * (1.0 + std::abs(b[k] + o[k]))) << k;
        }
      }
      const DeviceBuffer dgout(gout.size()), didx(idx.size()), dgw(before.size());
      dgout.upload(gout.data());
      didx.upload(idx.data());
      dgw.upload(before.data());
      tilegrad::kernels::cuda::embedding_backward(dt, dgout.get(), DType::i64, didx.get(),
                                                  dgw.get(), cs.n, cs.C, cs.V, true, nullptr);
      TG_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_TRUE(download(dgw) == gw_cpu);
    }
  }
}

TEST(CudaEmbedding, FindOutOfRangeReportsTheFirstBadPosition) {
  TG_REQUIRE_GPU();
  const int64_t V = 50257, ignore = -100;
  std::mt19937_64 rng(9);
  for (DType idx_dt : kIndexDTypes) {
    for (int64_t n : {1, 1000, 100000}) {
      SCOPED_TRACE(std::string(tilegrad::dtype_name(idx_dt)) + " n " + std::to_string(n));
      std::uniform_int_distribution<int64_t> any(0, V - 1);
      std::vector<int64_t> idx(static_cast<size_t>(n));
      for (int64_t& v : idx) v = any(rng);
      // Ignored values everywhere (never reported), then bad values at several positions, the
      // earliest not first in writing order.
      for (int64_t i = 0; i < n; i += 7) idx[static_cast<size_t>(i)] = ignore;
      const std::vector<std::pair<int64_t, int64_t>> bad = {
          {n - 1, V},
          {n / 2, -1},
          {n / 3 + 1, V + 7},
          {(2 * n) / 3, idx_dt == DType::i64 ? int64_t{1} << 40 : -5}};
      for (size_t k = 0; k <= bad.size(); ++k) {
        // k = 0: no bad value; then the first k of `bad` are planted.
        std::vector<int64_t> planted = idx;
        int64_t want = -1, want_value = 0;
        for (size_t b = 0; b < k; ++b) {
          const auto [pos, value] = bad[b];
          if (pos >= n) continue;
          planted[static_cast<size_t>(pos)] = value;
        }
        for (int64_t i = 0; i < n && want < 0; ++i) {
          const int64_t v = planted[static_cast<size_t>(i)];
          if ((v < 0 || v >= V) && v != ignore) {
            want = i;
            want_value = v;
          }
        }
        const Bytes bytes = encode_indices(idx_dt, planted);
        const DeviceBuffer didx(bytes.size());
        didx.upload(bytes.data());
        int64_t value = 12345, cpu_value = 12345;
        const int64_t got = tilegrad::kernels::cuda::find_out_of_range(idx_dt, didx.get(), n, 0, V,
                                                                       ignore, &value, nullptr);
        const int64_t cpu = tilegrad::kernels::cpu::find_out_of_range(idx_dt, bytes.data(), n, 0, V,
                                                                      ignore, &cpu_value);
        EXPECT_EQ(got, want) << k << " bad values planted";
        EXPECT_EQ(got, cpu);
        EXPECT_EQ(value, want < 0 ? 12345 : want_value);  // untouched when nothing is found
        EXPECT_EQ(value, cpu_value);
      }
    }
  }
}

TEST(CudaEmbedding, FindOutOfRangeWithALowerBoundAndNoIndices) {
  TG_REQUIRE_GPU();
  const std::vector<int64_t> idx = {12, 19, 10, -1, 9, 20, 15};  // -1 is the ignored value
  const Bytes bytes = encode_indices(DType::i64, idx);
  const DeviceBuffer didx(bytes.size());
  didx.upload(bytes.data());
  int64_t value = 0;
  EXPECT_EQ(tilegrad::kernels::cuda::find_out_of_range(DType::i64, didx.get(), 7, 10, 20, -1,
                                                       &value, nullptr),
            4);
  EXPECT_EQ(value, 9);
  EXPECT_EQ(tilegrad::kernels::cuda::find_out_of_range(DType::i64, didx.get(), 4, 10, 20, -1,
                                                       nullptr, nullptr),
            -1);
  EXPECT_EQ(tilegrad::kernels::cuda::find_out_of_range(DType::i64, didx.get(), 0, 10, 20, -1,
                                                       &value, nullptr),
            -1);
}

TEST(CudaEmbedding, RejectsBadDTypesLikeTheCpu) {
  TG_REQUIRE_GPU();
  const auto expect_same = [](const std::string& cpu, const std::string& gpu) {
    ASSERT_FALSE(cpu.empty());
    EXPECT_EQ(gpu, cpu);
  };
  expect_same(error_of([] {
                tilegrad::kernels::cpu::embedding_forward(DType::f32, nullptr, DType::f64, nullptr,
                                                          nullptr, 1, 1);
              }),
              error_of([] {
                tilegrad::kernels::cuda::embedding_forward(DType::f32, nullptr, DType::f64, nullptr,
                                                           nullptr, 1, 1, nullptr);
              }));
  // The CPU backward checks the index dtype first, then the float dtype.
  const std::pair<DType, DType> bad[] = {{DType::f32, DType::u8}, {DType::i32, DType::i64}};
  for (const auto& [dt, idx_dt] : bad) {
    expect_same(error_of([&] {
                  tilegrad::kernels::cpu::embedding_backward(dt, nullptr, idx_dt, nullptr, nullptr,
                                                             0, 1, 1);
                }),
                error_of([&] {
                  tilegrad::kernels::cuda::embedding_backward(dt, nullptr, idx_dt, nullptr, nullptr,
                                                              0, 1, 1, false, nullptr);
                }));
  }
  expect_same(error_of([] {
                tilegrad::kernels::cpu::find_out_of_range(DType::f32, nullptr, 1, 0, 1, -1,
                                                          nullptr);
              }),
              error_of([] {
                tilegrad::kernels::cuda::find_out_of_range(DType::f32, nullptr, 1, 0, 1, -1,
                                                           nullptr, nullptr);
              }));
}

}  // namespace
