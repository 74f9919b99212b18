/*
 * core/compute/backend.h - the seam between the forward pass and the
 * device that does its weight arithmetic (in the spirit of ggml-backend:
 * a device, buffers that live on it, ops).
 *
 * The forward pass (forward.c) is written once and calls the ops below;
 * the CPU backend (backend_cpu.c: the thread pool and the dot kernels of
 * core/cpu) and the OpenCL backend (opencl/) implement them. Weights are
 * the model's, identified by their st_weight; a device backend uploads each
 * once, on first use or at open, and keeps it for the backend's life.
 */
#ifndef ST_CORE_BACKEND_H
#define ST_CORE_BACKEND_H

#include "diag.h"
#include "cpu/matmul.h"

typedef struct st_backend st_backend;

typedef struct st_backend_ops {
    const char *name;   /* "cpu", "opencl" */
    /* For i < n_mats: y[i][t][0..w[i]->rows) = W_i x_t for t < nt, x_t
     * row t of xf (float, ldxf apart: F32/F16 weights) or of xq (int8
     * blocks, ldxq apart: quantized weights), as core/cpu/kernels.h
     * defines the products. no_packed: sum each row as ggml's vec_dot
     * (STRETCH_NUMERICS=ggml); a backend that always does may ignore it. */
    st_status (*matmul)(st_backend *b, uint32_t n_mats, const st_weight *const *w,
                        float *const *y, const size_t *ldy, const float *xf, size_t ldxf,
                        const st_act_block *xq, size_t ldxq, uint32_t nt, bool no_packed,
                        st_diag *diag);
    /* Bytes of device memory the backend holds (weights, buffers); 0 for
     * the host's own memory. */
    uint64_t (*device_bytes)(const st_backend *b);
    void (*free)(st_backend *b);
} st_backend_ops;

struct st_backend {
    const st_backend_ops *ops;
};

/* The CPU backend over `pool` (NULL = the caller's thread only). */
st_status st_backend_cpu_new(st_threadpool *pool, st_backend **out, st_diag *diag);

static inline void st_backend_free(st_backend *b)
{
    if (b)
        b->ops->free(b);
}

#endif
