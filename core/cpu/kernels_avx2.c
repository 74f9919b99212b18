/* AVX2 + FMA + F16C kernels: int8 dot products through vpmaddubsw and
 * vpmaddwd (no VNNI). Compiled for that target only in this file; called
 * only when cpuid says the CPU has it. */
#include "kernels.h"

#if defined(__x86_64__)
#define ST_TGT __attribute__((target("avx2,fma,f16c")))
#define ST_PFX(name) st_avx2_##name
#define ST_ISA_ID ST_ISA_AVX2
#define ST_UDOT(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define ST_ATTN_AVX2
/* Attention tiles in ymm vectors of 8 rows: 1 key (or 1 head dim in P.V)
 * x up to 8 row vectors = 8 accumulators, the rows read as memory operands
 * and one broadcast, within the 16 ymm registers. */
#define ST_ATTN_VL 8
#define ST_ATTN_X86_KSTEP 1
#define ST_ATTN_DSTEP 1
#include "kernels_x86.inc"

const st_cpu_kernels *st_cpu_kernels_avx2(void)
{
    return &st_avx2_table;
}
#else
const st_cpu_kernels *st_cpu_kernels_avx2(void)
{
    return NULL;
}
#endif
