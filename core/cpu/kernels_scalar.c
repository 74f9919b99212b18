/* Portable scalar kernels: the fallback path and the yardstick the SIMD
 * paths are tested against. Integer sums are exact, so the SIMD paths may
 * differ only in the float accumulation order. */
#include "kernels.h"
#include "cpu_features.h"

#include <math.h>

#include "erf_approx.h"
#include "quant.h"
#include "ops.h"

int st_cpu_kernel_type(st_ggml_type t)
{
    switch (t) {
    case ST_GGML_F32: return ST_KT_F32;
    case ST_GGML_F16: return ST_KT_F16;
    case ST_GGML_Q4_0: return ST_KT_Q4_0;
    case ST_GGML_Q4_1: return ST_KT_Q4_1;
    case ST_GGML_Q8_0: return ST_KT_Q8_0;
    }
    return -1;
}

bool st_cpu_type_is_quantized(st_ggml_type t)
{
    return t == ST_GGML_Q4_0 || t == ST_GGML_Q4_1 || t == ST_GGML_Q8_0;
}

void st_quantize_act_row(const float *x, uint32_t n, st_act_block *out)
{
    for (uint32_t b = 0; b < n / ST_ACT_BLOCK; b++) {
        const float *xb = x + (size_t)b * ST_ACT_BLOCK;
        float amax = 0.0f;
        bool finite = true;
        for (int i = 0; i < ST_ACT_BLOCK; i++) {
            float a = fabsf(xb[i]);
            amax = a > amax ? a : amax;
            finite &= isfinite(a);
        }
        if (!finite) {
            st_act_block_non_finite(&out[b]);
            continue;
        }
        /* As ggml's x86 quantize_row_q8_1: the multiplier is 127 / amax
         * (not 1 / d), rounding is to nearest even, and d and the Q8_1
         * sum are stored as fp16. */
        float d = amax / 127.0f;
        float id = st_act_block_multiplier(amax);
        int sum = 0;
        for (int i = 0; i < ST_ACT_BLOCK; i++) {
            int q = (int)rintf(xb[i] * id);
            out[b].q[i] = (int8_t)q;
            sum += q;
        }
        float dh = st_cpu_round_half(d);
        out[b].d = dh;
        out[b].s = dh * (float)sum;
        out[b].s16 = st_cpu_round_half(d * (float)sum);
    }
}

void st_cpu_dequant_row(st_ggml_type t, const void *src, float *dst, uint32_t n)
{
    switch (t) {
    case ST_GGML_F32: {
        const float *s = src;
        for (uint32_t i = 0; i < n; i++)
            dst[i] = s[i];
        return;
    }
    case ST_GGML_F16: {
        const uint16_t *s = src;
        for (uint32_t i = 0; i < n; i++)
            dst[i] = st_cpu_half(s[i]);
        return;
    }
    case ST_GGML_Q4_0: {
        const st_block_q4_0 *w = src;
        for (uint32_t b = 0; b < n / 32; b++) {
            float d = st_cpu_half(w[b].d);
            for (int j = 0; j < 16; j++) {
                dst[b * 32 + j] = (float)((w[b].qs[j] & 15) - 8) * d;
                dst[b * 32 + j + 16] = (float)((w[b].qs[j] >> 4) - 8) * d;
            }
        }
        return;
    }
    case ST_GGML_Q4_1: {
        const st_block_q4_1 *w = src;
        for (uint32_t b = 0; b < n / 32; b++) {
            float d = st_cpu_half(w[b].d), m = st_cpu_half(w[b].m);
            for (int j = 0; j < 16; j++) {
                dst[b * 32 + j] = (float)(w[b].qs[j] & 15) * d + m;
                dst[b * 32 + j + 16] = (float)(w[b].qs[j] >> 4) * d + m;
            }
        }
        return;
    }
    case ST_GGML_Q8_0: {
        const st_block_q8_0 *w = src;
        for (uint32_t b = 0; b < n / 32; b++) {
            float d = st_cpu_half(w[b].d);
            for (int j = 0; j < 32; j++)
                dst[b * 32 + j] = (float)w[b].qs[j] * d;
        }
        return;
    }
    }
}

