// The loader's data-parallel shards (cudl_loader_config rank and world):
// the union of the ranks' batches is, byte for byte, the batch of one
// loader with world times the batch, in order, shuffled and augmented, at
// every batch of several epochs, through seeks, with and without
// drop_last; and the configurations that cannot be sharded are refused.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

#define EXPECT_STATUS(expected, expr) \
  EXPECT_STREQ(cudl_status_name(expected), cudl_status_name(expr))
#define ASSERT_STATUS(expected, expr) \
  ASSERT_STREQ(cudl_status_name(expected), cudl_status_name(expr))

namespace {

struct Batch {
  std::vector<float> x;
  std::vector<int32_t> labels;
  int64_t rows = -1;
  int done = -1;
};

class ShardTest : public ::testing::Test {
 protected:
  // 23 images of 2x5x4 (a prime count, so that global batches of 2x3 and
  // 3x3 end partial), 7 classes.
  static constexpr int64_t kCount = 23;
  static constexpr int kC = 2, kH = 5, kW = 4;

  void SetUp() override {
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_));
    std::vector<uint8_t> pixels(static_cast<size_t>(kCount) * kC * kH * kW), labels;
    for (size_t i = 0; i < pixels.size(); ++i)
      pixels[i] = static_cast<uint8_t>((i * 131 + i / 7 + 3) % 256);
    for (int64_t i = 0; i < kCount; ++i) labels.push_back(static_cast<uint8_t>((i * 3 + 2) % 7));
    ASSERT_STATUS(CUDL_OK, cudl_dataset_create(ctx_, kCount, kC, kH, kW, 7, pixels.data(),
                                               labels.data(), &ds_));
  }
  void TearDown() override {
    cudl_dataset_destroy(ds_);
    cudl_context_destroy(ctx_);
  }

  static cudl_loader_config Config(int64_t batch, int rank, int world, bool drop_last) {
    cudl_loader_config c = cudl_loader_config_default();
    c.batch = batch;
    c.shuffle = 1;
    c.seed = 0x5eed1234abcdull;
    c.drop_last = drop_last;
    c.augment = 1;
    c.crop_padding = 2;
    c.horizontal_flip = 1;
    c.mean[0] = 0.25f;
    c.std[1] = 0.5f;
    c.rank = rank;
    c.world = world;
    return c;
  }

  // The next batch of l, read through tensors of `batch` rows.
  Batch Next(cudl_loader *l, int64_t batch) {
    Batch b;
    cudl_tensor *x = nullptr, *y = nullptr;
    const int64_t xs[4] = {batch, kC, kH, kW}, ys[1] = {batch};
    EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, xs, &x));
    EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, ys, &y));
    EXPECT_STATUS(CUDL_OK, cudl_loader_next(l, x, y, &b.rows, &b.done))
        << cudl_context_last_error(ctx_);
    b.x = cudl_test::ReadF32(x);
    b.labels.resize(static_cast<size_t>(batch));
    EXPECT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(y, b.labels.data(), b.labels.size() * 4));
    b.x.resize(static_cast<size_t>(b.rows) * kC * kH * kW);
    b.labels.resize(static_cast<size_t>(b.rows));
    cudl_tensor_destroy(x);
    cudl_tensor_destroy(y);
    return b;
  }

  // Every batch of `epochs` epochs from rank loaders of world x batch
  // against one loader of world * batch, starting at (epoch0, batch0).
  void Compare(int world, int64_t batch, bool drop_last, int64_t epoch0, int64_t batch0,
               int epochs) {
    SCOPED_TRACE("world " + std::to_string(world) + ", batch " + std::to_string(batch) +
                 (drop_last ? ", drop_last" : ""));
    const cudl_loader_config whole_config = Config(world * batch, 0, 1, drop_last);
    cudl_loader *whole = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_loader_create(ctx_, ds_, &whole_config, &whole));
    std::vector<cudl_loader *> ranks(static_cast<size_t>(world), nullptr);
    for (int r = 0; r < world; ++r) {
      const cudl_loader_config c = Config(batch, r, world, drop_last);
      ASSERT_STATUS(CUDL_OK, cudl_loader_create(ctx_, ds_, &c, &ranks[static_cast<size_t>(r)]));
      EXPECT_EQ(cudl_loader_batches(ranks[static_cast<size_t>(r)]), cudl_loader_batches(whole));
      ASSERT_STATUS(CUDL_OK, cudl_loader_seek(ranks[static_cast<size_t>(r)], epoch0, batch0));
    }
    ASSERT_STATUS(CUDL_OK, cudl_loader_seek(whole, epoch0, batch0));
    const int64_t batches = cudl_loader_batches(whole);
    const int64_t steps = epochs * batches - batch0;
    int empty_shards = 0;
    for (int64_t s = 0; s < steps; ++s) {
      SCOPED_TRACE("step " + std::to_string(s));
      const Batch want = Next(whole, world * batch);
      Batch got;
      got.rows = 0;
      for (int r = 0; r < world; ++r) {
        const Batch part = Next(ranks[static_cast<size_t>(r)], batch);
        EXPECT_EQ(part.done, want.done);
        EXPECT_LE(part.rows, batch);
        if (part.rows == 0) ++empty_shards;
        got.rows += part.rows;
        got.x.insert(got.x.end(), part.x.begin(), part.x.end());
        got.labels.insert(got.labels.end(), part.labels.begin(), part.labels.end());
      }
      EXPECT_EQ(got.rows, want.rows);
      EXPECT_TRUE(cudl_test::BitEqual(got.x, want.x));
      EXPECT_EQ(got.labels, want.labels);
    }
    // World 3 x batch 3 without drop_last ends each epoch with 5 images:
    // ranks of 3, 2 and 0 rows.
    if (world == 3 && batch == 3 && !drop_last) {
      EXPECT_GT(empty_shards, 0);
    }
    for (cudl_loader *l : ranks) cudl_loader_destroy(l);
    cudl_loader_destroy(whole);
  }

  cudl_context *ctx_ = nullptr;
  cudl_dataset *ds_ = nullptr;
};

