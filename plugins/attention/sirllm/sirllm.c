/*
 * attention `sirllm`: SirLLM (Yao et al., 2024, "SirLLM: Streaming Infinite
 * Retentive LLM"). StreamingLLM's cache, but what survives an eviction is
 * chosen by token entropy: -log p(x_t | x_<t) from the model's own logits
 * (the host computes it and calls on_entropy; the first token gets the
 * block's maximum). On overflow the cache keeps
 *   - the first start_size tokens (attention sinks),
 *   - the entropy_size tokens of highest (decayed) entropy among the rest,
 *   - the recent_size most recent tokens (the newest always),
 * in their original order; after each eviction every kept token's entropy
 * is multiplied by decay_ratio, so old surprises fade and newer ones win.
 *
 * Positions shift as in streaming: keys are scored at their cache (slot)
 * positions (ST_POS_SLOT), so no distance exceeds the cache size plus one
 * block. Every cached key at or before the query is visible.
 */
#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct sirllm {
    const st_host_services *host;
    uint32_t start_size;
    uint32_t recent_size;
    uint32_t entropy_size;
    float decay_ratio;
    bool configured;
    uint32_t budget;
    /* Entropy of each cache slot, parallel to the cache: on_entropy fills
     * it, retain compacts it exactly as the host will compact the cache. */
    float *ent;
    uint32_t n_ent;   /* slots with a known entropy (the rest count as 0) */
    uint32_t cap_ent;
    /* retain's scratch: candidate slot indices, sorted by entropy. */
    uint32_t *order;
    uint32_t cap_order;
} sirllm;

static st_status sir_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    uint32_t start = (uint32_t)st_param_int(params, "start_size");
    uint32_t recent = (uint32_t)st_param_int(params, "recent_size");
    uint32_t entropy = (uint32_t)st_param_int(params, "entropy_size");
    double decay = st_param_float(params, "decay_ratio");
    /* The newest token is always kept, so there must be room for it beside
     * the start tokens. */
    if ((uint64_t)recent + entropy == 0)
        return host->error(err, ST_E_RANGE,
                           "sirllm: recent_size + entropy_size must be at least 1 (the newest "
                           "token is always kept)");
    sirllm *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "sirllm: out of memory");
    s->host = host;
    s->start_size = start;
    s->recent_size = recent;
    s->entropy_size = entropy;
    s->decay_ratio = (float)decay;
    *inst = s;
    return ST_OK;
}

static void sir_destroy(void *inst)
{
    sirllm *s = inst;
    if (!s)
        return;
    s->host->free(s->host->host, s->ent);
    s->host->free(s->host->host, s->order);
    s->host->free(s->host->host, s);
}

static st_status sir_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                               int32_t *weights_layer, st_error *err)
{
    sirllm *s = inst;
    *needs = ST_ATTN_NEEDS_ENTROPY;
    *weights_layer = -1;
    uint64_t budget = (uint64_t)s->start_size + s->recent_size + s->entropy_size;
    /* The context is the most tokens the caller will feed: a smaller one
     * caps the cache (entropy slots go first, then recent ones). */
    if (shape->n_ctx && budget > shape->n_ctx)
        budget = shape->n_ctx;
    if (budget > UINT32_MAX - 1024)
        return s->host->error(err, ST_E_RANGE, "sirllm: a cache of %llu slots is too large",
                              (unsigned long long)budget);
    s->budget = (uint32_t)budget;
    s->configured = true;
    return ST_OK;
}

static uint32_t sir_cache_budget(void *inst, uint32_t n_ctx)
{
    sirllm *s = inst;
    if (!s->configured)
        return n_ctx;
    if (n_ctx > 0 && s->budget >= n_ctx)
        return n_ctx;
    return s->budget;
}

static st_status sir_plan(void *inst, const st_attn_query *q,
                          const st_attn_plan_builder *builder, st_error *err)
{
    sirllm *s = inst;
    const st_kv_view *kv = q->kv;
    if (!kv || q->n_q == 0 || kv->n_slots == 0)
        return ST_OK;
    /* Causal by true position (which also hides the block's later keys),
     * rotated by slot distance. */
    st_attn_range all = {
        .head = ST_ALL_HEADS,
        .k_begin = 0,
        .k_end = kv->n_slots,
        .min_dist = 0,
        .max_dist = ST_DIST_MAX,
        .pos_mode = ST_POS_SLOT,
    };
    st_status st = builder->add_range(builder->host, &all);
    if (st != ST_OK)
        return s->host->error(err, st, "sirllm: the host refused the cache range");
    return ST_OK;
}

