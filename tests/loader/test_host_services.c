/*
 * tests/loader/test_host_services.c - the default services table: logging
 * (sink, threshold, STRETCH_LOG), accounted memory, error formatting, and
 * the services that answer ST_E_UNAVAILABLE without a model or device.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "host_services.h"

typedef struct captured {
    int n;
    st_log_level level;
    char plugin[64];
    char message[256];
} captured;

static void sink(void *ctx, st_log_level level, const char *plugin, const char *message)
{
    captured *c = ctx;
    c->n++;
    c->level = level;
    snprintf(c->plugin, sizeof c->plugin, "%s", plugin ? plugin : "");
    snprintf(c->message, sizeof c->message, "%s", message);
}

Test(host_services, table_is_complete)
{
    st_host *h = st_host_new();
    const st_host_services *s = st_host_services_of(h);
    cr_assert_eq(s->struct_size, sizeof(st_host_services));
    cr_assert_eq(s->abi_major, ST_ABI_MAJOR);
    cr_assert_eq(s->abi_minor, ST_ABI_MINOR);
    cr_assert_eq(s->host, (void *)h);
    cr_assert(s->log && s->alloc && s->calloc && s->realloc && s->free && s->error &&
              s->model_meta && s->meta_array_string && s->meta_array_int &&
              s->meta_array_float && s->kernel_compile && s->kernel_launch &&
              s->kernel_release && s->model_score && s->get_extension);
    cr_assert_null(s->get_extension(s->host, "stretch.host.anything/1"));
    st_host_free(h);
}

Test(host_services, log_sink_and_threshold)
{
    unsetenv("STRETCH_LOG");
    st_host *h = st_host_new();
    const st_host_services *s = st_host_services_of(h);
    captured c = {0};
    st_host_set_log_sink(h, sink, &c);
    s->log(s->host, ST_LOG_INFO, "p", "hidden %d", 1);
    cr_assert_eq(c.n, 0, "default threshold is warn");
    s->log(s->host, ST_LOG_WARN, "top-k", "k=%d is large", 5000);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(c.level, ST_LOG_WARN);
    cr_assert_str_eq(c.plugin, "top-k");
    cr_assert_str_eq(c.message, "k=5000 is large");
    st_host_set_log_level(h, ST_LOG_DEBUG);
    s->log(s->host, ST_LOG_DEBUG, NULL, "now shown");
    cr_assert_eq(c.n, 2);
    st_host_free(h);

    setenv("STRETCH_LOG", "error", 1);
    h = st_host_new();
    s = st_host_services_of(h);
    st_host_set_log_sink(h, sink, &c);
    s->log(s->host, ST_LOG_WARN, "p", "below error");
    cr_assert_eq(c.n, 2);
    s->log(s->host, ST_LOG_ERROR, "p", "shown");
    cr_assert_eq(c.n, 3);
    st_host_free(h);
    cr_assert_eq(st_log_level_from_name("DEBUG"), ST_LOG_DEBUG);
    cr_assert_eq(st_log_level_from_name("loud"), -1);
}

Test(host_services, memory_is_accounted)
{
    st_host *h = st_host_new();
    const st_host_services *s = st_host_services_of(h);
    char *a = s->alloc(s->host, 100);
    cr_assert_not_null(a);
    memset(a, 1, 100);
    int *b = s->calloc(s->host, 10, sizeof(int));
    for (int i = 0; i < 10; i++)
        cr_assert_eq(b[i], 0);
    cr_assert_eq(st_host_live_bytes(h), 100 + 10 * sizeof(int));
    a = s->realloc(s->host, a, 1000);
    cr_assert_eq(a[99], 1, "realloc keeps the contents");
    cr_assert_eq(st_host_live_bytes(h), 1000 + 10 * sizeof(int));
    cr_assert_eq(((uintptr_t)a) % _Alignof(max_align_t), 0);
    s->free(s->host, a);
    s->free(s->host, b);
    s->free(s->host, NULL);
    cr_assert_eq(st_host_live_bytes(h), 0);
    cr_assert_eq(st_host_peak_bytes(h), 1000 + 10 * sizeof(int));
    cr_assert_null(s->calloc(s->host, SIZE_MAX / 2, 4), "overflow is refused");
    st_host_free(h);
}

Test(host_services, error_formats)
{
    st_host *h = st_host_new();
    const st_host_services *s = st_host_services_of(h);
    st_error err = {0};
    cr_assert_eq(s->error(&err, ST_E_RANGE, "k=%d > %s", 7, "vocab"), ST_E_RANGE);
    cr_assert_eq(err.status, ST_E_RANGE);
    cr_assert_str_eq(err.message, "k=7 > vocab");
    cr_assert_eq(s->error(NULL, ST_E_INVALID, "x"), ST_E_INVALID);
    st_host_free(h);
}

static st_status fake_score(void *ctx, st_score_request *req, st_error *err)
{
    (*(int *)ctx)++;
    for (size_t i = 0; i < req->n_tokens; i++)
        if (req->logprob)
            req->logprob[i] = -(float)i;
    return ST_OK;
}

Test(host_services, unavailable_without_model_or_device)
{
    st_host *h = st_host_new();
    const st_host_services *s = st_host_services_of(h);
    st_error err = {0};
    st_meta_value v;
    cr_assert_eq(s->model_meta(s->host, "llama.context_length", &v, &err), ST_E_UNAVAILABLE);
    cr_assert_str_eq(err.message, "no model loaded");
    const char *str;
    uint64_t len;
    int64_t i64;
    double f;
    cr_assert_eq(s->meta_array_string(s->host, "tokenizer.ggml.tokens", 0, &str, &len, &err),
                 ST_E_UNAVAILABLE);
    cr_assert_eq(s->meta_array_int(s->host, "k", 0, &i64, &err), ST_E_UNAVAILABLE);
    cr_assert_eq(s->meta_array_float(s->host, "k", 0, &f, &err), ST_E_UNAVAILABLE);
    st_kernel *k = (st_kernel *)1;
    memset(&err, 0, sizeof err);
    cr_assert_eq(s->kernel_compile(s->host, "k", "kernel void k(){}", NULL, &k, &err),
                 ST_E_UNAVAILABLE);
    cr_assert_null(k);
    cr_assert(strstr(err.message, "OpenCL") != NULL, "%s", err.message);
    cr_assert_eq(s->kernel_launch(s->host, NULL, NULL, 0, NULL, NULL, 1, &err),
                 ST_E_UNAVAILABLE);
    s->kernel_release(s->host, NULL);

    int32_t toks[3] = {1, 2, 3};
    float lp[3];
    st_score_request req = {.struct_size = sizeof req, .tokens = toks, .n_tokens = 3,
                            .logprob = lp, .attn_layer = -1};
    memset(&err, 0, sizeof err);
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_E_UNAVAILABLE);
    cr_assert_str_eq(err.message, "no model loaded");
    /* ABI 1.2: what the host cannot serve is not offered at all. */
    cr_assert_null(s->get_extension(s->host, ST_HOST_OPENCL_V1));
    cr_assert_null(s->get_extension(s->host, ST_HOST_SCORE_V1));
    int calls = 0;
    st_host_set_scorer(h, fake_score, &calls);
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_OK);
    cr_assert_eq(calls, 1);
    cr_assert_float_eq(lp[2], -2.0f, 0);
    const st_host_score_v1 *score = s->get_extension(s->host, ST_HOST_SCORE_V1);
    cr_assert_not_null(score, "a host with a scorer offers " ST_HOST_SCORE_V1);
    cr_assert_geq(score->struct_size, sizeof *score);
    lp[2] = 0;
    cr_assert_eq(score->model_score(s->host, &req, &err), ST_OK);
    cr_assert_eq(calls, 2);
    cr_assert_float_eq(lp[2], -2.0f, 0);
    st_host_free(h);
}

