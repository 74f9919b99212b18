/*
 * st_engine_options as ABI 1.2 grew it: the caller's struct_size is
 * honoured, plugin_dirs are searched, log receives every line, numerics
 * overrides $STRETCH_NUMERICS.
 */
#include <criterion/criterion.h>
#include <stddef.h>
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
    cr_assert_eq(st_tiny_model_in_tmp("st_engine_opts", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

TestSuite(engine_options, .init = make_model, .fini = cleanup);

static const char *manifest(const char *sampler)
{
    static char path[320];
    snprintf(path, sizeof path, "%s/%s.yaml", dir, sampler);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "format: 1\nmodel: %s\ncontext: 64\nthreads: 1\n"
            "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
            "attention: {plugin: dense}\nsamplers:\n  - plugin: %s\n",
            model_path, sampler);
    fclose(f);
    return path;
}

Test(engine_options, caller_struct_size_is_honoured)
{
    /* A caller built against the 1.0-1.1 headers: only its fields are
     * read, whatever lies after them. */
    struct {
        st_engine_options o;
        unsigned char junk[64];
    } old;
    memset(&old, 0xA5, sizeof old);
    old.o.struct_size = (uint32_t)(offsetof(st_engine_options, model) + sizeof(const char *));
    old.o.n_threads = 1;
    old.o.context = 0;
    old.o.model = NULL;
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(manifest("greedy"), &old.o, &e, &err), ST_OK, "%s", err.message);
    st_engine_close(e);

    st_engine_options bad = {.struct_size = 4};
    cr_assert_eq(st_engine_open(manifest("greedy"), &bad, &e, &err), ST_E_ABI);
    cr_assert_null(e);
    cr_assert(strstr(err.message, "struct_size") != NULL, "%s", err.message);
}

typedef struct log_lines {
    int n;
    int n_info_from_plugin;
} log_lines;

static void on_log(void *user, st_log_level level, const char *source, const char *message)
{
    log_lines *l = user;
    l->n++;
    if (level == ST_LOG_INFO && source && strcmp(source, "logging-sampler") == 0 &&
        strstr(message, "created with margin 0.5"))
        l->n_info_from_plugin++;
}

Test(engine_options, plugin_dirs_are_searched_and_log_gets_every_line)
{
    const char *m = manifest("logging-sampler");
    st_engine *e = NULL;
    st_error err = {0};
    st_engine_options o = {.struct_size = sizeof o};
    cr_assert_neq(st_engine_open(m, &o, &e, &err), ST_OK, "found without plugin_dirs");
    cr_assert(strstr(err.message, "logging-sampler") != NULL, "%s", err.message);

    const char *dirs[] = {ST_TEST_EXTRA_PLUGINS};
    log_lines lines = {0};
    o.plugin_dirs = dirs;
    o.n_plugin_dirs = 1;
    o.log = on_log;
    o.log_user = &lines;
    cr_assert_eq(st_engine_open(m, &o, &e, &err), ST_OK, "%s", err.message);
    /* INFO is below the stderr default (warn): the sink still gets it. */
    cr_assert_eq(lines.n_info_from_plugin, 1, "%d lines", lines.n);
    st_engine_close(e);
}

/* A constraint sampler is made once for a request's check and the
 * requests that repeat it (compiling a schema or grammar is most of a
 * short request's set-up), on the engine and on a sequence alike; another
 * constraint is made afresh. */
Test(engine_options, a_repeated_constraint_is_made_once)
{
    const char *dirs[] = {ST_TEST_EXTRA_PLUGINS};
    log_lines lines = {0};
    st_engine_options o = {.struct_size = sizeof o, .plugin_dirs = dirs, .n_plugin_dirs = 1,
                           .log = on_log, .log_user = &lines};
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(manifest("greedy"), &o, &e, &err), ST_OK, "%s", err.message);
    int32_t prompt[4] = {20, 21, 22, 23};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 3,
                             .constraint = "logging-sampler"};
    cr_assert_eq(st_engine_check_request(e, &gp, &err), ST_OK, "%s", err.message);
    cr_assert_eq(lines.n_info_from_plugin, 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(st_engine_generate(e, prompt, 4, &gp, NULL, NULL, NULL, &err), ST_OK, "%s",
                     err.message);
    cr_assert_eq(lines.n_info_from_plugin, 1, "the check's sampler served all three");
    /* A request without it leaves it kept. */
    st_generate_params plain = {.struct_size = sizeof plain, .max_tokens = 2};
    cr_assert_eq(st_engine_generate(e, prompt, 4, &plain, NULL, NULL, NULL, &err), ST_OK);
    cr_assert_eq(st_engine_generate(e, prompt, 4, &gp, NULL, NULL, NULL, &err), ST_OK);
    cr_assert_eq(lines.n_info_from_plugin, 1);
    /* A sequence keeps its own. */
    st_sequence *s = NULL;
    cr_assert_eq(st_sequence_open(e, &s, &err), ST_OK, "%s", err.message);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(st_sequence_start(s, prompt, 4, &gp, NULL, NULL, &err), ST_OK, "%s",
                     err.message);
        for (uint32_t active = 1; active;)
            cr_assert_eq(st_engine_step(e, &active, &err), ST_OK, "%s", err.message);
    }
    cr_assert_eq(lines.n_info_from_plugin, 2, "one for the sequence's two requests");
    st_sequence_close(s);
    st_engine_close(e);
}

