/* The AVX2 16-row kernels: the AVX-512 layout of cpu/repack.h read as two
 * halves of 8 rows (the first 32 bytes of each 64-byte vector are rows
 * 0..7, the last 32 rows 8..15), so one repacked copy serves both paths.
 * Per block the weights are unpacked once per pass of up to 4 tokens
 * (8 rows x 4 columns a register) and multiplied with the tokens while
 * they sit there: vpmaddubsw against the token's 4 bytes broadcast, then
 * one vpmaddwd per block (Q4: the 16-bit sums of 8 steps stay below 2^15)
 * or per step (Q8: vpmaddubsw saturates past 2^15, so the weights go
 * back to signed and multiply through the sign trick, as ggml's AVX2
 * kernels do). The per-block float terms are those of the AVX-512
 * kernel, in the same order. One token (decode) has kernels of its own
 * that run both halves in one pass over the group. */
#include "kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define ST_TGT __attribute__((target("avx2,fma,f16c")))
#define ST_INLINE ST_TGT static inline __attribute__((always_inline))

/* Decode (one token) streams each group from memory once: prefetch
 * PF_DIST ahead in L1 (the groups of a chunk are contiguous) so the loads
 * meet lines already on their way; one thread alone read 10-20% faster
 * this way on the 2-core EPYC. And PF_FAR ahead in L2, as the AVX-512
 * kernel does (kernels_avx512.c says why): on the 260 MiB-L3 Xeon, 600 MB
 * of Q4_1 groups went from 0.83 of a plain read's rate to about 1.0 (3
 * alternating rounds, 2 threads); not on AMD CPUs, where it was not
 * measured (st_cpu_weight_prefetch). Prefill reads each group for many
 * tokens and needs none. */
#define PF_DIST 2048
#define PF_FAR 16384
#define TOK_STEP 4 /* tokens per pass: Q4 keeps 8 sums and 4 weights in registers */

ST_INLINE __m256i bcast4(const int8_t *q)
{
    int32_t v;
    memcpy(&v, q, 4);
    return _mm256_set1_epi32(v);
}

/* Step i of a Q4 block's integer sums for nt tokens: columns 4i..4i+3
 * (low nibbles) and 4i+16..4i+19 (high nibbles) of both halves; q is the
 * block's nibbles, x the tokens' blocks. The first step sets the sums,
 * the others add to them. */
ST_INLINE void q4_step(const uint8_t *q, const st_act_block *x, size_t xs, const int nt,
                       int i, __m256i s[][2], const bool first)
{
    const __m256i low = _mm256_set1_epi8(15);
    __m256i wl[2], wh[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i z = _mm256_loadu_si256((const __m256i *)(q + 64 * i + 32 * h));
        wl[h] = _mm256_and_si256(z, low);
        wh[h] = _mm256_and_si256(_mm256_srli_epi16(z, 4), low);
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        const int8_t *a = x[t * xs].q;
        __m256i al = bcast4(a + 4 * i), ah = bcast4(a + 4 * (i + 4));
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(wl[h], al),
                                         _mm256_maddubs_epi16(wh[h], ah));
            s[t][h] = first ? p : _mm256_add_epi16(s[t][h], p);
        }
    }
}

/* Q4 (kind 0 = Q4_0, 1 = Q4_1): all 16 rows of the group, tokens nt.
 * Both halves go in one pass so a token's broadcast bytes serve 16 rows,
 * and a block's weights are unpacked 4 bytes of columns at a time (lows
 * and highs of both halves, 4 registers) instead of all at once: the 2 x
 * nt 16-bit sums, the weights and the broadcasts then fit AVX2's 16
 * registers. The integer sums are exact in any order; the float terms
 * of each (token, half) are the old per-half kernel's, in its order. On
 * the Zen 3 EPYC (vpmaddubsw, vpmaddwd and the multiply-adds share two
 * pipes, four vector operations a cycle in all) one thread went from
 * 22-24 to 26-29 multiply-adds a cycle, the best of 15 rounds, and to
 * 30-31 with step 0 setting the sums instead of adding to zeros. */
