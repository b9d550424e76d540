// Instruction sets and the run-time choice of SIMD kernels.
//
// The float kernels of model/nn (nn_kernels.h) and model/ot (lse_kernel.h)
// are compiled once per instruction set from one source each (their
// *_impl.inc, on the vector helpers of simd_vec.inc): baseline x86-64,
// AVX2 + FMA and AVX-512F + FMA, each translation unit with its own -m flags
// (WFM_SIMD_FLAGS_* in model/CMakeLists.txt). This module says which of them
// the CPU runs and picks one, so the default build needs no -march flag and
// one binary runs everywhere: AVX2 machines take the AVX2 kernels, AVX-512
// ones the AVX-512 kernels. A fourth level, amx, is AVX-512 with the AMX
// tile unit (AMX-BF16, with AVX512-BF16 for the conversions): families
// without an AMX table (model/ot) run their AVX-512 kernels there, and the
// network's dense layers run on the tiles (nn_kernels.h, "amx").
//
// The environment variable WFM_SIMD caps the choice: "generic", "avx2",
// "avx512f" or "amx" (unset or empty: no cap; any other value: generic). It
// is read once, at the first BestIsa() call.
//
// No torch here.
#ifndef WFM_MODEL_COMMON_CPU_FEATURES_H_
#define WFM_MODEL_COMMON_CPU_FEATURES_H_

#include <optional>
#include <string_view>

namespace wfm::model::cpu {

// Ordered: a later instruction set runs every earlier one's kernels.
enum class Isa { kGeneric = 0, kAvx2 = 1, kAvx512f = 2, kAmx = 3 };

inline constexpr Isa kAllIsas[] = {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512f, Isa::kAmx};

// "generic", "avx2", "avx512f", "amx".
const char* IsaName(Isa isa);
// The Isa of one of those names; nullopt for any other string.
std::optional<Isa> IsaFromName(std::string_view name);

// Whether this CPU and OS run the instruction set's kernels: avx2 needs AVX2
// and FMA, avx512f AVX-512F and FMA (with the OS saving the vector state),
// amx those of avx512f plus AVX-512BW/VL/BF16, AMX-TILE and AMX-BF16, with
// the OS granting this process the tile state (Linux 5.16+: the first call
// asks for it with arch_prctl(ARCH_REQ_XCOMP_PERM), once per process);
// generic is always true.
bool CpuSupports(Isa isa);

// The best instruction set for which `supports` holds, not above `cap` (a
// WFM_SIMD value as above; null = no cap).
Isa ChooseIsa(const char* cap, bool (*supports)(Isa));

// ChooseIsa(getenv("WFM_SIMD"), CpuSupports), computed once (thread-safe).
Isa BestIsa();

// The table of `isa` among one kernel family's tables (a family without an
// amx table runs its avx512f one there).
template <typename Table>
const Table& SelectKernels(Isa isa, const Table& generic, const Table& avx2,
                           const Table& avx512f, const Table* amx = nullptr) {
  switch (isa) {
    case Isa::kAmx:
      if (amx != nullptr) return *amx;
      return avx512f;
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
                          const Table& avx512f, const Table* amx = nullptr) {
  const std::optional<Isa> isa = IsaFromName(name);
  if (!isa.has_value() || !CpuSupports(*isa)) return nullptr;
  return &SelectKernels(*isa, generic, avx2, avx512f, amx);
}

}  // namespace wfm::model::cpu

#endif  // WFM_MODEL_COMMON_CPU_FEATURES_H_
