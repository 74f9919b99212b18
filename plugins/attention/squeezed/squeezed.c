/*
 * attention `squeezed`: Squeezed Attention (Hooper et al. 2024, "Squeezed
 * Attention: Accelerating Long Context Length LLM Inference"). A fixed
 * context (the first `fixed_len` tokens; 0 = the first request's prompt) is
 * clustered offline, per layer and KV head, on its keys' directions; for
 * every later block each query head reads only the keys of the clusters
 * whose centroid-estimated attention passes a calibrated threshold (or the
 * top `keep_fraction` of clusters), plus the last `observation` tokens of
 * the fixed context and everything after it in full. See
 * docs/plugins/squeezed.md.
 *
 * This file: parameters, lifecycle, and the plan entry point that decides
 * per block between dense attention (before and while the fixed context is
 * being read) and the sparse plan (online.c) once the layer is clustered
 * (offline.c) or loaded from `index_path` (index_io.c).
 */
#include <stdlib.h>
#include <string.h>

#include <stretch/params.h>

#include "squeezed_plugin.h"

#define NAME "squeezed"

static st_status read_params(const st_host_services *host, const st_params *params,
                             st_sq_params *p, st_error *err)
{
    p->fixed_len = (uint32_t)st_param_int(params, "fixed_len");
    p->observation = (uint32_t)st_param_int(params, "observation");
    p->sinks = (uint32_t)st_param_int(params, "sinks");
    p->levels = (uint32_t)st_param_int(params, "levels");
    p->k_coarse = (uint32_t)st_param_int(params, "k_coarse");
    p->kmeans_iters = (uint32_t)st_param_int(params, "kmeans_iters");
    p->seed = (uint64_t)st_param_int(params, "seed");
    p->rotary = st_param_bool(params, "rotary");
    p->cluster_fraction = st_param_float(params, "cluster_fraction");
    p->quantile = st_param_float(params, "quantile");
    p->keep_fraction = st_param_float(params, "keep_fraction");
    p->coarse_keep_fraction = st_param_float(params, "coarse_keep_fraction");
    p->mode_fraction = st_param_is(params, "mode", "fraction");
    p->aggregate_mean = st_param_is(params, "aggregate", "mean");
    const char *path = st_param_str(params, "index_path");
    if (path[0]) {
        /* A YAML string may hold a NUL; the view's copy would end there. */
        const st_param_value *pv = st_param_get(params, "index_path");
        if (pv && pv->len != strlen(path))
            return host->error(err, ST_E_INVALID, NAME ": index_path contains a NUL byte");
        p->index_path = strdup(path);
        if (!p->index_path)
            return host->error(err, ST_E_NOMEM, NAME ": out of memory");
    }
    return ST_OK;
}

void st_sq_position(const st_squeezed *s, float *out, const float *x, int32_t pos)
{
    uint32_t hd = s->shape.head_dim, rd = s->shape.rope_dims;
    if (s->p.rotary && rd >= 2 && rd <= hd)
        st_sq_rope(out, x, (double)pos, s->shape.rope_base, rd, hd);
    else if (out != x)
        memcpy(out, x, sizeof(float) * hd);
}

static void free_state(st_squeezed *s)
{
    if (s->have_index)
        st_sq_index_free(&s->ix);
    s->have_index = false;
    if (s->rings) {
        for (uint32_t l = 0; l < s->shape.n_layers; l++) {
            free(s->rings[l].q);
            free(s->rings[l].pos);
        }
        free(s->rings);
        s->rings = NULL;
    }
    if (s->calib) {
        for (uint32_t l = 0; l < s->shape.n_layers; l++)
            st_sq_calib_clear(&s->calib[l]);
        free(s->calib);
        s->calib = NULL;
    }
    s->configured = false;
}

static st_status sq_create(const st_host_services *host, const st_params *params,
                           void **inst, st_error *err)
{
    st_sq_params p = {0};
    st_status st = read_params(host, params, &p, err);
    if (st != ST_OK) {
        free(p.index_path);
        return st;
    }
    st_squeezed *s = host->calloc(host->host, 1, sizeof *s);
    if (!s) {
        free(p.index_path);
        return host->error(err, ST_E_NOMEM, NAME ": out of memory");
    }
    s->host = host;
    s->p = p;
    s->fixed_len = p.fixed_len;
    atomic_init(&s->keys_read, 0);
    atomic_init(&s->keys_offered, 0);
    pthread_mutex_init(&s->lock, NULL);
    *inst = s;
    return ST_OK;
}

/* How much of the clustered fixed context the sparse plans read: the
 * "KV budget" of the paper, as a share. */
