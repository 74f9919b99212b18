/*
 * sampler `top-p`: nucleus sampling (Holtzman et al., 2019) with llama.cpp's
 * semantics: softmax over the candidates (which fills `p`), sort descending,
 * keep the shortest prefix whose cumulative probability is >= p and that has
 * at least min_keep candidates. p >= 1 is off.
 */
#include "../candidates.h"

typedef struct top_p {
    const st_host_services *host;
    double p;
    size_t min_keep;
} top_p;

static st_status topp_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    double p = st_param_float(params, "p");
    int64_t min_keep = st_param_int(params, "min_keep");
    top_p *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "top-p: out of memory");
    s->host = host;
    s->p = p;
    s->min_keep = (size_t)min_keep;
    *inst = s;
    return ST_OK;
}

static void topp_destroy(void *inst)
{
    top_p *s = inst;
    if (s)
        s->host->free(s->host->host, s);
}

static st_status topp_apply(void *inst, st_candidates *c, st_error *err)
{
    top_p *s = inst;
    if (s->p >= 1.0 || c->size == 0)
        return ST_OK;
    if (!st_cand_softmax(c))
        return ST_OK; /* everything masked: nothing to rank */
    /* The nucleus is usually a few dozen tokens: order the best k, and only
     * if they do not reach p, order more (as llama.cpp does). */
    size_t k = s->min_keep > 64 ? s->min_keep : 64;
    for (;;) {
        st_cand_partial_sort(c, k);
        size_t n = k < c->size ? k : c->size;
        double cum = 0.0;
        for (size_t i = 0; i < n; i++) {
            cum += c->data[i].p;
            if (cum >= s->p && i + 1 >= s->min_keep) {
                c->size = i + 1;
                c->sorted = true;
                if (c->selected >= (int64_t)c->size)
                    c->selected = -1;
                return ST_OK;
            }
        }
        if (n == c->size) {
            c->sorted = true; /* everything kept, now in order */
            return ST_OK;
        }
        k = k > c->size / 8 ? c->size : k * 8;
    }
}

static st_status topp_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return ST_OK;
}

static void topp_reset(void *inst, uint64_t seed) {}

static const st_sampler_ops topp_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = topp_apply,
    .accept = topp_accept,
    .reset = topp_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "top-p", "1.0.0",
          "Nucleus sampling; keeps the smallest set of most likely candidates reaching mass p",
          topp_create, topp_destroy, &topp_ops, NULL);
