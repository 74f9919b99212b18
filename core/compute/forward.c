/* The CPU forward pass. Reads top to bottom as st_forward: embedding, the
 * layer loop, the output head. Every step that touches all tokens or all
 * rows is a task on the thread pool. */
#include "forward.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_tiled.h"
#include "cpu/ggml_compat.h"
#include "cpu/matmul.h"
#include "cpu/ops.h"
#include "kv_grouped.h"

/* One range or index list of the current layer's plan. */
typedef struct plan_entry {
    st_attn_range2 r; /* add_range's st_attn_range widened (group 0) */
    bool indices;
    size_t idx_off;   /* into idx_pool */
    size_t n_idx;
} plan_entry;

/* Per-thread attention scratch, sized by the cache capacity. */
typedef struct thread_scratch {
    float *scores;
    uint32_t *idx;
    int32_t *kpos;
    float *bias;
    float *qbuf, *cs, *sn;
    float *krow;      /* [hd] a key row as float */
    float *vrows;     /* STRETCH_NUMERICS=ggml: [capacity][hd] visible values as float */
    float *stats;     /* [n_heads][capacity] this thread's share of the layer's statistics */
} thread_scratch;

struct st_forward_ctx {
    const st_model *m;
    st_kv_cache *kv;
    st_threadpool *pool;
    uint32_t nth;
    const st_cpu_kernels *kern;
    st_backend *be;           /* the weight products (backend.h) */
    st_backend *be_owned;     /* the CPU backend made when none was given */

    /* The positional encoding in force. */
    uint32_t pe_flags;
    float *inv_freq;
    uint32_t n_freq;          /* pairs rotated, <= head_dim / 2 */
    float rot_scale;
    float temperature;
    float *slopes;            /* [n_heads] (ST_POSENC_SLOPES), else NULL */
    void *pe_inst;
    st_status (*map_positions)(void *, const int32_t *, size_t, int32_t *, st_error *);
    st_status (*bias)(void *, uint32_t, const int32_t *, size_t, const int32_t *, size_t,
                      float *, st_error *);
    st_plan_fn plan;
    void *plan_user;
    int32_t weights_layer;    /* -1 = none */
    bool weights_off;         /* st_forward_record_weights(false): not now */
    bool want_qk;             /* pass q and k to the plan (ST_ATTN_NEEDS_QK) */
    bool tiled_off;           /* STRETCH_ATTN=gather: every layer on the gather path */
    /* STRETCH_NUMERICS=ggml: llama.cpp's float operations (cpu/ggml_compat.h). */
    bool ggml;
    bool pe_default;          /* the model's own RoPE (no posenc description) */

    /* Activations of the current block, room for cap_n tokens. */
    size_t cap_n;
    float *x, *xn, *q, *qr, *att, *tmp, *g, *u;
    float *kf, *vf;           /* the block's keys and values as float, before the cache */
    st_act_block *xq, *hq;
    float *qcs, *qsn;         /* [cap_n][n_freq] rotation of each query */
    int32_t *qpos_rot;
    uint32_t *q_slot;

    /* cos/sin of slot indices for ST_POS_SLOT queries, built as far as
     * needed. */
    float *slot_cs, *slot_sn;
    uint32_t slot_table_n;

    /* Float keys at other positions than the cache's (forward.md, "The KV
     * cache"), [capacity][n_kv_heads][hd], allocated on first use:
     *   k_slot  the layer's keys rotated at their slot (ST_POS_SLOT),
     *   k_unrot the layer's keys unrotated (ST_POS_FIXED ranges' slots,
     *           every slot for an ST_ATTN_NEEDS_QK plugin).
     * Both are the cache's keys rotated by a per-slot difference, whose
     * cos/sin rows (sd_*: slot - rot_pos; un_*: -rot_pos, scale 1/s) are
     * computed once per step and slot; *_gen stamp what is current: a
     * table row when it equals step_gen, a k_unrot row when layer_gen. */
    float *k_slot, *k_unrot;
    float *sd_cs, *sd_sn, *un_cs, *un_sn;
    uint64_t *sd_gen, *un_gen, *ku_gen;
    uint64_t step_gen, layer_gen;
    /* Keys at their grouped position for ST_POS_GROUPED, per layer, kept
     * across steps (kv_grouped.h); plan_group: the current plan's group
     * size (0 = no GROUPED range). */
    st_kv_grouped grouped;
    uint32_t plan_group;

    /* The tiled path: the plan's ranges, per-thread scratch. */
    st_attn_range2 *tranges;
    float **tile_scr;
    float *tile_part;         /* split decode blocks' partial softmax states */
    const float *pos_table;   /* learned absolute positions, or NULL */
    uint32_t pos_rows;

    /* The current layer's plan. */
    plan_entry *entries;
    size_t n_entries, cap_entries;
    uint32_t *idx_pool;
    size_t n_idx, cap_idx;
    uint32_t plan_n_slots;
    uint32_t plan_kv_head;    /* ST_ALL_HEADS, or the KV head of a per-head plan */
    char plan_msg[256];

    thread_scratch *scr;

    float *weights;
    size_t weights_cap;
    uint32_t weights_nq, weights_nslots;

    /* Attention statistics (st_forward_stats): [n_layers][n_heads][capacity],
     * stats_done[l] when layer l's rows are from the last call. */
    bool want_stats;
    uint32_t stats_window;
    uint8_t *stats_layers;     /* [n_layers] */
    float *stats;
    uint8_t *stats_done;
    uint32_t stats_nq;

    /* The first error a worker hit (a bias callback). */
    atomic_int worker_status;
    char worker_msg[ST_ERROR_MESSAGE_MAX];

    /* The activations and the cache on the device (backend.h's resident
     * ops), or NULL: every step on the host. */
    st_bres *res;
    st_bres_entry *rents;
    size_t cap_rents;
    uint32_t *res_hv;         /* [n_layers] the host's copy holds slots [0, res_hv) */
};

struct token_task;
static st_status res_open(st_forward_ctx *c, st_diag *diag);
static void res_close(st_forward_ctx *c);
static st_status run_step(st_forward_ctx *c, struct token_task *T, st_diag *diag);
static st_status step_attend(st_forward_ctx *c, uint32_t l, uint32_t nt, const int32_t *pos,
                             st_diag *diag);
static st_status step_logits(st_forward_ctx *c, uint32_t first, uint32_t nt, float *logits,
                             st_diag *diag);

static st_status oom(st_diag *diag)
{
    return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "forward: out of memory");
}

void st_forward_default_inv_freq(const st_model_hparams *hp, float *inv_freq)
{
    for (uint32_t i = 0; i < hp->rope_dims / 2; i++)
        inv_freq[i] = (float)pow((double)hp->rope_base, -2.0 * i / (double)hp->rope_dims);
}

static st_status set_posenc(st_forward_ctx *c, const st_posenc_desc *d, st_diag *diag)
{
    const st_model_hparams *hp = &c->m->hp;
    uint32_t n = d ? d->n_freq : hp->rope_dims / 2;
    if (n > hp->head_dim / 2)
        n = hp->head_dim / 2;
    float *f = calloc(n ? n : 1, sizeof *f);
    if (!f)
        return oom(diag);
    if (d) {
        if ((d->flags & ST_POSENC_ROTARY) && d->n_freq && !d->inv_freq) {
            free(f);
            return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                               "forward: posenc description has %u frequencies but no table",
                               d->n_freq);
        }
        if (d->inv_freq)
            memcpy(f, d->inv_freq, n * sizeof *f);
        c->pe_flags = d->flags;
        /* A description that is the model's own RoPE (the rope plugin with
         * default parameters) counts as the default, so the ggml mode
         * builds its rope tables as ggml does. */
        c->pe_default = false;
        if (d->flags == ST_POSENC_ROTARY && n == hp->rope_dims / 2 && n > 0 &&
            d->n_freq == n && d->rotary_scale == 1.0f && d->attn_temperature == 1.0f) {
            float *def = malloc(n * sizeof *def);
            if (!def) {
                free(f);
                return oom(diag);
            }
            st_forward_default_inv_freq(hp, def);
            c->pe_default = memcmp(def, f, n * sizeof *f) == 0;
            free(def);
        }
        c->rot_scale = d->rotary_scale;
        c->temperature = d->attn_temperature;
        free(c->slopes);
        c->slopes = NULL;
        if ((d->flags & ST_POSENC_SLOPES) &&
            d->struct_size >= offsetof(st_posenc_desc, n_slopes) + sizeof d->n_slopes) {
            if (!d->slopes || d->n_slopes != hp->n_heads) {
                free(f);
                return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                                   "forward: posenc description sets ST_POSENC_SLOPES with %u "
                                   "slopes for %u heads", d->slopes ? d->n_slopes : 0,
                                   hp->n_heads);
            }
            c->slopes = malloc(hp->n_heads * sizeof *c->slopes);
            if (!c->slopes) {
                free(f);
                return oom(diag);
            }
            memcpy(c->slopes, d->slopes, hp->n_heads * sizeof *c->slopes);
        }
    } else {
        st_forward_default_inv_freq(hp, f);
        c->pe_flags = hp->rope_dims ? ST_POSENC_ROTARY : 0;
        c->pe_default = true;
        c->rot_scale = 1.0f;
        c->temperature = 1.0f;
    }
    if (!(c->pe_flags & ST_POSENC_ROTARY))
        n = 0;
    free(c->inv_freq);
    c->inv_freq = f;
    c->n_freq = n;
    c->slot_table_n = 0;
    return ST_OK;
}

/* An empty f16 cache on the host keeps its keys in 16-slot blocks where
 * this CPU's decode kernel reads them faster than rows (the kernel table
 * says so), or as STRETCH_KV_KEYS=blocks|rows says; a cache that already
 * holds slots keeps its layout, and a device mirror and the ggml numerics
 * (llama.cpp's order, key rows as it reads them) keep rows. */
static void choose_key_layout(st_forward_ctx *c)
{
    st_kv_cache *kv = c->kv;
    if (c->res || c->ggml || kv->type != ST_KV_F16 || kv->n_slots)
        return;
    const char *env = getenv("STRETCH_KV_KEYS");
    bool on = c->kern->blocked_keys;
    if (env && strcmp(env, "blocks") == 0)
        on = true;
    else if (env && strcmp(env, "rows") == 0)
        on = false;
    /* False leaves the layout as it was: rows in a new cache. */
    (void)st_kv_cache_block_keys(kv, on);
}

