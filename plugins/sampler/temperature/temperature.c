/*
 * sampler `temperature`: logit /= temperature, as llama.cpp's temp sampler.
 * temperature 0 is the greedy limit: only the largest logit (lowest id on
 * ties) is kept, the array shrinks to that one candidate. llama.cpp keeps
 * the array and sets the others to -inf; shrinking is equivalent for every
 * later sampler and cheaper.
 */
#include "../candidates.h"

typedef struct temperature {
    const st_host_services *host;
    float temp;
} temperature;

static st_status temp_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    double t = st_param_float(params, "temperature");
    temperature *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "temperature: out of memory");
    s->host = host;
    s->temp = (float)t;
    *inst = s;
    return ST_OK;
}

static void temp_destroy(void *inst)
{
    temperature *s = inst;
    if (s)
        s->host->free(s->host->host, s);
}

static st_status temp_apply(void *inst, st_candidates *c, st_error *err)
{
    temperature *s = inst;
    if (c->size == 0)
        return ST_OK;
    if (s->temp <= 0.0f) {
        int64_t best = st_cand_argmax(c);
        c->data[0] = c->data[best];
        c->size = 1;
        c->sorted = true;
        if (c->selected >= 0)
            c->selected = -1;
        return ST_OK;
    }
    /* A positive scale keeps the order, so `sorted` stays true if it was. */
    for (size_t i = 0; i < c->size; i++)
        c->data[i].logit /= s->temp;
    return ST_OK;
}

static st_status temp_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return ST_OK;
}

static void temp_reset(void *inst, uint64_t seed) {}

static const st_sampler_ops temp_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = temp_apply,
    .accept = temp_accept,
    .reset = temp_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "temperature", "1.0.0",
          "Divides logits by a temperature; 0 keeps only the most likely candidate",
          temp_create, temp_destroy, &temp_ops, NULL);
