// SVG pictures (client/svg.h): the projections against closed forms, and the
// document structure checked by Python's XML parser.
#include "client/svg.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;
using ::testing::HasSubstr;
constexpr double kPi = 3.14159265358979323846;

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// An orthonormal basis of R^d (Gram-Schmidt of a fixed, full-rank matrix).
std::vector<std::vector<double>> Basis(int d) {
  std::vector<std::vector<double>> v(d, std::vector<double>(d));
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) v[i][j] = std::sin(1.3 * i + 0.7 * j * j + 0.2) + (i == j ? 2 : 0);
    for (int k = 0; k < i; ++k) {
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += v[i][j] * v[k][j];
      for (int j = 0; j < d; ++j) v[i][j] -= dot * v[k][j];
    }
    double norm = 0;
    for (double x : v[i]) norm += x * x;
    for (double& x : v[i]) x /= std::sqrt(norm);
  }
  return v;
}

// Points c ± a_i v_i (i < d): mean c, sample covariance sum 2 a_i² v_i v_iᵀ / (2d - 1),
// so the principal axes are v_0, v_1 with variances 2 a_i² / (2d - 1).
TEST(ProjectionTest, PcaMatchesTheClosedForm) {
  const int d = 8;
  const auto v = Basis(d);
  const std::vector<double> a = {5, 3, 2, 1.5, 1, 0.7, 0.5, 0.3};
  std::vector<double> c(d);
  for (int j = 0; j < d; ++j) c[j] = 0.25 * j - 1;
  std::vector<float> points;
  for (int i = 0; i < d; ++i) {
    for (double sign : {1.0, -1.0}) {
      for (int j = 0; j < d; ++j) points.push_back(static_cast<float>(c[j] + sign * a[i] * v[i][j]));
    }
  }
  absl::StatusOr<Projection> p = PcaProjection(points, d);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->kind, Projection::Kind::kPca);
  for (int axis = 0; axis < 2; ++axis) {
    // The sign rule: the largest-magnitude entry is positive.
    int arg = 0;
    for (int j = 0; j < d; ++j) {
      if (std::abs(v[axis][j]) > std::abs(v[axis][arg])) arg = j;
    }
    const double sign = v[axis][arg] < 0 ? -1 : 1;
    for (int j = 0; j < d; ++j) {
      EXPECT_NEAR(p->axes[axis * d + j], sign * v[axis][j], 2e-6) << axis << "," << j;
    }
    EXPECT_NEAR(p->variances[axis], 2 * a[axis] * a[axis] / (2 * d - 1),
                1e-5 * p->variances[axis]);
  }
  double total = 0;
  for (double x : a) total += 2 * x * x / (2 * d - 1);
  EXPECT_NEAR(p->total_variance, total, 1e-5 * total);
  for (int j = 0; j < d; ++j) EXPECT_NEAR(p->center[j], c[j], 1e-6);
  // c + a_0 v_0 lands on (±a_0, 0).
  const std::vector<double> plane = p->Apply(absl::MakeConstSpan(points.data(), d));
  EXPECT_NEAR(std::abs(plane[0]), a[0], 1e-5);
  EXPECT_NEAR(plane[1], 0, 1e-5);
  EXPECT_THAT(p->Describe(), HasSubstr("PC1"));
}

// A large dimension with a few dominant directions converges too.
TEST(ProjectionTest, PcaInHighDimension) {
  const int d = 300, n = 400;
  std::vector<float> points(n * d);
  for (int i = 0; i < n; ++i) {
    const double t = std::cos(0.37 * i * i + 0.1 * i), s = std::sin(1.91 * i);
    for (int j = 0; j < d; ++j) {
      points[i * d + j] = static_cast<float>((j == 7 ? 10 * t : 0) + (j == 100 ? 4 * s : 0) +
                                             0.01 * std::sin(0.7 * i + 1.3 * j));
    }
  }
  absl::StatusOr<Projection> p = PcaProjection(points, d);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_NEAR(std::abs(p->axes[7]), 1.0, 1e-3);
  EXPECT_NEAR(std::abs(p->axes[d + 100]), 1.0, 1e-3);
}

