#include "model/common/cpu_features.h"

#include <cstdlib>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace wfm::model::cpu {

namespace {

#if defined(__x86_64__)
// AMX-TILE, AMX-BF16 and AVX512-BF16 in CPUID, and the tile state granted
// to this process by the OS.
bool AmxUsable() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  const bool tiles = (d & (1u << 24)) != 0 && (d & (1u << 22)) != 0;  // AMX-TILE, AMX-BF16
  if (!tiles || a < 1) return false;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
  if ((a1 & (1u << 5)) == 0) return false;  // AVX512-BF16
  if (!__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl")) return false;
  // Linux keeps the 8 KiB tile data out of a process's state until asked
  // (arch/x86/include/uapi/asm/prctl.h: ARCH_REQ_XCOMP_PERM; XFEATURE 18 is
  // XTILEDATA); a kernel or hypervisor without it refuses.
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  static const bool granted =
      syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
}
#endif

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAmx:
      return "amx";
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
    case Isa::kAmx:
#if defined(__x86_64__)
      return CpuSupports(Isa::kAvx512f) && AmxUsable();
#else
      return false;
#endif
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
  Isa limit = Isa::kAmx;
  if (cap != nullptr && cap[0] != '\0') {
    limit = IsaFromName(cap).value_or(Isa::kGeneric);
  }
  for (Isa isa : {Isa::kAmx, Isa::kAvx512f, Isa::kAvx2}) {
    if (isa <= limit && supports(isa)) return isa;
  }
  return Isa::kGeneric;
}

Isa BestIsa() {
  static const Isa best = ChooseIsa(std::getenv("WFM_SIMD"), &CpuSupports);
  return best;
}

}  // namespace wfm::model::cpu
