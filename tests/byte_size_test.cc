// The one byte-count grammar of boa-client and boad.
#include "common/util/byte_size.h"

#include <gtest/gtest.h>

namespace boa {
namespace {

TEST(ByteSize, NumbersAndBinaryUnits) {
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("65536"), 65536u);
  for (const char* k : {"64K", "64k", "64KiB", "64KB"}) EXPECT_EQ(*ParseByteSize(k), 65536u) << k;
  for (const char* m : {"3M", "3MiB", "3MB"}) EXPECT_EQ(*ParseByteSize(m), 3u << 20) << m;
  EXPECT_EQ(*ParseByteSize("4G"), 4ull << 30);
  EXPECT_EQ(*ParseByteSize("2TiB"), 2ull << 40);
  EXPECT_EQ(*ParseByteSize("18446744073709551615"), UINT64_MAX);
}

TEST(ByteSize, EverythingElseIsRefusedNamingTheText) {
  for (const char* bad : {"", "-5", "+5", " 5", "5 ", "1.5M", "K", "5Q", "5kib", "0x10"}) {
    Result<uint64_t> r = ParseByteSize(bad);
    ASSERT_FALSE(r.ok()) << "'" << bad << "'";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::string("'") + bad + "'"), std::string::npos) << r.status().message();
  }
  for (const char* big : {"18446744073709551616", "16777216T", "99999999999999999999999"}) {
    Result<uint64_t> r = ParseByteSize(big);
    ASSERT_FALSE(r.ok()) << big;
    EXPECT_NE(r.status().message().find("too large"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace boa
