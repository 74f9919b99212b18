/*
 * The engine end to end on a tiny generated model: the public API
 * (stretch.h) from manifest to tokens, checked for internal consistency
 * (prefill vs decode, chunked vs whole scoring, logits vs scores) and for
 * clean failures.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stretch/stretch.h>

#include "tiny_model.h"

static char dir[256];
static char model_path[300];

static void make_model(void)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = ST_GGML_Q8_0;
    spec.n_ctx = 256;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_engine_test", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

/* Write a strategy manifest; `samplers` is the YAML of the chain. */
static const char *write_manifest(const char *name, const char *model, int context,
                                  const char *samplers)
{
    static char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "format: 1\nmodel: %s\ncontext: %d\nthreads: 2\n"
            "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
            "attention: {plugin: dense}\nsamplers:\n%s",
            model, context, samplers);
    fclose(f);
    return path;
}

static st_engine *open_engine(const char *samplers)
{
    const char *m = write_manifest("s.yaml", model_path, 128, samplers);
    st_engine *e = NULL;
    st_error err = {0};
    st_status st = st_engine_open(m, NULL, &e, &err);
    cr_assert_eq(st, ST_OK, "open failed: %s", err.message);
    return e;
}

static void tokenize(st_engine *e, const char *text, int32_t **ids, size_t *n)
{
    st_error err = {0};
    cr_assert_eq(st_engine_tokenize(e, text, strlen(text), ST_ENCODE_PARSE_SPECIAL, ids, n,
                                    &err), ST_OK, "%s", err.message);
}

typedef struct collected {
    int32_t tokens[64];
    size_t n;
    st_engine *cancel_engine;
    size_t cancel_at;
} collected;

static int collect(void *user, int32_t token, const char *text, size_t len)
{
    collected *c = user;
    (void)text;
    (void)len;
    if (token >= 0 && c->n < 64)
        c->tokens[c->n++] = token;
    if (c->cancel_engine && c->n == c->cancel_at)
        st_engine_cancel(c->cancel_engine);
    return 0;
}

static int argmax(const float *v, uint32_t n)
{
    int best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = (int)i;
    return best;
}

TestSuite(engine, .init = make_model, .fini = cleanup);

Test(engine, greedy_decode_agrees_with_prefill)
{
    st_engine *e = open_engine("  - plugin: greedy\n");
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    int32_t *ids;
    size_t n;
    tokenize(e, "hello world, the code is", &ids, &n);
    cr_assert_gt(n, 2);
    collected c = {0};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 10, .ignore_eos = true};
    st_generate_stats stats = {.struct_size = sizeof stats};
    st_error err = {0};
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, &c, &stats, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(c.n, 10);
    cr_assert_eq(stats.n_generated, 10);
    cr_assert_eq(stats.n_prompt, n);

    /* Each decoded token must be the argmax of a fresh prefill of the
     * prompt plus the tokens before it: the GEMM (prefill) and GEMV
     * (decode) paths and the cache agree. */
    float *logits = malloc(sizeof(float) * info.n_vocab);
    int32_t *seq = malloc(sizeof(int32_t) * (n + 10));
    memcpy(seq, ids, n * sizeof *seq);
    for (size_t i = 0; i < c.n; i++) {
        collected c2 = {0};
        st_generate_params g1 = {.struct_size = sizeof g1, .max_tokens = 1,
                                 .ignore_eos = true, .first_logits = logits};
        cr_assert_eq(st_engine_generate(e, seq, n + i, &g1, collect, &c2, NULL, &err), ST_OK);
        int best = argmax(logits, info.n_vocab);
        cr_assert(fabsf(logits[best] - logits[c.tokens[i]]) < 1e-3f * (1.0f + fabsf(logits[best])),
                  "step %zu: decode picked %d, prefill argmax %d", i, c.tokens[i], best);
        seq[n + i] = c.tokens[i];
    }
    free(seq);
    free(logits);
    st_free(ids);
    st_engine_close(e);
}