st_status st_forward_ctx_create(const st_forward_config *cfg, st_forward_ctx **out,
                                st_diag *diag)
{
    *out = NULL;
    if (!cfg || !cfg->model || !cfg->kv)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "forward: model and kv cache required");
    const st_model_hparams *hp = &cfg->model->hp;
    const st_kv_cache *kv = cfg->kv;
    if (kv->n_layers != hp->n_layers || kv->n_kv_heads != hp->n_kv_heads ||
        kv->head_dim != hp->head_dim)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "forward: kv cache shaped %u layers x %u kv heads x %u, model has "
                           "%u x %u x %u", kv->n_layers, kv->n_kv_heads, kv->head_dim,
                           hp->n_layers, hp->n_kv_heads, hp->head_dim);
    int32_t wl = cfg->weights_layer;
    if (!cfg->want_weights)
        wl = -1;
    else if (wl == -1)
        wl = (int32_t)hp->n_layers - 1;
    else if (wl < 0 || wl >= (int32_t)hp->n_layers)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "forward: weights layer %d, expected -1 or 0..%u", cfg->weights_layer,
                           hp->n_layers - 1);
    st_forward_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return oom(diag);
    c->m = cfg->model;
    c->kv = cfg->kv;
    c->pool = cfg->pool;
    c->nth = st_threadpool_size(cfg->pool);
    c->kern = st_cpu_kernels_get(st_cpu_isa_active());
    c->be = cfg->backend;
    if (!c->be) {
        st_status bs = st_backend_cpu_new(cfg->pool, &c->be_owned, diag);
        if (bs != ST_OK) {
            free(c);
            return bs;
        }
        c->be = c->be_owned;
    }
    c->pe_inst = cfg->posenc_inst;
    c->map_positions = cfg->map_positions;
    c->bias = cfg->bias;
    c->plan = cfg->plan;
    c->plan_user = cfg->plan_user;
    c->weights_layer = wl;
    c->want_qk = cfg->want_qk;
    c->want_stats = cfg->want_stats;
    c->stats_window = cfg->stats_window;
    c->pos_table = cfg->pos_table;
    c->pos_rows = cfg->pos_rows;
    const char *mode = getenv("STRETCH_ATTN");
    c->tiled_off = mode && strcmp(mode, "gather") == 0;
    c->ggml = cfg->numerics == ST_NUMERICS_GGML ||
              (cfg->numerics == ST_NUMERICS_DEFAULT && st_gc_env_enabled());
    atomic_init(&c->worker_status, ST_OK);
    st_status s = set_posenc(c, cfg->posenc, diag);
    if (s == ST_OK)
        s = st_kv_grouped_init(&c->grouped, hp->n_layers, diag);
    if (s != ST_OK) {
        st_forward_ctx_free(c);
        return s;
    }
    uint32_t cap = kv->capacity, hd = hp->head_dim, nf = hp->head_dim / 2;
    if (kv->hn && (cfg->want_qk || cfg->want_weights)) {
        st_forward_ctx_free(c);
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "forward: per-head slot sets do not pass q and k to the plan nor "
                           "one layer's weights (ST_ATTN_NEEDS_QK, ST_ATTN_NEEDS_WEIGHTS); "
                           "use the attention statistics");
    }
    if (c->want_stats) {
        size_t rows = (size_t)hp->n_layers * hp->n_heads;
        c->stats_layers = malloc(hp->n_layers);
        c->stats_done = calloc(hp->n_layers, 1);
        c->stats = malloc(rows * cap * sizeof(float));
        if (!c->stats_layers || !c->stats_done || !c->stats)
            goto nomem;
        for (uint32_t l = 0; l < hp->n_layers; l++)
            c->stats_layers[l] = cfg->stats_layers ? cfg->stats_layers[l] != 0 : 1;
    }
    c->slot_cs = malloc((size_t)cap * nf * sizeof(float));
    c->slot_sn = malloc((size_t)cap * nf * sizeof(float));
    c->scr = calloc(c->nth, sizeof *c->scr);
    c->tile_scr = calloc(c->nth, sizeof *c->tile_scr);
    c->tile_part = malloc(st_attn_tiled_part_floats(hp->n_heads, hd) * sizeof(float));
    if (!c->slot_cs || !c->slot_sn || !c->scr || !c->tile_scr || !c->tile_part)
        goto nomem;
    size_t tile_bytes = st_attn_tiled_scratch_floats(hd) * sizeof(float);
    tile_bytes = (tile_bytes + 63) & ~(size_t)63;
    for (uint32_t i = 0; i < c->nth; i++)
        if (!(c->tile_scr[i] = aligned_alloc(64, tile_bytes)))
            goto nomem;
    for (uint32_t i = 0; i < c->nth; i++) {
        thread_scratch *t = &c->scr[i];
        t->scores = malloc(cap * sizeof(float));
        t->idx = malloc(cap * sizeof(uint32_t));
        t->kpos = malloc(cap * sizeof(int32_t));
        t->bias = malloc(cap * sizeof(float));
        t->qbuf = malloc(hd * sizeof(float));
        t->cs = malloc(nf * sizeof(float));
        t->sn = malloc(nf * sizeof(float));
        t->krow = malloc(hd * sizeof(float));
        if (c->ggml)
            t->vrows = malloc((size_t)cap * hd * sizeof(float));
        if (c->want_stats)
            t->stats = malloc((size_t)hp->n_heads * cap * sizeof(float));
        if (!t->scores || !t->idx || !t->kpos || !t->bias || !t->qbuf || !t->cs ||
            !t->sn || !t->krow || (c->ggml && !t->vrows) || (c->want_stats && !t->stats))
            goto nomem;
    }
    if ((s = res_open(c, diag)) != ST_OK) {
        st_forward_ctx_free(c);
        return s;
    }
    choose_key_layout(c);
    *out = c;
    return ST_OK;
nomem:
    st_forward_ctx_free(c);
    return oom(diag);
}

static void free_block_buffers(st_forward_ctx *c)
{
    free(c->x); free(c->xn); free(c->q); free(c->qr); free(c->att); free(c->tmp);
    free(c->g); free(c->u); free(c->kf); free(c->vf); free(c->xq); free(c->hq); free(c->qcs); free(c->qsn);
    free(c->qpos_rot); free(c->q_slot);
}

void st_forward_ctx_free(st_forward_ctx *c)
{
    if (!c)
        return;
    res_close(c);
    free_block_buffers(c);
    st_backend_free(c->be_owned);
    if (c->scr) {
        for (uint32_t i = 0; i < c->nth; i++) {
            thread_scratch *t = &c->scr[i];
            free(t->scores); free(t->idx); free(t->kpos); free(t->bias);
            free(t->qbuf); free(t->cs); free(t->sn); free(t->krow); free(t->vrows);
            free(t->stats);
        }
        free(c->scr);
    }
    if (c->tile_scr)
        for (uint32_t i = 0; i < c->nth; i++)
            free(c->tile_scr[i]);
    free(c->tile_scr);
    free(c->tile_part);
    free(c->tranges);
    st_kv_grouped_free(&c->grouped);
    free(c->k_slot);
    free(c->k_unrot);
    free(c->sd_cs); free(c->sd_sn); free(c->un_cs); free(c->un_sn);
    free(c->sd_gen); free(c->un_gen); free(c->ku_gen);
    free(c->slot_cs);
    free(c->slot_sn);
    free(c->inv_freq);
    free(c->slopes);
    free(c->entries);
    free(c->idx_pool);
    free(c->weights);
    free(c->stats);
    free(c->stats_layers);
    free(c->stats_done);
    free(c);
}

const float *st_forward_stats(const st_forward_ctx *c, uint32_t layer, uint32_t head,
                              uint32_t *n_q)
{
    *n_q = c->stats_nq;
    if (!c->want_stats || layer >= c->m->hp.n_layers || head >= c->m->hp.n_heads ||
        !c->stats_done[layer])
        return NULL;
    return c->stats + ((size_t)layer * c->m->hp.n_heads + head) * c->kv->capacity;
}

void st_forward_record_weights(st_forward_ctx *c, bool on)
{
    c->weights_off = !on;
}

const float *st_forward_weights(const st_forward_ctx *c, uint32_t *n_q, uint32_t *n_slots)
{
    *n_q = c->weights_nq;
    *n_slots = c->weights_nslots;
    return c->weights_nq ? c->weights : NULL;
}

/* Grow the block buffers to n tokens. */
static st_status reserve_block(st_forward_ctx *c, size_t n, st_diag *diag)
{
    if (n <= c->cap_n)
        return ST_OK;
    const st_model_hparams *hp = &c->m->hp;
    size_t E = hp->n_embd, F = hp->n_ff, QD = (size_t)hp->n_heads * hp->head_dim;
    size_t XQ = (E > QD ? E : QD) / ST_ACT_BLOCK + 1, HQ = F / ST_ACT_BLOCK + 1;
    free_block_buffers(c);
    c->cap_n = 0;
    c->x = malloc(n * E * sizeof(float));
    c->xn = malloc(n * E * sizeof(float));
    c->q = malloc(n * QD * sizeof(float));
    c->qr = malloc(n * QD * sizeof(float));
    c->att = malloc(n * QD * sizeof(float));
    c->tmp = malloc(n * E * sizeof(float));
    c->g = malloc(n * F * sizeof(float));
    c->u = malloc(n * F * sizeof(float));
    c->kf = malloc(n * st_kv_row(c->kv) * sizeof(float));
    c->vf = malloc(n * st_kv_row(c->kv) * sizeof(float));
    c->xq = malloc(n * XQ * sizeof(st_act_block));
    c->hq = malloc(n * HQ * sizeof(st_act_block));
    c->qcs = malloc(n * (hp->head_dim / 2 + 1) * sizeof(float));
    c->qsn = malloc(n * (hp->head_dim / 2 + 1) * sizeof(float));
    c->qpos_rot = malloc(n * sizeof(int32_t));
    c->q_slot = malloc(n * sizeof(uint32_t));
    if (!c->x || !c->xn || !c->q || !c->qr || !c->att || !c->tmp || !c->g || !c->u || !c->kf ||
        !c->vf || !c->xq ||
        !c->hq || !c->qcs || !c->qsn || !c->qpos_rot || !c->q_slot) {
        free_block_buffers(c);
        c->x = c->xn = c->q = c->qr = c->att = c->tmp = c->g = c->u = c->kf = c->vf = NULL;
        c->xq = c->hq = NULL;
        c->qcs = c->qsn = NULL;
        c->qpos_rot = NULL;
        c->q_slot = NULL;
        return oom(diag);
    }
    c->cap_n = n;
    return ST_OK;
}

/* ---- per-token tasks -------------------------------------------------- */

enum token_op {
    OP_EMBED,       /* x[t] = token_embd[tokens[t]] */
    OP_NORM,        /* [x += tmp;] xn = rmsnorm(x) * w; xq = int8(xn) */
    OP_ROPE,        /* qr = R(q); cache = type(R(k)), type(v) for the block's slots */
    OP_QUANT_ATT,   /* xq = int8(att) */
    OP_SLOT_ROT,    /* k_slot = R(slot) k for slots t (ST_POS_SLOT) */
    OP_UNROT,       /* k_unrot = k for slots t (ST_POS_FIXED, ST_ATTN_NEEDS_QK) */
    OP_SWIGLU       /* g = silu(g) * u; hq = int8(g) */
};

typedef struct token_task {
    st_forward_ctx *c;
    enum token_op op;
    uint32_t t_begin, t_end;
    uint32_t layer;
    uint32_t slot0;
    const int32_t *tokens;
    const float *norm_w;
    bool residual;
    uint32_t chunk;       /* tokens per claim */
    atomic_uint next;     /* next token to claim, from t_begin */
} token_task;

/* Slot j's row of a per-step rotation table: R(angle) with angle =
 * `pos` times each frequency, scaled; computed once per step (gen). */
static void step_table(const st_forward_ctx *c, float *cs, float *sn, uint64_t *gen, uint32_t j,
                       double pos, float scale)
{
    size_t o = (size_t)j * c->n_freq;
    if (gen[j] == c->step_gen)
        return;
    st_op_rope_table(cs + o, sn + o, pos, c->inv_freq, c->n_freq, scale);
    gen[j] = c->step_gen;
}

/* The cache's key of slot j, every kv head, rotated by table row j into
 * dst (slot-major float). */
static void rerotate_slot(const st_forward_ctx *c, uint32_t layer, uint32_t j, const float *cs,
                          const float *sn, float *dst, float *tmp)
{
    const st_kv_cache *kv = c->kv;
    uint32_t hd = kv->head_dim;
    size_t o = (size_t)j * c->n_freq;
    for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
        st_kv_key_load(kv, layer, kv->k[layer], h, j, tmp);
        st_op_rope(dst + (size_t)j * st_kv_row(kv) + (size_t)h * hd, tmp, cs + o, sn + o,
                   c->n_freq, hd);
    }
}

/* k_unrot's row j for the layer, unless already made in this layer. */
static void unrot_slot(st_forward_ctx *c, uint32_t layer, uint32_t j, float *tmp)
{
    if (c->ku_gen[j] == c->layer_gen)
        return;
    /* (1/s) R(-rot_pos) of s R(rot_pos) k is k. */
    step_table(c, c->un_cs, c->un_sn, c->un_gen, j, -(double)c->kv->rot_pos[j],
               1.0f / c->rot_scale);
    rerotate_slot(c, layer, j, c->un_cs, c->un_sn, c->k_unrot, tmp);
    c->ku_gen[j] = c->layer_gen;
}

/* The float key copies and their tables, on the first plan that needs
 * them (a dense plan never does). */