static void dot_f32(uint32_t n, const void *w_row, const void *x, size_t xs,
                    uint32_t nt, float *out)
{
    const float *w = w_row;
    for (uint32_t t = 0; t < nt; t++) {
        const float *xt = (const float *)x + t * xs;
        float acc = 0.0f;
        for (uint32_t i = 0; i < n; i++)
            acc += w[i] * xt[i];
        out[t] = acc;
    }
}

static void dot_f16(uint32_t n, const void *w_row, const void *x, size_t xs,
                    uint32_t nt, float *out)
{
    const uint16_t *w = w_row;
    for (uint32_t t = 0; t < nt; t++) {
        const float *xt = (const float *)x + t * xs;
        float acc = 0.0f;
        for (uint32_t i = 0; i < n; i++)
            acc += st_cpu_half(w[i]) * xt[i];
        out[t] = acc;
    }
}

#define ST_TGT
#define ST_PFX(name) st_scalar_##name
#include "dot_block.inc"
#undef ST_PFX
#undef ST_TGT

/* The ggml order (STRETCH_NUMERICS=ggml): as ggml's generic C vec_dot,
 * (d_w * d_x) * isum plus the offset term, unfused, one sum per row. */
static void dot_q4_0_ggml(uint32_t n, const void *w_row, const void *x, size_t xs,
                          uint32_t nt, float *out)
{
    const st_block_q4_0 *w = w_row;
    for (uint32_t t = 0; t < nt; t++) {
        const st_act_block *a = (const st_act_block *)x + t * xs;
        float acc = 0.0f;
        for (uint32_t b = 0; b < n / 32; b++) {
            int isum = 0;
            for (int j = 0; j < 16; j++)
                isum += (w[b].qs[j] & 15) * a[b].q[j] + (w[b].qs[j] >> 4) * a[b].q[j + 16];
            float d = st_cpu_half(w[b].d);
            acc += d * (a[b].d * (float)isum - 8.0f * a[b].s);
        }
        out[t] = acc;
    }
}

static void dot_q4_1_ggml(uint32_t n, const void *w_row, const void *x, size_t xs,
                          uint32_t nt, float *out)
{
    const st_block_q4_1 *w = w_row;
    for (uint32_t t = 0; t < nt; t++) {
        const st_act_block *a = (const st_act_block *)x + t * xs;
        float acc = 0.0f;
        for (uint32_t b = 0; b < n / 32; b++) {
            int isum = 0;
            for (int j = 0; j < 16; j++)
                isum += (w[b].qs[j] & 15) * a[b].q[j] + (w[b].qs[j] >> 4) * a[b].q[j + 16];
            acc += st_cpu_half(w[b].d) * a[b].d * (float)isum + st_cpu_half(w[b].m) * a[b].s16;
        }
        out[t] = acc;
    }
}

static void dot_q8_0_ggml(uint32_t n, const void *w_row, const void *x, size_t xs,
                          uint32_t nt, float *out)
{
    const st_block_q8_0 *w = w_row;
    for (uint32_t t = 0; t < nt; t++) {
        const st_act_block *a = (const st_act_block *)x + t * xs;
        float acc = 0.0f;
        for (uint32_t b = 0; b < n / 32; b++) {
            int isum = 0;
            for (int j = 0; j < 32; j++)
                isum += w[b].qs[j] * a[b].q[j];
            acc += st_cpu_half(w[b].d) * a[b].d * (float)isum;
        }
        out[t] = acc;
    }
}

static float vdot_f32(const float *a, const float *b, uint32_t n)
{
    float acc = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        acc += a[i] * b[i];
    return acc;
}

