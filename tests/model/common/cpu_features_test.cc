#include "model/common/cpu_features.h"

#include <string>

#include <gtest/gtest.h>

namespace wfm::model::cpu {
namespace {

bool AllIsas(Isa) { return true; }
bool Avx2Only(Isa isa) { return isa <= Isa::kAvx2; }
bool Avx512WithoutAmx(Isa isa) { return isa != Isa::kAmx; }
bool GenericOnly(Isa isa) { return isa == Isa::kGeneric; }
// A CPU with AVX-512 but (impossibly) no AVX2: the choice must not fall
// back to an instruction set the CPU lacks.
bool Avx512WithoutAvx2(Isa isa) { return isa != Isa::kAvx2; }

TEST(CpuFeaturesTest, NamesRoundTrip) {
  for (Isa isa : kAllIsas) {
    ASSERT_TRUE(IsaFromName(IsaName(isa)).has_value()) << IsaName(isa);
    EXPECT_EQ(*IsaFromName(IsaName(isa)), isa);
  }
  EXPECT_EQ(std::string(IsaName(Isa::kAvx512f)), "avx512f");
  EXPECT_EQ(std::string(IsaName(Isa::kAmx)), "amx");
  EXPECT_FALSE(IsaFromName("avx512").has_value());
  EXPECT_FALSE(IsaFromName("").has_value());
  EXPECT_FALSE(IsaFromName("AVX2").has_value());
}

TEST(CpuFeaturesTest, ChoosesTheBestSupportedUnderTheCap) {
  EXPECT_EQ(ChooseIsa(nullptr, AllIsas), Isa::kAmx);
  EXPECT_EQ(ChooseIsa("", AllIsas), Isa::kAmx);
  EXPECT_EQ(ChooseIsa(nullptr, Avx512WithoutAmx), Isa::kAvx512f);
  EXPECT_EQ(ChooseIsa("avx512f", AllIsas), Isa::kAvx512f);
  EXPECT_EQ(ChooseIsa("amx", Avx512WithoutAmx), Isa::kAvx512f);
  EXPECT_EQ(ChooseIsa(nullptr, Avx2Only), Isa::kAvx2);
  EXPECT_EQ(ChooseIsa(nullptr, GenericOnly), Isa::kGeneric);
  EXPECT_EQ(ChooseIsa("avx512f", Avx2Only), Isa::kAvx2);
  EXPECT_EQ(ChooseIsa("avx2", AllIsas), Isa::kAvx2);
  EXPECT_EQ(ChooseIsa("avx2", GenericOnly), Isa::kGeneric);
  EXPECT_EQ(ChooseIsa("generic", AllIsas), Isa::kGeneric);
  EXPECT_EQ(ChooseIsa("avx2", Avx512WithoutAvx2), Isa::kGeneric);
  // An unknown cap is the safe one.
  EXPECT_EQ(ChooseIsa("sse9", AllIsas), Isa::kGeneric);
}

TEST(CpuFeaturesTest, TheRunningCpuIsConsistent) {
  EXPECT_TRUE(CpuSupports(Isa::kGeneric));
  // AVX-512F machines run the AVX2 kernels too, AMX ones the AVX-512 ones.
  if (CpuSupports(Isa::kAvx512f)) {
    EXPECT_TRUE(CpuSupports(Isa::kAvx2));
  }
  if (CpuSupports(Isa::kAmx)) {
    EXPECT_TRUE(CpuSupports(Isa::kAvx512f));
  }
  EXPECT_EQ(CpuSupports(Isa::kAmx), CpuSupports(Isa::kAmx));  // the grant is remembered
  EXPECT_TRUE(CpuSupports(BestIsa()));
  EXPECT_EQ(BestIsa(), BestIsa());
}

struct Table {
  int id;
};

TEST(CpuFeaturesTest, SelectsTablesByIsaAndName) {
  const Table generic{0}, avx2{1}, avx512f{2};
  EXPECT_EQ(SelectKernels(Isa::kGeneric, generic, avx2, avx512f).id, 0);
  EXPECT_EQ(SelectKernels(Isa::kAvx2, generic, avx2, avx512f).id, 1);
  EXPECT_EQ(SelectKernels(Isa::kAvx512f, generic, avx2, avx512f).id, 2);
  // A family without an amx table runs its avx512f one there.
  const Table amx{3};
  EXPECT_EQ(SelectKernels(Isa::kAmx, generic, avx2, avx512f).id, 2);
  EXPECT_EQ(SelectKernels(Isa::kAmx, generic, avx2, avx512f, &amx).id, 3);
  EXPECT_EQ(SelectKernels(Isa::kAvx512f, generic, avx2, avx512f, &amx).id, 2);
  ASSERT_NE(KernelsNamed("generic", generic, avx2, avx512f), nullptr);
  EXPECT_EQ(KernelsNamed("generic", generic, avx2, avx512f)->id, 0);
  EXPECT_EQ(KernelsNamed("no-such-isa", generic, avx2, avx512f), nullptr);
  const Table* t = KernelsNamed("avx2", generic, avx2, avx512f);
  EXPECT_EQ(t != nullptr, CpuSupports(Isa::kAvx2));
  if (t != nullptr) {
    EXPECT_EQ(t->id, 1);
  }
}

}  // namespace
}  // namespace wfm::model::cpu
