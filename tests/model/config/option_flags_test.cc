#include "model/config/option_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wfm::model {
namespace {

using ::testing::HasSubstr;

// Parses `args` (without the program name) with every option flag.
struct Parsed {
  GivenOptions given;
  std::string error;  // CLI11's message when parsing failed
};

Parsed Parse(std::vector<std::string> args) {
  CLI::App app("test");
  Parsed p;
  AddTrainingOptionFlags(&app, &p.given);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    p.error = e.what();
  }
  return p;
}

TEST(OptionFlagsTest, EveryOptionIsAFlagWithItsDefaultInTheHelp) {
  CLI::App app("test");
  GivenOptions given;
  AddTrainingOptionFlags(&app, &given);
  const std::string help = app.help();
  for (const TrainingOption& o : TrainingOptions()) {
    EXPECT_THAT(help, HasSubstr("--" + o.name)) << o.name;
    if (!o.DefaultText().empty()) {
      EXPECT_THAT(help, HasSubstr("default: " + o.DefaultText())) << o.name;
    }
  }
  EXPECT_THAT(help, HasSubstr("in [1, 100000000]"));  // --steps' range
}

TEST(OptionFlagsTest, KeepsTheGivenTextByName) {
  const Parsed p = Parse({"--steps", "30", "--monge-map", "argmax", "--minibatch-ot", "off"});
  ASSERT_TRUE(p.error.empty()) << p.error;
  EXPECT_EQ(p.given,
            (GivenOptions{{"steps", "30"}, {"monge-map", "argmax"}, {"minibatch-ot", "off"}}));
}

TEST(OptionFlagsTest, WrongTypesAndSharedRangesAreUsageErrors) {
  EXPECT_THAT(Parse({"--steps", "0"}).error, HasSubstr("must be in [1, 100000000], got 0"));
  EXPECT_THAT(Parse({"--steps", "ten"}).error, HasSubstr("expected an integer"));
  EXPECT_THAT(Parse({"--lr", "-1"}).error, HasSubstr("must be a finite number > 0"));
  EXPECT_THAT(Parse({"--holdout", "1"}).error, HasSubstr("must be in [0, 1)"));
  // A named choice must be one of some family's; whether the family takes it,
  // and booleans, wait for the family.
  EXPECT_THAT(Parse({"--monge-map", "telepathy"}).error, HasSubstr("unknown 'telepathy'"));
  EXPECT_THAT(Parse({"--noise", "pink"}).error, HasSubstr("unknown 'pink'"));
  EXPECT_TRUE(Parse({"--noise", "wishart", "--minibatch-ot", "sometimes"}).error.empty());
  EXPECT_TRUE(Parse({"--source-dataset", "any-name"}).error.empty());
}

TEST(OptionFlagsTest, ResolvingForAFamilyChecksWhatTheFamilyTakes) {
  auto resolved = ResolveGivenOptions({{"steps", "30"}, {"noise", "wishart"}}, Family::kGaussian);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_EQ(resolved->size(), 2u);
  TrainingConfig c;
  c.family = Family::kGaussian;
  ApplyGivenOptions(*resolved, &c);
  EXPECT_EQ(c.gaussian.optimizer.steps, 30);
  EXPECT_EQ(c.gaussian.source, GaussianSource::kWishart);
  EXPECT_EQ(c.pointcloud.optimizer.steps, OptimizerConfig{}.steps);

  EXPECT_EQ(ResolveGivenOptions({{"monge-map", "argmax"}}, Family::kGaussian).status().message(),
            "--monge-map does not apply to --family gaussian (it is a pointcloud option)");
  EXPECT_THAT(ResolveGivenOptions({{"noise", "wishart"}}, Family::kPointCloud).status().message(),
              HasSubstr("--noise wishart: unknown 'wishart' (expected one of uniform, normal"));
  EXPECT_EQ(
      ResolveGivenOptions({{"minibatch-ot", "sometimes"}}, Family::kPointCloud).status().message(),
      "--minibatch-ot sometimes: expected on or off");
  EXPECT_THAT(ResolveGivenOptions({{"warp", "9"}}, Family::kPointCloud).status().message(),
              HasSubstr("--warp: not a training option"));
}

TEST(OptionFlagsTest, WithoutAFamilyEachFamilyKeepsWhatItTakes) {
  TrainingConfig c;
  ASSERT_TRUE(ApplyGivenOptionsToEitherFamily(
                  {{"noise", "wishart"}, {"monge-map", "argmax"}, {"steps", "40"}}, &c)
                  .ok());
  EXPECT_EQ(c.gaussian.source, GaussianSource::kWishart);
  EXPECT_EQ(c.pointcloud.source, PointCloudSource::kCholNormal);  // not a point-cloud source
  EXPECT_EQ(c.pointcloud.monge_map, "argmax");
  EXPECT_EQ(c.pointcloud.optimizer.steps, 40);
  EXPECT_EQ(c.gaussian.optimizer.steps, 40);
  EXPECT_THAT(ApplyGivenOptionsToEitherFamily({{"noise", "pink"}}, &c).message(),
              HasSubstr("--noise pink: unknown 'pink'"));
}

}  // namespace
}  // namespace wfm::model