TEST(ProjectionTest, FixedViewAndIdentity) {
  const Projection view = FixedView3D();
  const double a = 35 * kPi / 180, e = 25 * kPi / 180;
  const std::vector<float> units = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  const std::vector<double> plane = view.Apply(units);
  EXPECT_NEAR(plane[0], -std::sin(a), 1e-12);
  EXPECT_NEAR(plane[1], -std::sin(e) * std::cos(a), 1e-12);
  EXPECT_NEAR(plane[2], std::cos(a), 1e-12);
  EXPECT_NEAR(plane[3], -std::sin(e) * std::sin(a), 1e-12);
  EXPECT_NEAR(plane[4], 0, 1e-12);
  EXPECT_NEAR(plane[5], std::cos(e), 1e-12);
  // Orthonormal rows.
  double rr = 0, uu = 0, ru = 0;
  for (int j = 0; j < 3; ++j) {
    rr += view.axes[j] * view.axes[j];
    uu += view.axes[3 + j] * view.axes[3 + j];
    ru += view.axes[j] * view.axes[3 + j];
  }
  EXPECT_NEAR(rr, 1, 1e-12);
  EXPECT_NEAR(uu, 1, 1e-12);
  EXPECT_NEAR(ru, 0, 1e-12);

  const std::vector<double> same = IdentityProjection(2).Apply(std::vector<float>{1.5f, -2});
  EXPECT_EQ(same, (std::vector<double>{1.5, -2}));
  const std::vector<double> line = IdentityProjection(1).Apply(std::vector<float>{3});
  EXPECT_EQ(line, (std::vector<double>{3, 0}));
  EXPECT_EQ(DefaultProjection({}, 3)->kind, Projection::Kind::kFixed3D);
  EXPECT_EQ(DefaultProjection(std::vector<float>(8, 1.0f), 4)->kind, Projection::Kind::kPca);
}

io::PointCloudSet Clouds(int64_t dim, const std::vector<std::string>& labels, int64_t size) {
  io::PointCloudSet set;
  set.dim = dim;
  set.offsets = {0};
  for (size_t c = 0; c < labels.size(); ++c) {
    for (int64_t i = 0; i < size; ++i) {
      for (int64_t j = 0; j < dim; ++j) {
        set.points.push_back(static_cast<float>(std::sin(0.3 * i + j + c)));
      }
    }
    set.offsets.push_back(set.offsets.back() + size);
  }
  if (!labels.empty() && !labels[0].empty()) set.labels = io::Labels::FromStrings(labels);
  return set;
}

