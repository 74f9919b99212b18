/*
 * core/cpu/kernels.h - the CPU dot-product kernels behind every matmul.
 *
 * A quantized weight row (Q4_0, Q4_1, Q8_0) is multiplied with activations
 * quantized to int8 per 32-element block (Q8_0-style, plus the block sum
 * Q4_0's -8 offset and Q4_1's minimum need), with integer dot products.
 * F32 and F16 rows take float activations.
 *
 * Every kernel computes one weight row against a tile of 1..ST_TILE_MAX
 * activation rows, so a GEMM reads each weight block once per tile of
 * tokens (prefill) and decode is the tile of one.
 */
#ifndef ST_CORE_CPU_KERNELS_H
#define ST_CORE_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdbool.h>

#include "gguf.h"
#include "cpu_features.h"
#include "kv_type.h"

#define ST_ACT_BLOCK 32
#define ST_TILE_MAX 8

/* One block of int8 activations, x[i] ~= d * q[i], rounded as ggml's x86
 * quantize_row_q8_0 / quantize_row_q8_1 do so that the products match
 * llama.cpp's: d is amax / 127 rounded to fp16 (ggml stores it as fp16),
 * q = nearest-even(x * (127 / amax)) computed in f32 before d is rounded.
 *   s   = d * sum(q) in f32 with the rounded d: the offset term of Q4_0
 *         and of the repacked (+128) Q8_0 weights;
 *   s16 = ggml's block_q8_1 s: fp16(d_f32 * sum(q)) with the f32 d before
 *         rounding; Q4_1's minimum multiplies this one, as in ggml. */
typedef struct st_act_block {
    float d;
    float s;
    float s16;
    int8_t q[ST_ACT_BLOCK];
} st_act_block;

/* A block holding a NaN or an infinity: x * (127 / amax) would convert
 * NaN to int (undefined behaviour, and the sum of the q overflows). Every
 * path stores this instead: q = 0 and a NaN scale, so each product with
 * the block is NaN and the forward pass reports non-finite logits. */
static inline void st_act_block_non_finite(st_act_block *blk)
{
    for (int i = 0; i < ST_ACT_BLOCK; i++)
        blk->q[i] = 0;
    blk->d = blk->s = blk->s16 = NAN;
}

/* A block's multiplier 127 / amax: 0 for amax 0, and 0 for amax under
 * 127 / FLT_MAX, where it would be infinite. d = amax / 127 is then 0 as a
 * half, so the block is 0 whatever q is, while x times an infinity (0
 * times one: NaN) has no integer to convert to (undefined in C; vcvtps2dq
 * gives INT_MIN). Every quantizer of activations uses it. */
static inline float st_act_block_multiplier(float amax)
{
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    return isinf(id) ? 0.0f : id;
}

/* The five weight types, as indexes of st_cpu_kernels.dot. */
enum { ST_KT_F32 = 0, ST_KT_F16, ST_KT_Q4_0, ST_KT_Q4_1, ST_KT_Q8_0, ST_KT_COUNT };

/* out[t] = dot(w_row, x + t * x_stride) for t < nt (1..ST_TILE_MAX).
 * Quantized types: x is st_act_block*, x_stride in blocks, n_cols a
 * multiple of 32. Float types: x is float*, x_stride in floats. */
typedef void (*st_dot_tile_fn)(uint32_t n_cols, const void *w_row, const void *x,
                               size_t x_stride, uint32_t nt, float *out);

/* 16 rows of a repacked matrix (one group, cpu/repack.h) against nt
 * (1..ST_TILE_MAX) activation rows: out[t * 16 + r]. */
typedef void (*st_gemm16_fn)(uint32_t n_cols, const uint8_t *group, const st_act_block *x,
                             size_t x_stride, uint32_t nt, float *out);

/* Flash-attention tiles (attn_tile.inc): up to ST_ATTN_ROWS query rows
 * (queries x the heads of one GQA group) against keys ST_ATTN_KTILE at a
 * time, with an online softmax. Row-major buffers are [.][ST_ATTN_ROWS],
 * rows padded to a multiple of 16 (nv = rows / 16). */
#define ST_ATTN_ROWS 64
#define ST_ATTN_KTILE 64


