#include "repository/names.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wfm::repository {
namespace {

using ::testing::HasSubstr;

TEST(ValidateNameTest, AcceptsTheAllowedCharacters) {
  EXPECT_TRUE(ValidateName("model", "a").ok());
  EXPECT_TRUE(ValidateName("model", "Model_1.v2-final").ok());
  EXPECT_TRUE(ValidateName("model", ".hidden").ok());
  EXPECT_TRUE(ValidateName("model", std::string(64, 'x')).ok());
}

TEST(ValidateNameTest, RejectsEmptyLongAndReservedNames) {
  absl::Status empty = ValidateName("model", "");
  EXPECT_TRUE(absl::IsInvalidArgument(empty));
  EXPECT_THAT(std::string(empty.message()), HasSubstr("model: a name is required"));
  absl::Status longer = ValidateName("header.name", std::string(65, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(longer));
  EXPECT_THAT(std::string(longer.message()), HasSubstr("header.name"));
  EXPECT_THAT(std::string(longer.message()), HasSubstr("64"));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateName("model", ".")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateName("model", "..")));
}

TEST(ValidateNameTest, RejectsPathAndControlCharacters) {
  for (const char* bad : {"a/b", "../x", "a b", "a\\b", "tab\tname", "ümlaut", "a~b", "a:b"}) {
    absl::Status s = ValidateName("dataset", bad);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr("dataset: name may only hold")) << bad;
  }
  // Bytes outside printable ASCII are shown as hex, never echoed raw.
  absl::Status s = ValidateName("model", std::string("a\x01z"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("byte 0x1"));
}

}  // namespace
}  // namespace wfm::repository
