/*
 * attention `infiniretri`: InfiniRetri (attention-guided retrieval) as a
 * reader (stretch/reader.h). Each step scores [BOS] + kept + chunk +
 * question with the model and reads one layer's attention (summed over
 * heads): rows are the question's tokens, columns the context's.
 *
 *   a[c]     = sum_q w[q] * A[q][c]          w[q] = sum_q' A[q'][q] / total
 *   score[c] = sum_{j=c-window/2}^{c-window/2+window-1} a[j]  (ones kernel)
 *
 * w weights each question row by the attention the question pays that
 * question token (its self-attention), so the words that carry the
 * question count most. The top_k tokens by score pick sentences, best
 * first; whole sentences are kept while they fit `budget`. The kept
 * tokens are re-read in the next chunk at fresh positions, so the model
 * never sees a distance beyond one step, however long the input.
 *
 * For generation the plugin is dense causal attention over the kept
 * context (the host builds the answer prompt from it).
 */
#include <math.h>
#include <stretch/params.h>
#include <stretch/plugin.h>
#include <string.h>

#include "reader_common.h"

typedef struct infiniretri {
    const st_host_services *host;
    uint32_t top_k, window, budget;
    int32_t layer;
} infiniretri;

static st_status ir_create(const st_host_services *host, const st_params *params, void **inst,
                           st_error *err)
{
    infiniretri *ir = host->calloc(host->host, 1, sizeof *ir);
    if (!ir)
        return host->error(err, ST_E_NOMEM, "infiniretri: out of memory");
    ir->host = host;
    ir->top_k = (uint32_t)st_param_int(params, "top_k");
    ir->window = (uint32_t)st_param_int(params, "window");
    ir->budget = (uint32_t)st_param_int(params, "budget");
    ir->layer = (int32_t)st_param_int(params, "layer");
    *inst = ir;
    return ST_OK;
}

static void ir_destroy(void *inst)
{
    infiniretri *ir = inst;
    if (ir)
        ir->host->free(ir->host->host, ir);
}

static st_status ir_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                              int32_t *weights_layer, st_error *err)
{
    infiniretri *ir = inst;
    *needs = 0;
    *weights_layer = -1;
    if (ir->layer >= 0 && (uint32_t)ir->layer >= shape->n_layers)
        return ir->host->error(err, ST_E_INVALID,
                               "infiniretri: layer %d, the model has layers 0..%u (-1 = last)",
                               ir->layer, shape->n_layers - 1);
    return ST_OK;
}

static uint32_t ir_cache_budget(void *inst, uint32_t n_ctx) { return 0; }

static st_status ir_plan(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    infiniretri *ir = inst;
    return st_reader_causal_plan(ir->host, "infiniretri", q, b, err);
}

static void ir_reset(void *inst) {}

static uint32_t ir_kept_max(void *inst) { return ((infiniretri *)inst)->budget; }

/* score[c] for the step's n context tokens from the attention matrix A of
 * the scored sequence (n_seq x n_seq), context at `first`, question after. */
static void token_scores(const infiniretri *ir, const float *A, size_t n_seq, size_t first,
                         size_t n, float *a, float *score)
{
    size_t q0 = first + n;
    double total = 0.0;
    for (size_t c = 0; c < n; c++)
        a[c] = 0.0f;
    /* w[q]: the attention question token q receives from the question. */
    for (size_t q = q0; q < n_seq; q++)
        for (size_t r = q0; r < n_seq; r++)
            total += A[r * n_seq + q];
    for (size_t q = q0; q < n_seq; q++) {
        double w = 0.0;
        for (size_t r = q0; r < n_seq; r++)
            w += A[r * n_seq + q];
        w = total > 0.0 ? w / total : 1.0 / (double)(n_seq - q0);
        const float *row = A + q * n_seq + first;
        for (size_t c = 0; c < n; c++)
            a[c] += (float)(w * row[c]);
    }
    /* The ones kernel: the sum over [c - window/2, c - window/2 + window). */
    long long half = ir->window / 2;
    for (size_t c = 0; c < n; c++) {
        long long lo = (long long)c - half, hi = lo + ir->window; /* [lo, hi) */
        if (lo < 0)
            lo = 0;
        if (hi > (long long)n)
            hi = (long long)n;
        double s = 0.0;
        for (long long j = lo; j < hi; j++)
            s += a[j];
        score[c] = (float)s;
    }
}