static st_status ensure_alt(st_forward_ctx *c, st_diag *diag)
{
    if (c->k_slot)
        return ST_OK;
    size_t cap = c->kv->capacity, nf = c->kv->head_dim / 2 ? c->kv->head_dim / 2 : 1;
    size_t kb = cap * st_kv_row(c->kv) * sizeof(float), tb = cap * nf * sizeof(float);
    c->k_unrot = malloc(kb);
    c->sd_cs = malloc(tb); c->sd_sn = malloc(tb); c->un_cs = malloc(tb); c->un_sn = malloc(tb);
    c->sd_gen = calloc(cap, sizeof(uint64_t));
    c->un_gen = calloc(cap, sizeof(uint64_t));
    c->ku_gen = calloc(cap, sizeof(uint64_t));
    if (!c->k_unrot || !c->sd_cs || !c->sd_sn || !c->un_cs || !c->un_sn || !c->sd_gen ||
        !c->un_gen || !c->ku_gen || !(c->k_slot = malloc(kb)))
        return oom(diag);
    return ST_OK;
}

static void token_task_fn(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    const token_task *T = arg;
    st_forward_ctx *c = T->c;
    const st_model_hparams *hp = &c->m->hp;
    uint32_t E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim;
    uint32_t QD = hp->n_heads * hd;
    token_task *Tm = arg;
    for (;;) {
        uint32_t t0 = T->t_begin +
                      atomic_fetch_add_explicit(&Tm->next, T->chunk, memory_order_relaxed);
        if (t0 >= T->t_end)
            break;
        uint32_t t1 = t0 + T->chunk < T->t_end ? t0 + T->chunk : T->t_end;
        for (uint32_t t = t0; t < t1; t++) {
            switch (T->op) {
            case OP_EMBED: {
                const st_weight *w = &c->m->tok_embd;
                float *x = c->x + (size_t)t * E;
                st_cpu_dequant_row(w->type, w->data + (size_t)T->tokens[t] * w->row_bytes, x, E);
                if (c->pos_table) {
                    const float *p = c->pos_table + (size_t)c->qpos_rot[t] * E;
                    for (uint32_t i = 0; i < E; i++)
                        x[i] += p[i];
                }
                break;
            }
            case OP_NORM: {
                float *x = c->x + (size_t)t * E, *xn = c->xn + (size_t)t * E;
                if (T->residual) {
                    const float *r = c->tmp + (size_t)t * E;
                    for (uint32_t i = 0; i < E; i++)
                        x[i] += r[i];
                }
                if (c->ggml)
                    st_gc_rmsnorm(xn, x, T->norm_w, E, hp->rms_eps);
                else
                    st_op_rmsnorm(xn, x, T->norm_w, E, hp->rms_eps);
                if (E % ST_ACT_BLOCK == 0)
                    c->kern->quantize_act(xn, E, c->xq + (size_t)t * (E / ST_ACT_BLOCK));
                break;
            }
            case OP_ROPE: {
                const float *cs = c->qcs + (size_t)t * c->n_freq, *sn = c->qsn + (size_t)t * c->n_freq;
                void (*rope)(float *, const float *, const float *, const float *, uint32_t,
                             uint32_t) = c->ggml ? st_gc_rope : st_op_rope;
                for (uint32_t h = 0; h < hp->n_heads; h++) {
                    size_t o = (size_t)t * QD + (size_t)h * hd;
                    rope(c->qr + o, c->q + o, cs, sn, c->n_freq, hd);
                }
                st_kv_cache *kv = c->kv;
                size_t row = st_kv_row(kv);
                float *kf = c->kf + (size_t)t * row, *vf = c->vf + (size_t)t * row;
                for (uint32_t h = 0; h < hp->n_kv_heads; h++)
                    rope(kf + (size_t)h * hd, kf + (size_t)h * hd, cs, sn, c->n_freq, hd);
                if (c->ggml && kv->type == ST_KV_F32) {
                    /* llama.cpp's cache is f16: an f32 cache holds the
                     * values an f16 one would (an f16 cache is that). */
                    for (size_t i = 0; i < row; i++) {
                        kf[i] = st_cpu_round_half(kf[i]);
                        vf[i] = st_cpu_round_half(vf[i]);
                    }
                }
                for (uint32_t h = 0; h < hp->n_kv_heads; h++) {
                    /* Per-head slot sets: each head's block starts at its count. */
                    uint32_t s0 = kv->hn ? kv->hn[st_kv_head_index(kv, T->layer, h)] : T->slot0;
                    uint8_t *kd = st_kv_at(kv, T->layer, kv->k[T->layer], h, s0 + t);
                    uint8_t *vd = st_kv_at(kv, T->layer, kv->v[T->layer], h, s0 + t);
                    if (kv->k_blocked) {
                        /* The halves in a row first, then to their block
                         * (krow: hd floats of room). */
                        uint16_t *row = (uint16_t *)c->scr[ith].krow;
                        c->kern->to_f16(kf + (size_t)h * hd, row, hd);
                        st_kv_blk_put(st_kv_at(kv, T->layer, kv->k[T->layer], h, 0), s0 + t,
                                      row, hd);
                        c->kern->to_f16(vf + (size_t)h * hd, (uint16_t *)vd, hd);
                    } else if (kv->type == ST_KV_F16) {
                        /* The common cache, on the caller between two tasks
                         * of every layer: the ISA's conversion, not a loop. */
                        c->kern->to_f16(kf + (size_t)h * hd, (uint16_t *)kd, hd);
                        c->kern->to_f16(vf + (size_t)h * hd, (uint16_t *)vd, hd);
                    } else {
                        st_kv_store_row(kv->type, kf + (size_t)h * hd, kd, hd);
                        st_kv_store_row(kv->type, vf + (size_t)h * hd, vd, hd);
                    }
                }
                break;
            }
            case OP_SLOT_ROT:
                /* The cache holds s R(rot_pos) k; R(slot - rot_pos) of it is
                 * s R(slot) k, the key rotated at its slot, scale and all. */
                step_table(c, c->sd_cs, c->sd_sn, c->sd_gen, t,
                           (double)t - (double)c->kv->rot_pos[t], 1.0f);
                rerotate_slot(c, T->layer, t, c->sd_cs, c->sd_sn, c->k_slot, c->scr[ith].krow);
                break;
            case OP_UNROT:
                unrot_slot(c, T->layer, t, c->scr[ith].krow);
                break;
            case OP_QUANT_ATT:
                if (QD % ST_ACT_BLOCK == 0)
                    c->kern->quantize_act(c->att + (size_t)t * QD, QD,
                                        c->xq + (size_t)t * (QD / ST_ACT_BLOCK));
                break;
            case OP_SWIGLU: {
                float *g = c->g + (size_t)t * F;
                if (c->ggml)
                    st_gc_swiglu(g, g, c->u + (size_t)t * F, F);
                else
                    c->kern->silu_mul(g, g, c->u + (size_t)t * F, F);
                if (F % ST_ACT_BLOCK == 0)
                    c->kern->quantize_act(g, F, c->hq + (size_t)t * (F / ST_ACT_BLOCK));
                break;
            }
            }
        }
    }
}

/* A block of a few tokens runs on the caller: waking the pool costs more
 * than a norm of one token. */
static void run_tokens(st_forward_ctx *c, token_task *T)
{
    T->c = c;
    uint32_t n = T->t_end - T->t_begin;
    T->chunk = n / (4 * c->nth) ? n / (4 * c->nth) : 1;
    atomic_init(&T->next, 0);
    if (n <= 2)
        token_task_fn(T, 0, 1);
    else
        st_threadpool_run(c->pool, token_task_fn, T);
}

/* ---- matmuls ---------------------------------------------------------- */

static st_status res_matmul(st_forward_ctx *c, uint32_t n_mats, const st_weight *const *w,
                            float *const *y, const float *xf, uint32_t nt, st_diag *diag);

static st_status run_matmul(st_forward_ctx *c, uint32_t n_mats, const st_weight *const *w,
                            float *const *y, const size_t *ldy, const float *xf, size_t ldxf,
                            const st_act_block *xq, uint32_t nt, st_diag *diag)
{
    if (c->res)
        return res_matmul(c, n_mats, w, y, xf, nt, diag);
    return c->be->ops->matmul(c->be, n_mats, w, y, ldy, xf, ldxf, xq, ldxf / ST_ACT_BLOCK, nt,
                              c->ggml, diag);
}

/* Whether the backend runs this layer's gate/up products with the SwiGLU
 * fused (quantized weights: the int8 input is the norm's xq). */
static bool glu_fused(const st_forward_ctx *c, const st_model_layer *L)
{
    return !c->res && c->be->ops->matmul_glu && st_cpu_type_is_quantized(L->gate.type) &&
           st_cpu_type_is_quantized(L->up.type) && st_matmul_glu_fits(&L->gate, &L->up) &&
           c->m->hp.n_embd % ST_ACT_BLOCK == 0;
}

/* ---- the attention plan ---------------------------------------------- */

static st_status plan_fail(st_forward_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static st_status plan_fail(st_forward_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->plan_msg, sizeof c->plan_msg, fmt, ap);
    va_end(ap);
    return ST_E_INVALID;
}

static st_status check_shape(st_forward_ctx *c, const st_attn_range2 *r)
{
    const st_model_hparams *hp = &c->m->hp;
    if (r->head != ST_ALL_HEADS && r->head >= hp->n_heads)
        return plan_fail(c, "range head %u, expected < %u or ST_ALL_HEADS", r->head,
                         hp->n_heads);
    if ((unsigned)r->pos_mode > ST_POS_GROUPED)
        return plan_fail(c, "range position mode %d is not TRUE, FIXED, SLOT or GROUPED",
                         (int)r->pos_mode);
    if (r->pos_mode == ST_POS_GROUPED) {
        if (r->group == 0)
            return plan_fail(c, "ST_POS_GROUPED range with group size 0, expected >= 1");
        if (c->plan_group && c->plan_group != r->group)
            return plan_fail(c, "ST_POS_GROUPED ranges with group sizes %u and %u in one plan, "
                             "expected one", c->plan_group, r->group);
        c->plan_group = r->group;
    }
    if (c->plan_kv_head != ST_ALL_HEADS) {
        /* A per-head plan: its KV head's query heads, true positions. */
        uint32_t gs = hp->n_heads / hp->n_kv_heads;
        if (r->head != ST_ALL_HEADS && r->head / gs != c->plan_kv_head)
            return plan_fail(c, "range head %u in the plan of KV head %u, expected one of its "
                             "query heads %u..%u or ST_ALL_HEADS", r->head, c->plan_kv_head,
                             c->plan_kv_head * gs, c->plan_kv_head * gs + gs - 1);
        if (r->pos_mode != ST_POS_TRUE)
            return plan_fail(c, "range position mode %d with per-head slot sets, expected "
                             "ST_POS_TRUE (FIXED and SLOT read the shared slots)",
                             (int)r->pos_mode);
    }
    return ST_OK;
}

/* An add_range / add_indices range as the sized form (no group). */
static st_attn_range2 widen_range(const st_attn_range *r)
{
    st_attn_range2 w = { sizeof w, r->head, r->k_begin, r->k_end, r->min_dist, r->max_dist,
                         r->pos_mode, r->fixed_dist, 0, 0 };
    return w;
}

/* A plugin's st_attn_range2: the fields its struct_size covers (a later
 * plugin's larger struct is read up to what this host knows). */
static st_status read_range2(st_forward_ctx *c, const st_attn_range2 *r, st_attn_range2 *out)
{
    if (!r)
        return plan_fail(c, "add_range2 / add_indices2 with a NULL range");
    if (r->struct_size < sizeof *out)
        return plan_fail(c, "st_attn_range2.struct_size %u, expected >= %zu (set it to "
                         "sizeof(st_attn_range2))", r->struct_size, sizeof *out);
    *out = *r;
    out->struct_size = sizeof *out;
    return ST_OK;
}

