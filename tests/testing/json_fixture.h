// Loading committed JSON fixtures (tests/fixtures/...) into tensors.
#ifndef WFM_TESTS_TESTING_JSON_FIXTURE_H_
#define WFM_TESTS_TESTING_JSON_FIXTURE_H_

#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace wfm::testing {

// Parses WFM_SOURCE_DIR/tests/fixtures/<relative>; throws when missing.
inline nlohmann::json LoadFixture(const std::string& relative) {
  const std::string path = std::string(WFM_SOURCE_DIR) + "/tests/fixtures/" + relative;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("missing fixture " + path);
  return nlohmann::json::parse(in);
}

// A nested JSON array of numbers -> float64 tensor of its shape.
inline at::Tensor JsonToTensor(const nlohmann::json& j) {
  std::vector<int64_t> shape;
  const nlohmann::json* level = &j;
  while (level->is_array()) {
    shape.push_back(static_cast<int64_t>(level->size()));
    if (level->empty()) break;
    level = &(*level)[0];
  }
  std::vector<double> flat;
  // Depth-first flattening in row-major order.
  auto flatten = [&flat](const nlohmann::json& node, auto&& self) -> void {
    if (node.is_array()) {
      for (const auto& child : node) self(child, self);
    } else {
      flat.push_back(node.get<double>());
    }
  };
  flatten(j, flatten);
  return at::tensor(flat, at::kDouble).view(shape).clone();
}

}  // namespace wfm::testing

#endif  // WFM_TESTS_TESTING_JSON_FIXTURE_H_
