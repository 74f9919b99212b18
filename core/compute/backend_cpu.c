/* The CPU backend: the weight products as tasks on the thread pool, rows
 * claimed in chunks (cpu/matmul.h). */
#include "backend.h"

#include <stdlib.h>

typedef struct cpu_backend {
    st_backend base;
    st_threadpool *pool;
    const st_cpu_kernels *kern;
} cpu_backend;

static st_status cpu_matmul(st_backend *b, uint32_t n_mats, const st_weight *const *w,
                            float *const *y, const size_t *ldy, const float *xf, size_t ldxf,
                            const st_act_block *xq, size_t ldxq, uint32_t nt, bool no_packed,
                            st_diag *diag)
{
    (void)diag;
    cpu_backend *c = (cpu_backend *)b;
    st_matmul_job job = { .kern = c->kern, .n_mats = n_mats, .xf = xf, .ldxf = ldxf,
                          .xq = xq, .ldxq = ldxq, .nt = nt, .no_packed = no_packed };
    for (uint32_t i = 0; i < n_mats; i++) {
        job.mats[i].w = w[i];
        job.mats[i].y = y[i];
        job.mats[i].ldy = ldy[i];
    }
    st_matmul_job_prepare(&job, st_threadpool_size(c->pool));
    st_threadpool_run(c->pool, st_matmul_task, &job);
    return ST_OK;
}

static st_status cpu_matmul_glu(st_backend *b, const st_weight *gate, const st_weight *up,
                                float *g, float *u, size_t ldy, const st_act_block *xq,
                                size_t ldxq, uint32_t nt, bool ggml, st_act_block *gq,
                                size_t ldgq, st_diag *diag)
{
    cpu_backend *c = (cpu_backend *)b;
    if (!st_matmul_glu_fits(gate, up) || !st_cpu_type_is_quantized(gate->type) ||
        !st_cpu_type_is_quantized(up->type))
        return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0,
                           "cpu backend: gate/up products that cannot run fused");
    st_matmul_job job = { .kern = c->kern, .n_mats = 2, .xq = xq, .ldxq = ldxq, .nt = nt,
                          .no_packed = ggml, .glu = true, .glu_ggml = ggml, .glu_q = gq,
                          .glu_ldq = ldgq };
    job.mats[0].w = gate;
    job.mats[0].y = g;
    job.mats[0].ldy = ldy;
    job.mats[1].w = up;
    job.mats[1].y = u;
    job.mats[1].ldy = ldy;
    st_matmul_job_prepare(&job, st_threadpool_size(c->pool));
    st_threadpool_run(c->pool, st_matmul_task, &job);
    return ST_OK;
}

static uint64_t cpu_device_bytes(const st_backend *b)
{
    (void)b;
    return 0;
}

static void cpu_free(st_backend *b)
{
    free(b);
}

static const st_backend_ops cpu_ops = {
    .name = "cpu", .matmul = cpu_matmul, .matmul_glu = cpu_matmul_glu,
    .device_bytes = cpu_device_bytes, .free = cpu_free,
};

st_status st_backend_cpu_new(st_threadpool *pool, st_backend **out, st_diag *diag)
{
    cpu_backend *c = calloc(1, sizeof *c);
    if (!c) {
        *out = NULL;
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "cpu backend: out of memory");
    }
    c->base.ops = &cpu_ops;
    c->pool = pool;
    c->kern = st_cpu_kernels_get(st_cpu_isa_active());
    *out = &c->base;
    return ST_OK;
}
