/* A test sampler that says hello through the host's log service when it is
 * created, then picks the best logit: it proves that
 * st_engine_options.plugin_dirs finds it and that .log receives its line. */
#include <stretch/plugin.h>

static int instance;

static st_status ls_create(const st_host_services *host, const st_params *params, void **inst,
                           st_error *err)
{
    (void)params;
    (void)err;
    host->log(host->host, ST_LOG_INFO, "logging-sampler", "created with margin %g", 0.5);
    *inst = &instance;
    return ST_OK;
}

static void ls_destroy(void *inst)
{
    (void)inst;
}

static st_status ls_apply(void *inst, st_candidates *c, st_error *err)
{
    (void)inst;
    (void)err;
    int64_t best = -1;
    for (size_t i = 0; i < c->size; i++)
        if (best < 0 || c->data[i].logit > c->data[best].logit)
            best = (int64_t)i;
    c->selected = best;
    return ST_OK;
}

static void ls_reset(void *inst, uint64_t seed)
{
    (void)inst;
    (void)seed;
}

static const st_sampler_ops ls_ops = {sizeof(st_sampler_ops), ls_apply, NULL, ls_reset};

ST_PLUGIN(ST_KIND_SAMPLER, "logging-sampler", "0.0.1", "logs on create, then greedy",
          ls_create, ls_destroy, &ls_ops, NULL);
