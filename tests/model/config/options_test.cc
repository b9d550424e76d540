#include "model/config/options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "tests/testing/option_values.h"

namespace wfm::model {
namespace {

using ::testing::HasSubstr;

constexpr Family kFamilies[] = {Family::kPointCloud, Family::kGaussian};

TrainingConfig Defaults(Family family) {
  TrainingConfig c;
  c.family = family;
  return c;
}

TEST(OptionTableTest, NamesAreUniqueAndEachFamilyHasOneFieldPerPath) {
  std::set<std::string> names;
  std::set<std::pair<Family, std::string>> paths;
  for (const TrainingOption& o : TrainingOptions()) {
    EXPECT_TRUE(names.insert(o.name).second) << o.name;
    EXPECT_FALSE(o.help.empty()) << o.name;
    EXPECT_FALSE(o.group.empty()) << o.name;
    ASSERT_FALSE(o.fields.empty()) << o.name;
    std::set<Family> families;
    for (const OptionField& f : o.fields) {
      EXPECT_TRUE(families.insert(f.family).second) << o.name << " has two fields for a family";
      EXPECT_TRUE(paths.insert({f.family, f.path}).second) << f.path << " is bound twice";
      // Every field reads a value of the option's type.
      EXPECT_EQ(static_cast<size_t>(o.type), f.get(TrainingConfig{}).index()) << o.name;
    }
  }
  // The flag spellings DESIGN.md fixes are entries of the table.
  for (const char* fixed :
       {"steps", "batch", "lr", "seed", "k", "emb", "layers", "heads", "mlp", "monge-map", "eps",
        "sinkhorn-iters", "noise", "minibatch-ot", "guidance", "p-uncond", "ema", "time-budget"}) {
    EXPECT_NE(FindTrainingOption(fixed), nullptr) << fixed;
  }
}

TEST(OptionTableTest, DefaultsPassTheirRules) {
  for (Family family : kFamilies) {
    EXPECT_TRUE(ValidateTrainingConfig(Defaults(family)).ok()) << FamilyName(family);
    for (const TrainingOption& o : TrainingOptions()) {
      if (const OptionField* f = o.For(family)) {
        EXPECT_TRUE(f->rule.Check(f->get(Defaults(family))).ok()) << o.name;
      }
    }
  }
}

TEST(OptionTableTest, GetReadsTheMemberAndSetWritesIt) {
  TrainingConfig c = Defaults(Family::kPointCloud);
  const TrainingOption* emb = FindTrainingOption("emb");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(std::get<int64_t>(emb->For(Family::kPointCloud)->get(c)), c.pointcloud.network.width);
  emb->For(Family::kGaussian)->set(&c, int64_t{96});
  EXPECT_EQ(c.gaussian.network.width, 96);
  EXPECT_EQ(c.pointcloud.network.width, 128);  // the other family's member is untouched

  const TrainingOption* noise = FindTrainingOption("noise");
  ASSERT_NE(noise, nullptr);
  noise->For(Family::kPointCloud)->set(&c, std::string("meta_normal"));
  EXPECT_EQ(c.pointcloud.source, PointCloudSource::kMetaNormal);
  noise->For(Family::kGaussian)->set(&c, std::string("given_matched"));
  EXPECT_EQ(c.gaussian.source, GaussianSource::kGivenMatched);
  EXPECT_EQ(std::get<std::string>(noise->For(Family::kGaussian)->get(c)), "given_matched");

  // Run settings live on the TrainingConfig itself, shared by both families.
  FindTrainingOption("k")->For(Family::kGaussian)->set(&c, int64_t{12});
  EXPECT_EQ(c.niche_size, 12);
  EXPECT_FALSE(FindTrainingOption("k")->For(Family::kGaussian)->model_config);
}

TEST(OptionTableTest, FamilyOnlyOptionsHaveNoFieldInTheOtherFamily) {
  for (const char* name :
       {"monge-map", "eps", "heads", "dropout", "minibatch-cost-eps"}) {
    ASSERT_NE(FindTrainingOption(name), nullptr) << name;
    EXPECT_EQ(FindTrainingOption(name)->For(Family::kGaussian), nullptr) << name;
  }
  for (const char* name : {"velocity", "loss", "architecture", "mean-scale"}) {
    ASSERT_NE(FindTrainingOption(name), nullptr) << name;
    EXPECT_EQ(FindTrainingOption(name)->For(Family::kPointCloud), nullptr) << name;
  }
}

TEST(OptionTableTest, KeywordsAndDefaultText) {
  EXPECT_EQ(FindTrainingOption("monge_map"), FindTrainingOption("monge-map"));
  EXPECT_EQ(FindTrainingOption("monge-map")->Keyword(), "monge_map");
  EXPECT_EQ(FindTrainingOption("no-such-option"), nullptr);
  EXPECT_EQ(FindTrainingOption("steps")->DefaultText(), std::to_string(OptimizerConfig{}.steps));
  EXPECT_EQ(FindTrainingOption("noise")->DefaultText(),
            "chol_normal (pointcloud), wishart (gaussian)");
  EXPECT_EQ(FindTrainingOption("minibatch-ot")->DefaultText(), "on");
  EXPECT_EQ(FindTrainingOption("monge-map")->Families(), "pointcloud");
  EXPECT_EQ(FindTrainingOption("emb")->Families(), "pointcloud, gaussian");
  // Guidance and condition dropout serve both families; Gaussian models
  // only guide when asked to (γ 1 by default).
  EXPECT_EQ(FindTrainingOption("guidance")->Families(), "pointcloud, gaussian");
  EXPECT_EQ(FindTrainingOption("p-uncond")->Families(), "pointcloud, gaussian");
  EXPECT_EQ(FindTrainingOption("guidance")->DefaultText(), "1.5 (pointcloud), 1 (gaussian)");
  EXPECT_EQ(FindTrainingOption("guidance")->For(Family::kGaussian)->path, "gaussian.guidance");
  const nlohmann::json g = ToJson(GaussianTrainConfig{});
  EXPECT_EQ(g.at("guidance"), 1.0);
  EXPECT_EQ(g.at("p_uncond"), 0.1);
  // A stored configuration without them (written before they existed) reads
  // as no guidance.
  nlohmann::json old = g;
  old.erase("guidance");
  old.erase("p_uncond");
  absl::StatusOr<GaussianTrainConfig> read = GaussianTrainConfigFromJson(old);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->guidance, 1.0);
}

TEST(OptionRuleTest, MessagesStateTheRuleAndTheValue) {
  const OptionRule closed{1.0, 4096.0, false, false, {}};
  EXPECT_TRUE(closed.Check(int64_t{1}).ok());
  EXPECT_TRUE(closed.Check(int64_t{4096}).ok());
  EXPECT_EQ(closed.Check(int64_t{0}).message(), "must be in [1, 4096], got 0");
  EXPECT_EQ(closed.Describe(OptionType::kInt), "in [1, 4096]");

  const OptionRule half_open{0.0, 1.0, false, true, {}};
  EXPECT_TRUE(half_open.Check(0.0).ok());
  EXPECT_EQ(half_open.Check(1.5).message(), "must be in [0, 1), got 1.5");
  EXPECT_EQ(half_open.Check(1.0).message(), "must be in [0, 1), got 1");
  EXPECT_FALSE(half_open.Check(std::nan("")).ok());

  const OptionRule positive{0.0, std::nullopt, true, false, {}};
  EXPECT_EQ(positive.Check(-0.5).message(), "must be a finite number > 0, got -0.5");
  EXPECT_EQ(positive.Check(0.0).message(), "must be a finite number > 0, got 0");
  EXPECT_FALSE(positive.Check(std::numeric_limits<double>::infinity()).ok());
  EXPECT_EQ(positive.Describe(OptionType::kDouble), "> 0");

  const OptionRule non_negative{0.0, std::nullopt, false, false, {}};
  EXPECT_EQ(non_negative.Check(int64_t{-5}).message(), "must be >= 0, got -5");

  OptionRule choices;
  choices.choices = {"a", "b"};
  EXPECT_TRUE(choices.Check(std::string("b")).ok());
  EXPECT_EQ(choices.Check(std::string("c")).message(), "unknown 'c' (expected one of a, b)");
  EXPECT_EQ(choices.Describe(OptionType::kString), "one of a | b");
}

TEST(ParseOptionValueTest, TakesWholeValuesOfTheType) {
  EXPECT_EQ(std::get<int64_t>(*ParseOptionValue(OptionType::kInt, "-12")), -12);
  EXPECT_THAT(ParseOptionValue(OptionType::kInt, "12x").status().message(),
              HasSubstr("expected an integer"));
  EXPECT_THAT(ParseOptionValue(OptionType::kInt, "1.5").status().message(),
              HasSubstr("expected an integer"));
  EXPECT_EQ(std::get<uint64_t>(*ParseOptionValue(OptionType::kUint, "18446744073709551615")),
            18446744073709551615ULL);
  EXPECT_FALSE(ParseOptionValue(OptionType::kUint, "-1").ok());
  EXPECT_DOUBLE_EQ(std::get<double>(*ParseOptionValue(OptionType::kDouble, "2e-4")), 2e-4);
  EXPECT_FALSE(ParseOptionValue(OptionType::kDouble, "fast").ok());
  EXPECT_TRUE(std::get<bool>(*ParseOptionValue(OptionType::kBool, "ON")));
  EXPECT_FALSE(std::get<bool>(*ParseOptionValue(OptionType::kBool, "no")));
  EXPECT_EQ(ParseOptionValue(OptionType::kBool, "sometimes").status().message(),
            "sometimes: expected on or off");
  EXPECT_EQ(std::get<std::string>(*ParseOptionValue(OptionType::kString, "argmax")), "argmax");
  EXPECT_EQ(OptionValueText(true), "on");
  EXPECT_EQ(OptionValueText(false), "off");
  EXPECT_EQ(OptionValueText(0.002), "0.002");
}

TEST(ValidateTrainingConfigTest, NamesTheFieldPath) {
  TrainingConfig c = Defaults(Family::kPointCloud);
  c.pointcloud.network.width = 16;
  c.pointcloud.network.heads = 0;
  EXPECT_EQ(ValidateTrainingConfig(c).message(), "network.heads: must be in [1, 16], got 0");
  c.pointcloud.network.heads = 32;
  EXPECT_EQ(ValidateTrainingConfig(c).message(), "network.heads: must be in [1, 16], got 32");
  c.pointcloud.network.width = 18;
  c.pointcloud.network.heads = 4;
  EXPECT_EQ(ValidateTrainingConfig(c).message(),
            "network.width: (18) must be divisible by heads (4)");
  c.pointcloud.network.width = 9;
  c.pointcloud.network.heads = 3;
  EXPECT_THAT(ValidateTrainingConfig(c).message(), HasSubstr("must be even"));
  c = Defaults(Family::kPointCloud);
  c.pointcloud.optimizer.steps = 0;
  EXPECT_EQ(ValidateTrainingConfig(c).message(),
            "optimizer.steps: must be in [1, 100000000], got 0");
  c = Defaults(Family::kPointCloud);
  c.pointcloud.monge_map = "magic";
  EXPECT_THAT(ValidateTrainingConfig(c).message(),
              HasSubstr("pointcloud.monge_map: unknown 'magic'"));
  c = Defaults(Family::kGaussian);
  c.holdout_fraction = 1.0;
  EXPECT_EQ(ValidateTrainingConfig(c).message(), "holdout_fraction: must be in [0, 1), got 1");
  c = Defaults(Family::kGaussian);
  c.gaussian.network.architecture = "bogus";
  EXPECT_THAT(ValidateTrainingConfig(c).message(),
              HasSubstr("network.architecture: unknown 'bogus'"));
  // Options of the other family are not the selected family's business.
  c = Defaults(Family::kGaussian);
  c.pointcloud.monge_map = "magic";
  EXPECT_TRUE(ValidateTrainingConfig(c).ok());
}

TEST(ModelConfigJsonTest, KeepsTheCheckpointLayout) {
  // Checkpoints written before the table existed store these keys; they must
  // keep their names and nesting.
  const nlohmann::json pc = ToJson(PointCloudTrainConfig{});
  for (const char* key :
       {"family", "monge_map", "epsilon", "sinkhorn_iterations", "sinkhorn_tolerance",
        "minibatch_ot", "minibatch_cost", "minibatch_cost_epsilon", "minibatch_epsilon", "noise",
        "noise_df_scale", "guidance", "p_uncond", "subsample_points", "source_subsample_points",
        "checkpoint_every"}) {
    EXPECT_TRUE(pc.contains(key)) << key;
  }
  for (const char* key : {"width", "heads", "layers", "mlp_hidden", "dropout"}) {
    EXPECT_TRUE(pc.at("network").contains(key)) << key;
  }
  for (const char* key : {"steps", "batch_size", "learning_rate", "decay_steps", "decay_rate",
                          "grad_clip_norm", "seed"}) {
    EXPECT_TRUE(pc.at("optimizer").contains(key)) << key;
  }
  EXPECT_EQ(pc.at("family"), "pointcloud");
  EXPECT_EQ(pc.at("noise"), "chol_normal");
  EXPECT_EQ(pc.at("network").at("width"), 128);
  // Run settings are not part of the model's configuration.
  EXPECT_FALSE(pc.contains("niche_size"));
  EXPECT_FALSE(pc.contains("source_dataset"));

  const nlohmann::json g = ToJson(GaussianTrainConfig{});
  for (const char* key :
       {"family", "minibatch_ot", "minibatch_epsilon", "velocity", "loss", "noise",
        "degrees_of_freedom_scale", "mean_scale_factor", "cov_scale_factor", "checkpoint_every"}) {
    EXPECT_TRUE(g.contains(key)) << key;
  }
  for (const char* key : {"width", "layers", "mlp_hidden", "architecture"}) {
    EXPECT_TRUE(g.at("network").contains(key)) << key;
  }
  EXPECT_EQ(g.at("network").at("architecture"), "separate");
  EXPECT_EQ(g.at("noise"), "wishart");
}

TEST(ModelConfigJsonTest, EveryModelOptionRoundTrips) {
  for (Family family : kFamilies) {
    TrainingConfig c = Defaults(family);
    for (const TrainingOption& o : TrainingOptions()) {
      const OptionField* f = o.For(family);
      if (f == nullptr || !f->model_config) continue;
      f->set(&c, testing::NonDefaultValue(*f));
    }
    // heads must divide the (changed) width.
    if (family == Family::kPointCloud) c.pointcloud.network.heads = 2;
    ASSERT_TRUE(ValidateTrainingConfig(c).ok()) << ValidateTrainingConfig(c);
    TrainingConfig back = Defaults(family);
    ASSERT_TRUE(ReadModelConfigJson(ModelConfigJson(c), &back).ok());
    for (const TrainingOption& o : TrainingOptions()) {
      const OptionField* f = o.For(family);
      if (f == nullptr || !f->model_config) continue;
      EXPECT_EQ(f->get(back), f->get(c)) << o.name;
      EXPECT_NE(f->get(back), f->get(Defaults(family))) << o.name << " kept its default";
    }
  }
}

TEST(ModelConfigJsonTest, AbsentKeysKeepDefaultsAndBadValuesNameTheKey) {
  absl::StatusOr<PointCloudTrainConfig> partial =
      PointCloudTrainConfigFromJson({{"network", {{"width", 64}}}});
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_EQ(partial->network.width, 64);
  EXPECT_EQ(partial->network.layers, NetworkConfig{}.layers);
  EXPECT_EQ(partial->monge_map, PointCloudTrainConfig{}.monge_map);

  EXPECT_THAT(PointCloudTrainConfigFromJson({{"monge_map", "magic"}}).status().message(),
              HasSubstr("config: monge_map: unknown 'magic'"));
  EXPECT_THAT(
      PointCloudTrainConfigFromJson({{"optimizer", {{"steps", "many"}}}}).status().message(),
      HasSubstr("config: optimizer.steps: "));
  EXPECT_THAT(GaussianTrainConfigFromJson({{"optimizer", {{"steps", 0}}}}).status().message(),
              HasSubstr("optimizer.steps: must be in [1, 100000000], got 0"));
  EXPECT_FALSE(GaussianTrainConfigFromJson(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace wfm::model
