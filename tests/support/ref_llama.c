/* The reference Llama forward pass (see ref_llama.h). Written for reading,
 * not speed. */
#include "ref_llama.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

typedef struct ref_matrix {
    float *w;          /* [rows][cols] */
    uint32_t rows, cols;
    bool quantized;    /* the real kernels quantize activations for it */
    float *mins;       /* Q4_1: [rows][cols / 32] block minimums, else NULL */
} ref_matrix;

typedef struct ref_layer {
    const float *attn_norm, *ffn_norm;
    ref_matrix wq, wk, wv, wo, gate, up, down;
} ref_layer;

struct st_ref_model {
    st_model_hparams hp;
    ref_matrix embd, output;
    const float *out_norm;
    ref_layer *layers;
};

static void matrix_load(ref_matrix *m, const st_weight *w)
{
    m->rows = w->rows;
    m->cols = w->cols;
    m->quantized = w->type == ST_GGML_Q4_0 || w->type == ST_GGML_Q4_1 || w->type == ST_GGML_Q8_0;
    m->w = malloc((size_t)w->rows * w->cols * sizeof(float));
    for (uint32_t r = 0; r < w->rows; r++)
        st_dequantize(w->type, w->data + (size_t)r * w->row_bytes, m->w + (size_t)r * w->cols,
                      w->cols);
    m->mins = NULL;
    if (w->type == ST_GGML_Q4_1) {
        /* Block layout: fp16 d, fp16 m, 16 bytes of nibbles (20 bytes). */
        uint32_t nb = w->cols / 32;
        m->mins = malloc((size_t)w->rows * nb * sizeof(float));
        for (uint32_t r = 0; r < w->rows; r++)
            for (uint32_t b = 0; b < nb; b++) {
                const uint8_t *blk = w->data + (size_t)r * w->row_bytes + (size_t)b * 20;
                uint16_t h = (uint16_t)(blk[2] | blk[3] << 8);
                float mf;
                st_dequantize(ST_GGML_F16, (const uint8_t *)&h, &mf, 1);
                m->mins[(size_t)r * nb + b] = mf;
            }
    }
}

st_ref_model *st_ref_model_new(const st_model *m)
{
    st_ref_model *r = calloc(1, sizeof *r);
    r->hp = m->hp;
    matrix_load(&r->embd, &m->tok_embd);
    matrix_load(&r->output, &m->output);
    r->out_norm = m->out_norm;
    r->layers = calloc(m->hp.n_layers, sizeof *r->layers);
    for (uint32_t l = 0; l < m->hp.n_layers; l++) {
        const st_model_layer *L = &m->layers[l];
        ref_layer *R = &r->layers[l];
        R->attn_norm = L->attn_norm;
        R->ffn_norm = L->ffn_norm;
        matrix_load(&R->wq, &L->wq);
        matrix_load(&R->wk, &L->wk);
        matrix_load(&R->wv, &L->wv);
        matrix_load(&R->wo, &L->wo);
        matrix_load(&R->gate, &L->gate);
        matrix_load(&R->up, &L->up);
        matrix_load(&R->down, &L->down);
    }
    return r;
}

void st_ref_model_free(st_ref_model *r)
{
    if (!r)
        return;
    for (uint32_t l = 0; l < r->hp.n_layers; l++) {
        ref_layer *R = &r->layers[l];
        ref_matrix *all[] = { &R->wq, &R->wk, &R->wv, &R->wo, &R->gate, &R->up, &R->down };
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
            free(all[i]->w);
            free(all[i]->mins);
        }
    }
    free(r->layers);
    free(r->embd.w);
    free(r->embd.mins);
    free(r->output.w);
    free(r->output.mins);
    free(r);
}

/* f rounded to the nearest fp16 value (ties to even; no overflow here). */
static float round_half(float f)
{
    if (f == 0.0f)
        return f;
    int e;
    frexp(f, &e); /* |f| in [2^(e-1), 2^e) */
    double ulp = ldexp(1.0, (e < -13 ? -13 : e) - 11); /* 11 bits; subnormals below 2^-14 */
    return (float)(nearbyint(f / ulp) * ulp);
}

/* x rounded through int8 per 32-block as ggml's x86 Q8_1 quantizer:
 * q = nearest-even(x * 127 / amax), x' = q * fp16(amax / 127). s16[b] gets
 * the block's Q8_1 sum fp16(amax / 127 * sum(q)), which Q4_1 weights
 * multiply by their block minimum. */
