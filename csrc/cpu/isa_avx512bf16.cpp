// The bfloat16 forward and backward of the CPU kernel engine for x86-64 with AVX512-BF16 on top of AVX-512 F/BW/VL/DQ
// (Cooper Lake, Sapphire Rapids and later Xeons, Zen 4 and later): Q.K^T and P.V run on bf16 operands with
// vdpbf16ps (float32 accumulation). Only the bf16 functions are compiled here; the table's float32 and
// float64 kernels are the avx512 path's (bitwise the same results). Every header is included
// (kernel_api.h) before the target ISA is switched; attention_cpu.cpp calls this path only when the CPU
// reports avx512_bf16 and the AVX-512 subsets. The target adds amx-tile,amx-bf16 for the AMX-BF16 tile products
// (amx_bf16.h: only their intrinsics emit AMX instructions), which run only after amx_runtime.cpp's check.
#define VTRACK_ISA_NS avx512bf16
#define VTRACK_ISA_NAME "avx512bf16"
#define VTRACK_VEC_BYTES 64
#define VTRACK_ISA_AVX512 1
#define VTRACK_ISA_BF16 1
// AMX needs GCC >= 11 or Clang >= 12; an older compiler builds the vdpbf16ps kernels only (KernelTable::amx_bf16
// false: the op never asks for AMX, cpu_bf16_path() says bf16-dot and cpu_amx_status() why).
#if !defined(VTRACK_ISA_AMX)
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
#define VTRACK_ISA_AMX 1
#else
#define VTRACK_ISA_AMX 0
#endif
#endif
#if VTRACK_ISA_AMX
#define VTRACK_ISA_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16,avx2,fma,f16c,bmi,bmi2,popcnt"
#define VTRACK_ISA_GCC_TARGET \
  "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,amx-tile,amx-bf16,avx2,fma,f16c,bmi,bmi2,popcnt,prefer-vector-width=512"
#else
#define VTRACK_ISA_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c,bmi,bmi2,popcnt"
#define VTRACK_ISA_GCC_TARGET \
  "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c,bmi,bmi2,popcnt,prefer-vector-width=512"
#endif
#include "isa_unit.h"
