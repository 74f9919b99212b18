/*
 * core/cpu/cpu_features.h - which SIMD path the CPU kernels take. Detected
 * once at run time (cpuid through __builtin_cpu_supports) so one portable
 * build uses AVX-512 VNNI where present; STRETCH_ISA=scalar|avx2|avx512
 * forces a path (lower than the CPU supports; a path the CPU lacks is
 * clamped down), which is how the tests compare paths on one machine.
 */
#ifndef ST_CORE_CPU_FEATURES_H
#define ST_CORE_CPU_FEATURES_H

#include <stdbool.h>
#include <stdint.h>

typedef enum st_cpu_isa {
    ST_ISA_SCALAR = 0,
    ST_ISA_AVX2 = 1,       /* AVX2 + FMA + F16C */
    ST_ISA_AVX512 = 2      /* AVX-512 F/BW/VL + VNNI */
} st_cpu_isa;

/* The best path this CPU supports, ignoring STRETCH_ISA. */
st_cpu_isa st_cpu_isa_detect(void);

/* The path kernels use: the detected one, lowered by STRETCH_ISA. Read
 * once per call site of st_cpu_kernels(); cheap (getenv). */
st_cpu_isa st_cpu_isa_active(void);

const char *st_cpu_isa_name(st_cpu_isa isa);

/* Whether the one-token weight kernels prefetch far ahead (in L2), and on
 * AVX-512 at all: yes but on AMD CPUs. Measured both ways: on the 260
 * MiB-L3 Xeon of docs/RESULTS.md section 2 it took decode at 512 tokens
 * from about 220 to 310 tok/s; on the Zen 4 EPYC, whose own prefetchers
 * stream the weights, the AVX-512 kernel lost with an L1-only prefetch
 * (295 -> 257 tok/s), with this two-distance one (off won 5 of 6 pairs)
 * and with the L2 request alone (off won 7 of 8); the AVX2 one was
 * measured there with its L1 prefetch alone. STRETCH_WEIGHT_PREFETCH=0 or 1
 * overrides (for A/B measurements). Read once, then cached. */
bool st_cpu_weight_prefetch(void);

#endif
