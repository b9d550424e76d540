#include "model/nn/blas.h"

#include <dlfcn.h>

extern "C" {
// Fortran BLAS interface (column-major), present in every BLAS.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
}

namespace wfm::model::nn::blas {

void Sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  // wfm calls the BLAS from its own parallel items: the BLAS must not start
  // threads of its own (the thread policy, model/nn/cpu_runtime.h, sets this
  // at start-up; processes that never apply it, such as tests, get it here).
  static const bool single_threaded = SetBlasThreads(1);
  (void)single_threaded;
  // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: the row-major
  // buffers read column-major are the transposes, so the operands swap and
  // keep their own transpose flags.
  const char ta = trans_b ? 'T' : 'N';
  const char tb = trans_a ? 'T' : 'N';
  sgemm_(&ta, &tb, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

bool SetBlasThreads(int threads) {
  using SetFn = void (*)(int);
  static const SetFn set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set == nullptr) return false;
  set(threads < 1 ? 1 : threads);
  return true;
}

}  // namespace wfm::model::nn::blas
