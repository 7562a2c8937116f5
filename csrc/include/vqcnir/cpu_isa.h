// Which instruction-set variant of a CPU loop to run: one place for the choice, used by every kernel that
// compiles a loop twice (the baseline target and `#pragma GCC target("avx2,fma")`, GCC on x86-64 only).
//
// AVX2 + FMA is used when the CPU has both, unless the environment variable VQCNIR_CPU_ISA=generic forces
// the baseline. The variable is read at every call (a getenv: nanoseconds), so tests can compare both
// variants in one process.
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VQCNIR_CPU_AVX2_VARIANT 1
#endif

namespace vqcnir {

inline bool use_avx2_variant() {
#ifdef VQCNIR_CPU_AVX2_VARIANT
  static const bool cpu_has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char* forced = std::getenv("VQCNIR_CPU_ISA");
  return cpu_has && !(forced != nullptr && std::strcmp(forced, "generic") == 0);
#else
  return false;
#endif
}

}  // namespace vqcnir