/* Grow a host-allocated array to at least `need` elements of `size`. */
static bool grow(sirllm *s, void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return true;
    uint32_t c = *cap ? *cap : 256;
    while (c < need)
        c = c > UINT32_MAX / 2 ? need : c * 2;
    void *q = s->host->realloc(s->host->host, *p, (size_t)c * size);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

static void sir_on_entropy(void *inst, const uint32_t *slots, const float *entropy, size_t n)
{
    sirllm *s = inst;
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = slots[i];
        if (slot == UINT32_MAX || !grow(s, (void **)&s->ent, &s->cap_ent, slot + 1, sizeof(float)))
            continue; /* out of memory: the token counts as entropy 0 */
        for (uint32_t j = s->n_ent; j < slot; j++)
            s->ent[j] = 0.0f;
        if (slot >= s->n_ent)
            s->n_ent = slot + 1;
        s->ent[slot] = entropy[i];
    }
}

static float entropy_of(const sirllm *s, uint32_t slot)
{
    return slot < s->n_ent ? s->ent[slot] : 0.0f;
}

/* Heap on `order` by entropy, smallest at the root; a tie puts the older
 * slot nearer the root, so the newer one is preferred. */
static bool less(const sirllm *s, uint32_t a, uint32_t b)
{
    float ea = entropy_of(s, a), eb = entropy_of(s, b);
    return ea < eb || (ea == eb && a < b);
}

static void sift_down(const sirllm *s, uint32_t *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && less(s, h[l], h[m]))
            m = l;
        if (r < n && less(s, h[r], h[m]))
            m = r;
        if (m == i)
            return;
        uint32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static st_status sir_retain(void *inst, const st_kv_view *kv, uint32_t n_new, uint8_t *keep,
                            st_error *err)
{
    sirllm *s = inst;
    if (!s->configured)
        return s->host->error(err, ST_E_INVALID, "sirllm: retain before configure");
    uint32_t n = kv->n_slots;
    for (uint32_t i = 0; i < n; i++)
        keep[i] = 1;
    if (n <= s->budget) {
        if (s->n_ent > n)
            s->n_ent = n;
        return ST_OK;
    }
    /* The newest token always stays; with recent_size 0 it takes one of
     * the entropy slots. A budget capped by the context loses entropy
     * slots first, then recent ones. */
    uint32_t start = s->start_size < s->budget - 1 ? s->start_size : s->budget - 1;
    uint32_t recent = s->recent_size ? s->recent_size : 1;
    if (recent > s->budget - start)
        recent = s->budget - start;
    uint32_t n_top = s->budget - start - recent;
    uint32_t cand_end = n - recent; /* candidates [start, cand_end): more than n_top */

    /* The n_top highest entropies among the candidates: a min-heap of the
     * best so far. */
    if ((n_top > 0 &&
         !grow(s, (void **)&s->order, &s->cap_order, n_top, sizeof(uint32_t))) ||
        !grow(s, (void **)&s->ent, &s->cap_ent, n, sizeof(float)))
        return s->host->error(err, ST_E_NOMEM, "sirllm: out of memory");
    uint32_t *h = s->order, nh = 0;
    for (uint32_t i = start; i < cand_end; i++)
        keep[i] = 0;
    for (uint32_t i = start; i < cand_end && n_top > 0; i++) {
        if (nh < n_top) {
            h[nh++] = i;
            if (nh == n_top)
                for (uint32_t k = nh / 2; k-- > 0;)
                    sift_down(s, h, nh, k);
        } else if (less(s, h[0], i)) {
            h[0] = i;
            sift_down(s, h, nh, 0);
        }
    }
    for (uint32_t k = 0; k < nh; k++)
        keep[h[k]] = 1;

    /* Compact the entropies as the host will compact the cache, decaying
     * every kept one. */
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (keep[i])
            s->ent[m++] = entropy_of(s, i) * s->decay_ratio;
    s->n_ent = m;
    return ST_OK;
}

static void sir_reset(void *inst)
{
    sirllm *s = inst;
    s->n_ent = 0;
}

static const st_attention_ops sir_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = sir_configure,
    .cache_budget = sir_cache_budget,
    .plan = sir_plan,
    .retain = sir_retain,
    .on_entropy = sir_on_entropy,
    .on_attention = NULL,
    .reset = sir_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "sirllm", "1.0.0",
          "SirLLM: start tokens + high-entropy tokens + recent window, positions within the cache",
          sir_create, sir_destroy, &sir_ops, NULL);
