/* Per-token ops: RMSNorm, RoPE, softmax, SwiGLU. */
#include "ops.h"

#include <math.h>
#include <stddef.h>

void st_op_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    /* Sixteen running sums, then a fixed tree. One sum is a chain of n
     * dependent adds (the compiler may not reorder float adds), and this
     * runs on the caller between two tasks of every layer while the pool
     * waits; the order is the same whatever the ISA vectorizes it to.
     * Blocks are read through a pointer: with x[i + j] on uint32_t the
     * compiler must allow for i + j wrapping, and it gathered lanes. */
    float lane[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const float *xb = x + i;
        for (size_t j = 0; j < 16; j++)
            lane[j] += xb[j] * xb[j];
    }
    for (size_t j = 0; i + j < n; j++)
        lane[j] += x[i + j] * x[i + j];
    for (size_t half = 8; half; half /= 2)
        for (size_t j = 0; j < half; j++)
            lane[j] += lane[j + half];
    float r = 1.0f / sqrtf(lane[0] / (float)n + eps);
    /* Through a local block: out may be x, so the compiler vectorizes a
     * store to out only when it cannot overlap what is still to read. */
    for (i = 0; i + 16 <= n; i += 16) {
        const float *xb = x + i, *wb = w + i;
        float t[16], *ob = out + i;
        for (size_t j = 0; j < 16; j++)
            t[j] = xb[j] * r * wb[j];
        for (size_t j = 0; j < 16; j++)
            ob[j] = t[j];
    }
    for (; i < n; i++)
        out[i] = x[i] * r * w[i];
}

void st_op_rope_table(float *cs, float *sn, double pos, const float *inv_freq,
                      uint32_t n_freq, float scale)
{
    for (uint32_t i = 0; i < n_freq; i++) {
        /* double: positions in the hundreds of thousands times a frequency
         * near 1 lose the angle's low bits in float. */
        double a = pos * (double)inv_freq[i];
        cs[i] = (float)cos(a) * scale;
        sn[i] = (float)sin(a) * scale;
    }
}

void st_op_rope(float *out, const float *x, const float *cs, const float *sn,
                uint32_t n_freq, uint32_t head_dim)
{
    /* Eight pairs a block, through a local copy (out may be x) and
     * pointers (see st_op_rmsnorm), so that the compiler vectorizes it:
     * this runs for every head of every layer on the caller. Each value
     * is the same expression as in the tail. */
    size_t i = 0;
    for (; i + 8 <= n_freq; i += 8) {
        const float *xb = x + 2 * i, *cb = cs + i, *sb = sn + i;
        float t[16], *ob = out + 2 * i;
        for (size_t j = 0; j < 8; j++) {
            t[2 * j] = xb[2 * j] * cb[j] - xb[2 * j + 1] * sb[j];
            t[2 * j + 1] = xb[2 * j] * sb[j] + xb[2 * j + 1] * cb[j];
        }
        for (size_t j = 0; j < 16; j++)
            ob[j] = t[j];
    }
    for (; i < n_freq; i++) {
        float x0 = x[2 * i], x1 = x[2 * i + 1];
        out[2 * i] = x0 * cs[i] - x1 * sn[i];
        out[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
    }
    if (out != x)
        for (uint32_t i = 2 * n_freq; i < head_dim; i++)
            out[i] = x[i];
}

void st_op_softmax(float *x, uint32_t n)
{
    if (n == 0)
        return;
    float mx = x[0];
    for (uint32_t i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY) { /* every key masked by the bias: no attention */
        for (uint32_t i = 0; i < n; i++)
            x[i] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (uint32_t i = 0; i < n; i++)
        x[i] *= inv;
}

double st_op_sum_exp(const float *x, uint32_t n, float mx)
{
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum += (double)expf(x[i] - mx);
    return sum;
}

void st_op_silu_mul(float *h, const float *g, const float *u, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
