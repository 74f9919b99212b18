/*
 * sampler `awrs`: adaptive weighted rejection sampling (Lipkin et al.,
 * 2025) under a constraint. Each step perturbs the log-probabilities with
 * Gumbel noise, which orders the tokens as sampling without replacement
 * does; tokens are checked against the constraint in that order (one
 * parser walk over the token's bytes each) and the first accepted one is
 * picked: an exact sample of the constrained distribution, usually after
 * a handful of checks instead of a mask over the whole vocabulary. After
 * `max-rejections` rejections it falls back to the full mask (the same
 * distribution). A second pass, with fresh noise, counts rejections for
 * the importance weight
 *     log w = log(1 - sum p(rejected in pass 1)) - log(n_rejected + 1),
 * an unbiased estimate of the constrained normaliser for SMC, logged at
 * debug level ("awrs-log-weight"). It picks: put it last in the chain.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/params.h>

#include "../candidates.h"
#include "cg_open.h"

typedef struct awrs {
    cg_constraint c;
    int64_t max_rejections;
    uint64_t rng;
    double *key;          /* per candidate: log p + Gumbel */
    int32_t *heap;        /* candidate indices, a max-heap on key */
    size_t cap;
} awrs;

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double gumbel(uint64_t *s)
{
    double u = ((next_u64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    return -log(-log(u));
}

static void sift(const double *key, int32_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && key[h[l]] > key[h[m]])
            m = l;
        if (r < n && key[h[r]] > key[h[m]])
            m = r;
        if (m == i)
            return;
        int32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Whether the constraint takes candidate token `id` now. */
static bool allowed(awrs *a, int32_t id)
{
    cg_constraint *c = &a->c;
    for (size_t i = 0; i < c->n_eog; i++)
        if (c->eog[i] == id)
            return c->ended || cg_parser_accepting(c->parser, c->state);
    if (c->ended || id < 0 || id >= cg_vocab_size(c->vocab))
        return false;
    uint32_t next = cg_advance_token(c->parser, c->vocab, c->state, id);
    return next != 0 && next != UINT32_MAX;
}

/* One pass: Gumbel keys, then candidates in key order until one is
 * accepted. Returns its index (or -1), the rejections and their mass. */
static int64_t pass(awrs *a, const st_candidates *cands, const double *logp, int64_t budget,
                    size_t *n_rejected, double *p_rejected)
{
    size_t n = cands->size;
    for (size_t i = 0; i < n; i++) {
        a->key[i] = isfinite(logp[i]) ? logp[i] + gumbel(&a->rng) : -INFINITY;
        a->heap[i] = (int32_t)i;
    }
    for (size_t i = n / 2; i-- > 0;)
        sift(a->key, a->heap, n, i);
    *n_rejected = 0;
    *p_rejected = 0;
    size_t left = n;
    while (left && (budget < 0 || (int64_t)*n_rejected < budget)) {
        int32_t top = a->heap[0];
        if (!isfinite(a->key[top]))
            return -1;
        if (allowed(a, cands->data[top].id))
            return top;
        (*n_rejected)++;
        *p_rejected += exp(logp[top]);
        a->heap[0] = a->heap[--left];
        sift(a->key, a->heap, left, 0);
    }
    return -1;
}

static st_status awrs_apply(void *inst, st_candidates *cands, st_error *err)
{
    awrs *a = inst;
    const st_host_services *host = a->c.host;
    if (!cands || cands->size == 0)
        return host->error(err, ST_E_INVALID, "awrs: no candidates to pick from");
    if (cands->size > a->cap) {
        size_t cap = cands->size;
        double *k = realloc(a->key, 2 * cap * sizeof *k);
        int32_t *h = realloc(a->heap, cap * sizeof *h);
        if (k)
            a->key = k;
        if (h)
            a->heap = h;
        if (!k || !h)
            return host->error(err, ST_E_NOMEM, "awrs: out of memory");
        a->cap = cap;
    }
    double *logp = a->key + a->cap;
    double max = -INFINITY, sum = 0;
    for (size_t i = 0; i < cands->size; i++)
        max = cands->data[i].logit > max ? cands->data[i].logit : max;
    if (!isfinite(max))
        return host->error(err, ST_E_INVALID, "awrs: every candidate is masked");
    for (size_t i = 0; i < cands->size; i++)
        sum += exp(cands->data[i].logit - max);
    for (size_t i = 0; i < cands->size; i++)
        logp[i] = cands->data[i].logit - max - log(sum);

    size_t n_rej1, n_rej2;
    double p_rej1, p_rej2;
    int64_t pick = pass(a, cands, logp, a->max_rejections, &n_rej1, &p_rej1);
    if (pick < 0) {
        /* Fallback: the full mask, then the same Gumbel-max over what it
         * allows (the constrained distribution, exactly). */
        st_candidates copy = *cands;
        for (size_t i = 0; i < cands->size; i++)
            a->key[i] = isfinite(logp[i]) ? logp[i] + gumbel(&a->rng) : -INFINITY;
        const uint8_t *mask = a->c.ended ? NULL : cg_masker_get(a->c.masker, a->c.state);
        for (size_t i = 0; i < copy.size; i++) {
            int32_t id = copy.data[i].id;
            bool ok = id >= 0 && id < cg_vocab_size(a->c.vocab) && mask &&
                      ((mask[id >> 3] >> (id & 7)) & 1);
            for (size_t e = 0; e < a->c.n_eog; e++)
                if (a->c.eog[e] == id)
                    ok = a->c.ended || cg_parser_accepting(a->c.parser, a->c.state);
            if (ok && isfinite(a->key[i]) && (pick < 0 || a->key[i] > a->key[pick]))
                pick = (int64_t)i;
        }
        if (pick < 0)
            return host->error(err, ST_E_INVALID,
                               "awrs: none of the candidates continues the constraint");
        host->log(host->host, ST_LOG_DEBUG, "awrs", "fell back to the full mask after %zu "
                  "rejections", n_rej1);
    } else {
        /* The second pass only counts: its pick is not used. */
        pass(a, cands, logp, -1, &n_rej2, &p_rej2);
        double log_w = log(fmax(1.0 - p_rej1, 1e-300)) - log((double)n_rej2 + 1.0);
        host->log(host->host, ST_LOG_DEBUG, "awrs", "awrs-log-weight: %.6f rejections: %zu",
                  log_w, n_rej1);
    }
    cands->selected = pick;
    return ST_OK;
}

static st_status awrs_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    awrs *a = host->calloc(host->host, 1, sizeof *a);
    if (!a)
        return host->error(err, ST_E_NOMEM, "awrs: out of memory");
    int kind = cg_kind_from_name(st_param_str(params, "constraint"));
    cg_schema_options opt = {.strict = st_param_bool(params, "strict"), .compact = true};
    st_status st = cg_open_spec(&a->c, host, "awrs", (cg_kind)kind,
                                st_param_str(params, "spec"), &opt, err);
    if (st != ST_OK) {
        host->free(host->host, a);
        return st;
    }
    a->max_rejections = st_param_int(params, "max-rejections");
    *inst = a;
    return ST_OK;
}

static void awrs_destroy(void *inst)
{
    awrs *a = inst;
    if (!a)
        return;
    const st_host_services *host = a->c.host;
    cg_constraint_close(&a->c);
    free(a->key);
    free(a->heap);
    host->free(host->host, a);
}

static st_status awrs_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return cg_constraint_accept(&((awrs *)inst)->c, token, is_prompt, err);
}

static void awrs_reset(void *inst, uint64_t seed)
{
    awrs *a = inst;
    a->rng = seed ^ 0x5DEECE66Dull;
    cg_constraint_reset(&a->c);
}

static const st_sampler_ops awrs_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = awrs_apply,
    .accept = awrs_accept,
    .reset = awrs_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "awrs", "0.1.0",
          "Adaptive weighted rejection sampling under a grammar, regex or JSON Schema",
          awrs_create, awrs_destroy, &awrs_ops, NULL);
