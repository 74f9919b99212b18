/* AVX-512 VNNI kernels. The row-at-a-time kernels (kernels_x86.inc) do the
 * int8 dot product as one vpdpbusd on 256-bit registers; the 16-row
 * kernels here work on weights repacked at load (repack.h): one vpdpbusd
 * multiplies 16 rows by 4 broadcast activations, the 16 row scales are
 * one vector, and the block's unpacked weights are reused for every token
 * of the tile. Compiled for that target only in this file; called only
 * when cpuid says the CPU has it. */
#include "kernels.h"

#if defined(__x86_64__)
#include <float.h>
#include <string.h>

#define ST_TGT __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define ST_PFX(name) st_avx512_##name
#define ST_ISA_ID ST_ISA_AVX512
#define ST_UDOT(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))

ST_TGT static void st_avx512_gemm16_q4_0(uint32_t, const uint8_t *, const st_act_block *, size_t,
                                         uint32_t, float *);
ST_TGT static void st_avx512_gemm16_q4_1(uint32_t, const uint8_t *, const st_act_block *, size_t,
                                         uint32_t, float *);
ST_TGT static void st_avx512_gemm16_q8_0(uint32_t, const uint8_t *, const st_act_block *, size_t,
                                         uint32_t, float *);
ST_TGT static void st_avx512_quantize_act(const float *x, uint32_t n, st_act_block *out);
#define ST_QUANTIZE_ACT st_avx512_quantize_act
#define ST_GEMM16_INIT                                                                       \
    { NULL, NULL, st_avx512_gemm16_q4_0, st_avx512_gemm16_q4_1, st_avx512_gemm16_q8_0 }

#define ST_ATTN_AVX512
#define ST_GEMM_F32_R 4 /* 4 x 6 accumulators + 4 rows + 1 token: 29 of 32 registers */
#define ST_GEMM_F32_T 6
#define ST_ATTN_X86_KSTEP 4 /* 4 keys x 4 row vectors = 16 zmm accumulators */
#include "kernels_x86.inc"

/* The integer product of one token's block with the 8 weight vectors. */
ST_INLINE __m512i st_avx512_block_dot(const __m512i *wv, const st_act_block *a)
{
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        int32_t q4;
        memcpy(&q4, a->q + 4 * j, 4);
        acc = _mm512_dpbusd_epi32(acc, wv[j], _mm512_set1_epi32(q4));
    }
    return acc;
}

/* Decode (nt 1) streams each group from memory once, so each block asks
 * for the weights ST_GEMM16_PF_NEAR bytes ahead in L1 and
 * ST_GEMM16_PF_FAR ahead in L2 (a chunk's groups are contiguous, and the
 * packed arena holds the matrices in the order a token reads them). With
 * no prefetch the hardware's alone kept one token's products at 0.7 of a
 * plain read of the same memory once the weights no longer sat in the
 * last-level cache (a 16k cache streams them out of it every token); L1
 * alone gave 0.85; both about the read's rate (600 MB of Q4_1 groups, 2
 * threads, the 260 MiB-L3 Xeon of docs/RESULTS.md section 2: 18.7, 22.1
 * and 26.9 GB/s against a read of 26.2). Why L2 for the far one: see
 * dec_stream_prefetch (attn_decode_x86.inc). Not on AMD CPUs, where an
 * L1 prefetch, this one and an L2-only one were each measured slower
 * (st_cpu_weight_prefetch). Prefill reuses each group for many tokens and
 * asks for nothing. */
#define ST_GEMM16_PF_NEAR 2048
#define ST_GEMM16_PF_FAR 16384

