// test_status.cpp - status text and names, the version functions, and the
// small name tables (dtype, log level).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "cudl/cudl.h"

namespace {

struct StatusCase {
  cudl_status status;
  const char *name;
};

// Every enumerator in cudl/status.h, spelled as its name must come back.
const StatusCase kAllStatuses[] = {
    {CUDL_OK, "CUDL_OK"},
    {CUDL_ERR_INVALID_ARGUMENT, "CUDL_ERR_INVALID_ARGUMENT"},
    {CUDL_ERR_SHAPE, "CUDL_ERR_SHAPE"},
    {CUDL_ERR_DTYPE, "CUDL_ERR_DTYPE"},
    {CUDL_ERR_DEVICE_MISMATCH, "CUDL_ERR_DEVICE_MISMATCH"},
    {CUDL_ERR_UNSUPPORTED, "CUDL_ERR_UNSUPPORTED"},
    {CUDL_ERR_OUT_OF_MEMORY, "CUDL_ERR_OUT_OF_MEMORY"},
    {CUDL_ERR_NO_DEVICE, "CUDL_ERR_NO_DEVICE"},
    {CUDL_ERR_CUDA, "CUDL_ERR_CUDA"},
    {CUDL_ERR_IO, "CUDL_ERR_IO"},
    {CUDL_ERR_NUMERICS, "CUDL_ERR_NUMERICS"},
    {CUDL_ERR_FILE_TRUNCATED, "CUDL_ERR_FILE_TRUNCATED"},
    {CUDL_ERR_FILE_HEADER_SIZE, "CUDL_ERR_FILE_HEADER_SIZE"},
    {CUDL_ERR_FILE_JSON, "CUDL_ERR_FILE_JSON"},
    {CUDL_ERR_FILE_SCHEMA, "CUDL_ERR_FILE_SCHEMA"},
    {CUDL_ERR_FILE_DTYPE, "CUDL_ERR_FILE_DTYPE"},
    {CUDL_ERR_FILE_SHAPE, "CUDL_ERR_FILE_SHAPE"},
    {CUDL_ERR_FILE_OFFSETS, "CUDL_ERR_FILE_OFFSETS"},
    {CUDL_ERR_FILE_DUPLICATE, "CUDL_ERR_FILE_DUPLICATE"},
    {CUDL_ERR_FILE_METADATA, "CUDL_ERR_FILE_METADATA"},
    {CUDL_ERR_FILE_TRAILING_DATA, "CUDL_ERR_FILE_TRAILING_DATA"},
    {CUDL_ERR_FILE_FORMAT, "CUDL_ERR_FILE_FORMAT"},
    {CUDL_ERR_FILE_COMPRESSION, "CUDL_ERR_FILE_COMPRESSION"},
    {CUDL_ERR_FILE_VALUE, "CUDL_ERR_FILE_VALUE"},
    {CUDL_ERR_INTERNAL, "CUDL_ERR_INTERNAL"},
};

// Integers between and around the defined codes that name no status. All
// stay in 0..127, the range of values a C++ program may hold in an enum
// whose enumerators span 0..99 (a wider cast would be undefined behaviour
// in the test itself).
const int kUnknownValues[] = {11, 12, 19, 33, 50, 98, 100, 127};

TEST(Status, EveryStatusHasItsOwnName) {
  std::set<std::string> names;
  for (const StatusCase &c : kAllStatuses) {
    const char *name = cudl_status_name(c.status);
    ASSERT_NE(name, nullptr) << static_cast<int>(c.status);
    EXPECT_STREQ(name, c.name) << "value " << static_cast<int>(c.status);
    names.insert(name);
  }
  EXPECT_EQ(names.size(), sizeof kAllStatuses / sizeof kAllStatuses[0]);
}

TEST(Status, EveryStatusHasDistinctNonEmptyText) {
  std::set<std::string> texts;
  for (const StatusCase &c : kAllStatuses) {
    const char *text = cudl_status_string(c.status);
    ASSERT_NE(text, nullptr) << c.name;
    EXPECT_GT(std::strlen(text), 0u) << c.name;
    EXPECT_STRNE(text, "unknown status") << c.name << " has the fallback text";
    EXPECT_STRNE(text, c.name) << c.name << ": the text should describe, not repeat the name";
    texts.insert(text);
  }
  EXPECT_EQ(texts.size(), sizeof kAllStatuses / sizeof kAllStatuses[0])
      << "two statuses share a description";
}

TEST(Status, SpecificTexts) {
  // The header quotes this one as the example.
  EXPECT_STREQ(cudl_status_string(CUDL_ERR_OUT_OF_MEMORY), "out of memory");
  EXPECT_STREQ(cudl_status_string(CUDL_OK), "success");
}

TEST(Status, UnknownValuesGetTheFallbacks) {
  for (int v : kUnknownValues) {
    const cudl_status s = static_cast<cudl_status>(v);
    ASSERT_NE(cudl_status_string(s), nullptr) << v;
    ASSERT_NE(cudl_status_name(s), nullptr) << v;
    EXPECT_STREQ(cudl_status_string(s), "unknown status") << v;
    EXPECT_STREQ(cudl_status_name(s), "CUDL_STATUS_UNKNOWN") << v;
  }
}

TEST(Status, StringsAreStatic) {
  // Static text: the same pointer on every call, still valid afterwards.
  const char *a = cudl_status_string(CUDL_ERR_SHAPE);
  const char *b = cudl_status_string(CUDL_ERR_SHAPE);
  EXPECT_EQ(a, b);
  EXPECT_EQ(cudl_status_name(CUDL_ERR_SHAPE), cudl_status_name(CUDL_ERR_SHAPE));
}

TEST(Version, RuntimeMatchesHeaderMacros) {
  ASSERT_NE(cudl_version(), nullptr);
  EXPECT_STREQ(cudl_version(), CUDL_VERSION_STRING);
  EXPECT_EQ(cudl_version_number(), CUDL_VERSION_NUMBER);
}

TEST(Version, MacrosAreConsistent) {
  EXPECT_EQ(CUDL_VERSION_NUMBER,
            CUDL_VERSION_MAJOR * 10000 + CUDL_VERSION_MINOR * 100 + CUDL_VERSION_PATCH);
  char expected[64];
  std::snprintf(expected, sizeof expected, "%d.%d.%d", CUDL_VERSION_MAJOR,
                CUDL_VERSION_MINOR, CUDL_VERSION_PATCH);
  EXPECT_STREQ(CUDL_VERSION_STRING, expected);
  // MINOR and PATCH must fit their two decimal digits for the number to order.
  EXPECT_GE(CUDL_VERSION_MINOR, 0);
  EXPECT_LT(CUDL_VERSION_MINOR, 100);
  EXPECT_GE(CUDL_VERSION_PATCH, 0);
  EXPECT_LT(CUDL_VERSION_PATCH, 100);
}

TEST(Names, Dtypes) {
  EXPECT_STREQ(cudl_dtype_name(CUDL_DTYPE_F32), "f32");
  EXPECT_STREQ(cudl_dtype_name(CUDL_DTYPE_F16), "f16");
  EXPECT_STREQ(cudl_dtype_name(CUDL_DTYPE_BF16), "bf16");
  EXPECT_STREQ(cudl_dtype_name(CUDL_DTYPE_I32), "i32");
  // 7 is within the enum's value range (0..7) but names no dtype.
  EXPECT_STREQ(cudl_dtype_name(static_cast<cudl_dtype>(7)), "unknown");
  EXPECT_EQ(cudl_dtype_size(CUDL_DTYPE_F32), 4u);
  EXPECT_EQ(cudl_dtype_size(CUDL_DTYPE_F16), 2u);
  EXPECT_EQ(cudl_dtype_size(CUDL_DTYPE_BF16), 2u);
  EXPECT_EQ(cudl_dtype_size(CUDL_DTYPE_I32), 4u);
  EXPECT_EQ(cudl_dtype_size(static_cast<cudl_dtype>(7)), 0u);
}

TEST(Names, LogLevels) {
  EXPECT_STREQ(cudl_log_level_name(CUDL_LOG_DEBUG), "debug");
  EXPECT_STREQ(cudl_log_level_name(CUDL_LOG_INFO), "info");
  EXPECT_STREQ(cudl_log_level_name(CUDL_LOG_WARN), "warn");
  EXPECT_STREQ(cudl_log_level_name(CUDL_LOG_ERROR), "error");
}

}  // namespace
