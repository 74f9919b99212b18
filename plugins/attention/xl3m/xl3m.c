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

/* The segments the last step kept, in order, with their relevance: the
 * next step's kept tokens are exactly these, so they are not cut or
 * scored again (a segment's relevance depends only on its tokens and the
 * question). */
typedef struct xl3m_memory {
    bool valid;
    uint64_t chunk;        /* the step that kept them */
    uint64_t question;     /* hash of the question's tokens */
    size_t n;
    uint32_t *len;         /* [budget] */
    float *score;          /* [budget] */
} xl3m_memory;

typedef struct xl3m {
    const st_host_services *host;
    uint32_t segment, budget;
    xl3m_memory mem;
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
    x->mem.len = host->alloc(host->host, x->budget * sizeof *x->mem.len);
    x->mem.score = host->alloc(host->host, x->budget * sizeof *x->mem.score);
    if (!x->mem.len || !x->mem.score) {
        host->free(host->host, x->mem.len);
        host->free(host->host, x->mem.score);
        host->free(host->host, x);
        return host->error(err, ST_E_NOMEM, "xl3m: out of memory for a budget of %u",
                           x->budget);
    }
    *inst = x;
    return ST_OK;
}

static void xl_destroy(void *inst)
{
    xl3m *x = inst;
    if (!x)
        return;
    x->host->free(x->host->host, x->mem.len);
    x->host->free(x->host->host, x->mem.score);
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

static void xl_reset(void *inst) { ((xl3m *)inst)->mem.valid = false; }

static uint32_t xl_kept_max(void *inst) { return ((xl3m *)inst)->budget; }

/* The end of the segment starting at b, before `n`: whole sentences while
 * they fit `segment` tokens, at least one. */
static size_t segment_end(const xl3m *x, const st_read_step *step, size_t b, size_t n)
{
    size_t e = b;
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
    /* Only the question's log-probs are read: the segment before them
     * needs no output head (score_from, ABI 1.4). */
    st_score_request req = {.struct_size = sizeof req, .tokens = seq, .n_tokens = n_seq,
                            .logprob = lp, .score_from = first + (e - b)};
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

static uint64_t question_hash(const st_read_step *step)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < step->n_question; i++) {
        h ^= (uint32_t)step->question[i];
        h *= 1099511628211ull;
    }
    return h ^ step->n_question;
}

/* Whether the step's kept tokens are the segments the last step kept. */
static bool memory_applies(const xl3m *x, const st_read_step *step, uint64_t qh)
{
    const xl3m_memory *m = &x->mem;
    if (!m->valid || step->n_kept == 0 || step->chunk != m->chunk + 1 || m->question != qh)
        return false;
    size_t total = 0;
    for (size_t i = 0; i < m->n; i++)
        total += m->len[i];
    return total == step->n_kept;
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
    float *segrel = h->alloc(h->host, n * sizeof *segrel);
    if (!seq || !lp || !begin || !rank || !segrel) {
        st = h->error(err, ST_E_NOMEM, "xl3m: out of memory for a %zu-token step", n);
        goto done;
    }
    /* Segments never cross from the kept tokens into the chunk: the kept
     * ones are the segments the last step kept, with their relevance; a
     * step this instance did not see is cut afresh (kept part, then the
     * chunk). */
    uint64_t qh = question_hash(step);
    size_t n_seg = 0, n_known = 0;
    if (memory_applies(x, step, qh)) {
        size_t b = 0;
        for (size_t i = 0; i < x->mem.n; i++) {
            begin[n_seg++] = (uint32_t)b;
            b += x->mem.len[i];
        }
        n_known = n_seg;
    } else {
        for (size_t b = 0; b < step->n_kept; b = segment_end(x, step, b, step->n_kept))
            begin[n_seg++] = (uint32_t)b;
    }
    for (size_t b = step->n_kept; b < n; b = segment_end(x, step, b, n))
        begin[n_seg++] = (uint32_t)b;
    begin[n_seg] = (uint32_t)n;
    x->mem.valid = false;
    for (size_t s = 0; s < n_seg; s++) {
        float rel = 0.0f;
        if (s < n_known)
            rel = x->mem.score[s];
        else if ((st = relevance(x, scorer, step, begin[s], begin[s + 1], seq, lp, &rel,
                                 err)) != ST_OK)
            goto done;
        rank[s] = (st_reader_ranked){rel, (uint32_t)s};
        segrel[s] = rel;
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
        /* The best segment alone exceeds the budget: its first budget
         * tokens, a piece no longer scored as a whole (not remembered). */
        size_t s = rank[0].index, len = begin[s + 1] - begin[s];
        memset(keep + begin[s], 1, len < x->budget ? len : x->budget);
    } else {
        /* Remember the kept segments in order for the next step. */
        x->mem.n = 0;
        for (size_t s = 0; s < n_seg; s++)
            if (keep[begin[s]]) {
                x->mem.len[x->mem.n] = begin[s + 1] - begin[s];
                x->mem.score[x->mem.n++] = segrel[s];
            }
        x->mem.chunk = step->chunk;
        x->mem.question = qh;
        x->mem.valid = true;
    }
done:
    h->free(h->host, seq);
    h->free(h->host, lp);
    h->free(h->host, begin);
    h->free(h->host, rank);
    h->free(h->host, segrel);
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