/* Keep the sentences of the top_k tokens, best first, while they fit. */
static size_t choose(const infiniretri *ir, const st_read_step *step, const float *score,
                     st_reader_ranked *rank, uint8_t *keep)
{
    size_t n = step->n_tokens;
    for (size_t c = 0; c < n; c++)
        rank[c] = (st_reader_ranked){score[c], (uint32_t)c};
    st_reader_rank(rank, n);
    size_t top = ir->top_k < n ? ir->top_k : n, kept = 0;
    for (size_t i = 0; i < top; i++) {
        size_t c = rank[i].index;
        if (keep[c])
            continue;
        uint32_t s = step->sentence[c];
        size_t b = c, e = c + 1;
        while (b > 0 && step->sentence[b - 1] == s)
            b--;
        while (e < n && step->sentence[e] == s)
            e++;
        if (kept + (e - b) > ir->budget)
            continue;
        memset(keep + b, 1, e - b);
        kept += e - b;
    }
    if (kept == 0 && n > 0) {
        /* Every chosen sentence is longer than the budget: keep the budget's
         * worth of tokens centred on the best one. */
        size_t c = rank[0].index, w = ir->budget < n ? ir->budget : n;
        size_t b = c >= w / 2 ? c - w / 2 : 0;
        if (b + w > n)
            b = n - w;
        memset(keep + b, 1, w);
        kept = w;
    }
    return kept;
}

static st_status ir_select(void *inst, const st_read_step *step, uint8_t *keep, float *score,
                           st_error *err)
{
    infiniretri *ir = inst;
    const st_host_services *h = ir->host;
    const st_host_score_v1 *scorer = NULL;
    st_status st = st_reader_scorer(h, "infiniretri", &scorer, err);
    if (st != ST_OK)
        return st;
    size_t n = step->n_tokens, n_seq = n + step->n_question + 1, first = 0;
    if (n == 0 || step->n_question == 0)
        return h->error(err, ST_E_INVALID, "infiniretri: a step needs context and a question");
    int32_t *seq = h->alloc(h->host, n_seq * sizeof *seq);
    float *A = h->alloc(h->host, n_seq * n_seq * sizeof *A);
    float *a = h->alloc(h->host, n * sizeof *a);
    float *own = score ? NULL : h->alloc(h->host, n * sizeof *own);
    st_reader_ranked *rank = h->alloc(h->host, n * sizeof *rank);
    if (!seq || !A || !a || (!score && !own) || !rank) {
        st = h->error(err, ST_E_NOMEM, "infiniretri: out of memory for a %zu-token step", n);
        goto done;
    }
    n_seq = st_reader_sequence(step, step->tokens, n, seq, &first);
    /* Only the question's rows are read (token_scores): the context before
     * them is a plain prefill for the host (score_from, ABI 1.4). */
    st_score_request req = {.struct_size = sizeof req, .tokens = seq, .n_tokens = n_seq,
                            .attn_layer = ir->layer, .attn_weights = A,
                            .score_from = first + n};
    if ((st = scorer->model_score(h->host, &req, err)) != ST_OK)
        goto done;
    float *sc = score ? score : own;
    token_scores(ir, A, n_seq, first, n, a, sc);
    choose(ir, step, sc, rank, keep);
done:
    h->free(h->host, seq);
    h->free(h->host, A);
    h->free(h->host, a);
    h->free(h->host, own);
    h->free(h->host, rank);
    return st;
}

static const st_reader_v1 ir_reader = {
    .struct_size = sizeof(st_reader_v1),
    .kept_max = ir_kept_max,
    .select = ir_select,
};

static const void *ir_get_extension(void *inst, const char *id)
{
    return strcmp(id, ST_READER_V1) == 0 ? &ir_reader : NULL;
}

static const st_attention_ops ir_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = ir_configure,
    .cache_budget = ir_cache_budget,
    .plan = ir_plan,
    .reset = ir_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "infiniretri", "1.0.0",
          "InfiniRetri: the question's attention picks the sentences carried chunk to chunk",
          ir_create, ir_destroy, &ir_ops, ir_get_extension);