static st_status push_entry(st_forward_ctx *c, const plan_entry *e)
{
    if (c->n_entries == c->cap_entries) {
        size_t cap = c->cap_entries ? c->cap_entries * 2 : 16;
        plan_entry *p = realloc(c->entries, cap * sizeof *p);
        if (!p)
            return plan_fail(c, "out of memory");
        c->entries = p;
        c->cap_entries = cap;
    }
    c->entries[c->n_entries++] = *e;
    return ST_OK;
}

static st_status add_range_entry(st_forward_ctx *c, const st_attn_range2 *r)
{
    st_status s = check_shape(c, r);
    if (s != ST_OK)
        return s;
    if (r->k_begin > r->k_end || r->k_end > c->plan_n_slots)
        return plan_fail(c, "range [%u, %u) outside the %u slots", r->k_begin, r->k_end,
                         c->plan_n_slots);
    plan_entry e = { .r = *r };
    return push_entry(c, &e);
}

static st_status builder_add_range(void *host, const st_attn_range *r)
{
    st_forward_ctx *c = host;
    if (r->pos_mode == ST_POS_GROUPED)
        return plan_fail(c, "ST_POS_GROUPED through add_range: it needs add_range2 (the "
                         "group size)");
    st_attn_range2 w = widen_range(r);
    return add_range_entry(c, &w);
}

static st_status builder_add_range2(void *host, const st_attn_range2 *r)
{
    st_forward_ctx *c = host;
    st_attn_range2 w;
    st_status s = read_range2(c, r, &w);
    return s != ST_OK ? s : add_range_entry(c, &w);
}

static st_status add_indices_entry(st_forward_ctx *c, const uint32_t *slots, size_t n,
                                   const st_attn_range2 *shape)
{
    st_status s = check_shape(c, shape);
    if (s != ST_OK)
        return s;
    for (size_t i = 0; i < n; i++) {
        if (slots[i] >= c->plan_n_slots)
            return plan_fail(c, "index list slot %u outside the %u slots", slots[i],
                             c->plan_n_slots);
        if (i && slots[i] <= slots[i - 1])
            return plan_fail(c, "index list not ascending and unique at %zu (%u after %u)", i,
                             slots[i], slots[i - 1]);
    }
    if (c->n_idx + n > c->cap_idx) {
        size_t cap = c->cap_idx ? c->cap_idx : 256;
        while (cap < c->n_idx + n)
            cap *= 2;
        uint32_t *p = realloc(c->idx_pool, cap * sizeof *p);
        if (!p)
            return plan_fail(c, "out of memory");
        c->idx_pool = p;
        c->cap_idx = cap;
    }
    memcpy(c->idx_pool + c->n_idx, slots, n * sizeof *slots);
    plan_entry e = { .r = *shape, .indices = true, .idx_off = c->n_idx, .n_idx = n };
    c->n_idx += n;
    return push_entry(c, &e);
}

static st_status builder_add_indices(void *host, const uint32_t *slots, size_t n,
                                     const st_attn_range *shape)
{
    st_forward_ctx *c = host;
    if (shape->pos_mode == ST_POS_GROUPED)
        return plan_fail(c, "ST_POS_GROUPED through add_indices: it needs add_indices2 (the "
                         "group size)");
    st_attn_range2 w = widen_range(shape);
    return add_indices_entry(c, slots, n, &w);
}

static st_status builder_add_indices2(void *host, const uint32_t *slots, size_t n,
                                      const st_attn_range2 *shape)
{
    st_forward_ctx *c = host;
    st_attn_range2 w;
    st_status s = read_range2(c, shape, &w);
    if (s == ST_OK && n && !slots)
        s = plan_fail(c, "add_indices2 with NULL slots");
    return s != ST_OK ? s : add_indices_entry(c, slots, n, &w);
}

static st_status make_plan(st_forward_ctx *c, uint32_t layer, uint32_t n, uint32_t n_slots,
                           const int32_t *pos, uint32_t kv_head, st_diag *diag)
{
    c->n_entries = 0;
    c->n_idx = 0;
    c->plan_n_slots = n_slots;
    c->plan_kv_head = kv_head;
    c->plan_msg[0] = 0;
    c->plan_group = 0;
    if (!c->plan) {
        plan_entry e = { .r = { sizeof(st_attn_range2), ST_ALL_HEADS, 0, n_slots, 0, ST_DIST_MAX,
                                ST_POS_TRUE, 0, 0, 0 } };
        return push_entry(c, &e);
    }
    const st_model_hparams *hp = &c->m->hp;
    st_kv_view view;
    if (kv_head == ST_ALL_HEADS)
        st_kv_cache_view(c->kv, n_slots, &view);
    else
        st_kv_cache_head_view(c->kv, layer, kv_head, n, &view);
    st_attn_query q = {
        .struct_size = sizeof q, .layer = layer, .n_heads = hp->n_heads,
        .n_kv_heads = hp->n_kv_heads, .head_dim = hp->head_dim, .n_q = n,
        .q_pos = pos, .q_slot = c->q_slot, .kv = &view,
        .q = c->want_qk ? c->q : NULL, .k = c->want_qk ? c->k_unrot : NULL,
        .kv_head = kv_head,
    };
    st_attn_plan_builder b = { sizeof b, c, builder_add_range, builder_add_indices,
                               builder_add_range2, builder_add_indices2 };
    st_error err = { ST_OK, "" };
    st_status s = c->plan(c->plan_user, &q, &b, &err);
    if (s != ST_OK && kv_head != ST_ALL_HEADS)
        return st_diag_set(diag, s, "", 0, 0, "attention plan (layer %u, KV head %u): %s", layer,
                           kv_head, c->plan_msg[0] ? c->plan_msg : err.message[0] ? err.message
                                                                                 : "failed");
    if (s != ST_OK)
        return st_diag_set(diag, s, "", 0, 0, "attention plan (layer %u): %s", layer,
                           c->plan_msg[0] ? c->plan_msg : err.message[0] ? err.message
                                                                         : "failed");
    return ST_OK;
}

/* cos/sin rows of slot indices up to n_slots, for ST_POS_SLOT. */
static void extend_slot_table(st_forward_ctx *c, uint32_t n_slots)
{
    for (uint32_t j = c->slot_table_n; j < n_slots; j++)
        st_op_rope_table(c->slot_cs + (size_t)j * c->n_freq, c->slot_sn + (size_t)j * c->n_freq,
                         (double)j, c->inv_freq, c->n_freq, c->rot_scale);
    if (n_slots > c->slot_table_n)
        c->slot_table_n = n_slots;
}

/* ---- attention -------------------------------------------------------- */

typedef struct attn_task {
    st_forward_ctx *c;
    uint32_t layer;
    uint32_t n;           /* queries */
    const int32_t *pos;   /* true positions of the queries */
    bool per_query;       /* one item = all heads of a query (weights layer) */
    float *weights;       /* [n][n_slots] or NULL */
    uint32_t n_slots;
    uint32_t h0, nh;      /* the query heads to run (a KV head's with per-head slot sets) */
    const int32_t *kpos;  /* [n_slots] the keys' true positions */
    const int32_t *krot;  /* [n_slots] their rotation positions */
    bool stats;           /* sum the weights into each thread's scratch */
    uint32_t stats_from;  /* the first query counted */
    bool serial;          /* one item = everything (weights and statistics both) */
    atomic_uint next;
} attn_task;

static void worker_error(st_forward_ctx *c, st_status s, const char *msg)
{
    int expected = ST_OK;
    if (atomic_compare_exchange_strong(&c->worker_status, &expected, (int)s))
        snprintf(c->worker_msg, sizeof c->worker_msg, "%s", msg);
}

/* Add the positional bias (ALiBi) for query t, head h to the scores of the
 * nv visible keys: the description's slopes, else the plugin's callback. */
static void add_posenc_bias(st_forward_ctx *c, const attn_task *A, thread_scratch *S,
                            uint32_t t, uint32_t h, uint32_t nv)
{
    if (c->slopes) {
        double m = c->slopes[h], q = c->qpos_rot[t];
        for (uint32_t i = 0; i < nv; i++)
            S->scores[i] += (float)(-m * (q - (double)A->krot[S->idx[i]]));
        return;
    }
    for (uint32_t i = 0; i < nv; i++)
        S->kpos[i] = A->krot[S->idx[i]];
    st_error err = { ST_OK, "" };
    st_status s = c->bias(c->pe_inst, h, &c->qpos_rot[t], 1, S->kpos, nv, S->bias, &err);
    if (s != ST_OK) {
        worker_error(c, s, err.message[0] ? err.message : "posenc bias failed");
        return;
    }
    for (uint32_t i = 0; i < nv; i++)
        S->scores[i] += S->bias[i];
}

