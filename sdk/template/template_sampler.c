/*
 * template_sampler.c - a complete stretch plugin to start from: a sampler
 * that picks, among the candidates whose logit is within `margin` of the
 * best one, the one with the lowest token id (margin 0 = argmax, lowest id
 * on ties). Deterministic, so it needs no RNG.
 *
 * A plugin is one shared object exporting one symbol, stretch_plugin_entry
 * (the ST_PLUGIN macro at the bottom). It never links libstretch: what it
 * needs from the host (memory, logging, errors, model metadata) comes
 * through the services table handed to create().
 */
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct template_sampler {
    const st_host_services *host; /* outlives the instance */
    float margin;
} template_sampler;

static st_status ts_create(const st_host_services *host, const st_params *params,
                           void **inst, st_error *err)
{
    /* The host validated params against plugin.yaml and filled defaults,
     * so `margin` is present and in range: plugin.yaml is the one place
     * that states its default and bounds. */
    double margin = st_param_float(params, "margin");
    template_sampler *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "out of memory");
    s->host = host;
    s->margin = (float)margin;
    *inst = s;
    return ST_OK;
}

static void ts_destroy(void *inst)
{
    template_sampler *s = inst;
    s->host->free(s->host->host, s);
}

static st_status ts_apply(void *inst, st_candidates *c, st_error *err)
{
    template_sampler *s = inst;
    (void)err;
    /* The best logit among unmasked candidates (-INFINITY masks a token). */
    float best = -INFINITY;
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].logit > best)
            best = c->data[i].logit;
    if (best == -INFINITY)
        return ST_OK; /* nothing pickable: leave `selected` as it is */
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

static void ts_reset(void *inst, uint64_t seed)
{
    (void)inst;
    (void)seed; /* deterministic: nothing to reseed */
}

static const st_sampler_ops ts_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = ts_apply,
    .accept = NULL, /* optional: this sampler ignores history */
    .reset = ts_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "template-sampler", "0.1.0",
          "Lowest id among the candidates within `margin` of the best logit",
          ts_create, ts_destroy, &ts_ops, NULL);
