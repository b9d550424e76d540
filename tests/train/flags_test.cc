// wfm-train's command line: every field of wfm.v1.TrainingConfig (found by
// reflection over the proto) can be set from its flags, with and without
// --family.
#include "train/flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testing/option_values.h"
#include "tests/testing/training_config_paths.h"

namespace wfm::train {
namespace {

using ::testing::HasSubstr;

// The command `wfm-train ARGS...` parses into, with its training flags
// applied; the status of parsing or applying them otherwise.
absl::StatusOr<TrainCommand> Parse(std::vector<std::string> args) {
  CLI::App app("wfm-train");
  TrainCommand command;
  AddTrainCommandFlags(&app, &command);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  absl::Status applied = ApplyTrainingFlags(&command);
  if (!applied.ok()) return applied;
  return command;
}

TEST(TrainFlagsTest, EveryTrainingConfigFieldIsReachableFromWfmTrain) {
  for (const testing::ConfigPath& p : testing::TrainingConfigPaths()) {
    const int reached = testing::ForEachOptionFieldAt(
        p, [&](const model::TrainingOption& o, const model::OptionField& f) {
          const model::OptionValue value = testing::NonDefaultValue(f);
          const std::string text = model::OptionValueText(value);
          // With --family, and without it (the family then comes from the data).
          for (bool with_family : {true, false}) {
            std::vector<std::string> args = {"--" + o.name, text};
            if (with_family) args.insert(args.end(), {"--family", model::FamilyName(f.family)});
            absl::StatusOr<TrainCommand> c = Parse(args);
            ASSERT_TRUE(c.ok()) << p.path << ": " << c.status();
            EXPECT_EQ(f.get(c->run.config), value) << "--" << o.name << " " << text;
          }
        });
    EXPECT_GT(reached, 0) << "wfm.v1.TrainingConfig." << p.path << " cannot be set by wfm-train";
  }
}

TEST(TrainFlagsTest, DefaultsAndFamilies) {
  absl::StatusOr<TrainCommand> c = Parse({"--data", "x.npz", "--steps", "7"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->run.family.has_value());
  EXPECT_EQ(c->run.data_file, "x.npz");
  EXPECT_EQ(c->run.config.pointcloud.optimizer.steps, 7);
  EXPECT_EQ(c->run.config.gaussian.optimizer.steps, 7);
  EXPECT_EQ(c->run.config.pointcloud.checkpoint_every, kDefaultCheckpointEvery);
  EXPECT_EQ(c->run.config.gaussian.checkpoint_every, kDefaultCheckpointEvery);

  c = Parse({"--family", "gaussian", "--noise", "given_random", "--checkpoint-every", "0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->run.family, model::Family::kGaussian);
  EXPECT_EQ(c->run.config.gaussian.source, model::GaussianSource::kGivenRandom);
  EXPECT_EQ(c->run.config.gaussian.checkpoint_every, 0);

  EXPECT_THAT(Parse({"--family", "gaussian", "--monge-map", "argmax"}).status().message(),
              HasSubstr("--monge-map does not apply to --family gaussian"));
  EXPECT_THAT(Parse({"--noise", "pink"}).status().message(), HasSubstr("unknown 'pink'"));
  EXPECT_THAT(Parse({"--batch", "0"}).status().message(), HasSubstr("must be in [1, 65536]"));
}

}  // namespace
}  // namespace wfm::train
