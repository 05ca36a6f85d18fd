// The interface between the op entry points (attention_cpu.cpp, compiled for the baseline ISA) and
// the kernel engine, which is compiled once per instruction set (isa_*.cpp) and chosen at run time
// (see select_kernels in attention_cpu.cpp). This header holds only declarations and plain data: the
// ISA translation units include it (and every other header) *before* switching the target ISA, so
// no inline function of a shared header is ever compiled for a wider ISA than the baseline.
#pragma once

#include <ATen/Parallel.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "../checks.h"

#if defined(__GNUC__) && !defined(_WIN32)
extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
}
#define VTRACK_HAVE_WEAK_BLAS 1
#endif

namespace vtrack {
namespace cpu {

// ---------------------------------------------------------------------------------------------
// Problem description shared by forward and backward
// ---------------------------------------------------------------------------------------------

struct Problem {
  Dims d;
  double scale = 1.0;
  const bool* mask = nullptr;  // [B, M] or null
  const void* mask_t = nullptr;  // the mask as 0/1 in the kernel's dtype (vectorisable selects)
  int64_t topk = 0;            // 0: dense
  int64_t K = 0;               // index width min(topk, M)
  bool fda = false;
  std::vector<double> alpha, beta, delta;  // [H]
  // CE: template rows whose probabilities toward search keys are written to ce_probs [B,H,T,Ls].
  int64_t num_template = 0;
  std::vector<int64_t> template_rows;
  std::vector<int64_t> nvalid;  // valid keys per batch
  // bf16 kernels only: run the block products with AMX-BF16 tiles (set by the op only when amx_enabled()).
  bool amx = false;
};

// The kernels of one ISA. Forward: q, k, v, out, lse, index (null without top-K), ce_probs (null
// without CE rows). Backward: q, k, v, out, lse, index, grad_out, dq, dk, dv, dcoef [B*H*3].
template <typename T>
using ForwardFn = void (*)(const Problem&, const T*, const T*, const T*, T*, T*, int32_t*, T*);
template <typename T>
using BackwardFn = void (*)(const Problem&, const T*, const T*, const T*, const T*, const T*, const int32_t*,
                            const T*, T*, T*, T*, double*);

// The bfloat16 kernels of an ISA with bf16 dot products (AVX512-BF16), null on the other ISAs (bf16 is widened
// there). Forward: q, k, v as raw bf16 bits; out, lse and ce_probs float32 (the op rounds out once to
// bfloat16). Backward: q, k, v, out and grad_out as raw bf16 bits (the kernel widens one head at a time into
// per-thread float32 scratch), lse and dq, dk, dv float32 (the op rounds the gradients once to bfloat16).
using ForwardBf16Fn = void (*)(const Problem&, const uint16_t*, const uint16_t*, const uint16_t*, float*, float*,
                               int32_t*, float*);
using BackwardBf16Fn = void (*)(const Problem&, const uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*,
                                const float*, const int32_t*, const uint16_t*, float*, float*, float*, double*);

struct KernelTable {
  const char* name;
  ForwardFn<float> forward_f32;
  ForwardFn<double> forward_f64;
  BackwardFn<float> backward_f32;
  BackwardFn<double> backward_f64;
  ForwardBf16Fn forward_bf16 = nullptr;
  BackwardBf16Fn backward_bf16 = nullptr;
  bool amx_bf16 = false;  // the bf16 kernels were built with the AMX-BF16 tile products (Problem::amx)
};

// AMX-BF16 (amx_runtime.cpp, baseline ISA): amx_available() = the CPU has amx_tile + amx_bf16, the OS saves the
// tile state and granted this process the tile data (Linux arch_prctl ARCH_REQ_XCOMP_PERM; asked once);
// amx_enabled() = amx_available() and VTRACK_CPU_AMX is not 0/off (read on every call); amx_why_not() = why
// amx_enabled() is false ("" when it is true). note_amx_use() counts a worker's tile configuration (amx_uses()).
bool amx_available();
bool amx_enabled();
const char* amx_why_not();
void note_amx_use();
int64_t amx_uses();

// One per ISA translation unit; null when that ISA cannot be compiled for this target (e.g. not x86).
namespace avx512bf16 { const KernelTable* kernel_table(); }
namespace avx512 { const KernelTable* kernel_table(); }
namespace avx2 { const KernelTable* kernel_table(); }
namespace baseline { const KernelTable* kernel_table(); }

}  // namespace cpu
}  // namespace vtrack
