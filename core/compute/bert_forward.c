/*
 * core/compute/bert_forward.c - a BERT encoder over a batch of sentences,
 * read top to bottom:
 *
 *   x = LayerNorm(tok[id] + pos[i] + type[0])
 *   per layer:  a = softmax(Q K^T / sqrt(d_head)) V   (every token of a
 *                   sentence to every token of the same sentence)
 *               x = LayerNorm(x + a W_o + b_o)
 *               x = LayerNorm(x + GELU(x W_up + b_up) W_down + b_down)
 *   out = mean over a sentence's tokens of x, then / |out|
 *
 * The sentences are packed one after another into one token matrix (no
 * padding), so every matrix product is one GEMM over all their tokens
 * through the CPU matmul (f32 weights, or Q8_0 ones with int8 inputs
 * through the repacked 16-row kernels; Q, K and V in one call) and reads
 * each weight row once per tile of tokens instead of once per sentence.
 * Only attention looks across tokens, and it stays inside a sentence: the
 * batch gives each sentence exactly the numbers it gets alone (each row
 * of a product is summed in the same order whatever the batch). The
 * per-token steps (bias, GELU, LayerNorm) and attention (one work item per
 * sentence and head) run on the same thread pool as the products. GELU is
 * the exact erf form BERT uses.
 */
#include "bert_forward.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "ops.h"

/* Tokens per work item of the per-token steps. */
#define ROWS_PER_ITEM 8

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

typedef enum step_kind { STEP_EMBED, STEP_ATTENTION, STEP_RESIDUAL_NORM, STEP_BIAS_GELU } step_kind;

/* The whole batch's state; one `step` runs at a time on the pool. */
typedef struct batch {
    const st_bert_model *m;
    const st_cpu_kernels *kern;
    size_t n_seq, nt;
    const int32_t *ids;    /* [nt], the sentences back to back */
    const size_t *start;   /* [n_seq + 1] token offsets */
    float *x, *q, *k, *v, *ctx, *tmp, *ff;
    float *scores;         /* [pool size][longest sentence] */
    size_t longest;
    /* The step in progress. */
    step_kind step;
    const st_bert_layer *layer;
    const float *norm_w, *norm_b; /* STEP_RESIDUAL_NORM */
    const float *bias;            /* STEP_RESIDUAL_NORM: added to tmp first */
    atomic_size_t next;
} batch;

/* ctx[t] = softmax_j(q[t] . k[j] / sqrt(hd)) v[j] for the tokens t, j of
 * sentence s and head h, after adding the Q/K/V biases to that slice
 * (every slice belongs to exactly one item, so no two threads share one). */
static void attention_item(batch *b, size_t s, uint32_t h, float *scores)
{
    const st_bert_model *m = b->m;
    const st_bert_layer *L = b->layer;
    uint32_t e = m->n_embd, hd = e / m->n_heads;
    size_t t0 = b->start[s], n = b->start[s + 1] - t0;
    for (size_t t = t0; t < t0 + n; t++)
        for (uint32_t i = h * hd; i < (h + 1) * hd; i++) {
            b->q[t * e + i] += L->q_b[i];
            b->k[t * e + i] += L->k_b[i];
            b->v[t * e + i] += L->v_b[i];
        }
    float scale = 1.0f / sqrtf((float)hd);
    for (size_t t = t0; t < t0 + n; t++) {
        const float *qt = b->q + t * e + h * hd;
        for (size_t j = 0; j < n; j++)
            scores[j] = b->kern->dot_f32(qt, b->k + (t0 + j) * e + h * hd, hd) * scale;
        st_op_softmax(scores, (uint32_t)n);
        float *c = b->ctx + t * e + h * hd;
        memset(c, 0, hd * sizeof *c);
        for (size_t j = 0; j < n; j++)
            b->kern->axpy_f32(c, scores[j], b->v + (t0 + j) * e + h * hd, hd);
    }
}

static void rows_item(batch *b, size_t r0, size_t r1)
{
    const st_bert_model *m = b->m;
    uint32_t e = m->n_embd, f = m->n_ff;
    switch (b->step) {
    case STEP_EMBED:
        for (size_t s = 0; s < b->n_seq; s++) {
            size_t lo = b->start[s] > r0 ? b->start[s] : r0;
            size_t hi = b->start[s + 1] < r1 ? b->start[s + 1] : r1;
            for (size_t t = lo; t < hi; t++) {
                const float *te = m->tok_embd + (size_t)b->ids[t] * e;
                const float *pe = m->pos_embd + (t - b->start[s]) * e;
                for (uint32_t i = 0; i < e; i++)
                    b->x[t * e + i] = te[i] + pe[i] + m->type_embd[i];
                layer_norm(b->x + t * e, m->embd_norm_w, m->embd_norm_b, e, m->eps);
            }
        }
        break;
    case STEP_RESIDUAL_NORM:
        for (size_t t = r0; t < r1; t++) {
            for (uint32_t i = 0; i < e; i++)
                b->x[t * e + i] += b->tmp[t * e + i] + b->bias[i];
            layer_norm(b->x + t * e, b->norm_w, b->norm_b, e, m->eps);
        }
        break;
    case STEP_BIAS_GELU:
        for (size_t t = r0; t < r1; t++)
            b->kern->gelu_bias(b->ff + t * f, b->layer->up_b, f);
        break;
    case STEP_ATTENTION:
        break;
    }
}

