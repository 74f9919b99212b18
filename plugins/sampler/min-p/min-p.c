/*
 * sampler `min-p`: keep candidates with p_i >= p * p_max (Nguyen et al.,
 * 2024, "Turning Up the Heat: Min-p Sampling"), computed as llama.cpp does
 * on logits: logit_i >= logit_max + ln(p), which needs no softmax. The kept
 * candidates end up sorted descending; at least min_keep (and at least one)
 * are kept. p <= 0 is off.
 */
#include "../candidates.h"

typedef struct min_p {
    const st_host_services *host;
    double p;
    size_t min_keep;
} min_p;

static st_status minp_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    double p = st_param_float(params, "p");
    int64_t min_keep = st_param_int(params, "min_keep");
    min_p *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "min-p: out of memory");
    s->host = host;
    s->p = p;
    s->min_keep = (size_t)min_keep;
    *inst = s;
    return ST_OK;
}

static void minp_destroy(void *inst)
{
    min_p *s = inst;
    if (s)
        s->host->free(s->host->host, s);
}

static st_status minp_apply(void *inst, st_candidates *c, st_error *err)
{
    min_p *s = inst;
    if (s->p <= 0.0 || c->size == 0)
        return ST_OK;
    st_candidate *d = c->data;
    float max = -INFINITY;
    if (c->sorted) {
        max = d[0].logit;
    } else {
        for (size_t i = 0; i < c->size; i++)
            max = d[i].logit > max ? d[i].logit : max;
    }
    if (!isfinite(max))
        return ST_OK; /* everything masked */
    double min_logit = (double)max + log(s->p);
    size_t floor = s->min_keep > 1 ? s->min_keep : 1;
    if (c->sorted) {
        size_t keep = 1;
        while (keep < c->size && ((double)d[keep].logit >= min_logit || keep < floor))
            keep++;
        c->size = keep;
    } else {
        /* Move the survivors to the front (O(n)), then order only them. */
        size_t keep = 0;
        for (size_t i = 0; i < c->size; i++)
            if ((double)d[i].logit >= min_logit)
                st_cand_swap(&d[i], &d[keep++]);
        if (keep >= floor) {
            qsort(d, keep, sizeof *d, st_cand_cmp_desc);
            c->size = keep;
        } else {
            /* Too few pass: the best `floor` are exactly what llama.cpp keeps. */
            st_cand_partial_sort(c, floor);
            if (floor < c->size)
                c->size = floor;
        }
        c->sorted = true;
        c->selected = -1;
    }
    if (c->selected >= (int64_t)c->size)
        c->selected = -1;
    return ST_OK;
}

static st_status minp_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return ST_OK;
}

static void minp_reset(void *inst, uint64_t seed) {}

static const st_sampler_ops minp_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = minp_apply,
    .accept = minp_accept,
    .reset = minp_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "min-p", "1.0.0",
          "Keeps candidates whose probability is at least p times the most likely one's",
          minp_create, minp_destroy, &minp_ops, NULL);
