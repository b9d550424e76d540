#include "model/common/cpu_features.h"

#include <cstdlib>

namespace wfm::model::cpu {

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512f:
      return "avx512f";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kGeneric:
      break;
  }
  return "generic";
}

std::optional<Isa> IsaFromName(std::string_view name) {
  for (Isa isa : kAllIsas) {
    if (name == IsaName(isa)) return isa;
  }
  return std::nullopt;
}

bool CpuSupports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's feature bits include the OS check (XGETBV) for the vector state.
  __builtin_cpu_init();
  switch (isa) {
    case Isa::kAvx512f:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kGeneric:
      break;
  }
  return true;
#else
  return isa == Isa::kGeneric;
#endif
}

Isa ChooseIsa(const char* cap, bool (*supports)(Isa)) {
  Isa limit = Isa::kAvx512f;
  if (cap != nullptr && cap[0] != '\0') {
    limit = IsaFromName(cap).value_or(Isa::kGeneric);
  }
  for (Isa isa : {Isa::kAvx512f, Isa::kAvx2}) {
    if (isa <= limit && supports(isa)) return isa;
  }
  return Isa::kGeneric;
}

Isa BestIsa() {
  static const Isa best = ChooseIsa(std::getenv("WFM_SIMD"), &CpuSupports);
  return best;
}

}  // namespace wfm::model::cpu