Test(engine, score_matches_logits_and_is_chunk_invariant)
{
    st_engine *e = open_engine("  - plugin: greedy\n");
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    int32_t *ids;
    size_t n;
    tokenize(e, "int main(void) { return 0; } // the quick brown fox jumps over it", &ids, &n);
    cr_assert_gt(n, 12);
    float *whole = malloc(sizeof(float) * n), *chunked = malloc(sizeof(float) * n);
    st_error err = {0};
    cr_assert_eq(st_engine_score(e, ids, n, 0, whole, NULL, NULL, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_engine_score(e, ids, n, 5, chunked, NULL, NULL, &err), ST_OK, "%s", err.message);
    cr_assert_float_eq(whole[0], 0.0f, 1e-9);
    for (size_t t = 1; t < n; t++) {
        cr_assert(whole[t] > 0.0f && isfinite(whole[t]));
        cr_assert(fabsf(whole[t] - chunked[t]) < 2e-3f * (1.0f + whole[t]),
                  "token %zu: whole %f chunked %f", t, whole[t], chunked[t]);
    }
    /* nll[t] = -log softmax(logits after ids[0..t))[ids[t]] */
    float *logits = malloc(sizeof(float) * info.n_vocab);
    size_t t = n / 2;
    st_generate_params g1 = {.struct_size = sizeof g1, .max_tokens = 1, .ignore_eos = true,
                             .first_logits = logits};
    cr_assert_eq(st_engine_generate(e, ids, t, &g1, NULL, NULL, NULL, &err), ST_OK);
    double max = logits[argmax(logits, info.n_vocab)], sum = 0;
    for (uint32_t i = 0; i < info.n_vocab; i++)
        sum += exp(logits[i] - max);
    double expect = log(sum) - (logits[ids[t]] - max);
    cr_assert(fabs(expect - whole[t]) < 2e-3 * (1.0 + expect), "nll %f, from logits %f",
              whole[t], expect);
    free(logits);
    free(whole);
    free(chunked);
    st_free(ids);
    st_engine_close(e);
}

Test(engine, cancel_stops_at_a_token_boundary)
{
    st_engine *e = open_engine("  - plugin: greedy\n");
    int32_t *ids;
    size_t n;
    tokenize(e, "once upon a time", &ids, &n);
    collected c = {.cancel_engine = e, .cancel_at = 3};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 20, .ignore_eos = true};
    st_generate_stats stats = {.struct_size = sizeof stats};
    st_error err = {0};
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, &c, &stats, &err), ST_E_CANCELLED);
    cr_assert(stats.cancelled);
    cr_assert_eq(c.n, 3);
    /* The engine is usable again after a cancel. */
    c = (collected){0};
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, &c, &stats, &err), ST_OK);
    cr_assert_eq(c.n, 20);
    st_free(ids);
    st_engine_close(e);
}

Test(engine, seeded_sampling_is_reproducible)
{
    st_engine *e = open_engine("  - {plugin: top-k, params: {k: 20}}\n  - plugin: dist\n");
    int32_t *ids;
    size_t n;
    tokenize(e, "the sky is", &ids, &n);
    collected a = {0}, b = {0};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 16, .seed = 42,
                             .ignore_eos = true};
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, &a, NULL, NULL), ST_OK);
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, &b, NULL, NULL), ST_OK);
    cr_assert_eq(a.n, 16);
    cr_assert_arr_eq(a.tokens, b.tokens, sizeof(int32_t) * 16);
    st_free(ids);
    st_engine_close(e);
}

Test(engine, chain_without_a_picker_is_an_error)
{
    st_engine *e = open_engine("  - {plugin: top-k, params: {k: 5}}\n");
    int32_t *ids;
    size_t n;
    tokenize(e, "abc", &ids, &n);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 4};
    st_error err = {0};
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, NULL, NULL, NULL, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "no sampler picked"), "%s", err.message);
    st_free(ids);
    st_engine_close(e);
}

Test(engine, full_context_is_refused_cleanly)
{
    const char *m = write_manifest("small.yaml", model_path, 16, "  - plugin: greedy\n");
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(m, NULL, &e, &err), ST_OK, "%s", err.message);
    int32_t prompt[24];
    for (int i = 0; i < 24; i++)
        prompt[i] = 100 + i;
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 4};
    cr_assert_eq(st_engine_generate(e, prompt, 24, &gp, NULL, NULL, NULL, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "context is full"), "%s", err.message);
    /* Out-of-vocabulary prompt ids are refused before any work. */
    prompt[0] = 1 << 30;
    cr_assert_eq(st_engine_generate(e, prompt, 4, &gp, NULL, NULL, NULL, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "outside the vocabulary"), "%s", err.message);
    st_engine_close(e);
}

