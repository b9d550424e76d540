// Float log-sum-exp kernels for the generic instruction set (see lse_kernel.h);
// model/ot/CMakeLists.txt sets this file's ISA flags.
#define WFM_SIMD_LANES 8
#define WFM_KERNEL_NAME kGenericKernels
#define WFM_KERNEL_ISA "generic"
#include "model/ot/lse_kernel_impl.inc"
