// test_data_split.cpp - cudl_dataset_split (cudl/data.h): a seeded,
// stratified split into the images kept and those held out.
//
//  * exact per-class counts of the held-out part: round(fraction * n),
//    halves up, at least 1 and at most n - 1 of a class of 2 or more, none
//    of a class of 1;
//  * the two parts are disjoint and together exactly the original images
//    (every image is tagged by its pixels), each a subsequence of the
//    original order, with its classes, shape and source files;
//  * the same seed gives the same split, different seeds different ones;
//  * bad arguments give CUDL_ERR_INVALID_ARGUMENT with the detail in the
//    context, leave the outputs NULL and the dataset usable; allocation
//    failure at every point leaks nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "data/data_internal.h"
#include "test_util.h"

namespace {

using cudl_test::CountingAllocator;
using cudl_test::HasSubstr;

#define EXPECT_STATUS(expected, expr) \
  EXPECT_STREQ(cudl_status_name(expected), cudl_status_name(expr))
#define ASSERT_STATUS(expected, expr) \
  ASSERT_STREQ(cudl_status_name(expected), cudl_status_name(expr))

// Images of 1 x 2 x 2 bytes whose first three bytes are the image's index
// (little-endian, 24 bits): an image says where it came from.
constexpr int kSide = 2;
constexpr size_t kImageBytes = kSide * kSide;

cudl_dataset *MakeDataset(cudl_context *ctx, const std::vector<uint8_t> &labels, int classes) {
  std::vector<uint8_t> pixels(labels.size() * kImageBytes);
  for (size_t i = 0; i < labels.size(); ++i) {
    pixels[i * kImageBytes + 0] = static_cast<uint8_t>(i);
    pixels[i * kImageBytes + 1] = static_cast<uint8_t>(i >> 8);
    pixels[i * kImageBytes + 2] = static_cast<uint8_t>(i >> 16);
    pixels[i * kImageBytes + 3] = labels[i];
  }
  cudl_dataset *ds = nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_dataset_create(ctx, static_cast<int64_t>(labels.size()), 1, kSide,
                                             kSide, classes, pixels.data(), labels.data(), &ds));
  return ds;
}

// The original index of each image of ds, checking its label came with it.
std::vector<int64_t> Origins(const cudl_dataset *ds) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < cudl_dataset_count(ds); ++i) {
    const uint8_t *px = cudl_dataset_image(ds, i);
    out.push_back(px[0] | px[1] << 8 | px[2] << 16);
    EXPECT_EQ(px[3], cudl_dataset_label(ds, i)) << "image " << i << " lost its label";
  }
  return out;
}

// Labels: class c has counts[c] images, interleaved round-robin so that
// classes are not in blocks.
std::vector<uint8_t> Labels(const std::vector<int> &counts) {
  std::vector<uint8_t> labels;
  std::vector<int> left = counts;
  for (bool any = true; any;) {
    any = false;
    for (size_t c = 0; c < left.size(); ++c)
      if (left[c] > 0) {
        labels.push_back(static_cast<uint8_t>(c));
        --left[c];
        any = true;
      }
  }
  return labels;
}

class SplitTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_)); }
  void TearDown() override { cudl_context_destroy(ctx_); }
  cudl_context *ctx_ = nullptr;
};

