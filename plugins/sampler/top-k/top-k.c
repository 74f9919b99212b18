/*
 * sampler `top-k`: keep the k largest logits (Fan et al., 2018), as
 * llama.cpp's top-k sampler: k <= 0 is off, k at or above the candidate
 * count keeps everything (and leaves the order alone), otherwise the kept
 * candidates end up sorted descending. Ties at the cut are broken by
 * ascending id so the kept set is deterministic.
 */
#include "../candidates.h"

typedef struct top_k {
    const st_host_services *host;
    int64_t k;
} top_k;

static st_status topk_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    int64_t k = st_param_int(params, "k");
    top_k *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "top-k: out of memory");
    s->host = host;
    s->k = k;
    *inst = s;
    return ST_OK;
}

static void topk_destroy(void *inst)
{
    top_k *s = inst;
    if (s)
        s->host->free(s->host->host, s);
}

static st_status topk_apply(void *inst, st_candidates *c, st_error *err)
{
    top_k *s = inst;
    if (s->k <= 0 || (size_t)s->k >= c->size)
        return ST_OK;
    /* Only the k best need ordering: O(n log k), not a full sort. */
    st_cand_partial_sort(c, (size_t)s->k);
    c->size = (size_t)s->k;
    c->sorted = true;
    if (c->selected >= (int64_t)c->size)
        c->selected = -1;
    return ST_OK;
}

static st_status topk_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return ST_OK;
}

static void topk_reset(void *inst, uint64_t seed) {}

static const st_sampler_ops topk_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = topk_apply,
    .accept = topk_accept,
    .reset = topk_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "top-k", "1.0.0", "Keeps the k candidates with the largest logits",
          topk_create, topk_destroy, &topk_ops, NULL);