/* Query t, head h: scores over the visible keys, softmax, weighted values. */
static void attend(attn_task *A, thread_scratch *S, uint32_t t, uint32_t h)
{
    st_forward_ctx *c = A->c;
    const st_model_hparams *hp = &c->m->hp;
    const st_kv_cache *kv = c->kv;
    uint32_t hd = hp->head_dim, QD = hp->n_heads * hd;
    uint32_t kvh = h / (hp->n_heads / hp->n_kv_heads);
    st_kv_src KR = st_kv_keys(kv, A->layer), V = st_kv_values(kv, A->layer);
    size_t frow = st_kv_row(kv) * sizeof(float);
    st_kv_src KF = { c->k_unrot, hd * sizeof(float), frow, ST_KV_F32, false };
    st_kv_src KS = { c->k_slot, hd * sizeof(float), frow, ST_KV_F32, false };
    st_kv_src KG = c->plan_group ? st_kv_grouped_keys(&c->grouped, kv, A->layer) : KR;
    const float *q = c->q + (size_t)t * QD + (size_t)h * hd;
    const float *qr = c->qr + (size_t)t * QD + (size_t)h * hd;
    int64_t pq = A->pos[t];
    float scale = c->temperature / sqrtf((float)hd);
    uint32_t nf = c->n_freq;
    uint32_t nv = 0;

    for (size_t e = 0; e < c->n_entries; e++) {
        const plan_entry *E = &c->entries[e];
        const st_attn_range2 *r = &E->r;
        if (r->head != ST_ALL_HEADS && r->head != h)
            continue;
        const float *qv = qr;
        if (r->pos_mode == ST_POS_FIXED) {
            /* (R(d) q) . k: the scale enters twice, as it does when both
             * sides are rotated. */
            st_op_rope_table(S->cs, S->sn, (double)r->fixed_dist, c->inv_freq, nf,
                             c->rot_scale * c->rot_scale);
            st_op_rope(S->qbuf, q, S->cs, S->sn, nf, hd);
            qv = S->qbuf;
        } else if (r->pos_mode == ST_POS_SLOT) {
            uint32_t qs = c->q_slot[t];
            st_op_rope(S->qbuf, q, c->slot_cs + (size_t)qs * nf, c->slot_sn + (size_t)qs * nf,
                       nf, hd);
            qv = S->qbuf;
        } else if (r->pos_mode == ST_POS_GROUPED) {
            /* R(floor(pos_q/G) + offset) q against keys at floor(pos_k/G). */
            double gq = (double)st_grouped_pos(pq, r->group) + (double)r->group_offset;
            st_op_rope_table(S->cs, S->sn, gq, c->inv_freq, nf, c->rot_scale);
            st_op_rope(S->qbuf, q, S->cs, S->sn, nf, hd);
            qv = S->qbuf;
        }
        /* Gather the visible slots, then score them in one kernel call. */
        size_t cnt = E->indices ? E->n_idx : (size_t)(r->k_end - r->k_begin);
        const uint32_t *list = E->indices ? c->idx_pool + E->idx_off : NULL;
        uint32_t n0 = nv;
        if (!list && r->min_dist <= 0 && r->max_dist == ST_DIST_MAX && r->k_end > 0 &&
            A->kpos[r->k_end - 1] <= pq) {
            /* Causal and every key in range at or before the query (slot
             * positions ascend): all visible, no per-key test. */
            for (uint32_t j = r->k_begin; j < r->k_end; j++)
                S->idx[nv++] = j;
        } else {
            for (size_t i = 0; i < cnt; i++) {
                uint32_t j = list ? list[i] : r->k_begin + (uint32_t)i;
                int64_t d = pq - A->kpos[j];
                if (d >= r->min_dist && d <= r->max_dist)
                    S->idx[nv++] = j;
            }
        }
        /* ST_POS_SLOT and ST_POS_FIXED keys were re-rotated once for the
         * layer (float copies); ST_POS_TRUE reads the cache. */
        const st_kv_src *Ks = r->pos_mode == ST_POS_TRUE    ? &KR
                              : r->pos_mode == ST_POS_FIXED ? &KF
                              : r->pos_mode == ST_POS_SLOT  ? &KS
                                                            : &KG;
        const void *base = st_kv_src_head(Ks, kvh);
        if (c->ggml && r->pos_mode == ST_POS_TRUE) {
            /* llama.cpp converts q to f16 (the f16 cache's vec_dot_type);
             * one query (decode) goes through ggml_vec_dot_f16, a batch
             * through tinyBLAS. The cache's f16 keys are read as floats. */
            for (uint32_t d = 0; d < hd; d++)
                S->qbuf[d] = st_cpu_round_half(qv[d]);
            for (uint32_t i = n0; i < nv; i++) {
                st_kv_src_load_row(Ks, kvh, S->idx[i], S->krow, hd);
                S->scores[i] = A->n == 1 ? st_gc_dot_f16(S->krow, S->qbuf, hd)
                                         : st_gc_dot_tinyblas16(S->krow, S->qbuf, hd);
            }
        } else if (Ks->blocked) {
            c->kern->scores_blk(qv, base, S->idx + n0, nv - n0, hd, scale, S->scores + n0);
        } else {
            c->kern->scores_kv[Ks->type](qv, base, Ks->slot_stride, S->idx + n0, nv - n0, hd,
                                         scale, S->scores + n0);
        }
    }
    bool biased = nv && (c->slopes || ((c->pe_flags & ST_POSENC_BIAS) && c->bias));
    const void *vbase = st_kv_src_head(&V, kvh);
    if (c->ggml) {
        /* The visible values as floats, at their slot (the lanes follow
         * the slot index). */
        for (uint32_t i = 0; i < nv; i++)
            st_kv_load_row(V.type, (const uint8_t *)vbase + S->idx[i] * V.slot_stride,
                           S->vrows + (size_t)S->idx[i] * hd, hd);
        float *out = c->att + (size_t)t * QD + (size_t)h * hd;
        float sm_scale = scale;
        if (biased) {
            /* ggml_soft_max_ext scales the scores, then adds the bias
             * (ALiBi's slope times the distance mask). */
            for (uint32_t i = 0; i < nv; i++)
                S->scores[i] *= scale;
            add_posenc_bias(c, A, S, t, h, nv);
            sm_scale = 1.0f;
        }
        st_gc_attend_row(out, S->scores, S->idx, nv, sm_scale, S->vrows, hd, hd, A->n == 1);
        if (A->weights) {
            float *w = A->weights + (size_t)t * A->n_slots;
            for (uint32_t i = 0; i < nv; i++)
                w[S->idx[i]] += S->scores[i];
        }
        if (A->stats && t >= A->stats_from) {
            float *w = S->stats + (size_t)h * kv->capacity;
            for (uint32_t i = 0; i < nv; i++)
                w[S->idx[i]] += S->scores[i];
        }
        return;
    }
    if (biased)
        add_posenc_bias(c, A, S, t, h, nv);
    st_op_softmax(S->scores, nv);
    float *out = c->att + (size_t)t * QD + (size_t)h * hd;
    c->kern->wsum_kv[V.type](out, S->scores, vbase, V.slot_stride, S->idx, nv, hd);
    if (A->weights) {
        float *w = A->weights + (size_t)t * A->n_slots;
        for (uint32_t i = 0; i < nv; i++)
            w[S->idx[i]] += S->scores[i];
    }
    /* The statistics: this thread's rows, summed over threads after the
     * layer, so no score matrix is kept and no two threads share a row. */
    if (A->stats && t >= A->stats_from) {
        float *w = S->stats + (size_t)h * kv->capacity;
        for (uint32_t i = 0; i < nv; i++)
            w[S->idx[i]] += S->scores[i];
    }
}

static void attn_task_fn(void *arg, uint32_t ith, uint32_t nth)
{
    attn_task *A = arg;
    thread_scratch *S = &A->c->scr[ith];
    uint32_t nh = A->nh, h0 = A->h0;
    uint32_t items = A->serial ? 1 : A->per_query ? A->n : A->n * nh;
    for (;;) {
        uint32_t it = atomic_fetch_add_explicit(&A->next, 1, memory_order_relaxed);
        if (it >= items)
            break;
        if (A->serial) {
            for (uint32_t t = 0; t < A->n; t++)
                for (uint32_t h = 0; h < nh; h++)
                    attend(A, S, t, h0 + h);
        } else if (A->per_query) {
            for (uint32_t h = 0; h < nh; h++)
                attend(A, S, it, h0 + h);
        } else {
            attend(A, S, it / nh, h0 + it % nh);
        }
    }
}

/* ---- tiled attention -------------------------------------------------- */

/* Blocks of 2..ST_FORWARD_TILED_MIN_ROWS-1 queries stay on the gather
 * path (forward.h). One query (decode) is split along the keys. */

/* The tiled path takes a layer whose plan is only contiguous ranges for
 * all heads, with no posenc bias callback (per key; ALiBi's slopes are data
 * the tile kernels add, unless a position map moves the positions they
 * use) and no attention weights wanted (the observer needs the normalized weights per key). */
/* Whether this block records `layer`'s weights (st_forward_weights). */
static bool records_weights(const st_forward_ctx *c, uint32_t layer)
{
    return (int32_t)layer == c->weights_layer && !c->weights_off;
}

static bool layer_tiled(const st_forward_ctx *c, uint32_t layer, uint32_t n)
{
    const st_model_hparams *hp = &c->m->hp;
    if (c->tiled_off || c->ggml ||
        (n < ST_FORWARD_TILED_MIN_ROWS && !st_attn_tiled_splits(n, hp->n_heads, hp->n_kv_heads)) ||
        records_weights(c, layer) || c->kv->hn ||
        (c->want_stats && c->stats_layers[layer]) ||
        ((c->pe_flags & ST_POSENC_BIAS) && c->bias) ||
        (c->slopes && (c->pe_flags & ST_POSENC_MAP)) ||
        !st_attn_tiled_supported(c->kern, hp->n_heads, hp->n_kv_heads, hp->head_dim))
        return false;
    for (size_t e = 0; e < c->n_entries; e++)
        if (c->entries[e].indices || c->entries[e].r.head != ST_ALL_HEADS)
            return false;
    return true;
}

static st_status run_tiled(st_forward_ctx *c, uint32_t layer, uint32_t n, uint32_t n_slots,
                           const int32_t *pos)
{
    const st_model_hparams *hp = &c->m->hp;
    const st_kv_cache *kv = c->kv;
    uint32_t hd = hp->head_dim;
    st_attn_range2 *r = realloc(c->tranges, (c->n_entries ? c->n_entries : 1) * sizeof *r);
    if (!r)
        return ST_E_NOMEM;
    c->tranges = r;
    for (size_t e = 0; e < c->n_entries; e++)
        r[e] = c->entries[e].r;
    st_attn_layer L = {
        .kern = c->kern, .n_q = n, .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads,
        .head_dim = hp->head_dim, .q = c->q, .qr = c->qr, .q_pos = pos, .q_slot = c->q_slot,
        .k_rot = st_kv_keys(kv, layer), .v = st_kv_values(kv, layer),
        .k_fix = { c->k_unrot, hd * sizeof(float), st_kv_row(kv) * sizeof(float), ST_KV_F32, false },
        .k_slot = { c->k_slot, hd * sizeof(float), st_kv_row(kv) * sizeof(float), ST_KV_F32, false },
        .k_grp = c->plan_group ? st_kv_grouped_keys(&c->grouped, kv, layer)
                               : st_kv_keys(kv, layer),
        .k_pos = kv->pos, .n_slots = n_slots, .ranges = r, .n_ranges = (uint32_t)c->n_entries,
        .inv_freq = c->inv_freq, .n_freq = c->n_freq, .rot_scale = c->rot_scale,
        .slot_cs = c->slot_cs, .slot_sn = c->slot_sn,
        .scale = c->temperature / sqrtf((float)hp->head_dim), .out = c->att,
        .slopes = c->slopes,
        .part = c->tile_part,
    };
    st_attn_tiled_run(&L, c->pool, c->tile_scr);
    return ST_OK;
}

/* ---- posenc changes --------------------------------------------------- */

st_status st_forward_set_posenc(st_forward_ctx *c, const st_posenc_desc *desc, st_diag *diag)
{
    st_kv_cache *kv = c->kv;
    uint32_t nfo = c->n_freq;
    float so = c->rot_scale;
    float *fo = malloc((nfo ? nfo : 1) * sizeof *fo);
    if (!fo)
        return oom(diag);
    memcpy(fo, c->inv_freq, nfo * sizeof *fo);
    st_status s = set_posenc(c, desc, diag);
    c->step_gen++; /* the rotation tables are stale */
    st_kv_grouped_invalidate(&c->grouped);
    if (s != ST_OK || !kv->n_slots) {
        free(fo);
        return s;
    }
    /* On a device: its keys come down, turn here, and go back up. */
    if (c->res && (s = c->be->ops->res->kv_pull(c->res, -1, 0, kv->n_slots, diag)) != ST_OK) {
        free(fo);
        return s;
    }
    /* The cache keeps only rotated keys: turn each by the difference of
     * the new and the old rotation, R_new(p) R_old(-p), pair by pair, with
     * the ratio of the scales (a pair outside a rotation's frequencies is
     * not rotated nor scaled by it). An f16 or q8_0 cache rounds again. */
    uint32_t nfn = c->n_freq, np = nfo > nfn ? nfo : nfn, hd = kv->head_dim;
    float *cs = c->scr[0].cs, *sn = c->scr[0].sn, *tmp = c->scr[0].krow;
    int64_t last = INT64_MIN;
    for (uint32_t j = 0; j < kv->capacity; j++) {
        /* Slot j of every head holding one (per-head slot sets differ in
         * count and position; one shared set has them all at n_slots). */
        for (uint32_t l = 0; l < kv->n_layers; l++)
            for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
                size_t hi = st_kv_head_index(kv, l, h);
                if (kv->hn ? j >= kv->hn[hi] : j >= kv->n_slots)
                    continue;
                int32_t rp = kv->hn ? kv->hrot[kv->hoff[hi] + j] : kv->rot_pos[j];
                for (uint32_t i = 0; i < np && rp != last; i++) {
                    double fn = i < nfn ? (double)c->inv_freq[i] : 0.0,
                           f0 = i < nfo ? (double)fo[i] : 0.0;
                    double sc = (i < nfn ? (double)c->rot_scale : 1.0) /
                                (i < nfo ? (double)so : 1.0);
                    double a = (double)rp * (fn - f0);
                    cs[i] = (float)(cos(a) * sc);
                    sn[i] = (float)(sin(a) * sc);
                }
                last = rp; /* the table is R(rp): computed once per position */
                st_kv_key_load(kv, l, kv->k[l], h, j, tmp);
                st_op_rope(tmp, tmp, cs, sn, np, hd);
                st_kv_key_store(kv, l, kv->k[l], h, j, tmp);
            }
        if (!kv->hn && j + 1 >= kv->n_slots)
            break;
    }
    free(fo);
    if (c->res) {
        for (uint32_t l = 0; l < kv->n_layers; l++)
            c->res_hv[l] = kv->n_slots;
        return c->be->ops->res->kv_push(c->res, -1, 0, kv->n_slots, diag);
    }
    return ST_OK;
}

/* ---- the forward pass ------------------------------------------------- */

/* The sequence-specific start of a block: check tokens and positions,
 * reserve room, write the new slots' positions and the queries' rotation
 * tables. Nothing is committed: kv->n_slots moves in block_commit. */
