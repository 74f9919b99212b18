/*
 * attention `xl3m`: XL3M (extra-long length modelling by segment
 * selection) as a reader (stretch/reader.h). Each step's tokens (what was
 * kept, then the chunk) are cut into segments of whole sentences, up to
 * `segment` tokens each. Every segment is scored alone with the question
 * after it: its relevance is the model's certainty on the question,
 *
 *   relevance(seg) = (1/|Q|) * sum_{t in Q} log p(question[t] | BOS, seg, question[<t])
 *
 * (the mean log-prob of the question's tokens; higher = the segment makes
 * the question more predictable, as a segment holding the answer does).
 * The most relevant segments are kept while they fit `budget`, spliced in
 * their original order, and carried to the next step, where they compete
 * again with the new chunk's segments. The published method (no public
 * code) leaves segment size, question length and the selection rule open;
 * these are ours, documented in docs/plugins/xl3m.md.
 *
 * For generation the plugin is dense causal attention over the kept
 * context (the host builds the answer prompt from it).
 */
#include <math.h>
#include <stretch/params.h>
#include <stretch/plugin.h>
#include <string.h>

#include "reader_common.h"

typedef struct xl3m {
    const st_host_services *host;
    uint32_t segment, budget;
} xl3m;

static st_status xl_create(const st_host_services *host, const st_params *params, void **inst,
                           st_error *err)
{
    xl3m *x = host->calloc(host->host, 1, sizeof *x);
    if (!x)
        return host->error(err, ST_E_NOMEM, "xl3m: out of memory");
    x->host = host;
    x->segment = (uint32_t)st_param_int(params, "segment");
    x->budget = (uint32_t)st_param_int(params, "budget");
    *inst = x;
    return ST_OK;
}

static void xl_destroy(void *inst)
{
    xl3m *x = inst;
    if (x)
        x->host->free(x->host->host, x);
}

static st_status xl_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                              int32_t *weights_layer, st_error *err)
{
    *needs = 0;
    *weights_layer = -1;
    return ST_OK;
}

static uint32_t xl_cache_budget(void *inst, uint32_t n_ctx) { return 0; }

static st_status xl_plan(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    xl3m *x = inst;
    return st_reader_causal_plan(x->host, "xl3m", q, b, err);
}

static void xl_reset(void *inst) {}

static uint32_t xl_kept_max(void *inst) { return ((xl3m *)inst)->budget; }

/* The end of the segment starting at b: whole sentences while they fit
 * `segment` tokens, at least one. */
static size_t segment_end(const xl3m *x, const st_read_step *step, size_t b)
{
    size_t n = step->n_tokens, e = b;
    while (e < n) {
        size_t s = e;
        while (s < n && step->sentence[s] == step->sentence[e])
            s++;
        if (e > b && s - b > x->segment)
            break;
        e = s;
    }
    return e;
}

/* The mean log-prob of the question after [BOS] + tokens[b..e). */
static st_status relevance(xl3m *x, const st_host_score_v1 *scorer, const st_read_step *step,
                           size_t b, size_t e, int32_t *seq, float *lp, float *out,
                           st_error *err)
{
    size_t first = 0;
    size_t n_seq = st_reader_sequence(step, step->tokens + b, e - b, seq, &first);
    st_score_request req = {.struct_size = sizeof req, .tokens = seq, .n_tokens = n_seq,
                            .logprob = lp};
    st_status st = scorer->model_score(x->host->host, &req, err);
    if (st != ST_OK)
        return st;
    double sum = 0.0;
    size_t q0 = first + (e - b);
    for (size_t t = q0; t < n_seq; t++)
        sum += lp[t];
    *out = (float)(sum / (double)(n_seq - q0));
    return ST_OK;
}

static st_status xl_select(void *inst, const st_read_step *step, uint8_t *keep, float *score,
                           st_error *err)
{
    xl3m *x = inst;
    const st_host_services *h = x->host;
    const st_host_score_v1 *scorer = NULL;
    st_status st = st_reader_scorer(h, "xl3m", &scorer, err);
    if (st != ST_OK)
        return st;
    size_t n = step->n_tokens;
    if (n == 0 || step->n_question == 0)
        return h->error(err, ST_E_INVALID, "xl3m: a step needs context and a question");
    size_t cap = n + step->n_question + 1;
    int32_t *seq = h->alloc(h->host, cap * sizeof *seq);
    float *lp = h->alloc(h->host, cap * sizeof *lp);
    uint32_t *begin = h->alloc(h->host, (n + 1) * sizeof *begin);
    st_reader_ranked *rank = h->alloc(h->host, n * sizeof *rank);
    if (!seq || !lp || !begin || !rank) {
        st = h->error(err, ST_E_NOMEM, "xl3m: out of memory for a %zu-token step", n);
        goto done;
    }
    size_t n_seg = 0;
    for (size_t b = 0; b < n; b = segment_end(x, step, b))
        begin[n_seg++] = (uint32_t)b;
    begin[n_seg] = (uint32_t)n;
    for (size_t s = 0; s < n_seg; s++) {
        float rel = 0.0f;
        if ((st = relevance(x, scorer, step, begin[s], begin[s + 1], seq, lp, &rel, err)) !=
            ST_OK)
            goto done;
        rank[s] = (st_reader_ranked){rel, (uint32_t)s};
        for (size_t t = begin[s]; score && t < begin[s + 1]; t++)
            score[t] = rel;
    }
    st_reader_rank(rank, n_seg);
    size_t kept = 0;
    for (size_t i = 0; i < n_seg; i++) {
        size_t s = rank[i].index, len = begin[s + 1] - begin[s];
        if (kept + len > x->budget)
            continue;
        memset(keep + begin[s], 1, len);
        kept += len;
    }
    if (kept == 0) {
        /* The best segment alone exceeds the budget: its first budget tokens. */
        size_t s = rank[0].index, len = begin[s + 1] - begin[s];
        memset(keep + begin[s], 1, len < x->budget ? len : x->budget);
    }
done:
    h->free(h->host, seq);
    h->free(h->host, lp);
    h->free(h->host, begin);
    h->free(h->host, rank);
    return st;
}

static const st_reader_v1 xl_reader = {
    .struct_size = sizeof(st_reader_v1),
    .kept_max = xl_kept_max,
    .select = xl_select,
};

static const void *xl_get_extension(void *inst, const char *id)
{
    return strcmp(id, ST_READER_V1) == 0 ? &xl_reader : NULL;
}

static const st_attention_ops xl_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = xl_configure,
    .cache_budget = xl_cache_budget,
    .plan = xl_plan,
    .reset = xl_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "xl3m", "1.0.0",
          "XL3M: segments scored by the model's certainty on the question, the best spliced",
          xl_create, xl_destroy, &xl_ops, xl_get_extension);
