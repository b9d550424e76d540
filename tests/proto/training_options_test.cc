#include "proto/training_options.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/testing/option_values.h"
#include "tests/testing/training_config_paths.h"

namespace wfm::api {
namespace {

using model::Family;
using ::testing::HasSubstr;

TEST(TrainingOptionsProtoTest, EveryTrainingConfigFieldIsAnOption) {
  for (const testing::ConfigPath& p : testing::TrainingConfigPaths()) {
    EXPECT_GT(testing::ForEachOptionFieldAt(p, [](const auto&, const auto&) {}), 0)
        << "wfm.v1.TrainingConfig." << p.path
        << " has no entry in the option table (model/config/options.cc)";
  }
}

TEST(TrainingOptionsProtoTest, EveryOptionPathIsAProtoFieldOfItsType) {
  v1::TrainingConfig empty;
  for (const model::TrainingOption& o : model::TrainingOptions()) {
    for (const model::OptionField& f : o.fields) {
      auto value = GetConfigField(empty, f.path, o.type);
      ASSERT_TRUE(value.ok()) << o.name << ": " << value.status();
      EXPECT_FALSE(value->has_value()) << f.path << " reads as set in an empty message";
      v1::TrainingConfig config;
      ASSERT_TRUE(SetConfigField(f.path, testing::NonDefaultValue(f), &config).ok()) << f.path;
      auto back = GetConfigField(config, f.path, o.type);
      ASSERT_TRUE(back.ok() && back->has_value()) << f.path;
      EXPECT_EQ(**back, testing::NonDefaultValue(f)) << f.path;
    }
  }
  EXPECT_EQ(GetConfigField(empty, "network.depth", model::OptionType::kInt).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(GetConfigField(empty, "network.width", model::OptionType::kString).status().code(),
            absl::StatusCode::kInternal);
}

// Every field of the family set to a non-default value in the request comes
// out in the model configuration, and back into the same message.
TEST(TrainingOptionsProtoTest, EveryFieldConvertsBothWays) {
  for (Family family : {Family::kPointCloud, Family::kGaussian}) {
    v1::TrainingConfig request;
    request.set_family(FamilyToProto(family));
    for (const model::TrainingOption& o : model::TrainingOptions()) {
      if (const model::OptionField* f = o.For(family)) {
        ASSERT_TRUE(SetConfigField(f->path, testing::NonDefaultValue(*f), &request).ok());
      }
    }
    if (family == Family::kPointCloud) request.mutable_network()->set_heads(2);
    absl::StatusOr<model::TrainingConfig> config = TrainingConfigFromProto(request, 500);
    ASSERT_TRUE(config.ok()) << config.status();
    for (const model::TrainingOption& o : model::TrainingOptions()) {
      const model::OptionField* f = o.For(family);
      if (f == nullptr || o.name == "heads") continue;
      EXPECT_EQ(f->get(*config), testing::NonDefaultValue(*f)) << o.name;
    }
    v1::TrainingConfig back;
    TrainingConfigToProto(*config, &back);
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, request))
        << back.DebugString() << "\nvs\n"
        << request.DebugString();
  }
}

TEST(TrainingOptionsProtoTest, UnsetFieldsTakeTheDefaults) {
  v1::TrainingConfig request;
  request.set_family(v1::FAMILY_GAUSSIAN);
  request.mutable_optimizer()->set_steps(7);
  absl::StatusOr<model::TrainingConfig> config = TrainingConfigFromProto(request, 250);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->family, Family::kGaussian);
  EXPECT_EQ(config->gaussian.optimizer.steps, 7);
  EXPECT_EQ(config->gaussian.optimizer.batch_size, model::OptimizerConfig{}.batch_size);
  EXPECT_EQ(config->gaussian.checkpoint_every, 250);  // the server's default
  EXPECT_EQ(config->niche_size, model::TrainingConfig{}.niche_size);

  v1::TrainingConfig effective;
  TrainingConfigToProto(*config, &effective);
  EXPECT_EQ(effective.optimizer().batch_size(), model::OptimizerConfig{}.batch_size);
  EXPECT_EQ(effective.gaussian().noise(), "wishart");
  EXPECT_FALSE(effective.has_pointcloud());
  EXPECT_FALSE(effective.network().has_heads());  // a pointcloud option
  EXPECT_TRUE(effective.gaussian().source_dataset().empty());
}

TEST(TrainingOptionsProtoTest, BadRequestsNameTheField) {
  auto error = [](const std::function<void(v1::TrainingConfig*)>& edit) {
    v1::TrainingConfig c;
    c.set_family(v1::FAMILY_POINTCLOUD);
    edit(&c);
    return std::string(TrainingConfigFromProto(c, 0).status().message());
  };
  EXPECT_THAT(error([](auto* c) { c->set_family(v1::FAMILY_UNSPECIFIED); }),
              HasSubstr("config.family: required"));
  EXPECT_EQ(error([](auto* c) { c->mutable_gaussian()->set_velocity("euclidean"); }),
            "config.gaussian: options of the gaussian family given for a pointcloud model");
  EXPECT_THAT(error([](auto* c) { c->mutable_pointcloud()->set_noise("pink"); }),
              HasSubstr("config.pointcloud.noise: unknown 'pink' (expected one of uniform"));
  EXPECT_EQ(error([](auto* c) { c->mutable_network()->set_width(1); }),
            "config.network.width: must be in [2, 4096], got 1");
  EXPECT_EQ(error([](auto* c) {
              c->mutable_network()->set_width(16);
              c->mutable_network()->set_heads(0);
            }),
            "config.network.heads: must be in [1, 16], got 0");
  EXPECT_EQ(error([](auto* c) { c->set_checkpoint_every(-5); }),
            "config.checkpoint_every: must be >= 0, got -5");
  EXPECT_EQ(error([](auto* c) { c->mutable_pointcloud()->set_minibatch_cost_epsilon(0); }),
            "config.pointcloud.minibatch_cost_epsilon: must be a finite number > 0, got 0");
}

TEST(TrainingOptionsProtoTest, DescriptionListsEveryOptionWithItsFields) {
  v1::DescribeTrainingOptionsResponse described;
  DescribeTrainingOptions(&described);
  ASSERT_EQ(described.options_size(), static_cast<int>(model::TrainingOptions().size()));
  const v1::TrainingOption* noise = nullptr;
  for (const v1::TrainingOption& o : described.options()) {
    if (o.name() == "noise") noise = &o;
  }
  ASSERT_NE(noise, nullptr);
  EXPECT_EQ(noise->type(), "string");
  ASSERT_EQ(noise->fields_size(), 2);
  EXPECT_EQ(noise->fields(0).family(), v1::FAMILY_POINTCLOUD);
  EXPECT_EQ(noise->fields(0).path(), "pointcloud.noise");
  EXPECT_EQ(noise->fields(0).default_value(), "chol_normal");
  EXPECT_EQ(noise->fields(1).path(), "gaussian.noise");
  EXPECT_EQ(noise->fields(1).default_value(), "wishart");
  EXPECT_THAT(noise->fields(1).choices(),
              ::testing::ElementsAre("wishart", "given_random", "given_matched"));
  EXPECT_EQ(described.options(0).name(), "steps");
  EXPECT_EQ(described.options(0).fields(0).rule(), "in [1, 100000000]");
}

}  // namespace
}  // namespace wfm::api