/* kind: 0 = Q4_0 (offset 8), 1 = Q4_1 (minimum m), 2 = Q8_0 (offset 128). */
ST_INLINE void st_avx512_gemm16_tile(uint32_t nb, const uint8_t *g, const st_act_block *x,
                                     size_t xs, const int nt, float *out, const int kind)
{
    const size_t bb = kind == 0 ? 288 : kind == 1 ? 320 : 544;
    const size_t qoff = kind == 1 ? 64 : 32;
    __m512 acc[ST_TILE_MAX];
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    const __m512i low = _mm512_set1_epi8(15);
    const bool pf = nt == 1 && st_cpu_weight_prefetch();
    for (uint32_t b = 0; b < nb; b++) {
        const uint8_t *blk = g + b * bb;
        if (pf)
            for (size_t o = 0; o < bb; o += 64) {
                _mm_prefetch((const char *)blk + ST_GEMM16_PF_NEAR + o, _MM_HINT_T0);
                _mm_prefetch((const char *)blk + ST_GEMM16_PF_FAR + o, _MM_HINT_T2);
            }
        __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        __m512 m = kind == 1 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)))
                             : _mm512_mul_ps(d, _mm512_set1_ps(kind == 0 ? -8.0f : -128.0f));
        __m512i wv[8];
        if (kind == 2) {
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                wv[j] = _mm512_loadu_si512((const void *)(blk + qoff + 64 * j));
        } else {
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m512i z = _mm512_loadu_si512((const void *)(blk + qoff + 64 * i));
                wv[i] = _mm512_and_si512(z, low);
                wv[i + 4] = _mm512_and_si512(_mm512_srli_epi16(z, 4), low);
            }
        }
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const st_act_block *a = x + t * xs + b;
            __m512i s = st_avx512_block_dot(wv, a);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(d, _mm512_set1_ps(a->d)),
                                     acc[t]);
            acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(kind == 1 ? a->s16 : a->s), acc[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(out + 16 * t, acc[t]);
}

#define ST_GEMM16_ENTRY(name, kind)                                                          \
    ST_TGT static void name(uint32_t n, const uint8_t *g, const st_act_block *x, size_t xs,  \
                            uint32_t nt, float *out)                                         \
    {                                                                                        \
        ST_TILE_SWITCH(ST_GEMM16_CALL_##kind)                                                \
    }
#define ST_GEMM16_CALL_0(k) st_avx512_gemm16_tile(n / 32, g, x, xs, k, out, 0)
#define ST_GEMM16_CALL_1(k) st_avx512_gemm16_tile(n / 32, g, x, xs, k, out, 1)
#define ST_GEMM16_CALL_2(k) st_avx512_gemm16_tile(n / 32, g, x, xs, k, out, 2)
ST_GEMM16_ENTRY(st_avx512_gemm16_q4_0, 0)
ST_GEMM16_ENTRY(st_avx512_gemm16_q4_1, 1)
ST_GEMM16_ENTRY(st_avx512_gemm16_q8_0, 2)

ST_TGT static void st_avx512_quantize_act(const float *x, uint32_t n, st_act_block *out)
{
    for (uint32_t b = 0; b < n / ST_ACT_BLOCK; b++) {
        const float *xb = x + (size_t)b * ST_ACT_BLOCK;
        __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
        /* |x| > FLT_MAX or unordered: an infinity or a NaN (see
         * st_act_block_non_finite); vcvtps2dq would give INT_MIN for it and
         * the sum below would overflow. */
        const __m512 big = _mm512_set1_ps(FLT_MAX);
        if (_mm512_cmp_ps_mask(_mm512_abs_ps(x0), big, _CMP_NLE_UQ) |
            _mm512_cmp_ps_mask(_mm512_abs_ps(x1), big, _CMP_NLE_UQ)) {
            st_act_block_non_finite(&out[b]);
            continue;
        }
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        float d = amax / 127.0f;
        float id = st_act_block_multiplier(amax);
        __m512 idv = _mm512_set1_ps(id);
        /* vcvtps2dq rounds to nearest even (MXCSR default), as ggml. */
        __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, idv));
        __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, idv));
        _mm_storeu_si128((__m128i *)out[b].q, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(out[b].q + 16), _mm512_cvtepi32_epi8(q1));
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        float dh = st_cpu_round_half(d);
        out[b].d = dh;
        out[b].s = dh * (float)sum;
        out[b].s16 = st_cpu_round_half(d * (float)sum);
    }
}

const st_cpu_kernels *st_cpu_kernels_avx512(void)
{
    return &st_avx512_table;
}
#else
const st_cpu_kernels *st_cpu_kernels_avx512(void)
{
    return NULL;
}
#endif
