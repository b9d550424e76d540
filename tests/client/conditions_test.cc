// Condition vectors from named columns (client/conditions.h): hand-computed
// encodings of obs columns and obsm rows, their concatenation, the
// anndata-written fixture, and `--condition key=value,...` at sampling.
#include "client/conditions.h"

#include <string>
#include <vector>

#include "client/cells.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const std::string kFixtures = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/";

io::ObsColumn Categorical(std::vector<std::string> categories, std::vector<int64_t> codes) {
  io::ObsColumn c;
  c.kind = io::ObsColumn::Kind::kCategorical;
  c.categories = std::move(categories);
  c.codes = std::move(codes);
  return c;
}

TEST(ConditionsTest, CategoricalIsOneHotInTheStoredOrder) {
  absl::StatusOr<ConditionTable> t =
      EncodeObsColumn(Categorical({"T", "B", "NK"}, {1, 0, 2, 1}), "type", "k");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->width, 3);
  EXPECT_THAT(t->values, ElementsAre(0, 1, 0,  //
                                     1, 0, 0,  //
                                     0, 0, 1,  //
                                     0, 1, 0));
  ASSERT_EQ(t->columns.size(), 1u);
  EXPECT_EQ(t->columns[0].kind(), v1::CONDITION_KIND_CATEGORICAL);
  EXPECT_THAT(t->columns[0].categories(), ElementsAre("T", "B", "NK"));
  EXPECT_EQ(t->columns[0].width(), 3);
  // A missing code is an error naming the key and the cell.
  absl::StatusOr<ConditionTable> missing =
      EncodeObsColumn(Categorical({"T", "B"}, {0, -1}), "type", "--condition-key type");
  EXPECT_THAT(missing.status().message(), HasSubstr("--condition-key type: cell 1 has no value"));
}

TEST(ConditionsTest, StringsAreOneHotOverTheirSortedTexts) {
  io::ObsColumn c;
  c.kind = io::ObsColumn::Kind::kString;
  c.strings = {"tumour", "B", "tumour", "T"};
  absl::StatusOr<ConditionTable> t = EncodeObsColumn(c, "type", "k");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->columns[0].categories(), ElementsAre("B", "T", "tumour"));
  EXPECT_THAT(t->values, ElementsAre(0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1, 0));
}

TEST(ConditionsTest, NumbersAreTheirValues) {
  io::ObsColumn f;
  f.kind = io::ObsColumn::Kind::kFloat;
  f.floats = {40.0, -2.5};
  absl::StatusOr<ConditionTable> t = EncodeObsColumn(f, "age", "k");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->values, ElementsAre(40.0f, -2.5f));
  EXPECT_EQ(t->columns[0].kind(), v1::CONDITION_KIND_NUMERIC);
  EXPECT_EQ(t->columns[0].width(), 1);
  io::ObsColumn b;
  b.kind = io::ObsColumn::Kind::kBool;
  b.integers = {1, 0};
  EXPECT_THAT(EncodeObsColumn(b, "treated", "k")->values, ElementsAre(1.0f, 0.0f));
  f.floats[1] = std::nan("");
  EXPECT_THAT(EncodeObsColumn(f, "age", "k").status().message(),
              HasSubstr("cell 1 has no finite value"));
}

TEST(ConditionsTest, ColumnsAreConcatenatedWithTheirOffsets) {
  io::ObsColumn age;
  age.kind = io::ObsColumn::Kind::kInteger;
  age.integers = {30, 70};
  io::DenseMatrix pca;
  pca.rows = 2;
  pca.cols = 2;
  pca.values = {0.5f, -1.0f, 2.0f, 3.0f};
  const ConditionTable t = ConcatenateConditions(
      {*EncodeObsColumn(Categorical({"T", "B"}, {1, 0}), "type", "k"),
       *EncodeObsColumn(age, "age", "k"), *EncodeObsm(pca, "pca", "k")});
  EXPECT_EQ(t.width, 5);
  EXPECT_THAT(t.values, ElementsAre(0, 1, 30, 0.5f, -1.0f,  //
                                    1, 0, 70, 2.0f, 3.0f));
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[0].offset(), 0);
  EXPECT_EQ(t.columns[1].offset(), 2);
  EXPECT_EQ(t.columns[2].offset(), 3);
  EXPECT_EQ(t.columns[2].kind(), v1::CONDITION_KIND_OBSM);
  EXPECT_EQ(t.columns[2].width(), 2);

  // Sampling: the same encoding turns names into the rows above.
  google::protobuf::RepeatedPtrField<v1::ConditionColumn> columns(t.columns.begin(),
                                                                  t.columns.end());
  EXPECT_TRUE(IsNamedCondition("type=B,age=30"));
  EXPECT_FALSE(IsNamedCondition("0.5,1"));
  absl::StatusOr<std::vector<float>> v =
      EncodeNamedCondition("type=B,age=30,obsm:pca=0.5;-1", columns, "--condition");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(*v, ElementsAreArray(std::vector<float>(t.values.begin(), t.values.begin() + 5)));
  // Any order of the keys.
  v = EncodeNamedCondition("obsm:pca=2;3, age=70 ,type=T", columns, "--condition");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(*v, ElementsAreArray(std::vector<float>(t.values.begin() + 5, t.values.end())));

  struct Bad {
    const char* text;
    const char* message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"type=B,age=30", "--condition: missing key 'obsm:pca'"},
           {"type=B,age=30,obsm:pca=1;2,size=3", "--condition: unknown key 'size'"},
           {"type=NK,age=30,obsm:pca=1;2", "type='NK': unknown category; one of T, B"},
           {"type=B,age=old,obsm:pca=1;2", "age='old': not a finite number"},
           {"type=B,age=30,obsm:pca=1", "obsm:pca: 1 values, the model's obsm:pca has 2"},
           {"type=B,type=T,age=1,obsm:pca=1;2", "key 'type' given twice"},
           {"type=B,30", "'30' is not KEY=VALUE"},
           {"type=B,age=inf,obsm:pca=1;2", "not a finite number"},
       }) {
    EXPECT_THAT(EncodeNamedCondition(bad.text, columns, "--condition").status().message(),
                HasSubstr(bad.message))
        << bad.text;
  }
}

