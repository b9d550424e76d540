// Every committed seed and regression input of every fuzz target goes
// through its entry function (which aborts on a failed invariant), the
// seeds are valid input of their readers, and the hand-made malformed inputs
// (fuzz/regressions/<target>/handmade_*) are rejected by the readers with an
// error.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "fuzz/targets.h"
#include "model/checkpoint/checkpoint.h"
#include "model/io/h5ad.h"
#include "model/io/npy.h"
#include "model/io/npz.h"
#include "model/io/point_sets.h"

namespace wfm::fuzz {
namespace {

namespace fs = std::filesystem;
namespace io = ::wfm::model::io;
namespace ckpt = ::wfm::model::checkpoint;

using Entry = int (*)(const uint8_t*, size_t);

struct Target {
  const char* name;
  Entry entry;
};

constexpr Target kTargets[] = {
    {"npy", FuzzNpy},           {"npz", FuzzNpz},
    {"h5ad", FuzzH5ad},         {"checkpoint", FuzzCheckpoint},
    {"requests", FuzzRequests},
};

fs::path FuzzDir() { return fs::path(WFM_SOURCE_DIR) / "fuzz"; }

// Regular files of `dir`, sorted; empty when it does not exist.
std::vector<fs::path> Files(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int RunEntry(Entry entry, const std::string& bytes) {
  return entry(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::vector<fs::path> Handmade(const char* target) {
  std::vector<fs::path> files;
  for (const fs::path& f : Files(FuzzDir() / "regressions" / target)) {
    if (absl::StartsWith(f.filename().string(), "handmade_")) files.push_back(f);
  }
  return files;
}

class CorpusReplayTest : public ::testing::TestWithParam<Target> {};

TEST_P(CorpusReplayTest, EverySeedAndRegressionInputReturnsZero) {
  const Target target = GetParam();
  const std::vector<fs::path> seeds = Files(FuzzDir() / "corpus" / target.name);
  EXPECT_GE(seeds.size(), 3u) << "fuzz/corpus/" << target.name << " holds too few seeds";
  std::vector<fs::path> inputs = seeds;
  for (const fs::path& f : Files(FuzzDir() / "regressions" / target.name)) inputs.push_back(f);
  for (const fs::path& f : inputs) {
    SCOPED_TRACE(f.string());
    const std::string bytes = ReadAll(f);
    EXPECT_EQ(RunEntry(target.entry, bytes), 0);
    // Truncations and a bit flip of each input as well: cheap extra coverage
    // of the error paths, the same ones on every run.
    for (const size_t keep : {bytes.size() / 2, bytes.size() * 9 / 10}) {
      EXPECT_EQ(RunEntry(target.entry, bytes.substr(0, keep)), 0) << "truncated to " << keep;
    }
    if (!bytes.empty()) {
      std::string flipped = bytes;
      flipped[flipped.size() / 2] ^= 0x5a;
      EXPECT_EQ(RunEntry(target.entry, flipped), 0) << "byte " << flipped.size() / 2 << " flipped";
    }
  }
  EXPECT_EQ(RunEntry(target.entry, std::string()), 0) << "empty input";
}

INSTANTIATE_TEST_SUITE_P(Targets, CorpusReplayTest, ::testing::ValuesIn(kTargets),
                         [](const ::testing::TestParamInfo<Target>& info) {
                           return std::string(info.param.name);
                         });

TEST(CorpusReplayTest, EveryRequestTypeHasASeed) {
  std::vector<bool> seen(kNumRequestTypes, false);
  for (const fs::path& f : Files(FuzzDir() / "corpus" / "requests")) {
    const std::string bytes = ReadAll(f);
    ASSERT_FALSE(bytes.empty()) << f;
    seen[static_cast<uint8_t>(bytes[0]) % kNumRequestTypes] = true;
  }
  for (int i = 0; i < kNumRequestTypes; ++i) EXPECT_TRUE(seen[i]) << kRequestTypes[i];
}

// The seeds are valid input of their readers, so the fuzzers start from
// inputs that reach past the format checks.
TEST(SeedsTest, NpySeedsParse) {
  for (const fs::path& f : Files(FuzzDir() / "corpus" / "npy")) {
    EXPECT_TRUE(io::ParseNpy(ReadAll(f), f.string()).ok()) << f;
  }
}

TEST(SeedsTest, NpzSeedsLoadAsTheirDataSets) {
  for (const fs::path& f : Files(FuzzDir() / "corpus" / "npz")) {
    const std::string name = f.filename().string();
    ASSERT_TRUE(io::ReadNpz(f.string()).ok()) << f;
    if (absl::StartsWith(name, "clouds")) {
      EXPECT_TRUE(io::ReadPointCloudsNpz(f.string()).ok()) << f;
    } else {
      EXPECT_TRUE(io::ReadGaussiansNpz(f.string()).ok()) << f;
    }
  }
}

TEST(SeedsTest, H5adSeedsOpenAndReadX) {
  for (const fs::path& f : Files(FuzzDir() / "corpus" / "h5ad")) {
    absl::StatusOr<io::H5adFile> file = io::H5adFile::Open(f.string());
    ASSERT_TRUE(file.ok()) << f << ": " << file.status();
    absl::StatusOr<io::DenseMatrix> x = file->ReadX();
    ASSERT_TRUE(x.ok()) << f << ": " << x.status();
    EXPECT_GT(x->rows, 0);
    EXPECT_GT(x->cols, 0);
  }
}

TEST(SeedsTest, CheckpointSeedsParse) {
  for (const fs::path& f : Files(FuzzDir() / "corpus" / "checkpoint")) {
    absl::StatusOr<ckpt::Checkpoint> c = ckpt::Parse(ReadAll(f));
    EXPECT_TRUE(c.ok()) << f << ": " << c.status();
  }
}

// The hand-made malformed inputs are rejected with an error status.
TEST(HandmadeRegressionsTest, NpyReaderRejectsThem) {
  const std::vector<fs::path> files = Handmade("npy");
  EXPECT_GE(files.size(), 5u);
  for (const fs::path& f : files) {
    absl::StatusOr<io::Array> a = io::ParseNpy(ReadAll(f), f.filename().string());
    EXPECT_FALSE(a.ok()) << f;
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << f;
    }
  }
}

TEST(HandmadeRegressionsTest, NpzLoadersRejectThem) {
  const std::vector<fs::path> files = Handmade("npz");
  EXPECT_GE(files.size(), 3u);
  for (const fs::path& f : files) {
    absl::StatusOr<io::PointCloudSet> clouds = io::ReadPointCloudsNpz(f.string());
    EXPECT_FALSE(clouds.ok()) << f;
    if (!clouds.ok()) {
      EXPECT_EQ(clouds.status().code(), absl::StatusCode::kInvalidArgument) << f;
    }
    EXPECT_FALSE(io::ReadGaussiansNpz(f.string()).ok()) << f;
  }
}

TEST(HandmadeRegressionsTest, H5adReaderRejectsThem) {
  const std::vector<fs::path> files = Handmade("h5ad");
  EXPECT_GE(files.size(), 2u);
  for (const fs::path& f : files) {
    absl::StatusOr<io::H5adFile> file = io::H5adFile::Open(f.string());
    if (file.ok()) {
      // Opening may succeed on a damaged file; reading what the workflow
      // needs must not.
      EXPECT_FALSE(file->ReadX().ok()) << f;
    }
  }
  EXPECT_EQ(io::OpenHdf5ObjectCount(), 0);
}

// Found by the npy fuzzer: a unicode array's NULs inside a string are
// characters (numpy strips only the trailing padding); the reader used to cut
// the string at the first NUL, so "c\0d" came back as "c".
TEST(FoundRegressionsTest, NpyUnicodeKeepsInnerNuls) {
  const std::vector<std::string> values = {"ab", std::string("c\0d", 3), "", std::string("\0x", 2)};
  const io::Array array = io::Array::FromStrings({4}, values);
  absl::StatusOr<std::string> bytes = io::SerializeNpy(io::ArrayView::Of(array), "nul.npy");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<io::Array> back = io::ParseNpy(*bytes, "nul.npy");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->values<std::string>(), values);
  // The fuzzer's input: |S3 byte strings holding "c\0d", re-encoded as <U3.
  const std::string found =
      ReadAll(FuzzDir() / "regressions" / "npy" / "unicode_embedded_nul_roundtrip.npy");
  absl::StatusOr<io::Array> parsed = io::ParseNpy(found, "found.npy");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->values<std::string>(),
            (std::vector<std::string>{"ab", std::string("c\0d", 3), ""}));
}

// 4 KB declaring a 64 GiB X whose chunks were never written: refused from
// the storage size before any allocation.
TEST(HandmadeRegressionsTest, H5adUnwrittenHugeXIsRefusedBeforeAllocating) {
  const fs::path f = FuzzDir() / "regressions" / "h5ad" / "handmade_unwritten_huge_x.h5ad";
  ASSERT_LT(fs::file_size(f), 16384u);
  absl::StatusOr<io::H5adFile> file = io::H5adFile::Open(f.string());
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->n_obs(), int64_t{1} << 17);
  absl::StatusOr<io::DenseMatrix> x = file->ReadX();
  ASSERT_FALSE(x.ok());
  EXPECT_EQ(x.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(x.status().message()), ::testing::HasSubstr("stores only"));
}

TEST(HandmadeRegressionsTest, CheckpointParserRejectsThem) {
  const std::vector<fs::path> files = Handmade("checkpoint");
  EXPECT_GE(files.size(), 5u);
  for (const fs::path& f : files) {
    absl::StatusOr<ckpt::Checkpoint> c = ckpt::Parse(ReadAll(f));
    EXPECT_FALSE(c.ok()) << f;
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << f << ": " << c.status();
    }
  }
}

}  // namespace
}  // namespace wfm::fuzz
