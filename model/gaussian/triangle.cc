#include "model/gaussian/triangle.h"

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/common/status.h"
#include "model/common/tensor_checks.h"
#include "model/common/torch_status.h"

namespace wfm::model::gaussian {
namespace {

// Index tables of one dimension d (n = d(d+1)/2).
struct Tables {
  at::Tensor encode;  // int64 [n]: flat position r·d + c of triangle entry k
  at::Tensor decode;  // int64 [d²]: triangle position of (r, c), or n (a zero) above
  at::Tensor mirror;  // int64 [d²]: triangle position of (max(r,c), min(r,c))
  at::Tensor scale_float;   // float32 [d²]: 2 on the diagonal, 1 elsewhere
  at::Tensor scale_double;  // float64 [d²]
};

std::shared_ptr<const Tables> BuildTables(int64_t d) {
  const int64_t n = TriangleSize(d);
  std::vector<int64_t> encode;
  encode.reserve(n);
  for (int64_t r = 0; r < d; ++r) {
    for (int64_t c = 0; c <= r; ++c) encode.push_back(r * d + c);
  }
  std::vector<int64_t> decode(d * d), mirror(d * d);
  std::vector<double> scale(d * d);
  for (int64_t r = 0; r < d; ++r) {
    for (int64_t c = 0; c < d; ++c) {
      const int64_t hi = std::max(r, c);
      const int64_t lo = std::min(r, c);
      decode[r * d + c] = c <= r ? TriangleSize(r) + c : n;
      mirror[r * d + c] = TriangleSize(hi) + lo;
      scale[r * d + c] = r == c ? 2.0 : 1.0;
    }
  }
  auto t = std::make_shared<Tables>();
  t->encode = at::tensor(encode, at::kLong);
  t->decode = at::tensor(decode, at::kLong);
  t->mirror = at::tensor(mirror, at::kLong);
  t->scale_double = at::tensor(scale, at::kDouble);
  t->scale_float = t->scale_double.to(at::kFloat);
  return t;
}

std::shared_ptr<const Tables> TablesFor(int64_t d) {
  static std::mutex mu;
  static auto* cache = new std::map<int64_t, std::shared_ptr<const Tables>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(d);
  if (it != cache->end()) return it->second;
  std::shared_ptr<const Tables> t = BuildTables(d);
  cache->emplace(d, t);
  return t;
}

absl::Status CheckEncoding(const at::Tensor& v, int64_t d) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(v, "v", 2));
  if (d < 1) return absl::InvalidArgumentError(absl::StrCat("d: must be >= 1, got ", d));
  if (v.size(1) != TriangleSize(d)) {
    return absl::InvalidArgumentError(absl::StrCat("v: shape must be [B, ", TriangleSize(d),
                                                   "] (d(d+1)/2 for d = ", d, "), got ",
                                                   ShapeString(v.sizes())));
  }
  return absl::OkStatus();
}

}  // namespace

namespace unchecked {

at::Tensor LowerTriangleEncode(const at::Tensor& s) {
  const int64_t d = s.size(-1);
  return s.reshape({s.size(0), d * d}).index_select(1, TablesFor(d)->encode);
}

at::Tensor LowerTriangleDecode(const at::Tensor& v, int64_t d) {
  const std::shared_ptr<const Tables> t = TablesFor(d);
  return at::constant_pad_nd(v, {0, 1}, 0.0).index_select(1, t->decode).view({v.size(0), d, d});
}

at::Tensor SymmetricFromLowerTriangle(const at::Tensor& v, int64_t d) {
  const std::shared_ptr<const Tables> t = TablesFor(d);
  const at::Tensor& scale = v.scalar_type() == at::kDouble ? t->scale_double : t->scale_float;
  return (v.index_select(1, t->mirror) * scale).view({v.size(0), d, d});
}

}  // namespace unchecked

absl::StatusOr<at::Tensor> LowerTriangleEncode(const at::Tensor& s) {
  WFM_RETURN_IF_ERROR(CheckFloatTensor(s, "S", 3));
  if (s.size(1) != s.size(2) || s.size(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "S: shape must be [B, d, d] with d >= 1, got ", ShapeString(s.sizes())));
  }
  return GuardTorch("LowerTriangleEncode", [&] { return unchecked::LowerTriangleEncode(s); });
}

absl::StatusOr<at::Tensor> LowerTriangleDecode(const at::Tensor& v, int64_t d) {
  WFM_RETURN_IF_ERROR(CheckEncoding(v, d));
  return GuardTorch("LowerTriangleDecode", [&] { return unchecked::LowerTriangleDecode(v, d); });
}

absl::StatusOr<at::Tensor> SymmetricFromLowerTriangle(const at::Tensor& v, int64_t d) {
  WFM_RETURN_IF_ERROR(CheckEncoding(v, d));
  return GuardTorch("SymmetricFromLowerTriangle",
                    [&] { return unchecked::SymmetricFromLowerTriangle(v, d); });
}

}  // namespace wfm::model::gaussian