// Split ds and check the invariants every split keeps; the held-out
// origins.
std::vector<int64_t> SplitAndCheck(const cudl_dataset *ds, double fraction, uint64_t seed,
                                   const std::vector<int64_t> &expected_held_per_class) {
  cudl_dataset *rest = nullptr, *held = nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_dataset_split(ds, fraction, seed, &rest, &held));
  if (rest == nullptr || held == nullptr) return {};
  const std::vector<int64_t> a = Origins(rest), b = Origins(held);
  std::vector<int64_t> per_class(expected_held_per_class.size(), 0);
  for (int64_t i = 0; i < cudl_dataset_count(held); ++i) ++per_class[cudl_dataset_label(held, i)];
  EXPECT_EQ(per_class, expected_held_per_class);
  // Disjoint, and together exactly the original images.
  std::set<int64_t> all(a.begin(), a.end());
  for (int64_t o : b) EXPECT_TRUE(all.insert(o).second) << "image " << o << " is in both parts";
  EXPECT_EQ(static_cast<int64_t>(all.size()), cudl_dataset_count(ds));
  EXPECT_EQ(static_cast<int64_t>(a.size() + b.size()), cudl_dataset_count(ds));
  if (!all.empty()) {
    EXPECT_EQ(*all.begin(), 0);
    EXPECT_EQ(*all.rbegin(), cudl_dataset_count(ds) - 1);
  }
  // Each part in the original order.
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  for (const cudl_dataset *part : {rest, held}) {
    EXPECT_EQ(cudl_dataset_classes(part), cudl_dataset_classes(ds));
    EXPECT_EQ(cudl_dataset_channels(part), cudl_dataset_channels(ds));
    EXPECT_EQ(cudl_dataset_height(part), cudl_dataset_height(ds));
    EXPECT_EQ(cudl_dataset_width(part), cudl_dataset_width(ds));
  }
  cudl_dataset_destroy(rest);
  cudl_dataset_destroy(held);
  return b;
}

TEST_F(SplitTest, ExactPerClassCounts) {
  // Classes of 10, 7, 4, 2, 1 and 0 images.
  cudl_dataset *ds = MakeDataset(ctx_, Labels({10, 7, 4, 2, 1, 0}), 6);
  ASSERT_NE(ds, nullptr);
  // 0.25: 2.5 -> 3 (half up), 1.75 -> 2, 1, 0.5 -> 1, none of 1, none of 0.
  SplitAndCheck(ds, 0.25, 1, {3, 2, 1, 1, 0, 0});
  // 0.1: 1, 0.7 -> 1, 0.4 -> 0 raised to 1, 0.2 -> 0 raised to 1.
  SplitAndCheck(ds, 0.1, 1, {1, 1, 1, 1, 0, 0});
  // 0.9: 9, 6.3 -> 6, 3.6 -> 4 lowered to 3, 1.8 -> 2 lowered to 1.
  SplitAndCheck(ds, 0.9, 1, {9, 6, 3, 1, 0, 0});
  // 0.5: 5, 3.5 -> 4, 2, 1.
  SplitAndCheck(ds, 0.5, 7, {5, 4, 2, 1, 0, 0});
  cudl_dataset_destroy(ds);
}

TEST_F(SplitTest, LargeClassesAndSources) {
  std::vector<int> counts = {600, 1000, 333, 1};
  cudl_dataset *ds = MakeDataset(ctx_, Labels(counts), 4);
  ASSERT_NE(ds, nullptr);
  SplitAndCheck(ds, 0.1, 42, {60, 100, 33, 0});
  SplitAndCheck(ds, 1.0 / 3.0, 42, {200, 333, 111, 0});
  // Both parts name the files the images came from (as a reader's do) and
  // the classes.
  const char *paths[2] = {"a-images", "a-labels"};
  ASSERT_STATUS(CUDL_OK, cudl__dataset_set_sources(ctx_, "test", ds, paths, 2));
  const char *names[4] = {"cat", "dog", "owl", "yak"};
  ASSERT_STATUS(CUDL_OK, cudl_dataset_set_class_names(ctx_, ds, names, 4));
  cudl_dataset *rest = nullptr, *held = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_dataset_split(ds, 0.5, 1, &rest, &held));
  for (const cudl_dataset *part : {rest, held}) {
    EXPECT_STREQ(cudl_dataset_source(part, 0), "a-images");
    EXPECT_STREQ(cudl_dataset_source(part, 1), "a-labels");
    EXPECT_EQ(cudl_dataset_source(part, 2), nullptr);
    for (int c = 0; c < 4; ++c) EXPECT_STREQ(cudl_dataset_class_name(part, c), names[c]);
  }
  cudl_dataset_destroy(rest);
  cudl_dataset_destroy(held);
  cudl_dataset_destroy(ds);
}

