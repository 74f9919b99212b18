/*
 * sampler `cl-argmax` (test fixture): greedy picking computed on the
 * engine's OpenCL device by a kernel the plugin brings, through
 * get_extension(ST_HOST_OPENCL_V1). Its picks must equal the `greedy`
 * sampler's (largest logit, lowest id on ties), which is what the test
 * checks: the device ran the plugin's kernel and handed back its result.
 */
#include <stretch/plugin.h>
#include <stretch/sampler.h>
#include <stretch/services.h>

static const char ARGMAX_SRC[] =
    "kernel void argmax(global const float *logit, global const int *id, uint n,\n"
    "                   global int *best)\n"
    "{\n"
    "    /* One work-item: the fixture checks the path, not the speed. */\n"
    "    uint b = 0;\n"
    "    for (uint i = 1; i < n; i++)\n"
    "        if (logit[i] > logit[b] || (logit[i] == logit[b] && id[i] < id[b]))\n"
    "            b = i;\n"
    "    best[0] = (int)b;\n"
    "}\n";

typedef struct cl_argmax {
    const st_host_services *host;
    const st_host_opencl_v1 *cl;
    st_kernel *kernel;
    float *logit;
    int32_t *id;
    size_t cap;
} cl_argmax;

static void argmax_destroy(void *inst)
{
    cl_argmax *a = inst;
    if (!a)
        return;
    if (a->kernel)
        a->cl->kernel_release(a->host->host, a->kernel);
    a->host->free(a->host->host, a->logit);
    a->host->free(a->host->host, a->id);
    a->host->free(a->host->host, a);
}

static st_status argmax_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    (void)params;
    const st_host_opencl_v1 *cl = host->get_extension(host->host, ST_HOST_OPENCL_V1);
    if (!cl || cl->struct_size < sizeof *cl)
        return host->error(err, ST_E_UNAVAILABLE, "cl-argmax: the host offers no OpenCL kernels");
    cl_argmax *a = host->calloc(host->host, 1, sizeof *a);
    if (!a)
        return host->error(err, ST_E_NOMEM, "cl-argmax: out of memory");
    a->host = host;
    a->cl = cl;
    st_status s = cl->kernel_compile(host->host, "argmax", ARGMAX_SRC, "", &a->kernel, err);
    if (s != ST_OK) {
        argmax_destroy(a);
        return s;
    }
    *inst = a;
    return ST_OK;
}

static st_status argmax_apply(void *inst, st_candidates *c, st_error *err)
{
    cl_argmax *a = inst;
    if (!c || !c->size)
        return a->host->error(err, ST_E_INVALID, "cl-argmax: no candidates");
    if (c->size > a->cap) {
        float *l = a->host->realloc(a->host->host, a->logit, c->size * sizeof *l);
        if (l)
            a->logit = l;
        int32_t *i = a->host->realloc(a->host->host, a->id, c->size * sizeof *i);
        if (i)
            a->id = i;
        if (!l || !i)
            return a->host->error(err, ST_E_NOMEM, "cl-argmax: out of memory");
        a->cap = c->size;
    }
    for (size_t i = 0; i < c->size; i++) {
        a->logit[i] = c->data[i].logit;
        a->id[i] = c->data[i].id;
    }
    uint32_t n = (uint32_t)c->size;
    int32_t best = -1;
    st_kernel_arg args[4] = {
        { a->logit, c->size * sizeof *a->logit, true, false },
        { a->id, c->size * sizeof *a->id, true, false },
        { &n, sizeof n, false, false },
        { &best, sizeof best, true, true },
    };
    size_t global = 1;
    st_status s = a->cl->kernel_launch(a->host->host, a->kernel, args, 4, &global, NULL, 1, err);
    if (s != ST_OK)
        return s;
    if (best < 0 || (size_t)best >= c->size)
        return a->host->error(err, ST_E_PLUGIN, "cl-argmax: the device answered %d of %zu",
                              best, c->size);
    c->selected = best;
    return ST_OK;
}

static st_status argmax_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    (void)inst; (void)token; (void)is_prompt; (void)err;
    return ST_OK;
}

static void argmax_reset(void *inst, uint64_t seed)
{
    (void)inst; (void)seed;
}

static const st_sampler_ops argmax_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = argmax_apply,
    .accept = argmax_accept,
    .reset = argmax_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "cl-argmax", "0.1.0",
          "test fixture; greedy picking computed by its own OpenCL kernel",
          argmax_create, argmax_destroy, &argmax_ops, NULL);
