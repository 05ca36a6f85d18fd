// The CPU kernel engine compiled for x86-64 with AVX-512 (F, BW, VL, DQ), AVX2 and FMA (Skylake-SP,
// Ice Lake, Sapphire Rapids, Zen 4 and later).
// Every header is included (kernel_api.h) before the target ISA is switched, so only the engine's own
// functions (all in namespace vtrack::cpu::avx512) use these instructions; attention_cpu.cpp calls them
// only when the CPU has them.
#include "kernel_api.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define VTRACK_ISA_NS avx512
#define VTRACK_ISA_NAME "avx512"
#define VTRACK_VEC_BYTES 64
#define VTRACK_ISA_AVX512 1
#if defined(__clang__)
// (prefer-vector-width is a GCC target option only; Clang is not tested here)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,popcnt,prefer-vector-width=512")
#endif
#include "engine_impl.h"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#else
namespace vtrack {
namespace cpu {
namespace avx512 {
const KernelTable* kernel_table() { return nullptr; }  // not an x86-64 GCC/Clang build
}  // namespace avx512
}  // namespace cpu
}  // namespace vtrack
#endif