static void fake_quant(float *x, uint32_t n, float *s16)
{
    for (uint32_t b = 0; b + 32 <= n; b += 32) {
        float amax = 0;
        for (int i = 0; i < 32; i++)
            amax = fabsf(x[b + i]) > amax ? fabsf(x[b + i]) : amax;
        float d = amax / 127.0f, id = amax != 0 ? 127.0f / amax : 0.0f;
        float dh = round_half(d);
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            float q = nearbyintf(x[b + i] * id);
            sum += (int)q;
            x[b + i] = q * dh;
        }
        s16[b / 32] = round_half(d * (float)sum);
    }
}

/* y = W x, x copied (and maybe quantized) first. */
static void matvec(const ref_matrix *m, const float *x, float *y, bool quantize)
{
    float *xc = malloc(m->cols * sizeof *xc);
    float *s16 = malloc((m->cols / 32 + 1) * sizeof *s16);
    memcpy(xc, x, m->cols * sizeof *xc);
    bool q = quantize && m->quantized;
    if (q)
        fake_quant(xc, m->cols, s16);
    uint32_t nb = m->cols / 32;
    for (uint32_t r = 0; r < m->rows; r++) {
        double acc = 0;
        for (uint32_t c = 0; c < m->cols; c++)
            acc += (double)m->w[(size_t)r * m->cols + c] * xc[c];
        if (q && m->mins) {
            /* w = d q + m: the minimum meets the stored Q8_1 sum, not the
             * exact sum of the rounded activations. */
            for (uint32_t b = 0; b < nb; b++) {
                double xs = 0;
                for (int i = 0; i < 32; i++)
                    xs += xc[b * 32 + i];
                acc += (double)m->mins[(size_t)r * nb + b] * ((double)s16[b] - xs);
            }
        }
        y[r] = (float)acc;
    }
    free(s16);
    free(xc);
}

static void rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++)
        out[i] = (float)(x[i] * r * w[i]);
}

/* Adjacent-pair rotation of one head at position p (llama.cpp NORM). */
static void rotate(double *out, const float *x, double p, const float *inv_freq, uint32_t n_freq,
                   float scale, uint32_t hd)
{
    for (uint32_t i = 0; i < hd; i++)
        out[i] = x[i];
    for (uint32_t i = 0; i < n_freq && 2 * i + 1 < hd; i++) {
        double a = p * (double)inv_freq[i], c = cos(a) * scale, s = sin(a) * scale;
        out[2 * i] = x[2 * i] * c - x[2 * i + 1] * s;
        out[2 * i + 1] = x[2 * i] * s + x[2 * i + 1] * c;
    }
}

static bool causal(void *user, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                   double *rk)
{
    (void)user;
    *rq = pos[qi];
    *rk = pos[ki];
    return ki <= qi;
}