ST_INLINE void q4_pass(uint32_t nb, const uint8_t *g, const st_act_block *x, size_t xs,
                       const int nt, float *out, const int kind)
{
    const size_t bb = kind == 0 ? 288 : 320;
    const size_t qoff = kind == 1 ? 64 : 32;
    __m256 acc[TOK_STEP][2];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (uint32_t b = 0; b < nb; b++) {
        const uint8_t *blk = g + b * bb;
        /* Step 0 sets the sums that steps 1..3 add to. Not unrolled:
         * unrolled, GCC computes every product first and spills them. */
        __m256i s[TOK_STEP][2];
        q4_step(blk + qoff, x + b, xs, nt, 0, s, true);
#pragma GCC unroll 1
        for (int i = 1; i < 4; i++)
            q4_step(blk + qoff, x + b, xs, nt, i, s, false);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16 * h)));
            __m256 m = kind == 1
                           ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * h)))
                           : _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const st_act_block *a = x + t * xs + b;
                __m256 v = _mm256_cvtepi32_ps(_mm256_madd_epi16(s[t][h], ones));
                acc[t][h] = _mm256_fmadd_ps(v, _mm256_mul_ps(d, _mm256_set1_ps(a->d)), acc[t][h]);
                acc[t][h] = _mm256_fmadd_ps(m, _mm256_set1_ps(kind == 1 ? a->s16 : a->s),
                                            acc[t][h]);
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        _mm256_storeu_ps(out + 16 * t, acc[t][0]);
        _mm256_storeu_ps(out + 16 * t + 8, acc[t][1]);
    }
}

/* Q8_0: the layout's bytes are the weight plus 128; xor 0x80 gives the
 * signed weight back, and |w| x sign(a, w) is w x a in vpmaddubsw's
 * unsigned-by-signed form (|a| <= 127, so no product saturates). The
 * integer sum is then the exact signed dot product: no offset term. */
ST_INLINE void q8_half(uint32_t nb, const uint8_t *g, const st_act_block *x, size_t xs,
                       const int nt, float *out, const int h)
{
    const size_t bb = 544;
    __m256 acc[TOK_STEP];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    for (uint32_t b = 0; b < nb; b++) {
        const uint8_t *blk = g + b * bb;
        __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16 * h)));
        __m256i s[TOK_STEP];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            s[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256i w = _mm256_xor_si256(
                _mm256_loadu_si256((const __m256i *)(blk + 32 + 64 * j + 32 * h)), flip);
            __m256i wabs = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                __m256i av = _mm256_sign_epi8(bcast4(x[t * xs + b].q + 4 * j), w);
                s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, av), ones));
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]),
                                     _mm256_mul_ps(d, _mm256_set1_ps(x[t * xs + b].d)), acc[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(out + 16 * t + 8 * h, acc[t]);
}

/* Half h of a Q4_0 / Q4_1 block (kind 0 / 1) times one token's block a,
 * added to acc: q4_pass's terms in its order. */
ST_INLINE __m256 q4_block_half(const uint8_t *blk, const st_act_block *a, const int h,
                               const int kind, __m256 acc)
{
    const size_t qoff = kind == 1 ? 64 : 32;
    const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256i s16 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __m256i z = _mm256_loadu_si256((const __m256i *)(blk + qoff + 64 * i + 32 * h));
        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(_mm256_and_si256(z, low),
                                                         bcast4(a->q + 4 * i)));
        s16 = _mm256_add_epi16(
            s16, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(z, 4), low),
                                      bcast4(a->q + 4 * (i + 4))));
    }
    __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16 * h)));
    __m256 m = kind == 1 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * h)))
                         : _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones)),
                          _mm256_mul_ps(d, _mm256_set1_ps(a->d)), acc);
    return _mm256_fmadd_ps(m, _mm256_set1_ps(kind == 1 ? a->s16 : a->s), acc);
}

