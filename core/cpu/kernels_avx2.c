/* AVX2 + FMA + F16C kernels: int8 dot products through vpmaddubsw and
 * vpmaddwd (no VNNI); the 16-row kernels on repacked weights are in
 * gemm16_avx2.c. Compiled for that target only in this file; called
 * only when cpuid says the CPU has it. */
#include "kernels.h"

#if defined(__x86_64__)
#define ST_TGT __attribute__((target("avx2,fma,f16c")))
#define ST_PFX(name) st_avx2_##name
#define ST_ISA_ID ST_ISA_AVX2
#define ST_UDOT(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define ST_GEMM16_INIT                                                                       \
    { NULL, NULL, st_avx2_gemm16_q4_0, st_avx2_gemm16_q4_1, st_avx2_gemm16_q8_0 }
#define ST_ATTN_AVX2 /* the tile kernel of attn_tile_avx2.inc */
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