static void vaxpy_f32(float *y, float a, const float *x, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

void st_cpu_scores_f32_scalar(const float *q, const float *k, size_t stride, const uint32_t *idx,
                              uint32_t n, uint32_t dim, float scale, float *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = scale * vdot_f32(q, k + idx[i] * stride, dim);
}

void st_cpu_wsum_f32_scalar(float *out, const float *p, const float *v, size_t stride,
                            const uint32_t *idx, uint32_t n, uint32_t dim)
{
    for (uint32_t d = 0; d < dim; d++)
        out[d] = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        vaxpy_f32(out, p[i], v + idx[i] * stride, dim);
}

#define ST_TGT
#define ST_PFX(name) st_scalar_##name
#define ST_ATTN_KSTEP 2
#define st_scalar_kv_rows st_cpu_kv_rows_scalar
#include "attn_tile.inc"

/* The typed gathers, one entry per st_kv_type. */
#define ST_KV_SCALAR(name, T)                                                                 \
    static void scores_##name(const float *q, const void *k, size_t stride,                   \
                              const uint32_t *idx, uint32_t n, uint32_t dim, float scale,     \
                              float *out)                                                     \
    {                                                                                         \
        st_cpu_scores_kv_scalar(T, q, k, stride, idx, n, dim, scale, out);                   \
    }                                                                                         \
    static void wsum_##name(float *out, const float *p, const void *v, size_t stride,         \
                            const uint32_t *idx, uint32_t n, uint32_t dim)                    \
    {                                                                                         \
        st_cpu_wsum_kv_scalar(T, out, p, v, stride, idx, n, dim);                            \
    }
ST_KV_SCALAR(f32, ST_KV_F32)
ST_KV_SCALAR(f16, ST_KV_F16)
ST_KV_SCALAR(q8_0, ST_KV_Q8_0)

static void to_f16(const float *src, uint16_t *dst, uint32_t n)
{
    st_kv_store_row(ST_KV_F16, src, dst, n);
}

static void gelu_bias(float *x, const float *bias, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        float y = x[i] + bias[i];
        x[i] = 0.5f * y * (1.0f + st_erf_approx(y * 0.70710678118654752f));
    }
}

static const st_cpu_kernels scalar_kernels = {
    .isa = ST_ISA_SCALAR,
    .dot = { dot_f32, dot_f16, st_scalar_dot_q4_0_block, st_scalar_dot_q4_1_block,
             st_scalar_dot_q8_0_block },
    .dot_ggml = { dot_f32, dot_f16, dot_q4_0_ggml, dot_q4_1_ggml, dot_q8_0_ggml },
    .dot_f32 = vdot_f32,
    .axpy_f32 = vaxpy_f32,
    .scores_f32 = st_cpu_scores_f32_scalar,
    .wsum_f32 = st_cpu_wsum_f32_scalar,
    .attn_keys = st_scalar_attn_keys,
    .scores_kv = { scores_f32, scores_f16, scores_q8_0 },
    .wsum_kv = { wsum_f32, wsum_f16, wsum_q8_0 },
    .kv_rows = st_cpu_kv_rows_scalar,
    .scores_blk = st_cpu_scores_blk_scalar,
    .kv_rows_blk = st_cpu_kv_rows_blk_scalar,
    .quantize_act = st_quantize_act_row,
    .gelu_bias = gelu_bias,
    .to_f16 = to_f16,
    .silu_mul = st_op_silu_mul,
    .sum_exp = st_op_sum_exp,
};

const st_cpu_kernels *st_cpu_kernels_scalar(void)
{
    return &scalar_kernels;
}

/* Never hands out a path this CPU cannot execute: asking for AVX-512 on
 * an AVX2-only machine yields the AVX2 kernels (callers and tests compare
 * k->isa with what they asked for). */
const st_cpu_kernels *st_cpu_kernels_get(st_cpu_isa isa)
{
    const st_cpu_kernels *k = NULL;
    st_cpu_isa best = st_cpu_isa_detect();
    if (isa > best)
        isa = best;
    if (isa >= ST_ISA_AVX512)
        k = st_cpu_kernels_avx512();
    if (!k && isa >= ST_ISA_AVX2)
        k = st_cpu_kernels_avx2();
    return k ? k : &scalar_kernels;
}
