// One ISA translation unit of the CPU kernel engine. An isa_*.cpp file defines
//   VTRACK_ISA_NS (its namespace), VTRACK_ISA_NAME (its name as a string), VTRACK_VEC_BYTES,
//   VTRACK_ISA_AVX512 (0/1), optionally VTRACK_ISA_BF16 (1: the AVX512-BF16 functions),
//   VTRACK_ISA_TARGET (the target attribute string for Clang) and VTRACK_ISA_GCC_TARGET (the
//   `#pragma GCC target` string(s) for GCC),
// then includes this file. On x86-64 GCC/Clang builds the engine (engine_impl.h) is compiled here with
// that target: every other header is included first (kernel_api.h), so only the engine's own
// functions, all in namespace vtrack::cpu::VTRACK_ISA_NS, use the instructions, and
// attention_cpu.cpp calls them only when CPUID reports them. Elsewhere the ISA's table is nullptr.
#include "kernel_api.h"

#define VTRACK_ISA_STR(x) #x
#define VTRACK_ISA_PRAGMA(x) _Pragma(VTRACK_ISA_STR(x))

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#if defined(__clang__)
VTRACK_ISA_PRAGMA(clang attribute push(__attribute__((target(VTRACK_ISA_TARGET))), apply_to = function))
#else
#pragma GCC push_options
VTRACK_ISA_PRAGMA(GCC target(VTRACK_ISA_GCC_TARGET))
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
namespace VTRACK_ISA_NS {
const KernelTable* kernel_table() { return nullptr; }  // not an x86-64 GCC/Clang build
}  // namespace VTRACK_ISA_NS
}  // namespace cpu
}  // namespace vtrack
#endif
