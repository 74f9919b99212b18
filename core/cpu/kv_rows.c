/* The KV cache's element types, scalar: rows to and from float, and the
 * gathers (scores, weighted sums) on typed rows. The SIMD paths fall back
 * to these for head sizes their registers do not hold. */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "quant.h"

void st_kv_load_row(st_kv_type t, const void *src, float *dst, uint32_t dim)
{
    switch (t) {
    case ST_KV_F32:
        memcpy(dst, src, (size_t)dim * sizeof(float));
        return;
    case ST_KV_F16: {
        const uint16_t *h = src;
        for (uint32_t i = 0; i < dim; i++)
            dst[i] = st_cpu_half(h[i]);
        return;
    }
    case ST_KV_Q8_0:
    case ST_KV_TYPE_COUNT:
        break;
    }
    const st_block_q8_0 *b = src;
    for (uint32_t k = 0; k < dim / 32; k++) {
        float d = st_cpu_half(b[k].d);
        for (int i = 0; i < 32; i++)
            dst[k * 32 + i] = (float)b[k].qs[i] * d;
    }
}

void st_kv_store_row(st_kv_type t, const float *src, void *dst, uint32_t dim)
{
    switch (t) {
    case ST_KV_F32:
        memcpy(dst, src, (size_t)dim * sizeof(float));
        return;
    case ST_KV_F16: {
        uint16_t *h = dst;
        for (uint32_t i = 0; i < dim; i++)
            h[i] = st_cpu_to_half(src[i]);
        return;
    }
    case ST_KV_Q8_0:
    case ST_KV_TYPE_COUNT:
        break;
    }
    /* ggml's quantize_row_q8_0_ref: d = amax / 127, q = round(x / d).
     * Where that has no int8 (converting it would be undefined): a block
     * holding an infinity or a NaN stores a NaN scale and zeros, so it
     * reads back NaN; a scale under 1 / FLT_MAX, 0 as a half, takes
     * multiplier 0 instead of an infinite 1 / d. */
    st_block_q8_0 *b = dst;
    for (uint32_t k = 0; k < dim / 32; k++) {
        const float *x = src + k * 32;
        float amax = 0.0f;
        bool finite = true;
        for (int i = 0; i < 32; i++) {
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
            finite = finite && isfinite(x[i]);
        }
        float d = finite ? amax / 127.0f : NAN;
        float id = finite && d != 0.0f ? 1.0f / d : 0.0f;
        id = isinf(id) ? 0.0f : id;
        b[k].d = st_cpu_to_half(d);
        for (int i = 0; i < 32; i++)
            b[k].qs[i] = finite ? (int8_t)roundf(x[i] * id) : 0;
    }
}

/* dot(q, row) without converting the row first. */
static float dot_row(st_kv_type t, const float *q, const void *row, uint32_t dim)
{
    float acc = 0.0f;
    if (t == ST_KV_F32) {
        const float *k = row;
        for (uint32_t i = 0; i < dim; i++)
            acc += q[i] * k[i];
    } else if (t == ST_KV_F16) {
        const uint16_t *k = row;
        for (uint32_t i = 0; i < dim; i++)
            acc += q[i] * st_cpu_half(k[i]);
    } else {
        const st_block_q8_0 *b = row;
        for (uint32_t k = 0; k < dim / 32; k++) {
            float s = 0.0f;
            for (int i = 0; i < 32; i++)
                s += q[k * 32 + i] * (float)b[k].qs[i];
            acc += s * st_cpu_half(b[k].d);
        }
    }
    return acc;
}

/* out += p * row */
static void axpy_row(st_kv_type t, float *out, float p, const void *row, uint32_t dim)
{
    if (t == ST_KV_F32) {
        const float *v = row;
        for (uint32_t i = 0; i < dim; i++)
            out[i] += p * v[i];
    } else if (t == ST_KV_F16) {
        const uint16_t *v = row;
        for (uint32_t i = 0; i < dim; i++)
            out[i] += p * st_cpu_half(v[i]);
    } else {
        const st_block_q8_0 *b = row;
        for (uint32_t k = 0; k < dim / 32; k++) {
            float pd = p * st_cpu_half(b[k].d);
            for (int i = 0; i < 32; i++)
                out[k * 32 + i] += pd * (float)b[k].qs[i];
        }
    }
}

void st_cpu_scores_kv_scalar(st_kv_type t, const float *q, const void *k, size_t stride,
                             const uint32_t *idx, uint32_t n, uint32_t dim, float scale,
                             float *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = scale * dot_row(t, q, (const uint8_t *)k + idx[i] * stride, dim);
}

void st_cpu_wsum_kv_scalar(st_kv_type t, float *out, const float *p, const void *v,
                           size_t stride, const uint32_t *idx, uint32_t n, uint32_t dim)
{
    memset(out, 0, (size_t)dim * sizeof(float));
    for (uint32_t i = 0; i < n; i++)
        axpy_row(t, out, p[i], (const uint8_t *)v + idx[i] * stride, dim);
}

void st_cpu_kv_rows_scalar(st_kv_type t, const void *src, size_t stride, uint32_t n,
                           uint32_t dim, float *dst)
{
    for (uint32_t i = 0; i < n; i++)
        st_kv_load_row(t, (const uint8_t *)src + i * stride, dst + (size_t)i * dim, dim);
}

/* ---- f16 keys in 16-slot blocks (kernels.h's ST_KV_KBLOCK) ---------- */

void st_kv_blk_load(const void *khead, uint32_t j, float *dst, uint32_t dim)
{
    const uint16_t *k = st_kv_blk_key(khead, j, dim);
    for (uint32_t d = 0; d < dim; d++)
        dst[d] = st_cpu_half(k[(size_t)d * ST_KV_KBLOCK]);
}

void st_kv_blk_get(const void *khead, uint32_t j, uint16_t *dst, uint32_t dim)
{
    const uint16_t *k = st_kv_blk_key(khead, j, dim);
    for (uint32_t d = 0; d < dim; d++)
        dst[d] = k[(size_t)d * ST_KV_KBLOCK];
}

void st_kv_blk_put(void *khead, uint32_t j, const uint16_t *src, uint32_t dim)
{
    uint16_t *k = (uint16_t *)st_kv_blk_key(khead, j, dim);
    for (uint32_t d = 0; d < dim; d++)
        k[(size_t)d * ST_KV_KBLOCK] = src[d];
}

void st_cpu_scores_blk_scalar(const float *q, const void *khead, const uint32_t *idx, uint32_t n,
                              uint32_t dim, float scale, float *out)
{
    for (uint32_t i = 0; i < n; i++) {
        const uint16_t *k = st_kv_blk_key(khead, idx[i], dim);
        float acc = 0.0f;
        for (uint32_t d = 0; d < dim; d++)
            acc += q[d] * st_cpu_half(k[(size_t)d * ST_KV_KBLOCK]);
        out[i] = scale * acc;
    }
}

void st_cpu_kv_rows_blk_scalar(const void *khead, uint32_t j0, uint32_t n, uint32_t dim,
                               float *dst)
{
    for (uint32_t i = 0; i < n; i++)
        st_kv_blk_load(khead, j0 + i, dst + (size_t)i * dim, dim);
}

void st_kv_src_load_row(const st_kv_src *s, uint32_t g, uint32_t j, float *dst, uint32_t dim)
{
    const void *head = st_kv_src_head(s, g);
    if (s->blocked)
        st_kv_blk_load(head, j, dst, dim);
    else
        st_kv_load_row(s->type, (const uint8_t *)head + (size_t)j * s->slot_stride, dst, dim);
}
