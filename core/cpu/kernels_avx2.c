/* AVX2 + FMA + F16C kernels: int8 dot products through vpmaddubsw and
 * vpmaddwd (no VNNI); the 16-row kernels on repacked weights are in
 * gemm16_avx2.c. Compiled for that target only in this file; called
 * only when cpuid says the CPU has it. */
#include "kernels.h"

#if defined(__x86_64__)
#include <float.h>

#define ST_TGT __attribute__((target("avx2,fma,f16c")))
#define ST_PFX(name) st_avx2_##name
#define ST_ISA_ID ST_ISA_AVX2
#define ST_UDOT(u, s) _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1))
#define ST_GEMM16_INIT                                                                       \
    { NULL, NULL, st_avx2_gemm16_q4_0, st_avx2_gemm16_q4_1, st_avx2_gemm16_q8_0 }
#define ST_ATTN_AVX2 /* the tile kernel of attn_tile_avx2.inc */
ST_TGT static void st_avx2_quantize_act(const float *x, uint32_t n, st_act_block *out);
#define ST_QUANTIZE_ACT st_avx2_quantize_act
#include "kernels_x86.inc"

/* st_quantize_act_row bit for bit: the same float products, vcvtps2dq
 * rounding to nearest even (MXCSR default) as rintf does. */
ST_TGT static void st_avx2_quantize_act(const float *x, uint32_t n, st_act_block *out)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
    for (uint32_t b = 0; b < n / ST_ACT_BLOCK; b++) {
        const float *xb = x + (size_t)b * ST_ACT_BLOCK;
        __m256 v[4], amax = _mm256_setzero_ps();
        int bad = 0;
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(xb + 8 * i);
            __m256 a = _mm256_andnot_ps(sign, v[i]);
            /* |x| > FLT_MAX or unordered: an infinity or a NaN (see
             * st_act_block_non_finite). */
            bad |= _mm256_movemask_ps(_mm256_cmp_ps(a, big, _CMP_NLE_UQ));
            amax = _mm256_max_ps(amax, a);
        }
        if (bad) {
            st_act_block_non_finite(&out[b]);
            continue;
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float am = _mm_cvtss_f32(m4);
        float d = am / 127.0f;
        float id = st_act_block_multiplier(am);
        __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++)
            q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv));
        /* |q| <= 127: the saturating packs are exact; they interleave the
         * 128-bit lanes, which the final permute undoes. */
        __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].q, p8);
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        int sum = _mm_cvtsi128_si32(s4);
        float dh = st_cpu_round_half(d);
        out[b].d = dh;
        out[b].s = dh * (float)sum;
        out[b].s16 = st_cpu_round_half(d * (float)sum);
    }
}

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