/* Whole-sequence scores of a fixed token run. */
static void score_with(st_numerics numerics, const char *env, float *nll, size_t n)
{
    if (env)
        setenv("STRETCH_NUMERICS", env, 1);
    else
        unsetenv("STRETCH_NUMERICS");
    st_engine_options o = {.struct_size = sizeof o, .numerics = numerics};
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(manifest("greedy"), &o, &e, &err), ST_OK, "%s", err.message);
    int32_t tokens[32];
    for (size_t i = 0; i < n; i++)
        tokens[i] = (int32_t)(7 + 13 * i) % 200;
    cr_assert_eq(st_engine_score(e, tokens, n, 0, nll, NULL, NULL, &err), ST_OK, "%s",
                 err.message);
    st_engine_close(e);
    unsetenv("STRETCH_NUMERICS");
}

Test(engine_options, numerics_option_overrides_the_environment)
{
    enum { N = 32 };
    float fast[N], fast_over_env[N], ggml[N], ggml_env[N];
    score_with(ST_NUMERICS_DEFAULT, NULL, fast, N);
    score_with(ST_NUMERICS_FAST, "ggml", fast_over_env, N);
    score_with(ST_NUMERICS_GGML, NULL, ggml, N);
    score_with(ST_NUMERICS_DEFAULT, "ggml", ggml_env, N);
    /* The two modes round differently on this model, so the equalities
     * below can only hold when the option really decided. */
    cr_assert_arr_neq(fast, ggml, sizeof fast);
    cr_assert_arr_eq(fast, fast_over_env, sizeof fast);
    cr_assert_arr_eq(ggml, ggml_env, sizeof ggml);
}

/* Host-filled structs: written up to the caller's struct_size, no further;
 * the 1.2 fields give the whole sampler chain. */
Test(engine_options, info_and_stats_respect_the_callers_size)
{
    const char *path = manifest("greedy");
    /* a two-sampler chain */
    char chain[400];
    snprintf(chain, sizeof chain, "%s/chain.yaml", dir);
    FILE *f = fopen(chain, "w");
    cr_assert(f);
    fprintf(f, "format: 1\nextends: %s\nsamplers:\n  - plugin: top-k\n  - plugin: greedy\n", path);
    fclose(f);
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(chain, NULL, &e, &err), ST_OK, "%s", err.message);

    struct {
        st_engine_info info;
        unsigned char guard[32];
    } old;
    memset(&old, 0x5A, sizeof old);
    size_t v1_0 = offsetof(st_engine_info, plugin_names) + sizeof old.info.plugin_names;
    old.info.struct_size = (uint32_t)v1_0;
    st_engine_get_info(e, &old.info);
    cr_assert_eq(old.info.struct_size, v1_0);
    cr_assert_gt(old.info.n_vocab, 0u);
    const unsigned char *tail = (const unsigned char *)&old.info + v1_0;
    for (size_t i = 0; i < sizeof old - v1_0; i++)
        cr_assert_eq(tail[i], 0x5A, "byte %zu past the caller's struct was written", i);

    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    cr_assert_eq(info.n_samplers, 2u);
    cr_assert_str_eq(info.sampler_names[0], "top-k");
    cr_assert_str_eq(info.sampler_names[1], "greedy");

    int32_t prompt[4] = {10, 11, 12, 13};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 2, .ignore_eos = true};
    struct {
        st_generate_stats stats;
        unsigned char guard[32];
    } s;
    memset(&s, 0x5A, sizeof s);
    s.stats.struct_size = 0; /* "the 1.0 size" */
    cr_assert_eq(st_engine_generate(e, prompt, 4, &gp, NULL, NULL, &s.stats, &err), ST_OK, "%s",
                 err.message);
    size_t stats_1_0 = offsetof(st_generate_stats, cancelled) + sizeof(bool);
    cr_assert_eq(s.stats.struct_size, stats_1_0);
    cr_assert_eq(s.stats.n_generated, 2u);
    tail = (const unsigned char *)&s.stats + stats_1_0;
    for (size_t i = 0; i < sizeof s - stats_1_0; i++)
        cr_assert_eq(tail[i], 0x5A, "stats byte %zu past the 1.0 struct was written", i);
    st_engine_close(e);
}
