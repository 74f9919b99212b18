/*
 * sampler `penalties`: llama.cpp's repetition penalties (repeat from Keskar
 * et al., 2019, CTRL; frequency and presence from OpenAI's API). For every
 * candidate whose token occurs c > 0 times among the last `last_n` accepted
 * tokens (prompt tokens included):
 *     logit = logit <= 0 ? logit * repeat : logit / repeat
 *     logit -= c * frequency + presence
 * The history is a ring of the last `last_n` tokens plus a count per token
 * id, so apply costs O(candidates) whatever last_n is.
 */
#include <string.h>

#include "../candidates.h"

/* Token ids above this are refused (a count table that large is a bug). */
#define PEN_MAX_TOKEN (1 << 24)

typedef struct penalties {
    const st_host_services *host;
    float repeat, frequency, presence;
    size_t last_n;
    int32_t *ring;      /* [last_n] */
    size_t ring_len;    /* tokens in the ring (<= last_n) */
    size_t ring_head;   /* next write position */
    uint32_t *counts;   /* [n_counts] occurrences in the ring per token id */
    size_t n_counts;
} penalties;

static st_status pen_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    double repeat = st_param_float(params, "repeat"), freq = st_param_float(params, "frequency"),
           presence = st_param_float(params, "presence");
    int64_t last_n = st_param_int(params, "last_n");
    penalties *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "penalties: out of memory");
    s->host = host;
    s->repeat = (float)repeat;
    s->frequency = (float)freq;
    s->presence = (float)presence;
    s->last_n = (size_t)last_n;
    if (last_n > 0) {
        s->ring = host->alloc(host->host, (size_t)last_n * sizeof *s->ring);
        if (!s->ring) {
            host->free(host->host, s);
            return host->error(err, ST_E_NOMEM, "penalties: out of memory");
        }
    }
    *inst = s;
    return ST_OK;
}

static void pen_destroy(void *inst)
{
    penalties *s = inst;
    if (!s)
        return;
    s->host->free(s->host->host, s->ring);
    s->host->free(s->host->host, s->counts);
    s->host->free(s->host->host, s);
}

static bool pen_is_off(const penalties *s)
{
    return s->last_n == 0 ||
           (s->repeat == 1.0f && s->frequency == 0.0f && s->presence == 0.0f);
}

static st_status pen_apply(void *inst, st_candidates *c, st_error *err)
{
    penalties *s = inst;
    if (pen_is_off(s) || s->ring_len == 0)
        return ST_OK;
    bool changed = false;
    for (size_t i = 0; i < c->size; i++) {
        int32_t id = c->data[i].id;
        if (id < 0 || (size_t)id >= s->n_counts || s->counts[id] == 0)
            continue;
        uint32_t n = s->counts[id];
        float l = c->data[i].logit;
        l = l <= 0.0f ? l * s->repeat : l / s->repeat;
        l -= (float)n * s->frequency + s->presence;
        c->data[i].logit = l;
        changed = true;
    }
    if (changed)
        c->sorted = false;
    return ST_OK;
}

static st_status pen_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    penalties *s = inst;
    if (s->last_n == 0)
        return ST_OK;
    if (token < 0 || token >= PEN_MAX_TOKEN)
        return s->host->error(err, ST_E_RANGE, "penalties: token id %d is out of range [0, %d)",
                              (int)token, PEN_MAX_TOKEN);
    if ((size_t)token >= s->n_counts) {
        size_t n = s->n_counts ? s->n_counts : 1024;
        while (n <= (size_t)token)
            n *= 2;
        uint32_t *grown = s->host->realloc(s->host->host, s->counts, n * sizeof *grown);
        if (!grown)
            return s->host->error(err, ST_E_NOMEM, "penalties: out of memory");
        memset(grown + s->n_counts, 0, (n - s->n_counts) * sizeof *grown);
        s->counts = grown;
        s->n_counts = n;
    }
    if (s->ring_len == s->last_n) {
        /* The ring is full: the oldest token (at head) falls out. */
        s->counts[s->ring[s->ring_head]]--;
    } else {
        s->ring_len++;
    }
    s->ring[s->ring_head] = token;
    s->ring_head = (s->ring_head + 1) % s->last_n;
    s->counts[token]++;
    return ST_OK;
}

static void pen_reset(void *inst, uint64_t seed)
{
    penalties *s = inst;
    s->ring_len = 0;
    s->ring_head = 0;
    if (s->counts)
        memset(s->counts, 0, s->n_counts * sizeof *s->counts);
}

static const st_sampler_ops pen_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = pen_apply,
    .accept = pen_accept,
    .reset = pen_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "penalties", "1.0.0",
          "Repetition, frequency and presence penalties over the last tokens",
          pen_create, pen_destroy, &pen_ops, NULL);