Test(engine, open_errors_name_the_file)
{
    st_engine *e = NULL;
    st_error err = {0};
    const char *m = write_manifest("nomodel.yaml", "/nonexistent/model.gguf", 64,
                                   "  - plugin: greedy\n");
    cr_assert_neq(st_engine_open(m, NULL, &e, &err), ST_OK);
    cr_assert_null(e);
    cr_assert(strstr(err.message, "/nonexistent/model.gguf"), "%s", err.message);

    m = write_manifest("noplugin.yaml", model_path, 64, "  - plugin: no-such-sampler\n");
    memset(&err, 0, sizeof err);
    cr_assert_neq(st_engine_open(m, NULL, &e, &err), ST_OK);
    cr_assert(strstr(err.message, "noplugin.yaml:9:"), "%s", err.message);
    cr_assert(strstr(err.message, "no-such-sampler"), "%s", err.message);

    memset(&err, 0, sizeof err);
    cr_assert_neq(st_engine_open("/nonexistent/strategy.yaml", NULL, &e, &err), ST_OK);
    cr_assert(strstr(err.message, "/nonexistent/strategy.yaml"), "%s", err.message);
}

Test(engine, chat_prompt_uses_the_template)
{
    st_engine *e = open_engine("  - plugin: greedy\n");
    char *out = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_chat_prompt(e, "hi there", &out, &err), ST_OK, "%s", err.message);
    cr_assert(strstr(out, "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"),
              "%s", out);
    st_free(out);
    st_engine_close(e);
}

/* A backend the engine cannot open is refused naming the manifest and the
 * backend: in a build without OpenCL any `opencl` one (with how to get
 * it); with OpenCL, a device that does not exist (tests/opencl has the
 * rest). */
Test(engine, backend_that_cannot_open_is_refused_by_name)
{
#ifdef ST_HAVE_OPENCL
    const char *backend = "opencl:9:9";
#else
    const char *backend = "opencl";
#endif
    char path[300];
    snprintf(path, sizeof path, "%s/ocl.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "format: 1\nmodel: %s\nbackend: %s\ntokenizer: {plugin: bpe}\n"
               "positional-encoding: {plugin: rope}\nattention: {plugin: dense}\n"
               "samplers: [{plugin: greedy}]\n", model_path, backend);
    fclose(f);
    st_engine *e = NULL;
    st_error err = {0};
    st_status st = st_engine_open(path, NULL, &e, &err);
    cr_assert_neq(st, ST_OK);
    cr_assert_null(e);
    char want[64];
    snprintf(want, sizeof want, "backend '%s'", backend);
    cr_assert(strstr(err.message, want), "%s", err.message);
    cr_assert(strstr(err.message, "ocl.yaml"), "%s", err.message);
#ifndef ST_HAVE_OPENCL
    cr_assert_eq(st, ST_E_UNAVAILABLE);
    cr_assert(strstr(err.message, "-DST_OPENCL=ON"), "%s", err.message);
#endif
}

/* `requires:` is the plugin's word that it cannot work without a feature;
 * st_engine_open itself refuses to create it without (only the CLI's
 * check looked before). A copy of greedy that requires OpenCL, which a
 * CPU strategy cannot give, found first on the path. */
Test(engine, open_refuses_a_plugin_whose_requirement_is_unmet)
{
    char plugins[300], cmd[1024];
    snprintf(plugins, sizeof plugins, "%s/needs/greedy", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s/sampler/greedy/greedy.so %s/", plugins,
             ST_TEST_PLUGIN_DIR, plugins);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char yaml[400];
    snprintf(yaml, sizeof yaml, "%s/plugin.yaml", plugins);
    FILE *f = fopen(yaml, "w");
    cr_assert_not_null(f);
    fputs("format: 1\nname: greedy\nkind: sampler\nversion: 1.0.0\nlibrary: greedy.so\n"
          "summary: greedy, but it says it needs OpenCL\nrequires: [opencl]\n", f);
    fclose(f);
    char path[400];
    snprintf(path, sizeof path, "%s/needs.yaml", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "format: 1\nmodel: %s\ncontext: 128\nthreads: 2\nplugin-dirs: [needs]\n"
               "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
               "attention: {plugin: dense}\nsamplers:\n  - plugin: greedy\n", model_path);
    fclose(f);

    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(path, NULL, &e, &err), ST_E_INVALID, "%s", err.message);
    cr_assert_null(e);
    char where[500];
    snprintf(where, sizeof where, "%s:10:13: sampler plugin 'greedy' requires 'opencl'",
             path);
    cr_assert(strstr(err.message, where) != NULL, "%s", err.message);
    cr_assert(strstr(err.message, "cannot give") != NULL, "%s", err.message);
}