/* Where a layer's typed head rows lie: the row of (slot j, kv head g)
 * starts at p + g * head_stride + j * slot_stride bytes. The cache is
 * head-major ([kv_head][slot][dim]); the host's float scratch copies of
 * keys are slot-major ([slot][kv_head][dim]); the kernels take either. */
typedef struct st_kv_src {
    const void *p;
    size_t head_stride, slot_stride;
    st_kv_type type;
    /* f16 keys in blocks of ST_KV_KBLOCK slots (slot_stride is then the
     * row's bytes, 2 x dim, and no row lies at a stride): see below. */
    bool blocked;
} st_kv_src;

/* The cache's f16 keys by dimension in blocks of 16 slots (kv_cache.h's
 * k_blocked): dim d of slots 16b .. 16b + 15 in 32 contiguous bytes, block
 * b at b x 32 x dim bytes of its head. One f16-to-float conversion then
 * gives 16 (AVX2: 8) keys' dim d, a broadcast query element multiplies
 * it, and a decode step's scores come out in lanes with no sum across
 * them (docs/forward.md, "Keys in blocks"). */
#define ST_KV_KBLOCK 16

/* Key j of a head's blocked keys: its dim 0, then ST_KV_KBLOCK halves
 * apart for each next dim. */
static inline const uint16_t *st_kv_blk_key(const void *head, uint32_t j, uint32_t dim)
{
    return (const uint16_t *)head + (size_t)(j / ST_KV_KBLOCK) * ST_KV_KBLOCK * dim +
           j % ST_KV_KBLOCK;
}

static inline const void *st_kv_src_head(const st_kv_src *s, uint32_t g)
{
    return (const uint8_t *)s->p + (size_t)g * s->head_stride;
}

typedef struct st_attn_tile {
    uint32_t hd;           /* head_dim */
    uint32_t nv;           /* 16-row vectors in use, 1..4 */
    const float *qt;       /* [hd][rows] queries times the score scale */
    const int32_t *rpos;   /* [rows] each row's query position */
    int32_t rpos_min, rpos_max;
    float *ot;             /* [hd][rows] output, not yet divided by l */
    float *m, *l;          /* [rows] running max and sum (start -inf, 0) */
    float *st;             /* [ST_ATTN_KTILE][rows] scratch */
    /* [ST_ATTN_KTILE][hd] each: a key tile and a value tile of a compact
     * type converted to float once, then read by all the tile's rows. */
    float *kbuf, *vbuf;
    /* [rows] each row's linear distance bias slope (ALiBi as data): its
     * scores get slope * (kpos - rpos). NULL = none. */
    const float *rslope;
} st_attn_tile;

/* Add nk keys (k, v: the first key's head row, of types kt and vt, kstride
 * and vstride bytes apart; kpos ascending) to the tile's softmax; a key
 * counts for a row when min_dist <= rpos - kpos <= max_dist. */
typedef void (*st_attn_keys_fn)(st_attn_tile *t, const void *k, st_kv_type kt, size_t kstride,
                                const void *v, st_kv_type vt, size_t vstride,
                                const int32_t *kpos, uint32_t nk, int32_t min_dist,
                                int32_t max_dist);

/* scores_f32 and wsum_f32 on rows of one KV type, stride in bytes. */
typedef void (*st_scores_kv_fn)(const float *q, const void *k, size_t stride, const uint32_t *idx,
                                uint32_t n, uint32_t dim, float scale, float *out);
typedef void (*st_wsum_kv_fn)(float *out, const float *p, const void *v, size_t stride,
                              const uint32_t *idx, uint32_t n, uint32_t dim);

/* Decode attention on f16 (or Q8_0) keys and values: n cached rows
 * (kstride and vstride bytes apart) into the online-softmax state of the G
 * query heads of one KV group: q [G][hd] already times the score scale,
 * m[G] and l[G] the running max and sum, acc[G][hd] the unnormalised
 * output; s is scratch of G * n floats. For G <= ST_DEC_MAX_G and hd a
 * multiple of 16 (Q8_0: of 32, at most ST_DEC_Q8_MAX_HD). Q8_0 keys are
 * scored against q quantized per 32 dims (st_quantize_act_row), in exact
 * integer block products, as llama.cpp scores a Q8_0 cache. */
