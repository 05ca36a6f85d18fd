// The CPU kernel engine compiled for x86-64 with AVX-512 (F, BW, VL, DQ), AVX2 and FMA (Skylake-SP,
// Ice Lake, Sapphire Rapids, Zen 4 and later); see isa_unit.h. (prefer-vector-width is a GCC target
// option only; Clang is not tested here.)
#define VTRACK_ISA_NS avx512
#define VTRACK_ISA_NAME "avx512"
#define VTRACK_VEC_BYTES 64
#define VTRACK_ISA_AVX512 1
#define VTRACK_ISA_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,popcnt"
#define VTRACK_ISA_GCC_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi,bmi2,popcnt,prefer-vector-width=512"
#include "isa_unit.h"