static void report_reads(st_squeezed *s)
{
    unsigned long long read = atomic_exchange(&s->keys_read, 0);
    unsigned long long offered = atomic_exchange(&s->keys_offered, 0);
    if (offered)
        s->host->log(s->host->host, ST_LOG_INFO, NAME,
                     "read %.1f%% of the fixed context's clustered keys (%llu of %llu, "
                     "summed over heads and blocks)", 100.0 * (double)read / (double)offered,
                     read, offered);
}

static void sq_destroy(void *inst)
{
    st_squeezed *s = inst;
    if (!s)
        return;
    report_reads(s);
    free_state(s);
    free(s->p.index_path);
    pthread_mutex_destroy(&s->lock);
    s->host->free(s->host->host, s);
}

static st_status sq_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                              int32_t *weights_layer, st_error *err)
{
    st_squeezed *s = inst;
    if (shape->n_layers == 0 || shape->n_heads == 0 || shape->n_kv_heads == 0 ||
        shape->head_dim == 0 || shape->n_heads % shape->n_kv_heads != 0)
        return s->host->error(err, ST_E_INVALID,
                              NAME ": unusable model shape (%u layers, %u heads, %u KV heads, "
                              "head_dim %u)", shape->n_layers, shape->n_heads, shape->n_kv_heads,
                              shape->head_dim);
    free_state(s);
    s->shape = *shape;
    s->fixed_len = s->p.fixed_len;
    s->verified = false;
    s->n_built = 0;
    s->rings = calloc(shape->n_layers, sizeof *s->rings);
    s->calib = calloc(shape->n_layers, sizeof *s->calib);
    bool ok = s->rings && s->calib;
    size_t obs = s->p.observation;
    for (uint32_t l = 0; ok && l < shape->n_layers && obs; l++) {
        s->rings[l].q = malloc(sizeof(float) * obs * shape->n_heads * shape->head_dim);
        s->rings[l].pos = malloc(sizeof(int32_t) * obs);
        ok = s->rings[l].q && s->rings[l].pos;
    }
    if (!ok) {
        s->configured = true; /* so free_state walks the layers */
        free_state(s);
        return s->host->error(err, ST_E_NOMEM, NAME ": out of memory for observation queries");
    }
    s->configured = true;
    *needs = ST_ATTN_NEEDS_QK;
    *weights_layer = -1;
    return ST_OK;
}

/* The cache keeps every key: Squeezed Attention reads fewer of them. */
static uint32_t sq_cache_budget(void *inst, uint32_t n_ctx)
{
    (void)inst;
    (void)n_ctx;
    return 0;
}

/* First plan of a request that holds the whole fixed context: reuse the
 * clustering when this request starts with the same tokens, else start a
 * new one (from index_path when it has it). Called with the lock held. */
static void check_fixed_context(st_squeezed *s, const st_kv_view *kv)
{
    uint32_t F = s->fixed_len;
    if (!kv->pos || !kv->tokens)
        return; /* nothing to identify the context by: stay dense */
    for (uint32_t i = 0; i < F; i++)
        if (kv->pos[i] != (int32_t)i)
            return; /* not a plain prefix (should not happen: nothing is evicted) */
    st_sq_index_key key = {
        .n_layers = s->shape.n_layers, .n_heads = s->shape.n_heads,
        .n_kv_heads = s->shape.n_kv_heads, .head_dim = s->shape.head_dim, .fixed_len = F,
        .observation = s->p.observation, .levels = s->p.levels, .k_coarse = s->p.k_coarse,
        .kmeans_iters = s->p.kmeans_iters, .rotary = s->p.rotary && s->shape.rope_dims > 0,
        .seed = s->p.seed,
        .cluster_fraction = s->p.cluster_fraction, .quantile = s->p.quantile,
        .token_hash = st_sq_token_hash(kv->tokens, F),
    };
    if (s->have_index && st_sq_index_key_equal(&s->ix.key, &key)) {
        s->verified = true;
        return;
    }
    if (s->have_index) {
        s->host->log(s->host->host, ST_LOG_INFO, NAME,
                     "this request does not start with the clustered fixed context");
        st_sq_index_free(&s->ix);
        s->have_index = false;
        if (s->p.fixed_len == 0) {
            /* Learn the fixed context again from this request's prompt. */
            s->fixed_len = 0;
            return;
        }
    }
    for (uint32_t l = 0; l < s->shape.n_layers; l++)
        st_sq_calib_clear(&s->calib[l]);
    s->n_built = 0;
    if (st_sq_index_init(&s->ix, &key) != ST_OK)
        return; /* out of memory: stay dense */
    s->have_index = true;
    s->verified = true;
    if (!s->p.index_path)
        return;
    char msg[512] = "";
    st_status st = st_sq_index_load(&s->ix, &key, s->p.index_path, msg, sizeof msg);
    if (st == ST_OK) {
        s->n_built = s->shape.n_layers;
        s->host->log(s->host->host, ST_LOG_INFO, NAME, "loaded the clustering from %s",
                     s->p.index_path);
    } else if (st != ST_E_NOT_FOUND) {
        s->host->log(s->host->host, ST_LOG_WARN, NAME, "%s; clustering again", msg);
    }
}