#define ST_DEC_MAX_G 8
#define ST_DEC_Q8_MAX_HD 256
typedef void (*st_attn_decode_fn)(const float *q, uint32_t G, uint32_t hd, const void *k,
                                  size_t kstride, const void *v, size_t vstride, uint32_t n,
                                  float *s, float *m, float *l, float *acc);
/* The same on blocked f16 keys: the n keys from slot x0 of the head whose
 * blocks start at khead; v is value row x0. */
typedef void (*st_attn_decode_blk_fn)(const float *q, uint32_t G, uint32_t hd, const void *khead,
                                      uint32_t x0, const void *v, size_t vstride, uint32_t n,
                                      float *s, float *m, float *l, float *acc);
/* out[i] = scale * dot(q, key idx[i]) on a head's blocked f16 keys. */
typedef void (*st_scores_blk_fn)(const float *q, const void *khead, const uint32_t *idx,
                                 uint32_t n, uint32_t dim, float scale, float *out);
/* dst[i][dim] = key j0 + i as float, i < n, from a head's blocked keys. */
typedef void (*st_kv_rows_blk_fn)(const void *khead, uint32_t j0, uint32_t n, uint32_t dim,
                                  float *dst);

/* Two orders of float operations for the quantized products, one per
 * numerics mode (the integer sums are exact, so only these steps differ,
 * and this forward pass rounds every product's input to int8 again, so a
 * last-bit difference can move a later quantum):
 *   block order (default): per 32-block, acc = fma(isum, d_w * d_x, acc),
 *     then the offset term fused into acc the same way (Q4_0:
 *     fma(-8 d_w, s, acc); Q4_1: fma(m_w, s16, acc); Q8_0: none). The
 *     AVX2 16-row kernels (gemm16_avx2.c), every path's `dot` and the
 *     OpenCL kernels compute exactly this, so they agree bit for bit.
 *     (The AVX-512 16-row kernels take Q8_0 as u8 + 128 with an offset
 *     term of their own: they agree to rounding only.)
 *   ggml order (`dot_ggml`, STRETCH_NUMERICS=ggml): as ggml's vec_dot on
 *     the same ISA (the x86 paths: eight lanes of 4 products, a tree over
 *     the lanes, the offsets summed apart; scalar: its generic C). */
