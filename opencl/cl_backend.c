/* The OpenCL backend behind core/compute/backend.h: open the chosen
 * device, build the programs, upload the model's weights once. */
#include <stdlib.h>
#include <string.h>

#include "opencl_internal.h"


st_cl_plugin_kernels *st_cl_backend_plugin_kernels(void *backend)
{
    return &((cl_backend *)backend)->plugin;
}

static st_status cl_matmul(st_backend *b, uint32_t n_mats, const st_weight *const *w,
                           float *const *y, const size_t *ldy, const float *xf, size_t ldxf,
                           const st_act_block *xq, size_t ldxq, uint32_t nt, bool no_packed,
                           st_diag *diag)
{
    /* The device has no repacked layout; no_packed chooses the order the
     * CPU's kernels sum in (cpu/kernels.h), which is what it must match. */
    cl_backend *c = (cl_backend *)b;
    return st_cl_matmul_run(c->mm, n_mats, w, y, ldy, xf, ldxf, xq, ldxq, nt, no_packed, diag);
}

static uint64_t cl_device_bytes(const st_backend *b)
{
    const cl_backend *c = (const cl_backend *)b;
    return st_cl_matmul_bytes(c->mm) + st_cl_fwd_bytes(c->fwd);
}

static void cl_free(st_backend *b)
{
    cl_backend *c = (cl_backend *)b;
    st_cl_plugin_kernels_release_all(&c->plugin);
    st_cl_fwd_free(c->fwd);
    st_cl_matmul_free(c->mm);
    st_cl_ctx_close(&c->ctx);
    free(c);
}

static const st_backend_ops cl_ops = {
    .name = "opencl", .matmul = cl_matmul, .device_bytes = cl_device_bytes, .free = cl_free,
    .res = &st_cl_resident_ops,
};

static st_status upload_model(cl_backend *c, const st_model *m, st_diag *diag)
{
    uint64_t need = (uint64_t)m->output.rows * m->output.row_bytes +
                    (uint64_t)m->tok_embd.rows * m->tok_embd.row_bytes;
    for (uint32_t l = 0; l < m->hp.n_layers; l++) {
        const st_model_layer *L = &m->layers[l];
        const st_weight *ws[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down };
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            need += (uint64_t)ws[i]->rows * ws[i]->row_bytes;
    }
    const st_device_info *d = &c->ctx.dev.info;
    if (need > d->global_mem_bytes)
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0,
                           "OpenCL device '%s' has %llu bytes of memory; the model's weights "
                           "need %llu", d->name, (unsigned long long)d->global_mem_bytes,
                           (unsigned long long)need);
    st_status s = st_cl_matmul_upload(c->mm, &m->output, diag);
    if (s == ST_OK)
        s = st_cl_matmul_upload(c->mm, &m->tok_embd, diag);
    for (uint32_t l = 0; s == ST_OK && l < m->hp.n_layers; l++) {
        const st_model_layer *L = &m->layers[l];
        const st_weight *ws[] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down };
        for (size_t i = 0; s == ST_OK && i < sizeof ws / sizeof ws[0]; i++)
            s = st_cl_matmul_upload(c->mm, ws[i], diag);
    }
    return s;
}

st_status st_opencl_backend_open(const st_opencl_options *opts, const st_model *m,
                                 st_backend **out, st_diag *diag)
{
    *out = NULL;
    st_cl_device *devs;
    size_t n, pick;
    st_status s = st_cl_enumerate(&devs, &n, diag);
    if (s != ST_OK)
        return s;
    s = st_cl_select(devs, n, opts->backend, opts->device, &pick, diag);
    if (s != ST_OK) {
        free(devs);
        return s;
    }
    cl_backend *c = calloc(1, sizeof *c);
    if (!c) {
        free(devs);
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "OpenCL: out of memory");
    }
    c->base.ops = &cl_ops;
    c->plugin.ctx = &c->ctx;
    s = st_cl_ctx_open(&c->ctx, &devs[pick], opts->no_kernel_cache, opts->cache_dir, diag);
    free(devs);
    if (s != ST_OK) {
        free(c);
        return s;
    }
    if ((s = st_cl_matmul_new(&c->ctx, st_cl_matmul_variant_for(&c->ctx.dev.info), &c->mm,
                               diag)) != ST_OK ||
        (m && (s = upload_model(c, m, diag)) != ST_OK) ||
        (m && (s = st_cl_fwd_new(&c->ctx, c->mm, m, &c->fwd, diag)) != ST_OK)) {
        cl_free(&c->base);
        return s;
    }
    *out = &c->base;
    return ST_OK;
}

void st_opencl_backend_report(const st_backend *b, st_opencl_report *out)
{
    memset(out, 0, sizeof *out);
    if (!b || strcmp(b->ops->name, "opencl") != 0)
        return;
    const cl_backend *c = (const cl_backend *)b;
    out->device = c->ctx.dev.info;
    out->compile_ms = c->ctx.compile_ms;
    out->from_cache = c->ctx.n_built == 0 && c->ctx.n_cached > 0;
    out->weight_bytes = st_cl_matmul_bytes(c->mm);
}
