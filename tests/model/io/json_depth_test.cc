#include "model/io/json_depth.h"

#include <string>

#include <gtest/gtest.h>

namespace wfm::model::io {
namespace {

std::string Nested(int depth, char open, char close) {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(JsonDepthTest, CountsNestingOfArraysAndObjects) {
  EXPECT_FALSE(JsonTooDeep("{}", 1));
  EXPECT_TRUE(JsonTooDeep("{\"a\": {}}", 1));
  EXPECT_FALSE(JsonTooDeep("[[], [], {\"x\": [1]}]", 3));
  EXPECT_TRUE(JsonTooDeep("[[], [], {\"x\": [1]}]", 2));
  EXPECT_FALSE(JsonTooDeep(Nested(kMaxJsonDepth, '[', ']')));
  EXPECT_TRUE(JsonTooDeep(Nested(kMaxJsonDepth + 1, '[', ']')));
  EXPECT_TRUE(JsonTooDeep(Nested(100000, '{', '}')));
}

TEST(JsonDepthTest, IgnoresBracketsInStringsAndEscapes) {
  EXPECT_FALSE(JsonTooDeep("{\"k\": \"[[[[{{{{\"}", 1));
  EXPECT_FALSE(JsonTooDeep("{\"k\": \"\\\"[[[[\"}", 1));  // an escaped quote does not end the string
  EXPECT_TRUE(JsonTooDeep("{\"k\\\\\": [[]]}", 2));        // an escaped backslash does
}

TEST(JsonDepthTest, TakesTextThatIsNotJson) {
  EXPECT_FALSE(JsonTooDeep("]]]]", 1));
  EXPECT_TRUE(JsonTooDeep("[[ unterminated", 1));
}

}  // namespace
}  // namespace wfm::model::io
