// Every field of wfm.v1.TrainingConfig can be set from `wfm train`: found by
// reflection over the proto, so a field added to the API without an entry in
// the option table fails here.
#include "client/train_flags.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/training_options.h"
#include "tests/testing/option_values.h"
#include "tests/testing/training_config_paths.h"

namespace wfm::client {
namespace {

// The request `wfm train --dataset d --model m --family FAMILY ARGS...` sends.
absl::StatusOr<v1::StartTrainingRequest> Request(const std::string& family,
                                                 std::vector<std::string> args) {
  CLI::App app("train");
  TrainFlags flags;
  AddTrainFlags(&app, &flags);
  std::vector<std::string> argv = {"--dataset", "d", "--model", "m", "--family", family};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> reversed(argv.rbegin(), argv.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return BuildTrainingRequest(flags, flags.family);
}

TEST(TrainFlagsReachTest, EveryTrainingConfigFieldIsReachableFromWfmTrain) {
  for (const testing::ConfigPath& p : testing::TrainingConfigPaths()) {
    const int reached = testing::ForEachOptionFieldAt(
        p, [&](const model::TrainingOption& o, const model::OptionField& f) {
          const model::OptionValue value = testing::NonDefaultValue(f);
          std::vector<std::string> args = {"--" + o.name, model::OptionValueText(value)};
          if (o.name == "source-dataset") args.insert(args.end(), {"--noise", "given_random"});
          auto request = Request(model::FamilyName(f.family), args);
          ASSERT_TRUE(request.ok()) << p.path << ": " << request.status();
          auto sent = api::GetConfigField(request->config(), p.path, o.type);
          ASSERT_TRUE(sent.ok()) << sent.status();
          ASSERT_TRUE(sent->has_value()) << "--" << o.name << " did not set " << p.path;
          EXPECT_EQ(**sent, value) << "--" << o.name;
        });
    EXPECT_GT(reached, 0) << "wfm.v1.TrainingConfig." << p.path << " cannot be set by wfm train";
  }
}

TEST(TrainFlagsReachTest, UnsetFlagsStayUnset) {
  auto request = Request("pointcloud", {"--emb", "64"});
  ASSERT_TRUE(request.ok()) << request.status();
  int set = 0;
  for (const testing::ConfigPath& p : testing::TrainingConfigPaths()) {
    testing::ForEachOptionFieldAt(
        p, [&](const model::TrainingOption& o, const model::OptionField& f) {
          if (f.family != model::Family::kPointCloud) return;
          auto sent = api::GetConfigField(request->config(), p.path, o.type);
          ASSERT_TRUE(sent.ok());
          set += sent->has_value();
        });
  }
  EXPECT_EQ(set, 1);  // network.width only
  EXPECT_EQ(request->config().network().width(), 64);
}

TEST(TrainFlagsReachTest, UsageErrorsAndFamilyErrors) {
  EXPECT_THAT(Request("pointcloud", {"--steps", "0"}).status().message(),
              ::testing::HasSubstr("must be in [1, 100000000]"));
  EXPECT_THAT(Request("gaussian", {"--minibatch-cost-eps", "0.1"}).status().message(),
              ::testing::HasSubstr("--minibatch-cost-eps does not apply to --family gaussian"));
  auto eps = Request("pointcloud", {"--minibatch-cost-eps", "0.05"});
  ASSERT_TRUE(eps.ok()) << eps.status();
  EXPECT_DOUBLE_EQ(eps->config().pointcloud().minibatch_cost_epsilon(), 0.05);
}

TEST(TrainFlagsReachTest, InitFromTakesANameAndAnOptionalVersion) {
  auto plain = Request("pointcloud", {"--init-from", "base"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->init_from_model(), "base");
  EXPECT_EQ(plain->init_from_version(), 0);
  auto versioned = Request("gaussian", {"--init-from", "base-2.x:3"});
  ASSERT_TRUE(versioned.ok()) << versioned.status();
  EXPECT_EQ(versioned->init_from_model(), "base-2.x");
  EXPECT_EQ(versioned->init_from_version(), 3);
  EXPECT_EQ(Request("pointcloud", {}).value().init_from_model(), "");
  for (const char* bad : {"base:", "base:0", "base:-1", "base:v2"}) {
    EXPECT_EQ(Request("pointcloud", {"--init-from", bad}).status().message(),
              std::string("--init-from ") + bad +
                  ": the version after ':' must be an integer >= 1 (NAME[:V])")
        << bad;
  }
  EXPECT_EQ(Request("pointcloud", {"--init-from", ":2"}).status().message(),
            "--init-from :2: a model name is required (NAME[:V])");
}

}  // namespace
}  // namespace wfm::client
