/*
 * The engine sizes each layer's KV cache by its own budget: with
 * pyramidkv's per-layer budgets (shrinking with depth) every layer holds
 * its budget + one 512-token block, so the cache is the sum of the
 * budgets, not the largest one times the layers. What the engine reports
 * (st_engine_info.kv_layer_bytes, kv_cache_bytes) is checked against the
 * paper's schedule written out here, and a sequence longer than every
 * layer's room is scored through the smaller layers.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/stretch.h>

#include "tiny_model.h"

#define N_LAYERS 6
#define BLOCK 512 /* the engine's block (engine.c) */

static char dir[256];
static char model_path[300];

static void make_model(void)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_layers = N_LAYERS;
    spec.n_ctx = 4096;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_kv_layer_bytes", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

static st_engine *open_with(const char *attention)
{
    char path[300];
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "format: 1\nmodel: %s\ncontext: 4096\nthreads: 2\nkv-type: f16\n"
            "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
            "attention: %s\nsamplers: [{plugin: greedy}]\n",
            model_path, attention);
    fclose(f);
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(path, NULL, &e, &err), ST_OK, "open failed: %s", err.message);
    return e;
}

/* The keys' layout the engines of a test are opened with (STRETCH_KV_KEYS):
 * keys in 16-slot blocks take whole blocks per head, values as many rows. */
static bool blocked_keys;

static void keys_in(const char *layout)
{
    setenv("STRETCH_KV_KEYS", layout, 1);
    blocked_keys = strcmp(layout, "blocks") == 0;
}

/* Bytes of a layer holding `slots` per KV head: keys and values in f16. */
static uint64_t layer_bytes(const st_engine_info *in, uint32_t slots)
{
    if (blocked_keys)
        slots = (slots + 15) / 16 * 16;
    return 2ull * in->n_kv_heads * slots * in->head_dim * 2;
}

/* Score n pseudo-random tokens: every layer evicts down to its budget
 * after each block, so the small layers run full. */
static void score_long(st_engine *e, const st_engine_info *in, size_t n)
{
    int32_t *tok = malloc(n * sizeof *tok);
    float *nll = malloc(n * sizeof *nll);
    cr_assert(tok && nll);
    uint64_t x = 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        tok[i] = (int32_t)(3 + (x >> 33) % (in->n_vocab - 3));
    }
    st_error err = {0};
    cr_assert_eq(st_engine_score(e, tok, n, 0, nll, NULL, NULL, &err), ST_OK, "%s", err.message);
    for (size_t i = 1; i < n; i++)
        cr_assert(isfinite(nll[i]) && nll[i] > 0, "nll[%zu] = %g", i, (double)nll[i]);
    free(tok);
    free(nll);
}

static void pyramid_budgets(void)
{
    st_engine *e = open_with("{plugin: pyramidkv, params: {budget: 256, window: 16, "
                             "kernel: 3, beta: 4}}");
    st_engine_info in = {.struct_size = sizeof in};
    st_engine_get_info(e, &in);
    cr_assert_eq(in.n_layers, N_LAYERS);
    cr_assert_not_null(in.kv_layer_bytes);
    /* PyramidKV's schedule: avg = budget - window, the top layer keeps
     * avg / beta, the bottom 2 avg - avg / beta, linear in between; the
     * window on top of each. */
    uint32_t avg = 256 - 16, lo = avg / 4, hi = 2 * avg - lo, step = (hi - lo) / (N_LAYERS - 1);
    uint64_t sum = 0;
    for (uint32_t l = 0; l < N_LAYERS; l++) {
        uint32_t budget = hi - l * step + 16;
        uint64_t want = layer_bytes(&in, budget + BLOCK);
        cr_assert_eq(in.kv_layer_bytes[l], want, "layer %u: %llu bytes, expected %llu "
                     "(budget %u + %u)", l, (unsigned long long)in.kv_layer_bytes[l],
                     (unsigned long long)want, budget, BLOCK);
        sum += want;
    }
    cr_assert_eq(in.kv_cache_bytes, sum);
    /* Less than every layer at the bottom layer's size, as before. */
    cr_assert_lt(in.kv_cache_bytes, N_LAYERS * in.kv_layer_bytes[0]);
    score_long(e, &in, 2048);
    st_engine_close(e);
}

Test(kv_layer_bytes, pyramidkv_layers_hold_their_own_budget, .init = make_model,
     .fini = cleanup)
{
    /* The budgets (+ the block) are not whole 16-slot blocks: blocked keys
     * round each layer up, rows do not. */
    keys_in("rows");
    pyramid_budgets();
    keys_in("blocks");
    pyramid_budgets();
}

Test(kv_layer_bytes, one_budget_sizes_every_layer_alike, .init = make_model, .fini = cleanup)
{
    st_engine *e = open_with("{plugin: h2o, params: {heavy: 64, recent: 64}}");
    st_engine_info in = {.struct_size = sizeof in};
    st_engine_get_info(e, &in);
    for (uint32_t l = 0; l < N_LAYERS; l++)
        cr_assert_eq(in.kv_layer_bytes[l], layer_bytes(&in, 128 + BLOCK), "layer %u", l);
    cr_assert_eq(in.kv_cache_bytes, N_LAYERS * layer_bytes(&in, 128 + BLOCK));
    score_long(e, &in, 1024);
    st_engine_close(e);

    e = open_with("{plugin: dense}");
    st_engine_get_info(e, &in);
    uint64_t sum = 0;
    for (uint32_t l = 0; l < N_LAYERS; l++) {
        cr_assert_eq(in.kv_layer_bytes[l], in.kv_layer_bytes[0], "layer %u", l);
        sum += in.kv_layer_bytes[l];
    }
    cr_assert_eq(in.kv_cache_bytes, sum);
    cr_assert_geq(in.kv_layer_bytes[0], layer_bytes(&in, 4096));
    st_engine_close(e);
}
