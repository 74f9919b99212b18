/*
 * sampler `length`: target-length control after Ruler's TLG task. The
 * answer should have a word count in (lo, hi] around `target_words`:
 * before lo the end-of-generation tokens are masked, inside the interval
 * their logits rise linearly (eos_bias at hi), and once the count reaches
 * hi only they are left. Words are counted as \w+ runs over the bytes of
 * the accepted tokens (letters, digits, _ and every non-ASCII byte, so a
 * UTF-8 letter counts as a word character). It edits logits: put it
 * before the picking sampler.
 */
#include <string.h>

#include <stretch/params.h>

#include "../candidates.h"

#define LENGTH_EOG_MAX 8

typedef struct length {
    const st_host_services *host;
    const st_host_vocab_v1 *vocab;
    int32_t eog[LENGTH_EOG_MAX];
    size_t n_eog;
    long lo, hi;
    double bias;
    long words;
    bool in_word;
} length;

/* Ruler's intervals (lo, hi] per target level, precise then flexible;
 * the last level (> 800) is open above. */
static const struct { long target, plo, phi, flo, fhi; } levels[] = {
    {10, 0, 20, 0, 20},       {30, 20, 40, 20, 40},     {50, 40, 60, 40, 60},
    {80, 70, 90, 60, 100},    {150, 130, 170, 100, 200}, {300, 280, 320, 200, 400},
    {500, 450, 550, 400, 600}, {700, 630, 770, 600, 800},
};

/* The interval for `target`: a listed level's own, else the nearest
 * level's scaled to the target. */
static void interval_of(long target, bool flexible, long *lo, long *hi)
{
    size_t best = 0;
    for (size_t i = 1; i < sizeof levels / sizeof levels[0]; i++)
        if (labs(levels[i].target - target) < labs(levels[best].target - target))
            best = i;
    double l = flexible ? levels[best].flo : levels[best].plo;
    double h = flexible ? levels[best].fhi : levels[best].phi;
    double scale = (double)target / (double)levels[best].target;
    *lo = (long)(l * scale + 0.5);
    *hi = (long)(h * scale + 0.5);
    if (*hi <= *lo)
        *hi = *lo + 1;
}

static bool is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           c == '_' || c >= 0x80;
}

static bool is_eog(const length *l, int32_t id)
{
    for (size_t i = 0; i < l->n_eog; i++)
        if (l->eog[i] == id)
            return true;
    return false;
}

static st_status length_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    const st_host_vocab_v1 *v =
        host->get_extension ? host->get_extension(host->host, ST_HOST_VOCAB_V1) : NULL;
    if (!v || v->struct_size < sizeof *v)
        return host->error(err, ST_E_UNAVAILABLE,
                           "length: needs the token bytes of the vocabulary (%s), which this "
                           "host does not offer: run it in an engine with a tokenizer",
                           ST_HOST_VOCAB_V1);
    length *l = host->calloc(host->host, 1, sizeof *l);
    if (!l)
        return host->error(err, ST_E_NOMEM, "length: out of memory");
    l->host = host;
    l->vocab = v;
    l->n_eog = v->eog_tokens(host->host, l->eog, LENGTH_EOG_MAX);
    if (l->n_eog > LENGTH_EOG_MAX)
        l->n_eog = LENGTH_EOG_MAX;
    if (l->n_eog == 0) {
        host->free(host->host, l);
        return host->error(err, ST_E_INVALID, "length: the vocabulary has no "
                                              "end-of-generation token to steer");
    }
    interval_of(st_param_int(params, "target_words"), st_param_is(params, "interval", "flexible"),
                &l->lo, &l->hi);
    l->bias = st_param_float(params, "eos_bias");
    host->log(host->host, ST_LOG_DEBUG, "length", "target interval (%ld, %ld] words", l->lo,
              l->hi);
    *inst = l;
    return ST_OK;
}

static void length_destroy(void *inst)
{
    length *l = inst;
    if (l)
        l->host->free(l->host->host, l);
}

static st_status length_apply(void *inst, st_candidates *c, st_error *err)
{
    length *l = inst;
    if (!c || c->size == 0)
        return ST_OK;
    bool done = l->words >= l->hi;
    size_t kept = 0;
    for (size_t i = 0; i < c->size; i++) {
        st_candidate *x = &c->data[i];
        bool eog = is_eog(l, x->id);
        if (done && !eog)
            continue;   /* at hi only the end is left */
        if (eog && !done) {
            if (l->words <= l->lo)
                continue;   /* too short to end */
            x->logit += (float)(l->bias * (double)(l->words - l->lo) / (double)(l->hi - l->lo));
        }
        c->data[kept++] = *x;
    }
    if (kept == 0) {
        /* At hi the candidates held no end-of-generation token: a
         * truncating sampler ran first and dropped it. */
        return l->host->error(err, ST_E_INVALID,
                              "length: no candidate is left (put length before samplers that "
                              "truncate, such as top-k)");
    }
    if (kept != c->size || l->words > l->lo) {
        c->sorted = false;
        c->selected = -1;
    }
    c->size = kept;
    return ST_OK;
}

static st_status length_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    length *l = inst;
    if (is_prompt || is_eog(l, token))
        return ST_OK;
    const char *b;
    size_t n;
    bool special;
    st_status st = l->vocab->token_bytes(l->host->host, token, &b, &n, &special, err);
    if (st != ST_OK || special)
        return st;
    for (size_t i = 0; i < n; i++) {
        bool w = is_word_byte((unsigned char)b[i]);
        if (w && !l->in_word)
            l->words++;
        l->in_word = w;
    }
    return ST_OK;
}

static void length_reset(void *inst, uint64_t seed)
{
    length *l = inst;
    (void)seed;
    l->words = 0;
    l->in_word = false;
}

static const st_sampler_ops length_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = length_apply,
    .accept = length_accept,
    .reset = length_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "length", "0.1.0",
          "Steers the end of generation so the word count lands in a target interval",
          length_create, length_destroy, &length_ops, NULL);
