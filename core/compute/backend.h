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
#include "kv_cache.h"
#include "model.h"

#include <stretch/attention.h>

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
    /* Optional (NULL: matmul, then the forward pass's own SwiGLU): the
     * FFN's gate and up products (ldy apart, rows a multiple of
     * ST_ACT_BLOCK) with g = silu(gate) * up and its int8 blocks gq
     * (ldgq blocks a token) computed as each chunk of rows is done; u is
     * scratch for the up product. ggml: ggml's silu and vec_dot order. */
    st_status (*matmul_glu)(st_backend *b, const st_weight *gate, const st_weight *up,
                            float *g, float *u, size_t ldy, const st_act_block *xq,
                            size_t ldxq, uint32_t nt, bool ggml, st_act_block *gq, size_t ldgq,
                            st_diag *diag);
    /* Bytes of device memory the backend holds (weights, buffers); 0 for
     * the host's own memory. */
    uint64_t (*device_bytes)(const st_backend *b);
    void (*free)(st_backend *b);
    /* Ops over activations and a KV cache kept on the device (below);
     * NULL for a backend whose memory is the host's (the forward pass then
     * runs every per-token step on the host). */
    const struct st_backend_resident_ops *res;
} st_backend_ops;

/* ---- a forward context's state kept on the device ---------------------
 *
 * With these ops a block's activations and the KV cache live on the
 * device: per block the token ids, positions and the queries' rotation
 * tables go up (and each layer's plan), the logits come back. The host
 * keeps the cache's positions and tokens (the plugins' view) and its own
 * copy of the keys and values, which it fills from the device (kv_pull)
 * only for a layer whose attention it evaluates itself (a plan feature
 * the device does not evaluate: forward.c says which). The forward pass
 * (forward.c) calls these in its one sequence of steps. */

typedef struct st_bres st_bres;

/* The activations of a block, [nt][width] floats each, as forward.c's. */
typedef enum st_bact {
    ST_BACT_X,      /* the residual stream, n_embd */
    ST_BACT_XN,     /* normed, n_embd (and its int8 blocks) */
    ST_BACT_Q,      /* queries, n_heads * head_dim */
    ST_BACT_K,      /* the block's keys, n_kv_heads * head_dim */
    ST_BACT_V,      /* the block's values */
    ST_BACT_ATT,    /* attention output, n_heads * head_dim (and int8 blocks) */
    ST_BACT_TMP,    /* a product to add to the residual, n_embd */
    ST_BACT_G,      /* FFN gate, then silu(gate) * up, n_ff (and int8 blocks) */
    ST_BACT_U,      /* FFN up, n_ff */
    ST_BACT_COUNT
} st_bact;

/* One range or index list of a layer's plan (attention.h). */
typedef struct st_bres_entry {
    st_attn_range r;
    uint32_t indices;     /* 1: the slots are idx[idx_off .. idx_off + n_idx) */
    uint32_t idx_off, n_idx;
} st_bres_entry;

typedef struct st_bres_attn {
    uint32_t layer, nt, slot0;          /* queries at slots slot0 .. slot0 + nt */
    const st_bres_entry *entries;
    size_t n_entries;
    const uint32_t *idx;
    size_t n_idx;
    const float *inv_freq;
    uint32_t n_freq;
    float rot_scale, scale;             /* scale = temperature / sqrt(head_dim) */
    const float *slopes;                /* [n_heads] ALiBi, or NULL */
    /* One query the CPU backend would split along the keys (its tiled
     * decode path, attn_tiled.c): evaluate in that order, so the device
     * gives the CPU's bits where it can. */
    bool split;
    /* With split: the CPU scores the ST_POS_TRUE ranges with its fused
     * f16 or Q8_0 decode kernel (attn_tiled.c st_attn_tiled_decode_fused),
     * the others with its per-row kernels and expf. */
    bool split_fused;
    /* A block of queries the CPU backend runs on its tiled path (prefill,
     * attn_tiled.c): evaluate tile by tile in that order, q_per_tile
     * queries a tile. */
    bool tiled;
    uint32_t q_per_tile;
} st_bres_attn;

typedef struct st_backend_resident_ops {
    /* Device state for one context over `kv` (its shape and type; the
     * host's struct keeps positions). */
    st_status (*open)(st_backend *b, const st_model *m, st_kv_cache *kv, st_bres **out,
                      st_diag *diag);
    void (*close)(st_bres *r);
    /* A block of nt tokens at slots slot0..: its ids, the cache's
     * positions for those slots, the queries' rotation tables [nt][n_freq]. */
    st_status (*begin)(st_bres *r, const int32_t *tokens, uint32_t nt, uint32_t slot0,
                       const float *qcs, const float *qsn, uint32_t n_freq, st_diag *diag);
    st_status (*embed)(st_bres *r, const st_weight *tok_embd, uint32_t nt, st_diag *diag);
    /* Rows [t0, t1): [x += tmp;] xn = rmsnorm(x) * w, and its int8 blocks. */
    st_status (*norm)(st_bres *r, const float *w, bool residual, uint32_t t0, uint32_t t1,
                      float eps, st_diag *diag);
    /* out[i] = W_i x for nt rows; in is XN, ATT or G (their int8 blocks
     * for quantized weights). */
    st_status (*matmul)(st_bres *r, uint32_t n_mats, const st_weight *const *w,
                        const st_bact *out, st_bact in, uint32_t nt, st_diag *diag);
    /* The int8 blocks of ATT (before the output projection). */
    st_status (*quantize_att)(st_bres *r, uint32_t nt, st_diag *diag);
    /* G = silu(G) * U and its int8 blocks. */
    st_status (*swiglu)(st_bres *r, uint32_t nt, st_diag *diag);
    /* Rotate Q (kept apart) and K with the block's tables, append K and V
     * to the layer's cache at slot0.. . */
    st_status (*rope_store)(st_bres *r, uint32_t layer, uint32_t nt, uint32_t slot0,
                            st_diag *diag);
    /* ATT = the plan's attention, for a plan without a bias callback,
     * weights or q/k hand-off (forward.c keeps those on the host). */
    st_status (*attend)(st_bres *r, const st_bres_attn *a, st_diag *diag);
    /* logits[i] = output x XN row (first + i), i < n. */
    st_status (*logits)(st_bres *r, const st_weight *out, uint32_t first, uint32_t n,
                        float *logits, st_diag *diag);
    /* Rows [0, nt) of an activation, to or from host floats. */
    st_status (*read)(st_bres *r, st_bact a, uint32_t nt, float *dst, st_diag *diag);
    st_status (*write)(st_bres *r, st_bact a, uint32_t nt, const float *src, st_diag *diag);
    /* Slots [s0, s1) of a layer's keys and values, device to host cache
     * (pull) or host to device (push); layer -1 = every layer. */
    st_status (*kv_pull)(st_bres *r, int32_t layer, uint32_t s0, uint32_t s1, st_diag *diag);
    st_status (*kv_push)(st_bres *r, int32_t layer, uint32_t s0, uint32_t s1, st_diag *diag);
    /* The host compacted its cache with keep[0..n_before): do the same. */
    st_status (*kv_compact)(st_bres *r, const uint8_t *keep, uint32_t n_before, st_diag *diag);
} st_backend_resident_ops;

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
