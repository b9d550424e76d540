// Direct single-precision GEMM through the BLAS that LibTorch itself links
// (libblas.so.3: OpenBLAS on Debian when libopenblas0 is installed).
//
// The attention kernels call one small GEMM per (cloud, head) on strided views
// of the fused q/k/v activations; going through ATen would cost a dispatch and
// a tensor view per call, so they call the BLAS here instead. No torch here.
#ifndef WFM_MODEL_NN_BLAS_H_
#define WFM_MODEL_NN_BLAS_H_

namespace wfm::model::nn::blas {

// Row-major C[m,n] = alpha · op(A) · op(B) + beta · C, where op(A) is [m,k]
// (A stored [m,k] with row stride lda, or [k,m] when trans_a), op(B) is [k,n]
// (B stored [k,n] with row stride ldb, or [n,k] when trans_b); ldc is C's row
// stride. beta = 0 overwrites C (its previous values may be NaN). Runs on
// the calling thread: the first call sets the BLAS to one thread.
void Sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

// Sets OpenBLAS's own thread count when the loaded BLAS is OpenBLAS (it does
// not follow at::set_num_threads: OpenBLAS starts one thread per core unless
// OPENBLAS_NUM_THREADS says otherwise). Returns false, doing nothing, with
// another BLAS.
bool SetBlasThreads(int threads);

}  // namespace wfm::model::nn::blas

#endif  // WFM_MODEL_NN_BLAS_H_
