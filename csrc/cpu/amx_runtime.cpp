// The run-time check of the AMX-BF16 path of the bfloat16 kernels (amx_bf16.h): CPUID, XCR0 and the Linux tile
// data permission, plus the VTRACK_CPU_AMX switch and a use counter. Compiled for the baseline ISA (no AMX
// instruction here): it only asks the CPU and the OS.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernel_api.h"

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#define VTRACK_AMX_PROBE 1
#endif

namespace vtrack {
namespace cpu {
namespace {

std::atomic<int64_t> g_amx_uses{0};

// "" when the CPU and OS allow AMX-BF16, else why not. Asked once per process (the permission is per process).
const char* probe() {
#ifdef VTRACK_AMX_PROBE
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return "the CPU lacks AMX (no CPUID leaf 7)";
  __cpuid_count(7, 0, a, b, c, d);
  const bool tile = (d >> 24) & 1u, bf16 = (d >> 22) & 1u;
  if (!tile || !bf16) return "the CPU lacks amx_tile/amx_bf16";
  __cpuid(1, a, b, c, d);
  if (!((c >> 27) & 1u)) return "the OS does not enable XSAVE (OSXSAVE)";
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return "the OS does not enable the AMX tile state (XCR0 bits 17, 18)";
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
    return "Linux refused the tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM)";
  return "";
#else
  return "AMX is used on Linux only (the tile data permission request is Linux's)";
#endif
#else
  return "not an x86-64 GCC/Clang build";
#endif
}

const char* hardware_why_not() {
  static const char* const why = probe();
  return why;
}

bool switched_off() {
  const char* env = std::getenv("VTRACK_CPU_AMX");
  return env != nullptr && (std::strcmp(env, "0") == 0 || std::strcmp(env, "off") == 0);
}

}  // namespace

bool amx_available() { return hardware_why_not()[0] == '\0'; }

bool amx_enabled() { return amx_available() && !switched_off(); }

const char* amx_why_not() {
  if (!amx_available()) return hardware_why_not();
  return switched_off() ? "VTRACK_CPU_AMX=0" : "";
}

void note_amx_use() { g_amx_uses.fetch_add(1, std::memory_order_relaxed); }

int64_t amx_uses() { return g_amx_uses.load(std::memory_order_relaxed); }

}  // namespace cpu
}  // namespace vtrack