typedef struct st_cpu_kernels {
    st_cpu_isa isa;
    st_dot_tile_fn dot[ST_KT_COUNT];      /* block order */
    st_dot_tile_fn dot_ggml[ST_KT_COUNT]; /* ggml order; float types as `dot` */
    st_gemm16_fn gemm16[ST_KT_COUNT]; /* NULL where this path has none */
    /* st_quantize_act_row, bit for bit. */
    void (*quantize_act)(const float *x, uint32_t n, st_act_block *out);
    /* Attention's float vector ops. */
    float (*dot_f32)(const float *a, const float *b, uint32_t n);
    /* y[t * ldy + r] = w_r . x_t for rows r < rows (ldw floats apart) and
     * tokens t < nt (xs apart): each value bit for bit what dot[F32]
     * gives, in register blocks of rows and tokens (NULL: use dot). */
    void (*gemm_f32)(uint32_t n, const float *w, size_t ldw, uint32_t rows, const float *x,
                     size_t xs, uint32_t nt, float *y, size_t ldy);
    void (*axpy_f32)(float *y, float a, const float *x, uint32_t n); /* y += a*x */
    /* out[i] = scale * dot(q, k + idx[i] * stride), i < n: one query
     * against a gathered list of cached keys. */
    void (*scores_f32)(const float *q, const float *k, size_t stride, const uint32_t *idx,
                       uint32_t n, uint32_t dim, float scale, float *out);
    /* out = sum_i p[i] * (v + idx[i] * stride), i < n (out overwritten). */
    void (*wsum_f32)(float *out, const float *p, const float *v, size_t stride,
                     const uint32_t *idx, uint32_t n, uint32_t dim);
    st_attn_keys_fn attn_keys;
    st_attn_decode_fn attn_decode_f16; /* NULL where this path has none */
    st_attn_decode_fn attn_decode_q8_0; /* the same on Q8_0 rows; NULL where none */
    /* The same on blocked f16 keys (f16 value rows); NULL where none: the
     * cache then keeps its keys in rows (st_kv_cache_block_keys). */
    st_attn_decode_blk_fn attn_decode_f16_blk;
    st_scores_blk_fn scores_blk;     /* the gathers on blocked keys */
    st_kv_rows_blk_fn kv_rows_blk;   /* blocked keys to float rows (prefill's tiles) */
    /* Whether an f16 cache on this path keeps its keys blocked by default:
     * where its blocked decode kernel was measured faster than its rows
     * kernel (docs/RESULTS.md section 2). */
    bool blocked_keys;
    /* The gathers on the cache's own types (index st_kv_type). */
    st_scores_kv_fn scores_kv[ST_KV_TYPE_COUNT];
    st_wsum_kv_fn wsum_kv[ST_KV_TYPE_COUNT];
    /* dst[i][dim] = row i as float, n rows stride bytes apart. */
    void (*kv_rows)(st_kv_type t, const void *src, size_t stride, uint32_t n, uint32_t dim,
                    float *dst);
    /* x[i] = GELU(x[i] + bias[i]) = y (1 + erf(y / sqrt 2)) / 2, erf as
     * st_erf_approx (erf_approx.h): the encoders' feed-forward. */
    void (*gelu_bias)(float *x, const float *bias, uint32_t n);
    /* dst[i] = st_cpu_to_half(src[i]), bit for bit but for a NaN's payload
     * (any NaN stays a NaN): a decode step's new keys and values into an
     * f16 cache, eight at a time where the ISA converts them. */
    void (*to_f16)(const float *src, uint16_t *dst, uint32_t n);
    /* h = silu(g) * u (h may equal g), the default numerics' SwiGLU; the
     * SIMD paths take e^x from exp_poly.h's polynomial, within a few ulp
     * of the scalar path's expf (the ggml mode has st_gc_swiglu). */
    void (*silu_mul)(float *h, const float *g, const float *u, uint32_t n);
    /* The sum over i < n of e^(x[i] - mx), mx no less than any x[i], in
     * double: a log-softmax's denominator over the vocabulary (logprobs.c).
     * The SIMD paths take e^x from exp_poly.h's polynomial and add lanes of
     * doubles; the scalar path adds glibc's expf in order. */
    double (*sum_exp)(const float *x, uint32_t n, float mx);
} st_cpu_kernels;

/* The table for `isa` (clamped to what was compiled in). */
const st_cpu_kernels *st_cpu_kernels_get(st_cpu_isa isa);

/* Per-ISA tables (kernels_*.c). */
const st_cpu_kernels *st_cpu_kernels_scalar(void);
const st_cpu_kernels *st_cpu_kernels_avx2(void);
const st_cpu_kernels *st_cpu_kernels_avx512(void);

/* The AVX2 16-row kernels (gemm16_avx2.c), on the same repacked layout
 * as AVX-512's. */
void st_avx2_gemm16_q4_0(uint32_t n, const uint8_t *g, const st_act_block *x, size_t xs,
                         uint32_t nt, float *out);
void st_avx2_gemm16_q4_1(uint32_t n, const uint8_t *g, const st_act_block *x, size_t xs,
                         uint32_t nt, float *out);
void st_avx2_gemm16_q8_0(uint32_t n, const uint8_t *g, const st_act_block *x, size_t xs,
                         uint32_t nt, float *out);

/* The scalar attention gathers (the SIMD paths fall back to them for head
 * sizes that are not a multiple of 8). */
void st_cpu_scores_f32_scalar(const float *q, const float *k, size_t stride, const uint32_t *idx,
                              uint32_t n, uint32_t dim, float scale, float *out);
void st_cpu_wsum_f32_scalar(float *out, const float *p, const float *v, size_t stride,
                            const uint32_t *idx, uint32_t n, uint32_t dim);
/* The scalar typed gathers and row conversion (kv_rows.c): the fallback
 * of the SIMD paths and the tests' yardstick. */
void st_cpu_scores_kv_scalar(st_kv_type t, const float *q, const void *k, size_t stride,
                             const uint32_t *idx, uint32_t n, uint32_t dim, float scale,
                             float *out);
