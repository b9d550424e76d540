// Network float kernels for baseline x86-64 (SSE2, four lanes; see
// nn_kernels.h). Compiled without ISA flags.
#define WFM_SIMD_LANES 4
#define WFM_KERNEL_NAME kGenericKernels
#define WFM_KERNEL_ISA "generic"
#include "model/nn/nn_kernels_impl.inc"
