/*
 * sampler `greedy`: pick the candidate with the largest logit; among equal
 * logits the lowest token id, so the pick never depends on candidate order
 * (llama.cpp's greedy sampler keeps the first maximum in array order).
 * Leaves the array untouched apart from `selected`.
 */
#include "../candidates.h"

typedef struct greedy {
    const st_host_services *host;
} greedy;

static st_status greedy_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    greedy *g = host->calloc(host->host, 1, sizeof *g);
    if (!g)
        return host->error(err, ST_E_NOMEM, "greedy: out of memory");
    g->host = host;
    *inst = g;
    return ST_OK;
}

static void greedy_destroy(void *inst)
{
    greedy *g = inst;
    if (g)
        g->host->free(g->host->host, g);
}

static st_status greedy_apply(void *inst, st_candidates *c, st_error *err)
{
    greedy *g = inst;
    if (!c || c->size == 0)
        return g->host->error(err, ST_E_INVALID, "greedy: no candidates to pick from");
    c->selected = st_cand_argmax(c);
    return ST_OK;
}

static st_status greedy_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return ST_OK;
}

static void greedy_reset(void *inst, uint64_t seed) {}

static const st_sampler_ops greedy_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = greedy_apply,
    .accept = greedy_accept,
    .reset = greedy_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "greedy", "1.0.0",
          "Picks the candidate with the largest logit (lowest id on ties)",
          greedy_create, greedy_destroy, &greedy_ops, NULL);
