/*
 * A sampler written against ABI 1.1 (the sdk/template of that time): its
 * create() reads a msgpack map with the 1.1 readers. It picks, among the
 * candidates whose logit is within `margin` of the best, the lowest id.
 * LEGACY_NAME is set by the build, once per way of building it.
 */
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct legacy_sampler {
    const st_host_services *host;
    float margin;
} legacy_sampler;

static st_status ls_create(const st_host_services *host, const msgpack_object *params,
                           void **inst, st_error *err)
{
    double margin = 0.0;
    if (st_param_float(params, "margin", &margin) != ST_OK)
        return host->error(err, ST_E_INVALID, "parameter 'margin' missing or not a number");
    legacy_sampler *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "out of memory");
    s->host = host;
    s->margin = (float)margin;
    *inst = s;
    return ST_OK;
}

static void ls_destroy(void *inst)
{
    legacy_sampler *s = inst;
    s->host->free(s->host->host, s);
}

static st_status ls_apply(void *inst, st_candidates *c, st_error *err)
{
    legacy_sampler *s = inst;
    (void)err;
    float best = -INFINITY;
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].logit > best)
            best = c->data[i].logit;
    if (best == -INFINITY)
        return ST_OK;
    int64_t pick = -1;
    for (size_t i = 0; i < c->size; i++) {
        float l = c->data[i].logit;
        if (l == -INFINITY || l < best - s->margin)
            continue;
        if (pick < 0 || c->data[i].id < c->data[pick].id)
            pick = (int64_t)i;
    }
    c->selected = pick;
    return ST_OK;
}

static void ls_reset(void *inst, uint64_t seed)
{
    (void)inst;
    (void)seed;
}

static const st_sampler_ops ls_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = ls_apply,
    .accept = NULL,
    .reset = ls_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, LEGACY_NAME, "0.1.0",
          "Lowest id among the candidates within `margin` of the best logit (ABI 1.1 source)",
          ls_create, ls_destroy, &ls_ops, NULL);