/* Half h of a Q8_0 block times one token's block a, added to acc:
 * q8_half's terms in its order. */
ST_INLINE __m256 q8_block_half(const uint8_t *blk, const st_act_block *a, const int h,
                               __m256 acc)
{
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    __m256i s = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        __m256i w = _mm256_xor_si256(
            _mm256_loadu_si256((const __m256i *)(blk + 32 + 64 * j + 32 * h)), flip);
        __m256i av = _mm256_sign_epi8(bcast4(a->q + 4 * j), w);
        s = _mm256_add_epi32(
            s, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), av), ones));
    }
    __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16 * h)));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, _mm256_set1_ps(a->d)), acc);
}

/* One token (decode; kind 0 = Q4_0, 1 = Q4_1, 2 = Q8_0): both halves of
 * each block in one pass, so the two halves' accumulator chains overlap
 * and each block is read in one go (the prefill kernels, run for one
 * token, had passed over the group once per half, each half one chain of
 * two dependent multiply-adds a block).
 * Over 66 MB of Q4_1 weights on 2 threads of an AVX2 EPYC this read 33-34
 * GB/s against 28 before, as fast as a plain read of the same bytes (the
 * Q8_0 output matrix: 29-30 against 25-28, a plain read 28-30). The float
 * terms are group_pass's, in its order, so a token decoded gets the bits
 * a prefill tile gives it. */
ST_INLINE void one_token(uint32_t nb, const uint8_t *g, const st_act_block *x, float *out,
                         const int kind)
{
    const size_t bb = kind == 0 ? 288 : kind == 1 ? 320 : 544;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    const bool far = st_cpu_weight_prefetch();
    for (uint32_t b = 0; b < nb; b++) {
        const uint8_t *blk = g + b * bb;
        for (size_t o = 0; o < bb; o += 64) {
            _mm_prefetch((const char *)blk + PF_DIST + o, _MM_HINT_T0);
            if (far)
                _mm_prefetch((const char *)blk + PF_FAR + o, _MM_HINT_T2);
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            acc[h] = kind == 2 ? q8_block_half(blk, x + b, h, acc[h])
                               : q4_block_half(blk, x + b, h, kind, acc[h]);
    }
    _mm256_storeu_ps(out, acc[0]);
    _mm256_storeu_ps(out + 8, acc[1]);
}

/* kind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0; both halves, tokens in passes of
 * TOK_STEP with a constant count so the accumulators stay registers. */
ST_INLINE void group_pass(uint32_t nb, const uint8_t *g, const st_act_block *x, size_t xs,
                          const int nt, float *out, const int kind)
{
    if (kind == 2) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++)
            q8_half(nb, g, x, xs, nt, out, h);
    } else {
        q4_pass(nb, g, x, xs, nt, out, kind);
    }
}

#define GEMM16_ENTRY(name, kind)                                                              \
    ST_TGT void name(uint32_t n, const uint8_t *g, const st_act_block *x, size_t xs,          \
                     uint32_t nt, float *out)                                                 \
    {                                                                                         \
        uint32_t t0 = 0;                                                                      \
        for (; t0 + TOK_STEP <= nt; t0 += TOK_STEP)                                           \
            group_pass(n / 32, g, x + t0 * xs, xs, TOK_STEP, out + 16 * t0, kind);            \
        switch (nt - t0) {                                                                    \
        case 3: group_pass(n / 32, g, x + t0 * xs, xs, 3, out + 16 * t0, kind); break;        \
        case 2: group_pass(n / 32, g, x + t0 * xs, xs, 2, out + 16 * t0, kind); break;        \
        case 1: one_token(n / 32, g, x + t0 * xs, out + 16 * t0, kind); break;                \
        default: break;                                                                       \
        }                                                                                     \
    }
GEMM16_ENTRY(st_avx2_gemm16_q4_0, 0)
GEMM16_ENTRY(st_avx2_gemm16_q4_1, 1)
GEMM16_ENTRY(st_avx2_gemm16_q8_0, 2)

#endif