TEST(ConditionsTest, NamedConditionForModelsWithLabelsOrNoColumns) {
  v1::ModelInfo discrete;
  discrete.set_name("m");
  discrete.set_label_type(v1::LABEL_TYPE_DISCRETE);
  discrete.add_labels("B");
  discrete.add_labels("T");
  absl::StatusOr<NamedCondition> named =
      ResolveNamedCondition("cell_type=T", discrete, "--condition");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->label, "T");
  EXPECT_TRUE(named->vector.empty());
  EXPECT_THAT(ResolveNamedCondition("cell_type=NK", discrete, "--condition").status().message(),
              HasSubstr("'NK': unknown label of model 'm'; its labels: B, T"));
  EXPECT_THAT(ResolveNamedCondition("a=T,b=1", discrete, "--condition").status().message(),
              HasSubstr("one KEY=LABEL"));
  v1::ModelInfo plain;
  plain.set_name("p");
  plain.set_label_type(v1::LABEL_TYPE_CONTINUOUS);
  plain.set_condition_dim(2);
  EXPECT_THAT(ResolveNamedCondition("a=1", plain, "--condition").status().message(),
              HasSubstr("no named columns"));
  v1::ModelInfo none;
  none.set_name("u");
  none.set_label_type(v1::LABEL_TYPE_NONE);
  EXPECT_THAT(ResolveNamedCondition("a=1", none, "--condition").status().message(),
              HasSubstr("unconditional"));
}

// The anndata-written fixture: cell_type (categorical: B cell, T cell,
// tumour), score (float) and obsm X_pca [n, 3], read through the child
// process as `wfm upload --condition-key` does.
TEST(ConditionsTest, ReadsSeveralColumnsOfAnAnndataFile) {
  const std::string file = kFixtures + "client/cells.h5ad";
  CellReadOptions labels;
  labels.label_key = "cell_type";
  absl::StatusOr<SpatialCells> by_label = ReadSpatialCells(file, labels);
  ASSERT_TRUE(by_label.ok()) << by_label.status();
  CellReadOptions pca_features;
  pca_features.features = "obsm:X_pca";
  absl::StatusOr<SpatialCells> pca = ReadSpatialCells(file, pca_features);
  ASSERT_TRUE(pca.ok()) << pca.status();

  CellReadOptions options;
  options.condition_keys = {"cell_type", "score", "obsm:X_pca"};
  absl::StatusOr<SpatialCells> cells = ReadSpatialCells(file, options);
  ASSERT_TRUE(cells.ok()) << cells.status();
  EXPECT_TRUE(cells->labels.empty());
  ASSERT_EQ(cells->condition_dim, 7);
  ASSERT_EQ(cells->condition_columns.size(), 3u);
  EXPECT_EQ(cells->condition_columns[0].name(), "cell_type");
  EXPECT_THAT(cells->condition_columns[0].categories(), ElementsAre("B cell", "T cell", "tumour"));
  EXPECT_EQ(cells->condition_columns[1].name(), "score");
  EXPECT_EQ(cells->condition_columns[1].offset(), 3);
  EXPECT_EQ(cells->condition_columns[2].name(), "X_pca");
  EXPECT_EQ(cells->condition_columns[2].kind(), v1::CONDITION_KIND_OBSM);
  EXPECT_EQ(cells->condition_columns[2].offset(), 4);
  const std::vector<std::string> types = {"B cell", "T cell", "tumour"};
  for (int64_t i = 0; i < cells->num_cells(); ++i) {
    const float* row = cells->conditions.data() + i * 7;
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(row[k], by_label->labels[i] == types[k] ? 1.0f : 0.0f) << "cell " << i;
    }
    EXPECT_GE(row[3], 0.0f);  // score ~ U(0, 1)
    EXPECT_LT(row[3], 1.0f);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(row[4 + j], pca->features[i * 3 + j]) << "cell " << i;
  }

  // One categorical key: discrete labels, as --label-key.
  options.condition_keys = {"cell_type"};
  absl::StatusOr<SpatialCells> single = ReadSpatialCells(file, options);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->labels, by_label->labels);
  EXPECT_EQ(single->condition_dim, 0);
  // One float key: a condition vector of width 1.
  options.condition_keys = {"score"};
  EXPECT_EQ(ReadSpatialCells(file, options)->condition_dim, 1);

  options.condition_keys = {"cell_type", "nope"};
  EXPECT_THAT(ReadSpatialCells(file, options).status().message(),
              HasSubstr("--condition-key nope"));
  options.condition_keys = {"score", "score"};
  EXPECT_THAT(ReadSpatialCells(file, options).status().message(), HasSubstr("given twice"));
  options.condition_keys = {"score", "obsm:none"};
  EXPECT_THAT(ReadSpatialCells(file, options).status().message(),
              HasSubstr("--condition-key obsm:none"));
  options.condition_keys = {"score"};
  options.label_key = "cell_type";
  EXPECT_THAT(ReadSpatialCells(file, options).status().message(),
              HasSubstr("--label-key and --condition-key exclude each other"));
}

}  // namespace
}  // namespace wfm::client
