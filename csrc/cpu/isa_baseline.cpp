// The CPU kernel engine compiled for the build's baseline ISA (x86-64 SSE2, or any other
// architecture): the path of last resort, always present.
#include "kernel_api.h"

#define VTRACK_ISA_NS baseline
#define VTRACK_ISA_NAME "baseline"
#define VTRACK_VEC_BYTES 16
#define VTRACK_ISA_AVX512 0
#include "engine_impl.h"