TEST_F(SplitTest, DeterministicForASeedAndDifferentAcrossSeeds) {
  cudl_dataset *ds = MakeDataset(ctx_, Labels({50, 50, 50}), 3);
  ASSERT_NE(ds, nullptr);
  const std::vector<int64_t> first = SplitAndCheck(ds, 0.2, 5, {10, 10, 10});
  EXPECT_EQ(SplitAndCheck(ds, 0.2, 5, {10, 10, 10}), first);
  std::set<std::vector<int64_t>> seen = {first};
  for (uint64_t seed : {uint64_t{0}, uint64_t{6}, uint64_t{1} << 32, ~uint64_t{0}})
    seen.insert(SplitAndCheck(ds, 0.2, seed, {10, 10, 10}));
  EXPECT_EQ(seen.size(), 5u) << "some seeds gave the same split";
  // Not simply the first images of each class.
  std::vector<int64_t> firsts;
  for (int64_t i = 0; i < 30; ++i) firsts.push_back(i);
  EXPECT_NE(first, firsts);
  cudl_dataset_destroy(ds);
}

TEST_F(SplitTest, BadArguments) {
  cudl_dataset *ds = MakeDataset(ctx_, Labels({3, 3}), 2);
  ASSERT_NE(ds, nullptr);
  cudl_dataset *rest = reinterpret_cast<cudl_dataset *>(1);
  cudl_dataset *held = reinterpret_cast<cudl_dataset *>(1);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_split(nullptr, 0.5, 1, &rest, &held));
  EXPECT_EQ(rest, nullptr);
  EXPECT_EQ(held, nullptr);
  for (double bad : {0.0, 1.0, -0.5, 1.5, double(NAN), double(INFINITY)}) {
    SCOPED_TRACE(bad);
    rest = held = reinterpret_cast<cudl_dataset *>(1);
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_split(ds, bad, 1, &rest, &held));
    EXPECT_EQ(rest, nullptr);
    EXPECT_EQ(held, nullptr);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "fraction"))
        << cudl_context_last_error(ctx_);
  }
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_split(ds, 0.5, 1, nullptr, &held));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "rest"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_split(ds, 0.5, 1, &rest, nullptr));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "held_out"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_split(ds, 0.5, 1, &rest, &rest));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "same"));
  // Still usable.
  SplitAndCheck(ds, 0.5, 1, {2, 2});
  cudl_dataset_destroy(ds);

  // Nothing to hold out: every class has one image.
  ds = MakeDataset(ctx_, Labels({1, 1, 1}), 3);
  ASSERT_NE(ds, nullptr);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_split(ds, 0.5, 1, &rest, &held));
  EXPECT_EQ(rest, nullptr);
  EXPECT_EQ(held, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "no class has 2 images"));
  cudl_dataset_destroy(ds);
}

TEST(SplitAllocation, FailureAtEveryPointLeaksNothing) {
  size_t k = 1;
  for (;; ++k) {
    SCOPED_TRACE("allocation " + std::to_string(k) + " fails");
    CountingAllocator counting;
    cudl_context *ctx = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx));
    cudl_allocator hooks = counting.hooks();
    ASSERT_STATUS(CUDL_OK, cudl_context_set_allocator(ctx, &hooks));
    cudl_dataset *ds = MakeDataset(ctx, Labels({4, 4}), 2);
    ASSERT_NE(ds, nullptr);
    counting.fail_at = counting.allocs + k;
    cudl_dataset *rest = nullptr, *held = nullptr;
    const cudl_status st = cudl_dataset_split(ds, 0.5, 3, &rest, &held);
    const bool failed = counting.failed != 0;
    if (!failed) {
      ASSERT_STATUS(CUDL_OK, st);
      EXPECT_EQ(cudl_dataset_count(rest), 4);
      EXPECT_EQ(cudl_dataset_count(held), 4);
    } else {
      EXPECT_STATUS(CUDL_ERR_OUT_OF_MEMORY, st);
      EXPECT_EQ(rest, nullptr);
      EXPECT_EQ(held, nullptr);
      EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "allocate"));
    }
    cudl_dataset_destroy(rest);
    cudl_dataset_destroy(held);
    cudl_dataset_destroy(ds);
    EXPECT_TRUE(counting.live.empty()) << counting.live.size() << " blocks leaked";
    cudl_context_destroy(ctx);
    if (!failed) break;
  }
  EXPECT_GE(k, 7u) << "allocations counted";
}

}  // namespace
