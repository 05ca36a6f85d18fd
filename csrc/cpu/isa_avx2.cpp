// The CPU kernel engine compiled for x86-64 with AVX2 and FMA (Haswell, Zen 1 and later); see isa_unit.h.
#define VTRACK_ISA_NS avx2
#define VTRACK_ISA_NAME "avx2"
#define VTRACK_VEC_BYTES 32
#define VTRACK_ISA_AVX512 0
#define VTRACK_ISA_TARGET "avx2,fma,f16c,bmi,bmi2,popcnt"
#define VTRACK_ISA_GCC_TARGET "avx2,fma,f16c,bmi,bmi2,popcnt"
#include "isa_unit.h"
