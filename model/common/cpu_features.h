// Instruction sets and the run-time choice of SIMD kernels.
//
// The float kernels of model/nn (nn_kernels.h) and model/ot (lse_kernel.h)
// are compiled once per instruction set from one source each (their
// *_impl.inc, on the vector helpers of simd_vec.inc): baseline x86-64,
// AVX2 + FMA and AVX-512F + FMA, each translation unit with its own -m flags
// (WFM_SIMD_FLAGS_* in model/CMakeLists.txt). This module says which of them
// the CPU runs and picks one, so the default build needs no -march flag and
// one binary runs everywhere: AVX2 machines take the AVX2 kernels, AVX-512
// ones the AVX-512 kernels.
//
// The environment variable WFM_SIMD caps the choice: "generic", "avx2" or
// "avx512f" (unset or empty: no cap; any other value: generic). It is read
// once, at the first BestIsa() call.
//
// No torch here.
#ifndef WFM_MODEL_COMMON_CPU_FEATURES_H_
#define WFM_MODEL_COMMON_CPU_FEATURES_H_

#include <optional>
#include <string_view>

namespace wfm::model::cpu {

// Ordered: a later instruction set runs every earlier one's kernels.
enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512f = 2 };

inline constexpr Isa kAllIsas[] = {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512f};

// "generic", "avx2", "avx512f".
const char* IsaName(Isa isa);
// The Isa of one of those names; nullopt for any other string.
std::optional<Isa> IsaFromName(std::string_view name);

// Whether this CPU and OS run the instruction set's kernels: avx2 needs AVX2
// and FMA, avx512f AVX-512F and FMA (with the OS saving the vector state);
// generic is always true.
bool CpuSupports(Isa isa);

// The best instruction set for which `supports` holds, not above `cap` (a
// WFM_SIMD value as above; null = no cap).
Isa ChooseIsa(const char* cap, bool (*supports)(Isa));

// ChooseIsa(getenv("WFM_SIMD"), CpuSupports), computed once (thread-safe).
Isa BestIsa();

// The table of `isa` among one kernel family's tables.
template <typename Table>
const Table& SelectKernels(Isa isa, const Table& generic, const Table& avx2,
                           const Table& avx512f) {
  switch (isa) {
    case Isa::kAvx512f:
      return avx512f;
    case Isa::kAvx2:
      return avx2;
    case Isa::kGeneric:
      break;
  }
  return generic;
}

// The table named `name` when this CPU runs it; nullptr for an unknown name
// or an instruction set the CPU lacks (tests compare every available one).
template <typename Table>
const Table* KernelsNamed(std::string_view name, const Table& generic, const Table& avx2,
                          const Table& avx512f) {
  const std::optional<Isa> isa = IsaFromName(name);
  if (!isa.has_value() || !CpuSupports(*isa)) return nullptr;
  return &SelectKernels(*isa, generic, avx2, avx512f);
}

}  // namespace wfm::model::cpu

#endif  // WFM_MODEL_COMMON_CPU_FEATURES_H_