TEST_F(ShardTest, DefaultIsOneRank) {
  const cudl_loader_config c = cudl_loader_config_default();
  EXPECT_EQ(c.rank, 0);
  EXPECT_EQ(c.world, 1);
}

TEST_F(ShardTest, UnionIsTheWholeBatchDropLast) {
  Compare(2, 3, true, 0, 0, 3);
  Compare(3, 2, true, 0, 0, 3);
}

TEST_F(ShardTest, UnionIsTheWholeBatchWithPartialLast) {
  Compare(2, 3, false, 0, 0, 3);  // 23 = 3 x 6 + 5: ranks of 3 and 2 rows
  Compare(3, 3, false, 0, 0, 2);  // 23 = 2 x 9 + 5: a rank with no rows
}

TEST_F(ShardTest, UnionAfterSeek) {
  Compare(2, 2, true, 4, 3, 2);
  Compare(3, 2, false, 1, 2, 2);
}

TEST_F(ShardTest, BadWorldsRefused) {
  cudl_loader *l = nullptr;
  cudl_loader_config c = Config(2, 0, 0, false);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, &c, &l));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "world"), nullptr);
  EXPECT_EQ(l, nullptr);
  c = Config(2, 2, 2, false);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, &c, &l));
  c = Config(2, -1, 2, false);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, &c, &l));
  c = Config(INT64_MAX / 2, 0, 3, false);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, &c, &l));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "overflows"), nullptr);
  // 4 x 6 = 24 > 23 images: drop_last leaves no global batch, although
  // one rank's batch of 6 would fit.
  c = Config(6, 1, 4, true);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, &c, &l));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "drop_last"), nullptr);
  c = Config(6, 1, 3, true);
  ASSERT_STATUS(CUDL_OK, cudl_loader_create(ctx_, ds_, &c, &l));
  EXPECT_EQ(cudl_loader_batches(l), 1);
  cudl_loader_destroy(l);
}

}  // namespace
