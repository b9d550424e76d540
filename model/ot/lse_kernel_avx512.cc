// Float log-sum-exp kernels for the avx512 instruction set (see lse_kernel.h);
// model/ot/CMakeLists.txt sets this file's ISA flags.
#define WFM_SIMD_LANES 16
#define WFM_KERNEL_NAME kAvx512Kernels
#define WFM_KERNEL_ISA "avx512f"
#include "model/ot/lse_kernel_impl.inc"
