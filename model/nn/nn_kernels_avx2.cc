// Network float kernels for the avx2 instruction set (see nn_kernels.h);
// model/nn/CMakeLists.txt sets this file's ISA flags.
#define WFM_SIMD_LANES 8
#define WFM_KERNEL_NAME kAvx2Kernels
#define WFM_KERNEL_ISA "avx2"
#include "model/nn/nn_kernels_impl.inc"
