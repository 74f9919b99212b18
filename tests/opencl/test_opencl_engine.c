/*
 * The engine on the OpenCL backend, end to end on tiny generated models:
 * greedy continuations equal the CPU backend's for every weight type;
 * the backend and device come from the manifest or the options; a device
 * that matches nothing is refused with the devices there are; st_engine_info
 * says which device ran and where its kernels came from.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stretch/stretch.h>

#include "cl_fixture.h"
#include "tiny_model.h"

static char dir[256];
static char model_path[300];
static char cache[300];

static void make_model(st_ggml_type type)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = type;
    spec.n_ctx = 256;
    spec.n_heads = 6;     /* GQA 3: 6 query heads over 2 kv heads */
    spec.n_embd = 96;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_cl_engine", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    /* PoCL keeps its compiled kernels under XDG_CACHE_HOME too, so with
     * the test's own folder there each test compiled every kernel again
     * (10-15 s a test on 2 cores). A folder of the build's keeps PoCL's
     * between tests; stretch's own cache stays the test's. */
    static char pocl[400];
    snprintf(pocl, sizeof pocl, "%s/pocl-kcache", ST_TEST_BINARY_DIR);
    mkdir(pocl, 0700);
    setenv("POCL_CACHE_DIR", pocl, 0);
    setenv("XDG_CACHE_HOME", cache, 1);
    /* The device follows the CPU's 8-lane dot kernels (AVX2, and AVX-512
     * without its repacked 16-row path), so the CPU reference runs those:
     * on an AVX-512 machine its repacked kernels would sum in another
     * order (docs/opencl.md, "Numerics"). A no-op below AVX2. */
    setenv("STRETCH_ISA", "avx2", 1);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

/* The path is in a static buffer the next call overwrites: copy it to
 * keep two. */
static const char *write_manifest(const char *name, const char *backend_lines)
{
    static char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "format: 1\nmodel: %s\ncontext: 128\nthreads: 2\n%s"
            "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
            "attention: {plugin: dense}\nsamplers:\n  - plugin: greedy\n",
            model_path, backend_lines);
    fclose(f);
    return path;
}

typedef struct collected {
    int32_t tokens[64];
    size_t n;
} collected;

static int collect(void *user, int32_t token, const char *text, size_t len)
{
    (void)text;
    (void)len;
    collected *c = user;
    if (c->n < 64)
        c->tokens[c->n++] = token;
    return 0;
}

static void greedy(const char *manifest, const st_engine_options *o, const char *prompt,
                   collected *out, st_engine_info *info)
{
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(manifest, o, &e, &err), ST_OK, "%s", err.message);
    int32_t *ids;
    size_t n;
    cr_assert_eq(st_engine_tokenize(e, prompt, strlen(prompt), 0, &ids, &n, &err), ST_OK);
    st_generate_params gp = { .struct_size = sizeof gp, .max_tokens = 24, .ignore_eos = true };
    memset(out, 0, sizeof *out);
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, out, NULL, &err), ST_OK, "%s",
                 err.message);
    st_free(ids);
    if (info) {
        info->struct_size = sizeof *info;
        st_engine_get_info(e, info);
        static char name[ST_DEVICE_TEXT_MAX], backend[16];
        snprintf(name, sizeof name, "%s", info->device_name);
        snprintf(backend, sizeof backend, "%s", info->backend);
        info->device_name = name;
        info->backend = backend;
    }
    st_engine_close(e);
}

static void same_as_cpu(st_ggml_type type)
{
    make_model(type);
    const char *prompts[] = { "The quick brown fox", "Once upon a time, in a land far away," };
    char *cpu = strdup(write_manifest("cpu.yaml", "backend: cpu\n"));
    char *cl = strdup(write_manifest("cl.yaml", "backend: opencl\n"));
    for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        collected a, b;
        st_engine_info info;
        greedy(cpu, NULL, prompts[p], &a, &info);
        cr_assert_str_eq(info.backend, "cpu", "the reference must run on the CPU");
        greedy(cl, NULL, prompts[p], &b, &info);
        cr_assert_eq(a.n, 24);
        cr_assert_eq(b.n, a.n);
        for (size_t i = 0; i < a.n; i++)
            cr_assert_eq(b.tokens[i], a.tokens[i], "%s, prompt %zu, token %zu: opencl %d, cpu %d",
                         st_ggml_type_name(type), p, i, b.tokens[i], a.tokens[i]);
        cr_expect_str_eq(info.backend, "opencl");
        cr_expect_neq(info.device_name[0], '\0');
        cr_expect_gt(info.device_bytes, 0);
    }
    free(cpu);
    free(cl);
    cleanup();
}

Test(opencl_engine, greedy_equals_cpu_q8_0) { same_as_cpu(ST_GGML_Q8_0); }
Test(opencl_engine, greedy_equals_cpu_q4_0) { same_as_cpu(ST_GGML_Q4_0); }
Test(opencl_engine, greedy_equals_cpu_q4_1) { same_as_cpu(ST_GGML_Q4_1); }
Test(opencl_engine, greedy_equals_cpu_f16) { same_as_cpu(ST_GGML_F16); }
Test(opencl_engine, greedy_equals_cpu_f32) { same_as_cpu(ST_GGML_F32); }