static void step_task(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    batch *b = arg;
    if (b->step == STEP_ATTENTION) {
        size_t items = b->n_seq * b->m->n_heads;
        float *scores = b->scores + ith * b->longest;
        for (;;) {
            size_t it = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
            if (it >= items)
                break;
            attention_item(b, it / b->m->n_heads, (uint32_t)(it % b->m->n_heads), scores);
        }
        return;
    }
    size_t items = (b->nt + ROWS_PER_ITEM - 1) / ROWS_PER_ITEM;
    for (;;) {
        size_t it = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
        if (it >= items)
            break;
        size_t r0 = it * ROWS_PER_ITEM, r1 = r0 + ROWS_PER_ITEM;
        rows_item(b, r0, r1 < b->nt ? r1 : b->nt);
    }
}

static void run_step(st_threadpool *pool, batch *b, step_kind step)
{
    b->step = step;
    atomic_store_explicit(&b->next, 0, memory_order_relaxed);
    st_threadpool_run(pool, step_task, b);
}

/* Quantizing a product's input to int8 blocks, on every thread (serial,
 * it was 8% of the time next to the int8 products). */
typedef struct quantize_job {
    const float *x;
    uint32_t cols;
    size_t nt;
    st_act_block *xq;
    atomic_size_t next;
} quantize_job;

static void quantize_task(void *arg, uint32_t ith, uint32_t nth)
{
    (void)ith, (void)nth;
    quantize_job *j = arg;
    size_t nb = j->cols / ST_ACT_BLOCK;
    for (;;) {
        size_t r0 = atomic_fetch_add_explicit(&j->next, ROWS_PER_ITEM, memory_order_relaxed);
        if (r0 >= j->nt)
            break;
        for (size_t t = r0; t < r0 + ROWS_PER_ITEM && t < j->nt; t++)
            st_quantize_act_row(j->x + t * j->cols, j->cols, j->xq + t * nb);
    }
}

/* Up to three products of one input in one pool task (the matrices of
 * one call share a type: f32, or Q8_0 with the input quantized to int8
 * blocks into xq first, as the Llama forward does). */
static void matmul(st_threadpool *pool, const st_cpu_kernels *kern, const float *x, size_t nt,
                   st_act_block *xq, uint32_t n, const st_weight *w0, float *y0,
                   const st_weight *w1, float *y1, const st_weight *w2, float *y2)
{
    st_matmul_job job = {.kern = kern, .n_mats = n, .xf = x, .ldxf = w0->cols,
                         .nt = (uint32_t)nt};
    if (st_cpu_type_is_quantized(w0->type)) {
        quantize_job q = {.x = x, .cols = w0->cols, .nt = nt, .xq = xq};
        atomic_init(&q.next, 0);
        st_threadpool_run(pool, quantize_task, &q);
        job.xq = xq;
        job.ldxq = w0->cols / ST_ACT_BLOCK;
    }
    const st_weight *w[3] = {w0, w1, w2};
    float *y[3] = {y0, y1, y2};
    for (uint32_t i = 0; i < n; i++) {
        job.mats[i].w = w[i];
        job.mats[i].y = y[i];
        job.mats[i].ldy = w[i]->rows;
    }
    st_matmul_job_prepare(&job, st_threadpool_size(pool));
    st_threadpool_run(pool, st_matmul_task, &job);
}

/* Whether any matrix of the model is quantized (an int8 input buffer is
 * then needed). */
static bool any_quantized(const st_bert_model *m)
{
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const st_bert_layer *L = &m->layers[l];
        const st_weight *ws[] = {&L->q, &L->k, &L->v, &L->out, &L->up, &L->down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (st_cpu_type_is_quantized(ws[i]->type))
                return true;
    }
    return false;
}