class SvgFileTest : public ::testing::Test {
 protected:
  // Parses `svg` with Python's XML parser and returns its summary line:
  // "<root tag> samples=<n> circles=<per sample, comma-separated> fills=<...>".
  std::string ParseWithPython(const std::string& svg) {
    const std::string path = dir_.File("picture.svg");
    EXPECT_TRUE(WriteSvgFile(path, svg).ok());
    const char* script = R"(
import sys, xml.etree.ElementTree as ET
ns = '{http://www.w3.org/2000/svg}'
root = ET.parse(sys.argv[1]).getroot()
groups = [g for g in root.iter(ns + 'g') if g.get('class') == 'sample']
circles = [str(len(g.findall(ns + 'circle'))) for g in groups]
fills = [g.get('fill') for g in groups]
legend = [e.get('data-label') for e in root.iter(ns + 'g') if e.get('class') == 'legend-entry']
print(root.tag.replace(ns, ''), 'samples=%d' % len(groups), 'circles=' + ','.join(circles),
      'fills=' + ','.join(fills), 'legend=' + '|'.join(legend))
)";
    const testing::ProcessResult r = testing::RunProcess({"/usr/bin/python3", "-c", script, path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  wfm::testing::TempDir dir_{"wfm-svg-test"};
};

TEST_F(SvgFileTest, OneGroupPerSampleColouredByLabel) {
  const io::PointCloudSet set = Clouds(2, {"ring", "cross", "ring", "<b&d>", "cross"}, 7);
  absl::StatusOr<std::string> svg = RenderCloudsSvg(set, {});
  ASSERT_TRUE(svg.ok()) << svg.status();
  // Labels sorted: "<b&d>", "cross", "ring" -> palette 0, 1, 2.
  const auto palette = Palette();
  const std::string summary = ParseWithPython(*svg);
  EXPECT_THAT(summary, HasSubstr("svg samples=5 circles=7,7,7,7,7"));
  EXPECT_THAT(summary, HasSubstr(std::string("fills=") + palette[2] + "," + palette[1] + "," +
                                 palette[2] + "," + palette[0] + "," + palette[1]));
  EXPECT_THAT(summary, HasSubstr("legend=<b&d>|cross|ring"));
  EXPECT_THAT(*svg, HasSubstr("data-label=\"&lt;b&amp;d&gt;\""));
  EXPECT_THAT(*svg, HasSubstr("the coordinates"));
}

TEST_F(SvgFileTest, NumericLabelsSortNumerically) {
  const io::PointCloudSet set = Clouds(2, {"10", "9", "2"}, 3);
  absl::StatusOr<std::string> svg = RenderCloudsSvg(set, {});
  ASSERT_TRUE(svg.ok());
  EXPECT_THAT(ParseWithPython(*svg), HasSubstr("legend=2|9|10"));
}

TEST_F(SvgFileTest, UnlabelledCloudsShareOneColour) {
  const io::PointCloudSet set = Clouds(2, {"", "", ""}, 4);
  absl::StatusOr<std::string> svg = RenderCloudsSvg(set, {});
  ASSERT_TRUE(svg.ok());
  const std::string c = kUnlabelledColor;
  EXPECT_THAT(ParseWithPython(*svg), HasSubstr("fills=" + c + "," + c + "," + c + " legend="));
  EXPECT_EQ(Count(*svg, "data-label"), 0);
}

TEST_F(SvgFileTest, ThreeDimensionsUseTheFixedView) {
  const io::PointCloudSet set = Clouds(3, {"a", "b"}, 5);
  absl::StatusOr<std::string> svg = RenderCloudsSvg(set, {});
  ASSERT_TRUE(svg.ok());
  EXPECT_THAT(*svg, HasSubstr("fixed 3D view"));
  EXPECT_THAT(ParseWithPython(*svg), HasSubstr("samples=2 circles=5,5"));
}

TEST_F(SvgFileTest, HighDimensionsUsePrincipalComponents) {
  const io::PointCloudSet set = Clouds(6, {"a", "b", "c", "d"}, 9);
  absl::StatusOr<std::string> svg = RenderCloudsSvg(set, {});
  ASSERT_TRUE(svg.ok());
  EXPECT_THAT(*svg, HasSubstr("principal components"));
  EXPECT_THAT(ParseWithPython(*svg), HasSubstr("samples=4 circles=9,9,9,9"));
  // A given projection (e.g. --pca-from) is used as it is, and must match.
  SvgOptions options;
  options.projection = IdentityProjection(2);
  EXPECT_EQ(RenderCloudsSvg(set, options).status().code(), absl::StatusCode::kInvalidArgument);
  options.projection = *PcaProjection(set.points, 6);
  options.title = "given & fixed";
  svg = RenderCloudsSvg(set, options);
  ASSERT_TRUE(svg.ok());
  EXPECT_THAT(*svg, HasSubstr("given &amp; fixed"));
}

TEST_F(SvgFileTest, GridLayoutFollowsColumns) {
  const io::PointCloudSet set = Clouds(2, {"a", "a", "a", "a", "a"}, 2);
  SvgOptions options;
  options.columns = 2;
  options.cell_size = 100;
  absl::StatusOr<std::string> svg = RenderCloudsSvg(set, options);
  ASSERT_TRUE(svg.ok());
  // Panels at x = 10 and 10 + 100 + 6; three rows.
  EXPECT_EQ(Count(*svg, "translate(10,"), 3);
  EXPECT_EQ(Count(*svg, "translate(116,"), 2);
}

TEST_F(SvgFileTest, GaussianEllipses) {
  io::GaussianSet g;
  g.dim = 2;
  g.means = {0, 0, 5, 5};
  g.covs = {4, 0, 0, 1, 1, 0, 0, 4};
  g.labels = io::Labels::FromStrings({"wide", "tall"});
  absl::StatusOr<std::string> svg = RenderGaussiansSvg(g, {});
  ASSERT_TRUE(svg.ok()) << svg.status();
  EXPECT_EQ(Count(*svg, "class=\"gaussian\""), 2);
  const std::regex ellipse(R"re(<ellipse cx="[^"]+" cy="[^"]+" rx="([^"]+)" ry="([^"]+)" transform="rotate\(([^ ]+) )re");
  std::vector<std::vector<double>> found;
  for (auto it = std::sregex_iterator(svg->begin(), svg->end(), ellipse); it != std::sregex_iterator();
       ++it) {
    found.push_back({std::stod((*it)[1]), std::stod((*it)[2]), std::stod((*it)[3])});
  }
  ASSERT_EQ(found.size(), 2u);
  // 2σ radii in the ratio 2:1; the first along x (angle 0), the second along y.
  EXPECT_NEAR(found[0][0] / found[0][1], 2.0, 0.02);
  EXPECT_NEAR(found[0][2], 0.0, 0.01);
  EXPECT_NEAR(found[1][0] / found[1][1], 2.0, 0.02);
  EXPECT_NEAR(std::abs(found[1][2]), 90.0, 0.01);
  EXPECT_NEAR(found[0][0], found[1][0], 0.02);
  const std::string path = dir_.File("g.svg");
  ASSERT_TRUE(WriteSvgFile(path, *svg).ok());
  const testing::ProcessResult r = testing::RunProcess(
      {"/usr/bin/python3", "-c", "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
       path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(SvgFileTest, InvalidInputAndAtomicWrite) {
  io::PointCloudSet bad = Clouds(2, {"a"}, 3);
  bad.points[0] = std::nanf("");
  EXPECT_EQ(RenderCloudsSvg(bad, {}).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string path = dir_.File("x.svg");
  ASSERT_TRUE(WriteSvgFile(path, "<svg/>").ok());
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);  // no temporary file left behind
  EXPECT_FALSE(WriteSvgFile(dir_.File("no/such/dir/x.svg"), "<svg/>").ok());
}

TEST(XmlEscapeTest, EscapesMarkup) {
  EXPECT_EQ(XmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
  EXPECT_EQ(XmlEscape(std::string("x\x01y")), "x y");
  EXPECT_EQ(XmlEscape("naïve β"), "naïve β");
}

}  // namespace
}  // namespace wfm::client
