/*
 * tools/stretch/serve/similarity_json.c - the answers to POST /v1/rerank
 * and POST /v1/score: cosines of a sentence encoder's vectors. Rerank
 * gives the documents best first, in Jina's shape (what llama-server and
 * vLLM answer) or TEI's; score gives each pair's cosine in vLLM's shape.
 * A bi-encoder's score is that cosine, in [-1, 1]; a cross-encoder's (what
 * llama-server reranks with) is another scale, so clients compare scores
 * within one answer, never across models.
 */
#include "server.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ranked {
    size_t index;              /* into the documents */
    double score;
} ranked;

/* Best first; equal scores keep the documents' order, so an answer never
 * depends on the sort. */
static int by_score(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* In double, and divided by both lengths: the encoder's vectors are unit
 * length already, but a score should not depend on it. */
static double cosine(const float *a, const float *b, uint32_t dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (uint32_t d = 0; d < dim; d++) {
        ab += (double)a[d] * b[d];
        aa += (double)a[d] * a[d];
        bb += (double)b[d] * b[d];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static json_t *result(const st_embed_request *q, const ranked *r)
{
    json_t *o = json_pack("{s:I, s:f}", "index", (json_int_t)r->index,
                          q->tei ? "score" : "relevance_score", r->score);
    const char *text = q->texts[r->index + 1];
    size_t len = q->lens[r->index + 1];
    if (o && q->return_documents &&
        json_object_set_new(o, q->tei ? "text" : "document",
                            q->tei ? json_stringn(text, len)
                                   : json_pack("{s:s%}", "text", text, len)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void st_rerank_respond(st_job *job, const char *model, const float *vecs, uint32_t dim,
                       size_t tokens)
{
    const st_embed_request *q = job->embed;
    size_t n_docs = q->n - 1;
    ranked *order = malloc(n_docs * sizeof *order);
    json_t *results = json_array();
    bool ok = order && results;
    for (size_t i = 0; ok && i < n_docs; i++)
        order[i] = (ranked){i, cosine(vecs, vecs + (i + 1) * dim, dim)};
    if (ok)
        qsort(order, n_docs, sizeof *order, by_score);
    for (size_t i = 0; ok && i < q->top_n; i++)
        ok = json_array_append_new(results, result(q, &order[i])) == 0;
    free(order);
    json_t *root = NULL;
    if (ok && q->tei)
        root = json_incref(results);
    else if (ok)
        root = json_pack("{s:s, s:s, s:{s:I, s:I}, s:O}", "model", model, "object", "list",
                         "usage", "prompt_tokens", (json_int_t)tokens, "total_tokens",
                         (json_int_t)tokens, "results", results);
    json_decref(results);
    st_job_respond_value(job, root);
}

void st_score_respond(st_job *job, const char *model, const float *vecs, uint32_t dim,
                      size_t tokens)
{
    const st_embed_request *q = job->embed;
    size_t n_first = q->n_first, n_second = q->n - q->n_first;
    size_t pairs = n_first > n_second ? n_first : n_second;
    json_t *data = json_array();
    for (size_t i = 0; data && i < pairs; i++) {
        /* A single text on either side stands against each of the other's. */
        const float *a = vecs + (n_first == 1 ? 0 : i) * dim;
        const float *b = vecs + (n_first + (n_second == 1 ? 0 : i)) * dim;
        if (json_array_append_new(data, json_pack("{s:I, s:s, s:f}", "index", (json_int_t)i,
                                                  "object", "score", "score",
                                                  cosine(a, b, dim))) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    const char *dash = strchr(job->id, '-');
    char id[48];
    snprintf(id, sizeof id, "score-%s", dash ? dash + 1 : job->id);
    json_t *root = data ? json_pack("{s:s, s:s, s:I, s:s, s:o, s:{s:I, s:I}}", "id", id,
                                    "object", "list", "created", (json_int_t)job->created,
                                    "model", model, "data", data, "usage", "prompt_tokens",
                                    (json_int_t)tokens, "total_tokens", (json_int_t)tokens)
                        : NULL;
    st_job_respond_value(job, root);
}