st_status st_bert_embed_batch(const st_bert_model *m, st_threadpool *pool,
                              const st_cpu_kernels *kern, const int32_t *const *ids,
                              const size_t *n_ids, size_t n_seq, float *out, st_error *err)
{
    uint32_t e = m->n_embd, f = m->n_ff;
    if (n_seq == 0)
        return ST_OK;
    size_t nt = 0, longest = 0;
    for (size_t s = 0; s < n_seq; s++) {
        size_t n = n_ids[s];
        if (n == 0 || n > m->max_tokens)
            return st_error_set(err, ST_E_RANGE, "the encoder takes 1 to %u tokens, got %zu "
                                "(sentence %zu of the batch)", m->max_tokens, n, s);
        for (size_t t = 0; t < n; t++)
            if (ids[s][t] < 0 || (uint32_t)ids[s][t] >= m->n_vocab)
                return st_error_set(err, ST_E_RANGE, "token %d (at %zu of sentence %zu) is "
                                    "outside the encoder's vocabulary of %u", ids[s][t], t, s,
                                    m->n_vocab);
        nt += n;
        longest = n > longest ? n : longest;
    }
    if (nt > UINT32_MAX / f)
        return st_error_set(err, ST_E_RANGE, "a batch of %zu tokens is too large", nt);
    uint32_t nth = pool ? st_threadpool_size(pool) : 1;
    size_t ne = nt * e;
    batch b = {.m = m, .kern = kern, .n_seq = n_seq, .nt = nt, .longest = longest};
    int32_t *flat = malloc(nt * sizeof *flat);
    size_t *start = malloc((n_seq + 1) * sizeof *start);
    b.x = malloc(ne * sizeof *b.x);
    b.q = malloc(ne * sizeof *b.q);
    b.k = malloc(ne * sizeof *b.k);
    b.v = malloc(ne * sizeof *b.v);
    b.ctx = malloc(ne * sizeof *b.ctx);
    b.tmp = malloc(ne * sizeof *b.tmp);
    b.ff = malloc(nt * f * sizeof *b.ff);
    b.scores = malloc(nth * longest * sizeof *b.scores);
    /* int8 inputs of the widest product (the FFN's down: n_ff columns). */
    st_act_block *xq =
        any_quantized(m) ? malloc(nt * (f > e ? f : e) / ST_ACT_BLOCK * sizeof *xq + 1) : NULL;
    st_status st = ST_OK;
    if (!flat || !start || !b.x || !b.q || !b.k || !b.v || !b.ctx || !b.tmp || !b.ff ||
        !b.scores || (any_quantized(m) && !xq)) {
        st = st_error_set(err, ST_E_NOMEM, "out of memory for a batch of %zu tokens", nt);
        goto done;
    }
    start[0] = 0;
    for (size_t s = 0; s < n_seq; s++) {
        memcpy(flat + start[s], ids[s], n_ids[s] * sizeof *flat);
        start[s + 1] = start[s] + n_ids[s];
    }
    b.ids = flat;
    b.start = start;
    run_step(pool, &b, STEP_EMBED);
    for (uint32_t l = 0; l < m->n_layers; l++) {
        const st_bert_layer *L = &m->layers[l];
        b.layer = L;
        matmul(pool, kern, b.x, nt, xq, 3, &L->q, b.q, &L->k, b.k, &L->v, b.v);
        run_step(pool, &b, STEP_ATTENTION);
        matmul(pool, kern, b.ctx, nt, xq, 1, &L->out, b.tmp, NULL, NULL, NULL, NULL);
        b.bias = L->out_b;
        b.norm_w = L->attn_norm_w;
        b.norm_b = L->attn_norm_b;
        run_step(pool, &b, STEP_RESIDUAL_NORM);
        matmul(pool, kern, b.x, nt, xq, 1, &L->up, b.ff, NULL, NULL, NULL, NULL);
        run_step(pool, &b, STEP_BIAS_GELU);
        matmul(pool, kern, b.ff, nt, xq, 1, &L->down, b.tmp, NULL, NULL, NULL, NULL);
        b.bias = L->down_b;
        b.norm_w = L->out_norm_w;
        b.norm_b = L->out_norm_b;
        run_step(pool, &b, STEP_RESIDUAL_NORM);
    }
    for (size_t s = 0; s < n_seq; s++) {
        float *o = out + s * e;
        double norm = 0;
        for (uint32_t i = 0; i < e; i++) {
            double sum = 0;
            for (size_t t = start[s]; t < start[s + 1]; t++)
                sum += b.x[t * e + i];
            o[i] = (float)(sum / (double)n_ids[s]);
            norm += (double)o[i] * o[i];
        }
        if (m->normalize && norm > 0)
            for (uint32_t i = 0; i < e; i++)
                o[i] = (float)(o[i] / sqrt(norm));
    }
done:
    free(flat);
    free(start);
    free(b.x);
    free(b.q);
    free(b.k);
    free(b.v);
    free(b.ctx);
    free(b.tmp);
    free(b.ff);
    free(b.scores);
    free(xq);
    return st;
}

st_status st_bert_embed(const st_bert_model *m, st_threadpool *pool, const st_cpu_kernels *kern,
                        const int32_t *ids, size_t nt, float *out, st_error *err)
{
    return st_bert_embed_batch(m, pool, kern, &ids, &nt, 1, out, err);
}