static st_status block_begin(st_forward_ctx *c, const int32_t *tokens, const int32_t *pos,
                             size_t n, st_diag *diag)
{
    const st_model *m = c->m;
    const st_model_hparams *hp = &m->hp;
    st_kv_cache *kv = c->kv;
    if (n == 0)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "forward: empty block");
    if (n > st_kv_cache_room(kv))
        return st_diag_set(diag, ST_E_RANGE, "", 0, 0,
                           "forward: kv cache full: %zu new slots exceed the room left (%u of "
                           "capacity %u)", n, st_kv_cache_room(kv), kv->capacity);
    for (size_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab)
            return st_diag_set(diag, ST_E_RANGE, "", 0, 0,
                               "forward: token %d at %zu outside the vocabulary of %u",
                               tokens[t], t, hp->n_vocab);
        int32_t prev = t ? pos[t - 1] : kv->hn ? kv->last_pos
                                      : kv->n_slots ? kv->pos[kv->n_slots - 1] : -1;
        if (pos[t] <= prev)
            return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                               "forward: position %d at %zu: expected >= 0 and after %d (the "
                               "positions of a sequence ascend)", pos[t], t, prev);
    }
    st_status s = reserve_block(c, n, diag);
    if (s != ST_OK)
        return s;
    c->step_gen++; /* the per-step rotation tables are stale from here */

    uint32_t nt = (uint32_t)n, slot0 = kv->n_slots;

    /* The block's slots: true positions, tokens, rotation positions. */
    if ((c->pe_flags & ST_POSENC_MAP) && c->map_positions) {
        st_error err = { ST_OK, "" };
        s = c->map_positions(c->pe_inst, pos, n, c->qpos_rot, &err);
        if (s != ST_OK)
            return st_diag_set(diag, s, "", 0, 0, "posenc map_positions: %s",
                               err.message[0] ? err.message : "failed");
    } else {
        memcpy(c->qpos_rot, pos, n * sizeof *pos);
    }
    if (c->pos_table)
        for (uint32_t t = 0; t < nt; t++)
            if (c->qpos_rot[t] < 0 || (uint32_t)c->qpos_rot[t] >= c->pos_rows)
                return st_diag_set(diag, ST_E_RANGE, "", 0, 0,
                                   "position %d is beyond the model's learned position table "
                                   "(%u rows); a positional-encoding plugin that stretches it "
                                   "(long-clip) gives more", c->qpos_rot[t], c->pos_rows);
    for (uint32_t t = 0; t < nt; t++) {
        kv->pos[slot0 + t] = pos[t];
        kv->tokens[slot0 + t] = tokens[t];
        kv->rot_pos[slot0 + t] = c->qpos_rot[t];
        c->q_slot[t] = slot0 + t;
        if (c->ggml && c->pe_default)
            st_gc_rope_table(c->qcs + (size_t)t * c->n_freq, c->qsn + (size_t)t * c->n_freq,
                             c->qpos_rot[t], hp->rope_base, hp->rope_dims, c->n_freq);
        else
            st_op_rope_table(c->qcs + (size_t)t * c->n_freq, c->qsn + (size_t)t * c->n_freq,
                             (double)c->qpos_rot[t], c->inv_freq, c->n_freq, c->rot_scale);
    }
    atomic_store(&c->worker_status, ST_OK);
    c->weights_nq = c->weights_nslots = 0;
    if (c->want_stats)
        memset(c->stats_done, 0, hp->n_layers);
    c->stats_nq = 0;

    if (c->res)
        return c->be->ops->res->begin(c->res, tokens, nt, slot0, c->qcs, c->qsn, c->n_freq,
                                      diag);
    return ST_OK;
}

/* ---- attention statistics -------------------------------------------- */

/* Clear the threads' rows of A's heads for layer l when it has statistics;
 * false when it has none. */
static bool stats_begin(st_forward_ctx *c, uint32_t l, uint32_t nt, uint32_t n_slots,
                        attn_task *A)
{
    if (!c->want_stats || !c->stats_layers[l])
        return false;
    uint32_t w = c->stats_window;
    A->stats = true;
    A->stats_from = w && w < nt ? nt - w : 0;
    c->stats_nq = nt - A->stats_from;
    size_t cap = c->kv->capacity;
    for (uint32_t i = 0; i < c->nth; i++)
        for (uint32_t h = A->h0; h < A->h0 + A->nh; h++)
            memset(c->scr[i].stats + h * cap, 0, n_slots * sizeof(float));
    return true;
}

/* Sum the threads' rows of A's heads into the layer's statistics. */
static void stats_end(st_forward_ctx *c, uint32_t l, const attn_task *A)
{
    size_t cap = c->kv->capacity;
    for (uint32_t h = A->h0; h < A->h0 + A->nh; h++) {
        float *dst = c->stats + ((size_t)l * c->m->hp.n_heads + h) * cap;
        memcpy(dst, c->scr[0].stats + h * cap, A->n_slots * sizeof(float));
        for (uint32_t i = 1; i < c->nth; i++) {
            const float *src = c->scr[i].stats + h * cap;
            for (uint32_t j = 0; j < A->n_slots; j++)
                dst[j] += src[j];
        }
    }
    c->stats_done[l] = 1;
}

/* One layer's attention with per-(layer, KV head) slot sets: each KV head
 * has its own slots, so each gets its own plan (a view of its slots) and
 * its query heads attend over them. The block's keys were stored at each
 * head's count (OP_ROPE); their positions are written here. */
static st_status attend_layer_heads(st_forward_ctx *c, uint32_t l, uint32_t nt,
                                    const int32_t *pos, st_diag *diag)
{
    st_kv_cache *kv = c->kv;
    const st_model_hparams *hp = &c->m->hp;
    uint32_t gs = hp->n_heads / hp->n_kv_heads, slot0 = kv->n_slots;
    for (uint32_t g = 0; g < hp->n_kv_heads; g++) {
        size_t hi = st_kv_head_index(kv, l, g), o = kv->hoff[hi];
        uint32_t base = kv->hn[hi];
        for (uint32_t t = 0; t < nt; t++) {
            kv->hpos[o + base + t] = pos[t];
            kv->hrot[o + base + t] = c->qpos_rot[t];
            kv->htok[o + base + t] = kv->tokens[slot0 + t];
            c->q_slot[t] = base + t;
        }
        st_status s = make_plan(c, l, nt, base + nt, pos, g, diag);
        if (s != ST_OK)
            return s;
        attn_task A = { .c = c, .layer = l, .n = nt, .pos = pos, .n_slots = base + nt,
                        .h0 = g * gs, .nh = gs, .kpos = kv->hpos + o, .krot = kv->hrot + o };
        bool stats = stats_begin(c, l, nt, base + nt, &A);
        atomic_init(&A.next, 0);
        st_threadpool_run(c->pool, attn_task_fn, &A);
        if (stats)
            stats_end(c, l, &A);
        if (atomic_load(&c->worker_status) != ST_OK)
            return st_diag_set(diag, (st_status)atomic_load(&c->worker_status), "", 0, 0,
                               "posenc bias (layer %u): %s", l, c->worker_msg);
    }
    return ST_OK;
}

/* One layer's attention for one sequence's block: rotate q and k, store
 * k and v in the sequence's cache, ask its plan, attend. Reads the block's
 * q, kf, vf rows; writes its att rows. */
static st_status attend_layer(st_forward_ctx *c, uint32_t l, uint32_t nt, const int32_t *pos,
                              st_diag *diag)
{
    st_kv_cache *kv = c->kv;
    uint32_t slot0 = kv->n_slots, n_slots = slot0 + nt;
    st_status s;
    token_task T;
    T = (token_task){ .op = OP_ROPE, .t_end = nt, .layer = l, .slot0 = slot0 };
    run_tokens(c, &T);

    c->layer_gen++;
    if (c->want_qk) {
        /* The plugin reads unrotated float keys (attention.h). */
        if ((s = ensure_alt(c, diag)) != ST_OK)
            return s;
        T = (token_task){ .op = OP_UNROT, .t_end = n_slots, .layer = l };
        run_tokens(c, &T);
    }
    if (kv->hn)
        return attend_layer_heads(c, l, nt, pos, diag);
    s = make_plan(c, l, nt, n_slots, pos, ST_ALL_HEADS, diag);
    if (s != ST_OK)
        return s;
    bool has_slot = false, has_fixed = false;
    for (size_t e = 0; e < c->n_entries; e++) {
        has_slot |= c->entries[e].r.pos_mode == ST_POS_SLOT;
        has_fixed |= c->entries[e].r.pos_mode == ST_POS_FIXED;
    }
    if ((has_slot || has_fixed) && (s = ensure_alt(c, diag)) != ST_OK)
        return s;
    /* Unrotated keys for the FIXED ranges' slots only (LM-Infinite's
     * few global keys); unrot_slot skips what this layer already has. */
    for (size_t e = 0; has_fixed && e < c->n_entries; e++) {
        const plan_entry *P = &c->entries[e];
        if (P->r.pos_mode != ST_POS_FIXED)
            continue;
        if (P->indices) {
            for (size_t i = 0; i < P->n_idx; i++)
                unrot_slot(c, l, c->idx_pool[P->idx_off + i], c->scr[0].krow);
        } else if (P->r.k_begin < P->r.k_end) {
            T = (token_task){ .op = OP_UNROT, .t_begin = P->r.k_begin, .t_end = P->r.k_end,
                              .layer = l };
            run_tokens(c, &T);
        }
    }
    if (has_slot) {
        extend_slot_table(c, n_slots);
        T = (token_task){ .op = OP_SLOT_ROT, .t_end = n_slots, .layer = l };
        run_tokens(c, &T);
    }
    if (c->plan_group) {
        /* Grouped keys up to the last slot a GROUPED range names; the
         * copy keeps the committed ones from earlier steps. */
        uint32_t upto = 0;
        for (size_t e = 0; e < c->n_entries; e++) {
            const plan_entry *P = &c->entries[e];
            if (P->r.pos_mode != ST_POS_GROUPED)
                continue;
            uint32_t end = P->indices ? (P->n_idx ? c->idx_pool[P->idx_off + P->n_idx - 1] + 1 : 0)
                                      : P->r.k_end;
            upto = end > upto ? end : upto;
        }
        s = st_kv_grouped_update(&c->grouped, kv, l, c->plan_group, upto, c->inv_freq,
                                 c->n_freq, c->pool, diag);
        if (s != ST_OK)
            return s;
    }
    if (layer_tiled(c, l, nt)) {
        if (run_tiled(c, l, nt, n_slots, pos) != ST_OK)
            return oom(diag);
        return ST_OK;
    }

    attn_task A = { .c = c, .layer = l, .n = nt, .pos = pos, .n_slots = n_slots, .h0 = 0,
                    .nh = c->m->hp.n_heads, .kpos = kv->pos, .krot = kv->rot_pos };
    bool stats = stats_begin(c, l, nt, n_slots, &A);
    if (records_weights(c, l)) {
        size_t need = (size_t)nt * n_slots;
        if (need > c->weights_cap) {
            float *w = realloc(c->weights, need * sizeof *w);
            if (!w)
                return oom(diag);
            c->weights = w;
            c->weights_cap = need;
        }
        memset(c->weights, 0, need * sizeof *c->weights);
        A.weights = c->weights;
        A.per_query = true;
        c->weights_nq = nt;
        c->weights_nslots = n_slots;
    }
    A.serial = stats && A.weights;
    atomic_init(&A.next, 0);
    st_threadpool_run(c->pool, attn_task_fn, &A);
    if (stats)
        stats_end(c, l, &A);
    if (atomic_load(&c->worker_status) != ST_OK)
        return st_diag_set(diag, (st_status)atomic_load(&c->worker_status), "", 0, 0,
                           "posenc bias (layer %u): %s", l, c->worker_msg);
    return ST_OK;
}

