#include "server/auth.h"

#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/server/server_test_util.h"

namespace wfm::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret2"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secre"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  // A prefix padded with NULs must not compare equal.
  EXPECT_FALSE(ConstantTimeEquals(std::string("ab\0", 3), "ab"));
}

TEST(TokenAuthTest, DisabledAcceptsEverything) {
  TokenAuth auth;
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Check(std::nullopt).ok());
  EXPECT_TRUE(auth.Check("Bearer anything").ok());
}

TEST(TokenAuthTest, AcceptsOnlyTheBearerToken) {
  absl::StatusOr<TokenAuth> auth = TokenAuth::FromToken("  s3cr3t-token\n");
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(auth->enabled());
  EXPECT_TRUE(auth->Check("Bearer s3cr3t-token").ok());
  EXPECT_TRUE(auth->Check("bearer s3cr3t-token").ok());
  EXPECT_TRUE(auth->Check("BEARER   s3cr3t-token ").ok());
  for (absl::string_view bad : {"Bearer s3cr3t-toke", "Bearer s3cr3t-token2", "Basic s3cr3t-token",
                                "s3cr3t-token", "Bearer", ""}) {
    absl::Status s = auth->Check(bad);
    EXPECT_TRUE(absl::IsUnauthenticated(s)) << bad;
    // The expected token never appears in a message.
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("s3cr3t"))) << bad;
  }
  absl::Status missing = auth->Check(std::nullopt);
  EXPECT_TRUE(absl::IsUnauthenticated(missing));
  EXPECT_THAT(std::string(missing.message()), HasSubstr("authorization"));
}

TEST(TokenAuthTest, RejectsBadTokens) {
  EXPECT_TRUE(absl::IsInvalidArgument(TokenAuth::FromToken(" \n").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(TokenAuth::FromToken("two words").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(TokenAuth::FromToken("caf\xc3\xa9").status()));
}

TEST(TokenAuthTest, ReadsTheTokenFile) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/token";
  std::ofstream(path) << "file-token\n";
  absl::StatusOr<TokenAuth> auth = TokenAuth::FromFile(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(auth->Check("Bearer file-token").ok());
  EXPECT_TRUE(absl::IsNotFound(TokenAuth::FromFile(dir.path() + "/missing").status()));
  std::ofstream(dir.path() + "/empty") << "   ";
  absl::Status empty = TokenAuth::FromFile(dir.path() + "/empty").status();
  EXPECT_TRUE(absl::IsInvalidArgument(empty));
  EXPECT_THAT(std::string(empty.message()), HasSubstr("auth-token-file"));
}

}  // namespace
}  // namespace wfm::server