/* Cluster this layer if needed; with every layer in, fix the global
 * thresholds and persist. Called with the lock held. */
static st_status ensure_layer(st_squeezed *s, const st_attn_query *q, st_error *err)
{
    if (s->ix.layers[q->layer].built)
        return ST_OK;
    st_status st = st_sq_build_layer(s, q, err);
    if (st != ST_OK)
        return st;
    if (s->n_built < s->shape.n_layers)
        return ST_OK;
    st_sq_finish_thresholds(s);
    if (s->p.index_path) {
        char msg[512] = "";
        if (st_sq_index_save(&s->ix, s->p.index_path, msg, sizeof msg) != ST_OK)
            s->host->log(s->host->host, ST_LOG_WARN, NAME, "%s", msg);
    }
    return ST_OK;
}

static st_status plan_dense(const st_attn_query *q, const st_attn_plan_builder *b)
{
    st_attn_range all = {
        .head = ST_ALL_HEADS, .k_begin = 0, .k_end = q->kv->n_slots,
        .min_dist = 0, .max_dist = ST_DIST_MAX, .pos_mode = ST_POS_TRUE,
    };
    return b->add_range(b->host, &all);
}

static st_status sq_plan(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    st_squeezed *s = inst;
    if (!s->configured)
        return s->host->error(err, ST_E_STATE, NAME ": plan before configure");
    const st_kv_view *kv = q->kv;
    if (!kv || q->n_q == 0 || kv->n_slots == 0)
        return ST_OK;
    if (q->layer >= s->shape.n_layers || q->n_heads != s->shape.n_heads ||
        q->n_kv_heads != s->shape.n_kv_heads || q->head_dim != s->shape.head_dim)
        return s->host->error(err, ST_E_INVALID,
                              NAME ": query block (layer %u, %u/%u heads, dim %u) does not "
                              "match the configured model", q->layer, q->n_heads, q->n_kv_heads,
                              q->head_dim);
    int32_t min_pos = q->q_pos[0];
    for (uint32_t t = 1; t < q->n_q; t++)
        if (q->q_pos[t] < min_pos)
            min_pos = q->q_pos[t];

    bool sparse = false;
    st_status st = ST_OK;
    pthread_mutex_lock(&s->lock);
    /* fixed_len 0: the prompt ends where generation's one-token blocks begin. */
    if (s->fixed_len == 0 && s->p.fixed_len == 0 && q->n_q == 1 && min_pos > 0)
        s->fixed_len = (uint32_t)min_pos;
    uint32_t F = s->fixed_len;
    if (!s->verified || !s->ix.layers || !s->ix.layers[q->layer].built)
        st_sq_record_queries(s, q);
    if (F > 0 && kv->n_slots >= F && q->k) {
        if (!s->verified)
            check_fixed_context(s, kv);
        if (s->verified && s->have_index && F == s->fixed_len) {
            st = ensure_layer(s, q, err);
            sparse = st == ST_OK && min_pos >= (int32_t)F &&
                     s->ix.layers[q->layer].heads[0].n_keys > 0 && q->q;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (st != ST_OK)
        return st;
    if (sparse)
        return st_sq_plan_sparse(s, q, b, err);
    st = plan_dense(q, b);
    if (st != ST_OK)
        return s->host->error(err, st, NAME ": the host refused the causal range");
    return ST_OK;
}

static void sq_reset(void *inst)
{
    st_squeezed *s = inst;
    report_reads(s);
    pthread_mutex_lock(&s->lock);
    s->verified = false;
    if (s->rings)
        for (uint32_t l = 0; l < s->shape.n_layers; l++)
            s->rings[l].n = s->rings[l].next = 0;
    pthread_mutex_unlock(&s->lock);
}

static const st_attention_ops sq_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = sq_configure,
    .cache_budget = sq_cache_budget,
    .plan = sq_plan,
    .retain = NULL,
    .on_entropy = NULL,
    .on_attention = NULL,
    .reset = sq_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "squeezed", "1.0.0",
          "Squeezed Attention: clustered keys of a fixed context, read by centroid score",
          sq_create, sq_destroy, &sq_ops, NULL);