Test(opencl_engine, options_override_the_manifest_and_the_cache_is_used)
{
    make_model(ST_GGML_Q8_0);
    char *cpu = strdup(write_manifest("cpu.yaml", "backend: cpu\n"));
    st_engine_options o = { .struct_size = sizeof o, .backend = "opencl", .device = "0" };
    collected a;
    st_engine_info first, second;
    greedy(cpu, &o, "hello", &a, &first);
    cr_expect_str_eq(first.backend, "opencl");
    cr_expect_not(first.kernel_cache_hit, "the cache in %s was empty", cache);
    greedy(cpu, &o, "hello", &a, &second);
    cr_expect(second.kernel_cache_hit, "the second open built its kernels again");
    o.no_kernel_cache = true;
    greedy(cpu, &o, "hello", &a, &second);
    cr_expect_not(second.kernel_cache_hit);
    o.backend = "cpu";
    o.device = NULL;
    greedy(write_manifest("cl.yaml", "backend: opencl\ndevice: 0\n"), &o, "hello", &a,
           &second);
    cr_expect_str_eq(second.backend, "cpu", "--backend cpu over a manifest's device");
    /* A device asked for on the CPU backend is refused, not ignored. */
    o.device = "0";
    st_engine *e = NULL;
    st_error err = {0};
    cr_expect_eq(st_engine_open(cpu, &o, &e, &err), ST_E_INVALID);
    cr_expect(strstr(err.message, "device '0'") && strstr(err.message, "--backend opencl"), "%s",
              err.message);
    free(cpu);
    cleanup();
}

Test(opencl_engine, device_key_and_bad_selectors)
{
    make_model(ST_GGML_Q8_0);
    collected a;
    st_engine_info info;
    greedy(write_manifest("idx.yaml", "backend: opencl:0:0\n"), NULL, "hi", &a, &info);
    cr_expect_str_eq(info.backend, "opencl");
    st_engine *e = NULL;
    st_error err = {0};
    cr_expect_eq(st_engine_open(write_manifest("bad.yaml", "backend: opencl\n"
                                                          "device: no-such-gpu-xyz\n"),
                                NULL, &e, &err), ST_E_NOT_FOUND);
    cr_expect_null(e);
    cr_expect(strstr(err.message, "no-such-gpu-xyz") && strstr(err.message, "there are"), "%s",
              err.message);
    cr_expect_eq(st_engine_open(write_manifest("far.yaml", "backend: opencl:5:0\n"), NULL, &e,
                                &err), ST_E_NOT_FOUND);
    cr_expect(strstr(err.message, "opencl:5:0"), "%s", err.message);
    cr_expect_eq(st_engine_open(write_manifest("list.yaml", "backend: opencl\ndevice: [1]\n"),
                                NULL, &e, &err), ST_E_INVALID);
    cr_expect(strstr(err.message, "list.yaml:6:") && strstr(err.message, "device:"), "%s",
              err.message);
    cleanup();
}

/* A plugin's own kernel through ST_HOST_OPENCL_V1: cl-argmax picks on the
 * device, and its continuation equals the greedy sampler's. */
Test(opencl_engine, a_plugin_kernel_runs_on_the_device)
{
    make_model(ST_GGML_Q8_0);
    const char *greedy_m = write_manifest("g.yaml", "backend: opencl\n");
    char *argmax_m = NULL;
    {
        char path[400];
        snprintf(path, sizeof path, "%s/argmax.yaml", dir);
        FILE *f = fopen(path, "w");
        cr_assert(f);
        fprintf(f,
                "format: 1\nmodel: %s\ncontext: 128\nthreads: 2\nbackend: opencl\n"
                "plugin-dirs: [%s]\n"
                "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
                "attention: {plugin: dense}\nsamplers:\n  - plugin: cl-argmax\n",
                model_path, ST_CL_FIX_DIR);
        fclose(f);
        argmax_m = strdup(path);
    }
    collected a, b;
    greedy(greedy_m, NULL, "The quick brown fox", &a, NULL);
    greedy(argmax_m, NULL, "The quick brown fox", &b, NULL);
    cr_assert_eq(b.n, a.n);
    for (size_t i = 0; i < a.n; i++)
        cr_assert_eq(b.tokens[i], a.tokens[i], "token %zu: device argmax %d, greedy %d", i,
                     b.tokens[i], a.tokens[i]);

    /* On the CPU backend the plugin's `requires: [opencl]` is refused
     * before its code runs, naming the reason. */
    st_engine_options o = { .struct_size = sizeof o, .backend = "cpu" };
    st_engine *e = NULL;
    st_error err = {0};
    cr_expect_eq(st_engine_open(argmax_m, &o, &e, &err), ST_E_INVALID);
    cr_expect(strstr(err.message, "requires 'opencl'") &&
                  strstr(err.message, "the backend is not opencl"), "%s", err.message);
    free(argmax_m);
    cleanup();
}

/* No OpenCL platform: the engine refuses `backend: opencl` with the reason
 * and leaves nothing behind, and the same process carries on on the CPU. */
Test(opencl_engine, no_platform_then_the_cpu_carries_on)
{
    make_model(ST_GGML_Q8_0);
    char vendors[320];
    snprintf(vendors, sizeof vendors, "%s/no-vendors", dir);
    cr_assert_eq(mkdir(vendors, 0755), 0);
    setenv("OCL_ICD_VENDORS", vendors, 1);
    st_engine *e = NULL;
    st_error err = {0};
    cr_expect_eq(st_engine_open(write_manifest("cl.yaml", "backend: opencl\n"), NULL, &e, &err),
                 ST_E_UNAVAILABLE);
    cr_expect_null(e);
    cr_expect(strstr(err.message, "no OpenCL platform found"), "%s", err.message);
    collected a;
    st_engine_info info;
    st_engine_options o = { .struct_size = sizeof o, .backend = "cpu" };
    greedy(write_manifest("cl.yaml", "backend: opencl\n"), &o, "hello", &a, &info);
    cr_expect_eq(a.n, 24);
    cr_expect_str_eq(info.backend, "cpu");
    cleanup();
}