void st_ref_forward(const st_ref_model *r, const int32_t *tokens, const int32_t *pos, size_t n,
                    const st_ref_opts *o, float *out)
{
    const st_model_hparams *hp = &r->hp;
    uint32_t E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim, H = hp->n_heads;
    uint32_t KVH = hp->n_kv_heads, QD = H * hd, KD = KVH * hd, V = hp->n_vocab;
    bool qa = o && o->quantize_acts;
    st_ref_rule_fn rule = o && o->rule ? o->rule : causal;
    void *user = o ? o->user : NULL;
    float scale = o && o->rotary_scale != 0 ? o->rotary_scale : 1.0f;
    float temp = o && o->attn_temperature != 0 ? o->attn_temperature : 1.0f;
    uint32_t n_freq = hp->rope_dims / 2;
    float *own_freq = NULL;
    const float *inv_freq;
    if (o && o->inv_freq) {
        inv_freq = o->inv_freq;
        n_freq = o->n_freq;
    } else {
        own_freq = malloc((n_freq + 1) * sizeof *own_freq);
        for (uint32_t i = 0; i < n_freq; i++)
            own_freq[i] = (float)pow(hp->rope_base, -2.0 * i / hp->rope_dims);
        inv_freq = own_freq;
    }

    float *x = calloc(n * E, sizeof *x), *xn = malloc(E * sizeof *xn);
    float *q = malloc(n * QD * sizeof *q), *k = malloc(n * KD * sizeof *k);
    float *v = malloc(n * KD * sizeof *v), *att = malloc(QD * sizeof *att);
    float *tmp = malloc((E > F ? E : F) * sizeof *tmp), *g = malloc(F * sizeof *g);
    float *u = malloc(F * sizeof *u), *att_all = malloc(n * QD * sizeof *att_all);
    double *p = malloc(n * sizeof *p), *qrot = malloc(hd * sizeof *qrot);
    double *krot = malloc(hd * sizeof *krot), *probs = malloc(n * sizeof *probs);
    uint8_t *vis = malloc(n);

    for (size_t t = 0; t < n; t++)
        memcpy(x + t * E, r->embd.w + (size_t)tokens[t] * E, E * sizeof *x);

    for (uint32_t l = 0; l < hp->n_layers; l++) {
        const ref_layer *L = &r->layers[l];
        for (size_t t = 0; t < n; t++) {
            rmsnorm(xn, x + t * E, L->attn_norm, E, hp->rms_eps);
            matvec(&L->wq, xn, q + t * QD, qa);
            matvec(&L->wk, xn, k + t * KD, qa);
            matvec(&L->wv, xn, v + t * KD, qa);
        }
        for (size_t i = 0; i < n; i++) {
            for (uint32_t h = 0; h < H; h++) {
                uint32_t kh = h / (H / KVH);
                double mx = -INFINITY;
                for (size_t j = 0; j < n; j++) {
                    double rq, rk;
                    vis[j] = rule(user, (uint32_t)i, (uint32_t)j, pos, &rq, &rk);
                    if (vis[j] && o && o->head_rule)
                        vis[j] = o->head_rule(user, l, kh, (uint32_t)i, (uint32_t)j);
                    if (!vis[j])
                        continue;
                    rotate(qrot, q + i * QD + h * hd, rq, inv_freq, n_freq, scale, hd);
                    rotate(krot, k + j * KD + kh * hd, rk, inv_freq, n_freq, scale, hd);
                    double s = 0;
                    for (uint32_t d = 0; d < hd; d++)
                        s += qrot[d] * krot[d];
                    s = s * temp / sqrt((double)hd);
                    if (o && o->bias)
                        s += o->bias(user, h, rq, rk);
                    p[j] = s;
                    mx = s > mx ? s : mx;
                }
                double sum = 0;
                for (size_t j = 0; j < n; j++)
                    if (vis[j]) {
                        p[j] = mx == -INFINITY ? 0 : exp(p[j] - mx);
                        sum += p[j];
                    }
                if (o && o->on_probs) {
                    for (size_t j = 0; j < n; j++)
                        probs[j] = vis[j] && sum > 0 ? p[j] / sum : 0.0;
                    o->on_probs(user, l, h, (uint32_t)i, probs, n);
                }
                float *a = att_all + i * QD + h * hd;
                for (uint32_t d = 0; d < hd; d++) {
                    double acc = 0;
                    for (size_t j = 0; j < n; j++)
                        if (vis[j] && sum > 0)
                            acc += p[j] / sum * v[j * KD + kh * hd + d];
                    a[d] = (float)acc;
                }
            }
        }
        for (size_t t = 0; t < n; t++) {
            float *xt = x + t * E;
            matvec(&L->wo, att_all + t * QD, tmp, qa);
            for (uint32_t i = 0; i < E; i++)
                xt[i] += tmp[i];
            rmsnorm(xn, xt, L->ffn_norm, E, hp->rms_eps);
            matvec(&L->gate, xn, g, qa);
            matvec(&L->up, xn, u, qa);
            for (uint32_t i = 0; i < F; i++)
                g[i] = (float)(g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
            matvec(&L->down, g, tmp, qa);
            for (uint32_t i = 0; i < E; i++)
                xt[i] += tmp[i];
        }
        (void)att;
    }
    for (size_t t = 0; t < n; t++) {
        rmsnorm(xn, x + t * E, r->out_norm, E, hp->rms_eps);
        matvec(&r->output, xn, out + t * V, qa);
    }
    free(x); free(xn); free(q); free(k); free(v); free(att); free(tmp); free(g); free(u);
    free(att_all); free(p); free(qrot); free(krot); free(probs); free(vis); free(own_freq);
}