st_status st_forward(st_forward_ctx *c, const int32_t *tokens, const int32_t *pos, size_t n,
                     float *logits, uint32_t flags, st_diag *diag)
{
    const st_model *m = c->m;
    const st_model_hparams *hp = &m->hp;
    st_kv_cache *kv = c->kv;
    st_status s = block_begin(c, tokens, pos, n, diag);
    if (s != ST_OK)
        return s;
    uint32_t E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim;
    uint32_t QD = hp->n_heads * hd;
    uint32_t nt = (uint32_t)n, n_slots = kv->n_slots + nt;
    size_t row = st_kv_row(kv);

    token_task T = { .op = OP_EMBED, .t_begin = 0, .t_end = nt, .tokens = tokens };
    if ((s = run_step(c, &T, diag)) != ST_OK)
        return s;

    for (uint32_t l = 0; l < hp->n_layers; l++) {
        const st_model_layer *L = &m->layers[l];
        T = (token_task){ .op = OP_NORM, .t_end = nt, .norm_w = L->attn_norm, .residual = l > 0 };
        if ((s = run_step(c, &T, diag)) != ST_OK)
            return s;

        {
            const st_weight *w[3] = { &L->wq, &L->wk, &L->wv };
            float *y[3] = { c->q, c->kf, c->vf };
            size_t ldy[3] = { QD, row, row };
            if ((s = run_matmul(c, 3, w, y, ldy, c->xn, E, c->xq, nt, diag)) != ST_OK)
                return s;
        }
        if ((s = step_attend(c, l, nt, pos, diag)) != ST_OK)
            return s;

        T = (token_task){ .op = OP_QUANT_ATT, .t_end = nt };
        if ((s = run_step(c, &T, diag)) != ST_OK)
            return s;
        {
            const st_weight *w[1] = { &L->wo };
            float *y[1] = { c->tmp };
            size_t ldy[1] = { E };
            if ((s = run_matmul(c, 1, w, y, ldy, c->att, QD, c->xq, nt, diag)) != ST_OK)
                return s;
        }
        T = (token_task){ .op = OP_NORM, .t_end = nt, .norm_w = L->ffn_norm, .residual = true };
        if ((s = run_step(c, &T, diag)) != ST_OK)
            return s;
        if (glu_fused(c, L)) {
            /* SwiGLU and its quantization run per chunk inside the task. */
            if ((s = c->be->ops->matmul_glu(c->be, &L->gate, &L->up, c->g, c->u, F, c->xq,
                                            E / ST_ACT_BLOCK, nt, c->ggml, c->hq,
                                            F / ST_ACT_BLOCK, diag)) != ST_OK)
                return s;
        } else {
            const st_weight *w[2] = { &L->gate, &L->up };
            float *y[2] = { c->g, c->u };
            size_t ldy[2] = { F, F };
            if ((s = run_matmul(c, 2, w, y, ldy, c->xn, E, c->xq, nt, diag)) != ST_OK)
                return s;
            T = (token_task){ .op = OP_SWIGLU, .t_end = nt };
            if ((s = run_step(c, &T, diag)) != ST_OK)
                return s;
        }
        {
            const st_weight *w[1] = { &L->down };
            float *y[1] = { c->tmp };
            size_t ldy[1] = { E };
            if ((s = run_matmul(c, 1, w, y, ldy, c->g, F, c->hq, nt, diag)) != ST_OK)
                return s;
        }
    }

    if (logits) {
        uint32_t first = (flags & ST_FORWARD_ALL_LOGITS) ? 0 : nt - 1;
        T = (token_task){ .op = OP_NORM, .t_begin = first, .t_end = nt, .norm_w = m->out_norm,
                          .residual = true };
        if ((s = run_step(c, &T, diag)) != ST_OK ||
            (s = step_logits(c, first, nt, logits, diag)) != ST_OK)
            return s;
    }
    if (kv->hn)
        st_kv_cache_heads_commit(kv, nt, pos[nt - 1]);
    else
        kv->n_slots = n_slots;
    return ST_OK;
}

/* ---- several sequences in one pass ------------------------------------ */

/* Rows of the batch whose logits are wanted, ascending. */
static size_t wanted_rows(const st_forward_seq *seqs, size_t n_seqs, uint32_t *rows)
{
    size_t k = 0, r0 = 0;
    for (size_t i = 0; i < n_seqs; i++) {
        if (seqs[i].logits) {
            size_t first = (seqs[i].flags & ST_FORWARD_ALL_LOGITS) ? 0 : seqs[i].n - 1;
            for (size_t t = first; t < seqs[i].n; t++)
                rows[k++] = (uint32_t)(r0 + t);
        }
        r0 += seqs[i].n;
    }
    return k;
}

/* The output head over the wanted rows, moved to the front of the lead's
 * activations so one matmul serves every sequence, then handed out. */
static st_status batch_logits(st_forward_ctx *lead, const st_forward_seq *seqs, size_t n_seqs,
                              size_t total, st_diag *diag)
{
    const st_model_hparams *hp = &lead->m->hp;
    uint32_t E = hp->n_embd, V = hp->n_vocab, XB = E / ST_ACT_BLOCK;
    uint32_t *rows = malloc(total * sizeof *rows);
    if (!rows)
        return oom(diag);
    size_t R = wanted_rows(seqs, n_seqs, rows);
    if (R == 0) {
        free(rows);
        return ST_OK;
    }
    float *out = malloc((size_t)R * V * sizeof *out);
    if (!out) {
        free(rows);
        return oom(diag);
    }
    token_task T = { .op = OP_NORM, .t_begin = rows[0], .t_end = (uint32_t)total,
                     .norm_w = lead->m->out_norm, .residual = true };
    run_tokens(lead, &T);
    for (size_t k = 0; k < R; k++)
        if (rows[k] != k) {
            memmove(lead->xn + k * E, lead->xn + (size_t)rows[k] * E, E * sizeof(float));
            memmove(lead->xq + k * XB, lead->xq + (size_t)rows[k] * XB, XB * sizeof(st_act_block));
        }
    const st_weight *w[1] = { &lead->m->output };
    float *y[1] = { out };
    size_t ldy[1] = { V };
    st_status s = run_matmul(lead, 1, w, y, ldy, lead->xn, E, lead->xq, (uint32_t)R, diag);
    if (s != ST_OK) {
        free(out);
        free(rows);
        return s;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_seqs; i++) {
        if (!seqs[i].logits)
            continue;
        size_t m = (seqs[i].flags & ST_FORWARD_ALL_LOGITS) ? seqs[i].n : 1;
        memcpy(seqs[i].logits, out + k * V, m * V * sizeof(float));
        k += m;
    }
    free(out);
    free(rows);
    return ST_OK;
}

static st_status res_batch(const st_forward_seq *seqs, size_t n_seqs, st_diag *diag);

st_status st_forward_batch(const st_forward_seq *seqs, size_t n_seqs, st_diag *diag)
{
    if (n_seqs == 0)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "forward: empty batch");
    st_forward_ctx *lead = seqs[0].ctx;
    if (lead->res)
        return res_batch(seqs, n_seqs, diag);
    const st_model *m = lead->m;
    const st_model_hparams *hp = &m->hp;
    size_t total = 0;
    for (size_t i = 0; i < n_seqs; i++) {
        if (seqs[i].ctx->m != m || seqs[i].ctx->pool != lead->pool)
            return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "forward: sequence %zu of the "
                               "batch has another model or thread pool", i);
        for (size_t j = 0; j < i; j++)
            if (seqs[j].ctx == seqs[i].ctx || seqs[j].ctx->kv == seqs[i].ctx->kv)
                return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "forward: sequences %zu and "
                                   "%zu of the batch share a cache", j, i);
        total += seqs[i].n;
    }
    /* The lead's activations hold the whole batch; each sequence's own
     * context holds its rows while they attend. Reserve before the
     * sequences' starts, which fill per-row tables. */
    st_status s = reserve_block(lead, total, diag);
    for (size_t i = 0; i < n_seqs && s == ST_OK; i++)
        s = block_begin(seqs[i].ctx, seqs[i].tokens, seqs[i].pos, seqs[i].n, diag);
    int32_t *tokens = s == ST_OK ? malloc(total * sizeof *tokens) : NULL;
    if (s != ST_OK)
        return s;
    if (!tokens)
        return oom(diag);
    for (size_t i = 0, r0 = 0; i < n_seqs; r0 += seqs[i].n, i++) {
        memcpy(tokens + r0, seqs[i].tokens, seqs[i].n * sizeof *tokens);
        /* Learned positions are added at the embedding, from the lead's rows. */
        if (i > 0)
            memcpy(lead->qpos_rot + r0, seqs[i].ctx->qpos_rot, seqs[i].n * sizeof(int32_t));
    }
    uint32_t E = hp->n_embd, F = hp->n_ff, QD = hp->n_heads * hp->head_dim;
    uint32_t nt = (uint32_t)total;
    size_t row = st_kv_row(lead->kv);
    token_task T = { .op = OP_EMBED, .t_begin = 0, .t_end = nt, .tokens = tokens };
    run_tokens(lead, &T);
    for (uint32_t l = 0; l < hp->n_layers && s == ST_OK; l++) {
        const st_model_layer *L = &m->layers[l];
        T = (token_task){ .op = OP_NORM, .t_end = nt, .norm_w = L->attn_norm, .residual = l > 0 };
        run_tokens(lead, &T);
        {
            const st_weight *w[3] = { &L->wq, &L->wk, &L->wv };
            float *y[3] = { lead->q, lead->kf, lead->vf };
            size_t ldy[3] = { QD, row, row };
            s = run_matmul(lead, 3, w, y, ldy, lead->xn, E, lead->xq, nt, diag);
        }
        for (size_t i = 0, r0 = 0; i < n_seqs && s == ST_OK; r0 += seqs[i].n, i++) {
            st_forward_ctx *c = seqs[i].ctx;
            size_t n = seqs[i].n;
            if (c != lead) {
                memcpy(c->q, lead->q + r0 * QD, n * QD * sizeof(float));
                memcpy(c->kf, lead->kf + r0 * row, n * row * sizeof(float));
                memcpy(c->vf, lead->vf + r0 * row, n * row * sizeof(float));
            }
            s = attend_layer(c, l, (uint32_t)n, seqs[i].pos, diag);
            if (c != lead)
                memcpy(lead->att + r0 * QD, c->att, n * QD * sizeof(float));
        }
        if (s != ST_OK)
            break;
        T = (token_task){ .op = OP_QUANT_ATT, .t_end = nt };
        run_tokens(lead, &T);
        {
            const st_weight *w[1] = { &L->wo };
            float *y[1] = { lead->tmp };
            size_t ldy[1] = { E };
            s = run_matmul(lead, 1, w, y, ldy, lead->att, QD, lead->xq, nt, diag);
        }
        T = (token_task){ .op = OP_NORM, .t_end = nt, .norm_w = L->ffn_norm, .residual = true };
        run_tokens(lead, &T);
        if (glu_fused(lead, L)) {
            s = lead->be->ops->matmul_glu(lead->be, &L->gate, &L->up, lead->g, lead->u, F,
                                          lead->xq, E / ST_ACT_BLOCK, nt, lead->ggml, lead->hq,
                                          F / ST_ACT_BLOCK, diag);
        } else {
            const st_weight *w[2] = { &L->gate, &L->up };
            float *y[2] = { lead->g, lead->u };
            size_t ldy[2] = { F, F };
            s = run_matmul(lead, 2, w, y, ldy, lead->xn, E, lead->xq, nt, diag);
            T = (token_task){ .op = OP_SWIGLU, .t_end = nt };
            run_tokens(lead, &T);
        }
        {
            const st_weight *w[1] = { &L->down };
            float *y[1] = { lead->tmp };
            size_t ldy[1] = { E };
            s = run_matmul(lead, 1, w, y, ldy, lead->g, F, lead->hq, nt, diag);
        }
    }
    free(tokens);
    if (s == ST_OK)
        s = batch_logits(lead, seqs, n_seqs, total, diag);
    if (s != ST_OK)
        return s;
    for (size_t i = 0; i < n_seqs; i++) {
        st_kv_cache *kv = seqs[i].ctx->kv;
        if (kv->hn)
            st_kv_cache_heads_commit(kv, (uint32_t)seqs[i].n, seqs[i].pos[seqs[i].n - 1]);
        else
            kv->n_slots += (uint32_t)seqs[i].n;
    }
    return ST_OK;
}

