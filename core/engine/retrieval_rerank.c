/*
 * core/engine/retrieval_rerank.c - re-ranking a retriever's best
 * candidates with the strategy's language model (the retriever block's
 * `rerank:`; docs/retrieval.md). Each candidate is scored by the
 * log-likelihood of the query given the document:
 *
 *   score(D) = sum over the query's tokens q_i of log p(q_i | T(D), q_<i)
 *
 * where T(D) is the rerank template with the document's id and text put
 * in, run through the host's model_score service (the model as trained,
 * in a scratch cache of its own; engine_model_score.c).
 *
 * Why the query given the document and not the document given the query:
 * the scored tokens are then the same for every candidate (the query is
 * tokenized once, on its own), so the sums compare like with like; scoring
 * the documents instead would favour short and generic descriptions, whose
 * tokens are likelier whatever the query. (This is query-likelihood
 * re-ranking, as UPR does: Sachan et al., 2022.)
 */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "retrieval_internal.h"

/* Why: a plain-text frame any causal model continues; the query follows
 * a line of its own so its first token is scored as a line's start. */
static const char default_rerank_template[] =
    "Tool: {id}\nDescription: {text}\nA user request this tool serves:\n";

/* The template with {id} and {text} put in; NUL-terminated, malloc'd. */
static char *render(const char *t, const st_retrieved *h)
{
    size_t n = 0;
    for (const char *p = t; *p;)
        if (!strncmp(p, "{id}", 4))
            n += h->id_len, p += 4;
        else if (!strncmp(p, "{text}", 6))
            n += h->text_len, p += 6;
        else
            n++, p++;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = t; *p;) {
        if (!strncmp(p, "{id}", 4)) {
            memcpy(o, h->id, h->id_len);
            o += h->id_len, p += 4;
        } else if (!strncmp(p, "{text}", 6)) {
            memcpy(o, h->text, h->text_len);
            o += h->text_len, p += 6;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* log p(query | rendered document): BOS + template tokens, then the
 * query's tokens, whose log-probs are summed. */
static st_status score_one(st_engine *e, const char *tmpl, const st_retrieved *h,
                           const int32_t *q, size_t nq, double *out, st_error *err)
{
    char *prefix = render(tmpl, h);
    if (!prefix)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    int32_t *p = NULL;
    size_t np = 0;
    st_status st = st_engine_tokenize(e, prefix, strlen(prefix), ST_ENCODE_ADD_BOS, &p, &np,
                                      err);
    free(prefix);
    if (st != ST_OK)
        return st;
    size_t n = np + nq;
    int32_t *all = malloc(n * sizeof *all);
    float *lp = malloc(n * sizeof *lp);
    if (!all || !lp) {
        st = st_error_set(err, ST_E_NOMEM, "out of memory");
    } else {
        memcpy(all, p, np * sizeof *all);
        memcpy(all + np, q, nq * sizeof *all);
        st_score_request req = {.struct_size = sizeof req, .tokens = all, .n_tokens = n,
                                .logprob = lp, .attn_layer = -1};
        st = st_engine_model_score(e, &req, err);
        double sum = 0;
        for (size_t i = np; i < n && st == ST_OK; i++)
            sum += lp[i];
        *out = sum;
    }
    st_free(p);
    free(all);
    free(lp);
    return st;
}

typedef struct rescored {
    st_retrieved hit;
    double score;
    size_t first; /* rank in the first stage: breaks ties */
} rescored;

static int rescored_cmp(const void *a, const void *b)
{
    const rescored *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->first > y->first) - (x->first < y->first);
}

st_status st_retrieval_rerank(st_engine *e, const char *tmpl, const char *query, size_t len,
                              st_retrieved *hits, size_t n, st_error *err)
{
    if (n == 0)
        return ST_OK;
    for (size_t i = 0; i < n; i++)
        if (!hits[i].text)
            return st_error_set(err, ST_E_UNAVAILABLE,
                                "rerank: document '%s' has no text to score (an index "
                                "loaded without its .texts file)", hits[i].id);
    int32_t *q = NULL;
    size_t nq = 0;
    st_status st = st_engine_tokenize(e, query, len, 0, &q, &nq, err);
    if (st != ST_OK)
        return st;
    rescored *r = calloc(n, sizeof *r);
    if (!r) {
        st_free(q);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        r[i].hit = hits[i];
        r[i].first = i;
        st = score_one(e, tmpl ? tmpl : default_rerank_template, &hits[i], q, nq, &r[i].score,
                       err);
    }
    st_free(q);
    if (st == ST_OK) {
        qsort(r, n, sizeof *r, rescored_cmp);
        for (size_t i = 0; i < n; i++) {
            hits[i] = r[i].hit;
            hits[i].score = (float)r[i].score;
        }
    }
    free(r);
    return st;
}
