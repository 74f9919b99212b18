/* The ggml-compatible numerics mode's float operations (ggml_compat.h). */
#include "ggml_compat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

bool st_gc_env_enabled(void)
{
    const char *e = getenv("STRETCH_NUMERICS");
    return e && strcmp(e, "ggml") == 0;
}

float st_gc_hsum8(const float *l)
{
    float a0 = l[0] + l[4], a1 = l[1] + l[5], a2 = l[2] + l[6], a3 = l[3] + l[7];
    return (a0 + a2) + (a1 + a3);
}

float st_gc_hsum16(const float *l)
{
    float u[8];
    for (int i = 0; i < 8; i++)
        u[i] = l[i] + l[i + 8];
    return st_gc_hsum8(u);
}

float st_gc_dot_q4_1(uint32_t n, const void *w_row, const st_act_block *x)
{
    const st_block_q4_1 *w = w_row;
    float acc[8] = { 0 };
    float summs = 0.0f;
    for (uint32_t b = 0; b < n / 32; b++) {
        float dw = st_cpu_half(w[b].d), mw = st_cpu_half(w[b].m);
        summs += mw * x[b].s16;
        float dd = dw * x[b].d;
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int k = 4 * j; k < 4 * j + 4; k++) {
                int q = k < 16 ? (w[b].qs[k] & 15) : (w[b].qs[k - 16] >> 4);
                s += q * x[b].q[k];
            }
            acc[j] = fmaf(dd, (float)s, acc[j]);
        }
    }
    return st_gc_hsum8(acc) + summs;
}

float st_gc_dot_q8_0(uint32_t n, const void *w_row, const st_act_block *x)
{
    const st_block_q8_0 *w = w_row;
    float acc[8] = { 0 };
    for (uint32_t b = 0; b < n / 32; b++) {
        float dd = st_cpu_half(w[b].d) * x[b].d;
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int k = 4 * j; k < 4 * j + 4; k++)
                s += w[b].qs[k] * x[b].q[k];
            acc[j] = fmaf(dd, (float)s, acc[j]);
        }
    }
    return st_gc_hsum8(acc);
}

void st_gc_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (uint32_t i = 0; i < n; i++) {
        float y = x[i] * scale;
        out[i] = y * w[i];
    }
}

float st_gc_expf(float x)
{
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                              fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    if (fabsf(n) > 192.0f) /* _CMP_GT_OQ: false for nan */
        return n <= 0.0f ? 0.0f : INFINITY;
    /* vscalefps: j * 2^floor(n), n is integral here; one rounding. */
    return ldexpf(j, (int)n);
}

float st_gc_silu(float x)
{
    return x / (1.0f + st_gc_expf(0.0f - x));
}

void st_gc_swiglu(float *h, const float *g, const float *u, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        h[i] = st_gc_silu(g[i]) * u[i];
}

void st_gc_rope_table(float *cs, float *sn, int32_t pos, float base, uint32_t n_dims,
                      uint32_t n_freq)
{
    const float theta_scale = powf(base, -2.0f / (float)n_dims);
    float theta = (float)pos;
    for (uint32_t i = 0; i < n_freq; i++) {
        cs[i] = cosf(theta);
        sn[i] = sinf(theta);
        theta *= theta_scale;
    }
}

void st_gc_rope(float *out, const float *x, const float *cs, const float *sn, uint32_t n_freq,
                uint32_t head_dim)
{
    for (uint32_t i = 0; i < n_freq; i++) {
        const float x0 = x[2 * i], x1 = x[2 * i + 1];
        /* ggml's rotate_pairs, as GCC contracts it (C++, -ffp-contract=fast):
         * x0*cos - x1*sin -> fma(x0, cos, -(x1*sin)),
         * x0*sin + x1*cos -> fma(x0, sin, x1*cos). */
        out[2 * i] = fmaf(x0, cs[i], -(x1 * sn[i]));
        out[2 * i + 1] = fmaf(x0, sn[i], x1 * cs[i]);
    }
    if (out != x)
        for (uint32_t i = 2 * n_freq; i < head_dim; i++)
            out[i] = x[i];
}

float st_gc_dot_tinyblas16(const float *a, const float *b, uint32_t n)
{
    float acc[16] = { 0 };
    for (uint32_t i = 0; i < n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] = fmaf(a[i + l], b[i + l], acc[l]);
    return st_gc_hsum16(acc);
}

float st_gc_dot_f16(const float *a, const float *b, uint32_t n)
{
    float s[4][16] = { { 0 } };
    uint32_t np = n & ~63u; /* whole steps of 64; ggml adds the rest in double */
    for (uint32_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 16; l++)
                s[j][l] = fmaf(a[i + 16 * j + l], b[i + 16 * j + l], s[j][l]);
    float t[16];
    for (int l = 0; l < 16; l++)
        t[l] = (s[0][l] + s[2][l]) + (s[1][l] + s[3][l]);
    double sum = (double)st_gc_hsum16(t);
    for (uint32_t i = np; i < n; i++)
        sum += (double)(a[i] * b[i]);
    return (float)sum;
}

void st_gc_attend_row(float *out, float *w, const uint32_t *idx, uint32_t n, float scale,
                      const float *v, size_t stride, uint32_t hd, bool vec)
{
    for (uint32_t d = 0; d < hd; d++)
        out[d] = 0.0f;
    if (n == 0)
        return;
    float mx = -INFINITY;
    for (uint32_t i = 0; i < n; i++) {
        w[i] *= scale;
        mx = w[i] > mx ? w[i] : mx;
    }
    /* exp in chunks of 16 cells; a chunk's missing cells are 0. */
    double sum = 0.0;
    float lanes[16];
    uint32_t chunk = idx[0] / 16;
    memset(lanes, 0, sizeof lanes);
    for (uint32_t i = 0; i < n; i++) {
        if (idx[i] / 16 != chunk) {
            sum += (double)st_gc_hsum16(lanes);
            memset(lanes, 0, sizeof lanes);
            chunk = idx[i] / 16;
        }
        w[i] = st_gc_expf(w[i] - mx);
        lanes[idx[i] % 16] = w[i];
    }
    sum += (double)st_gc_hsum16(lanes);
    const float inv = (float)(1.0 / sum);
    for (uint32_t i = 0; i < n; i++)
        w[i] *= inv;
    /* KQV, the weights (the matmul's f32 src1) converted to f16, the f16
     * V's vec_dot_type. A batch: tinyBLAS over the cells, lane = cell
     * mod 16. One query: ggml_vec_dot_f16 over the cells, accumulator
     * (cell mod 64) / 16, lane cell mod 16. */
    float acc[4][16];
    for (uint32_t d = 0; d < hd; d++) {
        memset(acc, 0, sizeof acc);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t a = vec ? (idx[i] % 64) / 16 : 0, l = idx[i] % 16;
            acc[a][l] = fmaf(v[(size_t)idx[i] * stride + d], st_cpu_round_half(w[i]), acc[a][l]);
        }
        if (vec) {
            float t[16];
            for (int l = 0; l < 16; l++)
                t[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
            out[d] = st_gc_hsum16(t);
        } else {
            out[d] = st_gc_hsum16(acc[0]);
        }
    }
}
