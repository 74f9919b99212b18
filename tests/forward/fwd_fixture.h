/*
 * tests/forward/fwd_fixture.h - a generated tiny model opened, loaded and
 * dequantized for the reference, plus a runner of our forward pass with a
 * chosen ISA, thread count and block split.
 */
#ifndef ST_TEST_FWD_FIXTURE_H
#define ST_TEST_FWD_FIXTURE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "ref_llama.h"
#include "tiny_model.h"

typedef struct fwd_fixture {
    st_gguf *g;
    st_model *m;
    st_ref_model *ref;
    uint32_t V;
} fwd_fixture;

static inline void fx_open_spec(fwd_fixture *f, const st_tiny_model_spec *spec)
{
    st_diag d;
    st_status s = st_tiny_model_load(spec, &f->g, &f->m, &d);
    cr_assert_eq(s, ST_OK, "tiny model: %s", d.message);
    f->ref = st_ref_model_new(f->m);
    f->V = f->m->hp.n_vocab;
}

static inline void fx_open(fwd_fixture *f, st_ggml_type type, st_ggml_type embd_type)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = type;
    spec.embd_type = embd_type;
    spec.n_vocab = 300;
    fx_open_spec(f, &spec);
}

static inline void fx_close(fwd_fixture *f)
{
    st_ref_model_free(f->ref);
    st_model_free(f->m);
    st_gguf_close(f->g);
}

/* Our forward pass over n tokens at `pos`, split into blocks of `block`
 * tokens (n = one prefill, 1 = token by token); logits of every token. */
typedef struct fx_run {
    const char *isa;              /* STRETCH_ISA, NULL = leave */
    st_kv_type kv_type;           /* the cache's type; 0 = f32 */
    const char *kv_keys;          /* STRETCH_KV_KEYS ("rows", "blocks"), checked taken; NULL = leave */
    uint32_t threads;
    size_t block;
    const st_posenc_desc *posenc;
    st_plan_fn plan;
    void *plan_user;
    bool want_qk;                 /* ST_ATTN_NEEDS_QK */
    void *posenc_inst;
    st_status (*map_positions)(void *, const int32_t *, size_t, int32_t *, st_error *);
    st_status (*bias)(void *, uint32_t, const int32_t *, size_t, const int32_t *, size_t,
                      float *, st_error *);
} fx_run;

static inline void fx_forward(fwd_fixture *f, const fx_run *r, const int32_t *tokens,
                              const int32_t *pos, size_t n, float *logits)
{
    if (r->isa)
        setenv("STRETCH_ISA", r->isa, 1);
    if (r->kv_keys)
        setenv("STRETCH_KV_KEYS", r->kv_keys, 1);
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f->m->hp.n_layers, f->m->hp.n_kv_heads, f->m->hp.head_dim,
                                    64, r->kv_type, &kv, &d), ST_OK);
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(r->threads ? r->threads : 1, &pool, &d), ST_OK);
    st_forward_config cfg = {
        .model = f->m, .kv = kv, .pool = pool, .posenc = r->posenc, .plan = r->plan,
        .plan_user = r->plan_user, .posenc_inst = r->posenc_inst,
        .map_positions = r->map_positions, .bias = r->bias, .want_qk = r->want_qk,
    };
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK, "%s", d.message);
    if (r->kv_keys && r->kv_type == ST_KV_F16)
        cr_assert_eq(kv->k_blocked, strcmp(r->kv_keys, "blocks") == 0, "keys in %s", r->kv_keys);
    size_t block = r->block ? r->block : n;
    for (size_t t0 = 0; t0 < n; t0 += block) {
        size_t nb = n - t0 < block ? n - t0 : block;
        st_status s = st_forward(ctx, tokens + t0, pos + t0, nb, logits + t0 * f->V,
                                 ST_FORWARD_ALL_LOGITS, &d);
        cr_assert_eq(s, ST_OK, "forward: %s", d.message);
    }
    cr_assert_eq(kv->n_slots, n);
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
    unsetenv("STRETCH_ISA");
    if (r->kv_keys)
        unsetenv("STRETCH_KV_KEYS");
}

/* max |a - b| over n values, relative to max |b|. */
static inline double fx_rel_diff(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return md / mb;
}

static inline uint32_t fx_argmax(const float *x, uint32_t n)
{
    uint32_t b = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static inline void fx_tokens(int32_t *tokens, int32_t *pos, size_t n, uint32_t V, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        tokens[i] = (int32_t)((i * 2654435761u + seed * 97u) % V);
        pos[i] = (int32_t)i;
    }
}

#endif