void st_cpu_wsum_kv_scalar(st_kv_type t, float *out, const float *p, const void *v,
                           size_t stride, const uint32_t *idx, uint32_t n, uint32_t dim);
void st_cpu_kv_rows_scalar(st_kv_type t, const void *src, size_t stride, uint32_t n,
                           uint32_t dim, float *dst);
void st_cpu_scores_blk_scalar(const float *q, const void *khead, const uint32_t *idx, uint32_t n,
                              uint32_t dim, float scale, float *out);
void st_cpu_kv_rows_blk_scalar(const void *khead, uint32_t j0, uint32_t n, uint32_t dim,
                               float *dst);
/* Key j of blocked f16 keys as float, or as its dim halves, and back. */
void st_kv_blk_load(const void *khead, uint32_t j, float *dst, uint32_t dim);
void st_kv_blk_get(const void *khead, uint32_t j, uint16_t *dst, uint32_t dim);
void st_kv_blk_put(void *khead, uint32_t j, const uint16_t *src, uint32_t dim);
/* Row j of head g of any source as float. */
void st_kv_src_load_row(const st_kv_src *s, uint32_t g, uint32_t j, float *dst, uint32_t dim);
/* One row of dim elements to float and back; the store rounds as ggml
 * does (f16: nearest even; Q8_0: quantize_row_q8_0_ref). */
void st_kv_load_row(st_kv_type t, const void *src, float *dst, uint32_t dim);
void st_kv_store_row(st_kv_type t, const float *src, void *dst, uint32_t dim);

/* ST_KT_* for a ggml type; -1 when there is no kernel for it. */
int st_cpu_kernel_type(st_ggml_type t);
/* True when the type's kernel takes st_act_block activations. */
bool st_cpu_type_is_quantized(st_ggml_type t);

/* Quantize n floats (n a multiple of 32) to int8 blocks, rounding as
 * ggml's x86 quantize_row_q8_1 does (see st_act_block). */
void st_quantize_act_row(const float *x, uint32_t n, st_act_block *out);

/* Dequantize one row of n elements of type t (embedding lookup). */
void st_cpu_dequant_row(st_ggml_type t, const void *src, float *dst, uint32_t n);

/* Half to single precision without table or branches on the hot path. */
static inline float st_cpu_half(uint16_t h)
{
    union { uint32_t u; float f; } v;
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    if (exp == 0) {
        float f = (float)man * (1.0f / 16777216.0f); /* subnormal: man * 2^-24 */
        v.f = f;
        v.u |= sign;
        return v.f;
    }
    if (exp == 31)
        v.u = sign | 0x7f800000u | (man << 13);
    else
        v.u = sign | ((exp + 112u) << 23) | (man << 13);
    return v.f;
}

/* Single to half precision, round to nearest even (as F16C's
 * vcvtps2ph with imm 0 and ggml's GGML_CPU_FP32_TO_FP16 on x86):
 * overflow gives inf, tiny values become half subnormals. */
static inline uint16_t st_cpu_to_half(float f)
{
    union { float f; uint32_t u; } v = { f };
    uint32_t sign = (v.u >> 16) & 0x8000u, x = v.u & 0x7fffffffu;
    if (x >= 0x7f800000u) /* inf, nan */
        return (uint16_t)(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
    if (x >= 0x477ff000u) /* rounds to >= 65536 */
        return (uint16_t)(sign | 0x7c00u);
    if (x < 0x38800000u) { /* below 2^-14: a subnormal half (or zero) */
        /* Adding 0.5 leaves |f| rounded (nearest even) to a multiple of
         * 2^-24, the ulp of 0.5; the low bits are the half's mantissa. */
        union { float f; uint32_t u; } a = { .u = x };
        a.f += 0.5f;
        return (uint16_t)(sign | (a.u - 0x3f000000u));
    }
    uint32_t r = x + 0xfffu + ((x >> 13) & 1u); /* nearest even at bit 13 */
    return (uint16_t)(sign | ((r - (112u << 23)) >> 13));
}

/* f rounded to the nearest half, as a float. */
static inline float st_cpu_round_half(float f)
{
    return st_cpu_half(st_cpu_to_half(f));
}

#endif
