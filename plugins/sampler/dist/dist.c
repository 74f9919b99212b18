/*
 * sampler `dist`: the final random pick, as llama.cpp's dist sampler: a
 * stable softmax over the current candidates (filling `p`), then one draw
 * from that distribution. The RNG is xoshiro256** (Blackman & Vigna, 2018)
 * seeded through splitmix64, so the same seed gives the same sequence of
 * picks on every platform. A uniform double u in [0, 1) comes from the top
 * 53 bits; the pick is the first candidate whose cumulative probability
 * exceeds u (in array order).
 *
 * Seed: the `seed` parameter when >= 0, else the seed reset() receives (the
 * request's). Before the first reset the RNG is seeded with `seed`, or 0.
 */
#include "../candidates.h"

typedef struct dist {
    const st_host_services *host;
    int64_t seed_param;
    uint64_t s[4];
} dist;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro256ss(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void dist_seed(dist *d, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        d->s[i] = splitmix64(&x);
}

static st_status dist_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    int64_t seed = st_param_int(params, "seed");
    dist *d = host->calloc(host->host, 1, sizeof *d);
    if (!d)
        return host->error(err, ST_E_NOMEM, "dist: out of memory");
    d->host = host;
    d->seed_param = seed;
    dist_seed(d, seed >= 0 ? (uint64_t)seed : 0);
    *inst = d;
    return ST_OK;
}

static void dist_destroy(void *inst)
{
    dist *d = inst;
    if (d)
        d->host->free(d->host->host, d);
}

static st_status dist_apply(void *inst, st_candidates *c, st_error *err)
{
    dist *d = inst;
    if (!c || c->size == 0)
        return d->host->error(err, ST_E_INVALID, "dist: no candidates to pick from");
    if (!st_cand_softmax(c))
        return d->host->error(err, ST_E_INVALID,
                              "dist: every candidate is masked (no finite logit)");
    double total = 0.0;
    for (size_t i = 0; i < c->size; i++)
        total += c->data[i].p;
    double u = (double)(xoshiro256ss(d->s) >> 11) * 0x1.0p-53 * total;
    double cum = 0.0;
    int64_t pick = -1;
    for (size_t i = 0; i < c->size; i++) {
        if (c->data[i].p <= 0.0f)
            continue;
        pick = (int64_t)i; /* the last positive one absorbs rounding */
        cum += c->data[i].p;
        if (u < cum)
            break;
    }
    c->selected = pick;
    return ST_OK;
}

static st_status dist_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return ST_OK;
}

static void dist_reset(void *inst, uint64_t seed)
{
    dist *d = inst;
    dist_seed(d, d->seed_param >= 0 ? (uint64_t)d->seed_param : seed);
}

static const st_sampler_ops dist_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = dist_apply,
    .accept = dist_accept,
    .reset = dist_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "dist", "1.0.0",
          "Draws the next token from the softmax of the candidates with a seeded RNG",
          dist_create, dist_destroy, &dist_ops, NULL);
