// Float log-sum-exp kernels for the avx2 instruction set (see lse_kernel.h);
// model/ot/CMakeLists.txt sets this file's ISA flags.
#define WFM_SIMD_LANES 8
#define WFM_KERNEL_NAME kAvx2Kernels
#define WFM_KERNEL_ISA "avx2"
#include "model/ot/lse_kernel_impl.inc"