Test(host_services, model_metadata_from_gguf)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/st_host_meta_%d.gguf", (int)getpid());
    st_gw *w = st_gw_new();
    st_gw_u32(w, "llama.context_length", 8192);
    st_gw_string(w, "general.name", "tiny");
    const char *toks[] = {"<s>", "hello", "world"};
    st_gw_str_array(w, "tokenizer.ggml.tokens", toks, 3);
    float scores[] = {0.0f, -1.5f, -2.5f};
    st_gw_array(w, "tokenizer.ggml.scores", ST_GGUF_F32, scores, 3);
    int32_t types[] = {3, 1, 1};
    st_gw_array(w, "tokenizer.ggml.token_type", ST_GGUF_I32, types, 3);
    cr_assert_eq(st_gw_write(w, path, NULL), ST_OK);
    st_gw_free(w);
    st_gguf *g = NULL;
    st_diag d;
    cr_assert_eq(st_gguf_open(path, &g, &d), ST_OK, "%s", d.message);

    st_host *h = st_host_new();
    const st_host_services *s = st_host_services_of(h);
    st_host_set_model(h, g);
    st_error err = {0};
    st_meta_value v;
    cr_assert_eq(s->model_meta(s->host, "llama.context_length", &v, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(v.type, ST_META_INT);
    cr_assert_eq(v.i, 8192);
    cr_assert_eq(s->model_meta(s->host, "general.name", &v, &err), ST_OK);
    cr_assert_eq(v.type, ST_META_STRING);
    cr_assert_eq(v.len, 4);
    cr_assert_eq(memcmp(v.str, "tiny", 4), 0);
    cr_assert_eq(s->model_meta(s->host, "tokenizer.ggml.tokens", &v, &err), ST_OK);
    cr_assert_eq(v.type, ST_META_ARRAY);
    cr_assert_eq(v.array_type, ST_META_STRING);
    cr_assert_eq(v.len, 3);
    const char *str;
    uint64_t len;
    cr_assert_eq(s->meta_array_string(s->host, "tokenizer.ggml.tokens", 2, &str, &len, &err),
                 ST_OK);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(str, "world", 5), 0);
    double f;
    cr_assert_eq(s->meta_array_float(s->host, "tokenizer.ggml.scores", 1, &f, &err), ST_OK);
    cr_assert_float_eq(f, -1.5, 1e-9);
    int64_t i64;
    cr_assert_eq(s->meta_array_int(s->host, "tokenizer.ggml.token_type", 0, &i64, &err), ST_OK);
    cr_assert_eq(i64, 3);

    memset(&err, 0, sizeof err);
    cr_assert_eq(s->model_meta(s->host, "no.such.key", &v, &err), ST_E_NOT_FOUND);
    cr_assert(strstr(err.message, "no.such.key") != NULL, "%s", err.message);
    cr_assert_neq(s->meta_array_string(s->host, "tokenizer.ggml.tokens", 3, &str, &len, &err),
                  ST_OK, "index past the end is refused");
    st_host_free(h);
    st_gguf_close(g);
    unlink(path);
}