/* ---- on a device (backend.h's resident ops) ----------------------------
 *
 * When the backend keeps activations and the cache on its device, each
 * step of st_forward runs there through the ops; the steps below say
 * which. A layer whose attention needs what only the host does (a posenc
 * bias callback, the attention weights of ST_ATTN_NEEDS_WEIGHTS, the q/k
 * of ST_ATTN_NEEDS_QK) runs attend_layer on the host: its q, k, v and the
 * layer's cache come down, the block's keys and values and the output go
 * back up. */

/* Whether this context can keep its state on the device: the backend has
 * the ops, numerics are this project's own (not ggml's), no learned
 * position table, rows in whole int8 blocks; STRETCH_RESIDENT=off keeps
 * every step but the products on the host (the comparison the tests and
 * docs/RESULTS.md make). */
static bool res_wanted(const st_forward_ctx *c)
{
    const st_model_hparams *hp = &c->m->hp;
    const char *env = getenv("STRETCH_RESIDENT");
    if (!c->be->ops->res || (env && strcmp(env, "off") == 0) || c->ggml || c->pos_table)
        return false;
    /* A device holds key rows (a cache another context blocked stays here). */
    if (c->kv->k_blocked)
        return false;
    /* Per-(layer, KV head) slot sets and attention statistics are the
     * host's kernels' (1.4): such a context keeps its state on the host and
     * only its products go to the device. */
    if (c->kv->hn || c->want_stats)
        return false;
    return hp->n_embd % ST_ACT_BLOCK == 0 && hp->n_ff % ST_ACT_BLOCK == 0 &&
           (hp->n_heads * hp->head_dim) % ST_ACT_BLOCK == 0 && hp->head_dim % 2 == 0;
}

static void res_mirror_compact(void *user, const uint8_t *keep, uint32_t n_before)
{
    st_forward_ctx *c = user;
    for (uint32_t l = 0; l < c->m->hp.n_layers; l++) {
        /* Kept slots keep their order: those below the mark come first. */
        uint32_t k = 0;
        for (uint32_t j = 0; keep && j < c->res_hv[l] && j < n_before; j++)
            k += keep[j] != 0;
        c->res_hv[l] = k;
    }
    /* A failure is kept by the device state and reported by its next op. */
    if (keep)
        c->be->ops->res->kv_compact(c->res, keep, n_before, NULL);
}

static st_status res_open(st_forward_ctx *c, st_diag *diag)
{
    if (!res_wanted(c))
        return ST_OK;
    if (!(c->res_hv = calloc(c->m->hp.n_layers, sizeof *c->res_hv)))
        return oom(diag);
    st_status s = c->be->ops->res->open(c->be, c->m, c->kv, &c->res, diag);
    if (s != ST_OK)
        return s;
    c->kv->mirror = c;
    c->kv->mirror_compact = res_mirror_compact;
    return ST_OK;
}

static void res_close(st_forward_ctx *c)
{
    free(c->res_hv);
    c->res_hv = NULL;
    if (!c->res)
        return;
    if (c->kv->mirror == c) {
        c->kv->mirror = NULL;
        c->kv->mirror_compact = NULL;
    }
    c->be->ops->res->close(c->res);
    c->res = NULL;
    free(c->rents);
}

static st_status run_step(st_forward_ctx *c, struct token_task *T, st_diag *diag)
{
    if (!c->res) {
        run_tokens(c, T);
        return ST_OK;
    }
    const st_backend_resident_ops *R = c->be->ops->res;
    uint32_t nt = T->t_end;
    switch (T->op) {
    case OP_EMBED:
        return R->embed(c->res, &c->m->tok_embd, nt, diag);
    case OP_NORM:
        return R->norm(c->res, T->norm_w, T->residual, T->t_begin, T->t_end, c->m->hp.rms_eps,
                       diag);
    case OP_QUANT_ATT:
        return R->quantize_att(c->res, nt, diag);
    case OP_SWIGLU:
        return R->swiglu(c->res, nt, diag);
    default:
        return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0, "forward: step %d has no device op",
                           (int)T->op);
    }
}

/* The activation a host buffer of this context stands for. */
static int res_act(const st_forward_ctx *c, const float *p)
{
    const float *const map[ST_BACT_COUNT] = {
        [ST_BACT_X] = c->x, [ST_BACT_XN] = c->xn, [ST_BACT_Q] = c->q, [ST_BACT_K] = c->kf,
        [ST_BACT_V] = c->vf, [ST_BACT_ATT] = c->att, [ST_BACT_TMP] = c->tmp,
        [ST_BACT_G] = c->g, [ST_BACT_U] = c->u,
    };
    for (int i = 0; i < ST_BACT_COUNT; i++)
        if (map[i] == p)
            return i;
    return -1;
}

static st_status res_matmul(st_forward_ctx *c, uint32_t n_mats, const st_weight *const *w,
                            float *const *y, const float *xf, uint32_t nt, st_diag *diag)
{
    st_bact out[ST_MATMUL_MAX_MATS];
    int in = res_act(c, xf);
    for (uint32_t i = 0; i < n_mats && i < ST_MATMUL_MAX_MATS; i++) {
        int a = res_act(c, y[i]);
        if (a < 0 || in < 0)
            return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0,
                               "forward: a product outside the device's activations");
        out[i] = (st_bact)a;
    }
    return c->be->ops->res->matmul(c->res, n_mats, w, out, (st_bact)in, nt, diag);
}

static st_status step_logits(st_forward_ctx *c, uint32_t first, uint32_t nt, float *logits,
                             st_diag *diag)
{
    const st_model *m = c->m;
    if (c->res)
        return c->be->ops->res->logits(c->res, &m->output, first, nt - first, logits, diag);
    uint32_t E = m->hp.n_embd;
    const st_weight *w[1] = { &m->output };
    float *y[1] = { logits };
    size_t ldy[1] = { m->hp.n_vocab };
    return run_matmul(c, 1, w, y, ldy, c->xn + (size_t)first * E, E,
                      c->xq + (size_t)first * (E / ST_ACT_BLOCK), nt - first, diag);
}

/* Whether layer l's attention runs on the host (see above). */
static bool res_attend_on_host(const st_forward_ctx *c, uint32_t l)
{
    return c->want_qk || records_weights(c, l) ||
           ((c->pe_flags & ST_POSENC_BIAS) && c->bias && !c->slopes);
}

/* Whether the plan just made has a range the device's attention kernel
 * does not evaluate (ST_POS_GROUPED: the host keeps the grouped key copy,
 * kv_grouped.h). */
static bool res_plan_on_host(const st_forward_ctx *c)
{
    for (size_t e = 0; e < c->n_entries; e++)
        if (c->entries[e].r.pos_mode == ST_POS_GROUPED)
            return true;
    return false;
}

/* attend_layer on the host, between the device's steps. */
static st_status res_attend_host(st_forward_ctx *c, uint32_t l, uint32_t nt,
                                 const int32_t *pos, st_diag *diag)
{
    const st_backend_resident_ops *R = c->be->ops->res;
    uint32_t slot0 = c->kv->n_slots, hv = c->res_hv[l];
    st_status s;
    if ((s = R->read(c->res, ST_BACT_Q, nt, c->q, diag)) != ST_OK ||
        (s = R->read(c->res, ST_BACT_K, nt, c->kf, diag)) != ST_OK ||
        (s = R->read(c->res, ST_BACT_V, nt, c->vf, diag)) != ST_OK ||
        (hv < slot0 && (s = R->kv_pull(c->res, (int32_t)l, hv, slot0, diag)) != ST_OK) ||
        (s = attend_layer(c, l, nt, pos, diag)) != ST_OK ||
        (s = R->kv_push(c->res, (int32_t)l, slot0, slot0 + nt, diag)) != ST_OK)
        return s;
    c->res_hv[l] = slot0 + nt;
    return R->write(c->res, ST_BACT_ATT, nt, c->att, diag);
}

static st_status step_attend(st_forward_ctx *c, uint32_t l, uint32_t nt, const int32_t *pos,
                             st_diag *diag)
{
    if (!c->res)
        return attend_layer(c, l, nt, pos, diag);
    if (res_attend_on_host(c, l))
        return res_attend_host(c, l, nt, pos, diag);
    const st_backend_resident_ops *R = c->be->ops->res;
    uint32_t slot0 = c->kv->n_slots, n_slots = slot0 + nt;
    /* The plan first (it reads only the host's positions): a plan the
     * device cannot evaluate runs this layer on the host instead. */
    st_status s = make_plan(c, l, nt, n_slots, pos, ST_ALL_HEADS, diag);
    if (s != ST_OK)
        return s;
    if (res_plan_on_host(c))
        return res_attend_host(c, l, nt, pos, diag);
    if ((s = R->rope_store(c->res, l, nt, slot0, diag)) != ST_OK)
        return s;
    if (c->n_entries > c->cap_rents) {
        st_bres_entry *e = realloc(c->rents, c->n_entries * sizeof *e);
        if (!e)
            return oom(diag);
        c->rents = e;
        c->cap_rents = c->n_entries;
    }
    for (size_t e = 0; e < c->n_entries; e++) {
        const plan_entry *P = &c->entries[e];
        /* Never GROUPED here (res_plan_on_host), so the 1.0 range says it all. */
        st_attn_range r = { P->r.head,     P->r.k_begin,  P->r.k_end,     P->r.min_dist,
                            P->r.max_dist, P->r.pos_mode, P->r.fixed_dist };
        c->rents[e] = (st_bres_entry){ r, P->indices, (uint32_t)P->idx_off,
                                       (uint32_t)P->n_idx };
    }
    st_bres_attn A = {
        .layer = l, .nt = nt, .slot0 = slot0, .entries = c->rents, .n_entries = c->n_entries,
        .idx = c->idx_pool, .n_idx = c->n_idx, .inv_freq = c->inv_freq, .n_freq = c->n_freq,
        .rot_scale = c->rot_scale,
        .scale = c->temperature / sqrtf((float)c->m->hp.head_dim), .slopes = c->slopes,
        .split = nt == 1 && layer_tiled(c, l, nt) &&
                 st_attn_tiled_splits(nt, c->m->hp.n_heads, c->m->hp.n_kv_heads),
        .split_fused = st_attn_tiled_decode_fused(
            c->kern, c->kv->type, c->kv->type, c->slopes != NULL,
            c->m->hp.n_heads / c->m->hp.n_kv_heads, c->m->hp.head_dim),
        .tiled = nt > 1 && layer_tiled(c, l, nt),
        .q_per_tile = ST_ATTN_ROWS / (c->m->hp.n_heads / c->m->hp.n_kv_heads),
    };
    return R->attend(c->res, &A, diag);
}

/* A batch on the device: each sequence's block in turn (its rows attend
 * only to its own cache anyway); on an error the caches that moved are
 * put back, so none has. */
static st_status res_batch(const st_forward_seq *seqs, size_t n_seqs, st_diag *diag)
{
    for (size_t i = 0; i < n_seqs; i++)
        for (size_t j = 0; j < i; j++)
            if (seqs[j].ctx == seqs[i].ctx || seqs[j].ctx->kv == seqs[i].ctx->kv)
                return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "forward: sequences %zu and "
                                   "%zu of the batch share a cache", j, i);
    for (size_t i = 0; i < n_seqs; i++) {
        st_status s = st_forward(seqs[i].ctx, seqs[i].tokens, seqs[i].pos, seqs[i].n,
                                 seqs[i].logits, seqs[i].flags, diag);
        if (s != ST_OK) {
            for (size_t j = 0; j < i; j++)
                seqs[j].ctx->kv->n_slots -= (uint32_t)seqs[j].n;
            return s;
        }
    }
    return ST_OK;
}
