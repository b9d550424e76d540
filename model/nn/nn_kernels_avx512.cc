// Network float kernels for the avx512f instruction set (see nn_kernels.h);
// model/nn/CMakeLists.txt sets this file's ISA flags.
#define WFM_SIMD_LANES 16
#define WFM_KERNEL_NAME kAvx512Kernels
#define WFM_KERNEL_ISA "avx512f"
#include "model/nn/nn_kernels_impl.inc"
