/*
 * core/compute/bert_forward.c - a BERT encoder, read top to bottom:
 *
 *   x = LayerNorm(tok[id] + pos[i] + type[0])
 *   per layer:  a = softmax(Q K^T / sqrt(d_head)) V   (every token to every token)
 *               x = LayerNorm(x + a W_o + b_o)
 *               x = LayerNorm(x + GELU(x W_up + b_up) W_down + b_down)
 *   out = mean over tokens of x, then / |out|
 *
 * Matrix products go through the CPU matmul (f32 weights); the rest is
 * plain loops over a sentence's few hundred tokens. GELU is the exact erf
 * form BERT uses.
 */
#include "bert_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "ops.h"

static void layer_norm(float *x, const float *w, const float *b, uint32_t n, float eps)
{
    double mean = 0, var = 0;
    for (uint32_t i = 0; i < n; i++)
        mean += x[i];
    mean /= n;
    for (uint32_t i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    float inv = (float)(1.0 / sqrt(var + eps));
    for (uint32_t i = 0; i < n; i++)
        x[i] = ((float)(x[i] - mean)) * inv * w[i] + b[i];
}

static void add_bias(float *y, const float *b, size_t nt, uint32_t n)
{
    for (size_t t = 0; t < nt; t++)
        for (uint32_t i = 0; i < n; i++)
            y[t * n + i] += b[i];
}

/* ctx[t] = softmax_j(q[t] . k[j] / sqrt(hd)) v[j], head by head. */
static void attention(const st_bert_model *m, const float *q, const float *k, const float *v,
                      float *ctx, float *scores, size_t nt)
{
    uint32_t e = m->n_embd, hd = e / m->n_heads;
    float scale = 1.0f / sqrtf((float)hd);
    for (uint32_t h = 0; h < m->n_heads; h++) {
        for (size_t t = 0; t < nt; t++) {
            const float *qt = q + t * e + h * hd;
            for (size_t j = 0; j < nt; j++) {
                const float *kj = k + j * e + h * hd;
                float s = 0;
                for (uint32_t i = 0; i < hd; i++)
                    s += qt[i] * kj[i];
                scores[j] = s * scale;
            }
            st_op_softmax(scores, (uint32_t)nt);
            float *c = ctx + t * e + h * hd;
            memset(c, 0, hd * sizeof *c);
            for (size_t j = 0; j < nt; j++) {
                const float *vj = v + j * e + h * hd;
                for (uint32_t i = 0; i < hd; i++)
                    c[i] += scores[j] * vj[i];
            }
        }
    }
}

st_status st_bert_embed(const st_bert_model *m, st_threadpool *pool, const st_cpu_kernels *kern,
                        const int32_t *ids, size_t nt, float *out, st_error *err)
{
    uint32_t e = m->n_embd, f = m->n_ff;
    if (nt == 0 || nt > m->max_tokens)
        return st_error_set(err, ST_E_RANGE, "the encoder takes 1 to %u tokens, got %zu",
                            m->max_tokens, nt);
    for (size_t t = 0; t < nt; t++)
        if (ids[t] < 0 || (uint32_t)ids[t] >= m->n_vocab)
            return st_error_set(err, ST_E_RANGE, "token %d (at %zu) is outside the encoder's "
                                "vocabulary of %u", ids[t], t, m->n_vocab);
    size_t ne = nt * e;
    float *x = malloc(ne * sizeof *x), *q = malloc(ne * sizeof *q), *k = malloc(ne * sizeof *k);
    float *v = malloc(ne * sizeof *v), *ctx = malloc(ne * sizeof *ctx);
    float *tmp = malloc(ne * sizeof *tmp), *ff = malloc(nt * f * sizeof *ff);
    float *scores = malloc(nt * sizeof *scores);
    st_status st = ST_OK;
    if (!x || !q || !k || !v || !ctx || !tmp || !ff || !scores) {
        st = st_error_set(err, ST_E_NOMEM, "out of memory for %zu tokens", nt);
        goto done;
    }
    for (size_t t = 0; t < nt; t++) {
        const float *te = m->tok_embd + (size_t)ids[t] * e, *pe = m->pos_embd + t * e;
        for (uint32_t i = 0; i < e; i++)
            x[t * e + i] = te[i] + pe[i] + m->type_embd[i];
        layer_norm(x + t * e, m->embd_norm_w, m->embd_norm_b, e, m->eps);
    }
    for (uint32_t l = 0; l < m->n_layers && st == ST_OK; l++) {
        const st_bert_layer *L = &m->layers[l];
        if ((st = st_matmul(pool, kern, &L->q, x, (uint32_t)nt, q)) ||
            (st = st_matmul(pool, kern, &L->k, x, (uint32_t)nt, k)) ||
            (st = st_matmul(pool, kern, &L->v, x, (uint32_t)nt, v)))
            break;
        add_bias(q, L->q_b, nt, e);
        add_bias(k, L->k_b, nt, e);
        add_bias(v, L->v_b, nt, e);
        attention(m, q, k, v, ctx, scores, nt);
        if ((st = st_matmul(pool, kern, &L->out, ctx, (uint32_t)nt, tmp)))
            break;
        add_bias(tmp, L->out_b, nt, e);
        for (size_t t = 0; t < nt; t++) {
            for (uint32_t i = 0; i < e; i++)
                x[t * e + i] += tmp[t * e + i];
            layer_norm(x + t * e, L->attn_norm_w, L->attn_norm_b, e, m->eps);
        }
        if ((st = st_matmul(pool, kern, &L->up, x, (uint32_t)nt, ff)))
            break;
        add_bias(ff, L->up_b, nt, f);
        for (size_t i = 0; i < nt * f; i++)
            ff[i] = 0.5f * ff[i] * (1.0f + erff(ff[i] * (float)M_SQRT1_2));
        if ((st = st_matmul(pool, kern, &L->down, ff, (uint32_t)nt, tmp)))
            break;
        add_bias(tmp, L->down_b, nt, e);
        for (size_t t = 0; t < nt; t++) {
            for (uint32_t i = 0; i < e; i++)
                x[t * e + i] += tmp[t * e + i];
            layer_norm(x + t * e, L->out_norm_w, L->out_norm_b, e, m->eps);
        }
    }
    if (st != ST_OK) {
        st_error_set(err, st, "encoder forward pass failed");
        goto done;
    }
    double norm = 0;
    for (uint32_t i = 0; i < e; i++) {
        double s = 0;
        for (size_t t = 0; t < nt; t++)
            s += x[t * e + i];
        out[i] = (float)(s / (double)nt);
        norm += (double)out[i] * out[i];
    }
    if (m->normalize && norm > 0)
        for (uint32_t i = 0; i < e; i++)
            out[i] = (float)(out[i] / sqrt(norm));
done:
    free(x);
    free(q);
    free(k);
    free(v);
    free(ctx);
    free(tmp);
    free(ff);
    free(scores);
    return st;
}
