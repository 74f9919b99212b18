/*
 * tests/support/test_host.c - see test_host.h.
 */
#include "test_host.h"

#include "diag.h"
#include "manifest.h"
#include "plugin_create.h"

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void th_log(void *host, st_log_level level, const char *plugin,
                   const char *fmt, ...)
{
    st_test_host *th = host;
    char line[ST_TEST_HOST_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(line, sizeof line, "%s: ", plugin ? plugin : "?");
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (th->n_log == ST_TEST_HOST_LOG_MAX) {
        memmove(th->log[0], th->log[1], sizeof th->log[0] * (ST_TEST_HOST_LOG_MAX - 1));
        memmove(&th->log_level[0], &th->log_level[1],
                sizeof th->log_level[0] * (ST_TEST_HOST_LOG_MAX - 1));
        th->n_log--;
    }
    memcpy(th->log[th->n_log], line, sizeof line);
    th->log_level[th->n_log] = level;
    th->n_log++;
}

static void *th_alloc(void *host, size_t size)
{
    st_test_host *th = host;
    void *p = malloc(size ? size : 1);
    if (p)
        __atomic_add_fetch(&th->live_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

static void *th_calloc(void *host, size_t n, size_t size)
{
    st_test_host *th = host;
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p)
        __atomic_add_fetch(&th->live_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

static void *th_realloc(void *host, void *ptr, size_t size)
{
    st_test_host *th = host;
    void *p = realloc(ptr, size ? size : 1);
    if (p && !ptr)
        __atomic_add_fetch(&th->live_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

static void th_free(void *host, void *ptr)
{
    st_test_host *th = host;
    if (ptr)
        __atomic_sub_fetch(&th->live_allocs, 1, __ATOMIC_RELAXED);
    free(ptr);
}

static st_status th_unavailable(st_error *err, const char *what)
{
    return st_error_set(err, ST_E_UNAVAILABLE, "%s: the test host has no model", what);
}

static st_status th_model_meta(void *host, const char *key, st_meta_value *out,
                               st_error *err)
{
    return th_unavailable(err, "model_meta");
}

static st_status th_meta_array_string(void *host, const char *key, uint64_t index,
                                      const char **str, uint64_t *len, st_error *err)
{
    return th_unavailable(err, "meta_array_string");
}

static st_status th_meta_array_int(void *host, const char *key, uint64_t index,
                                   int64_t *out, st_error *err)
{
    return th_unavailable(err, "meta_array_int");
}

static st_status th_meta_array_float(void *host, const char *key, uint64_t index,
                                     double *out, st_error *err)
{
    return th_unavailable(err, "meta_array_float");
}

static st_status th_kernel_compile(void *host, const char *name, const char *source,
                                   const char *options, st_kernel **out, st_error *err)
{
    return st_error_set(err, ST_E_UNAVAILABLE, "kernel_compile: the test host has no device");
}

static st_status th_kernel_launch(void *host, st_kernel *kernel,
                                  const st_kernel_arg *args, size_t n_args,
                                  const size_t *global, const size_t *local,
                                  uint32_t dims, st_error *err)
{
    return st_error_set(err, ST_E_UNAVAILABLE, "kernel_launch: the test host has no device");
}

static void th_kernel_release(void *host, st_kernel *kernel) {}

static st_status th_model_score(void *host, st_score_request *req, st_error *err)
{
    return th_unavailable(err, "model_score");
}

/* Multi-byte pieces a BPE vocabulary would have for JSON and text. */
static const char *const vocab_pieces[] = {
    "{\"", "\":", "\",", "\"}", "\": ", ", \"", "true", "false", "null", "  ", "\n  ",
    "[\"", "\"]", "],", "},", "}}", "]]", "123", "00", "the", " the", "ing", "name", "age",
    "\\n", "\\\"", "é", "\xe2\x82", "\xac", "abc", "-1", "0.5", "e+", "::", "//"};
enum { N_VOCAB_PIECES = sizeof vocab_pieces / sizeof vocab_pieces[0] };

const char *st_test_vocab_piece(int32_t id, size_t *len)
{
    static char bytes[256];
    static char pairs[ST_TEST_VOCAB_N][2];
    if (id < 256) {
        bytes[id] = (char)id;
        *len = 1;
        return &bytes[id];
    }
    if (id == ST_TEST_VOCAB_EOS) {
        *len = 13;
        return "<|endoftext|>";
    }
    if (id - 256 < N_VOCAB_PIECES) {
        *len = strlen(vocab_pieces[id - 256]);
        return vocab_pieces[id - 256];
    }
    int k = id - 256 - N_VOCAB_PIECES;
    pairs[id][0] = (char)('a' + k % 26);
    pairs[id][1] = (char)('a' + (k / 26) % 26);
    *len = 2;
    return pairs[id];
}

static int32_t tv_n_tokens(void *host)
{
    st_test_host *th = host;
    return th->pieces ? (int32_t)th->n_pieces + 1 : ST_TEST_VOCAB_N;
}

static st_status tv_token_bytes(void *host, int32_t id, const char **bytes, size_t *len,
                                bool *special, st_error *err)
{
    st_test_host *th = host;
    int32_t n = tv_n_tokens(host);
    if (id < 0 || id >= n)
        return st_error_set(err, ST_E_RANGE, "token %d is outside the test vocabulary", id);
    *special = id == n - 1;
    if (th->pieces && id < n - 1) {
        *bytes = th->pieces[id];
        *len = strlen(th->pieces[id]);
    } else {
        *bytes = th->pieces ? "<|endoftext|>" : st_test_vocab_piece(id, len);
        if (th->pieces)
            *len = 13;
    }
    return ST_OK;
}

static size_t tv_eog_tokens(void *host, int32_t *ids, size_t cap)
{
    if (cap)
        ids[0] = tv_n_tokens(host) - 1;
    return 1;
}

static const st_host_vocab_v1 test_vocab = {sizeof test_vocab, tv_n_tokens, tv_token_bytes,
                                            tv_eog_tokens};

void st_test_encode(const char *text, size_t len, float *out)
{
    /* Byte b adds to dimension (b + position) mod dim a weight that also
     * depends on b, so anagrams and repeats differ; the sum is normalised. */
    double v[ST_TEST_ENCODER_DIM] = {0}, norm = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)text[i];
        v[(b + i) % ST_TEST_ENCODER_DIM] += 1.0 + (b % 7);
    }
    for (int j = 0; j < ST_TEST_ENCODER_DIM; j++)
        norm += v[j] * v[j];
    if (norm == 0) {
        v[0] = 1;
        norm = 1;
    }
    for (int j = 0; j < ST_TEST_ENCODER_DIM; j++)
        out[j] = (float)(v[j] / sqrt(norm));
}

/* The encoder handle is a dummy: the test encoder keeps no state. */
static st_status te_open(void *host, const char *model, st_host_encoder **out, uint32_t *dim,
                         st_error *err)
{
    (void)host, (void)model, (void)err;
    static char handle;
    *out = (st_host_encoder *)&handle;
    *dim = ST_TEST_ENCODER_DIM;
    return ST_OK;
}

static st_status te_embed(void *host, st_host_encoder *enc, const char *text, size_t len,
                          float *out, st_error *err)
{
    (void)host, (void)enc, (void)err;
    st_test_encode(text, len, out);
    return ST_OK;
}

static void te_close(void *host, st_host_encoder *enc)
{
    (void)host, (void)enc;
}

static st_status te_embed_batch(void *host, st_host_encoder *enc, size_t n,
                                const char *const *texts, const size_t *lens, float *out,
                                st_error *err)
{
    for (size_t i = 0; i < n; i++)
        te_embed(host, enc, texts[i], lens[i], out + i * ST_TEST_ENCODER_DIM, err);
    return ST_OK;
}

static const st_host_encoder_v1 test_encoder = {sizeof test_encoder, te_open, te_embed,
                                                te_close, te_embed_batch};

static const void *th_get_extension(void *host, const char *id)
{
    st_test_host *th = host;
    if (th->vocab && id && strcmp(id, ST_HOST_VOCAB_V1) == 0)
        return &test_vocab;
    if (th->encoder && id && strcmp(id, ST_HOST_ENCODER_V1) == 0)
        return &test_encoder;
    return NULL;
}

void st_test_host_init(st_test_host *th)
{
    memset(th, 0, sizeof *th);
    st_host_services *s = &th->services;
    s->struct_size = (uint32_t)sizeof *s;
    s->abi_major = ST_ABI_MAJOR;
    s->abi_minor = ST_ABI_MINOR;
    s->host = th;
    s->log = th_log;
    s->alloc = th_alloc;
    s->calloc = th_calloc;
    s->realloc = th_realloc;
    s->free = th_free;
    s->error = st_error_set;
    s->model_meta = th_model_meta;
    s->meta_array_string = th_meta_array_string;
    s->meta_array_int = th_meta_array_int;
    s->meta_array_float = th_meta_array_float;
    s->kernel_compile = th_kernel_compile;
    s->kernel_launch = th_kernel_launch;
    s->kernel_release = th_kernel_release;
    s->model_score = th_model_score;
    s->get_extension = th_get_extension;
}

static st_test_host g_host;
static bool g_host_ready;

st_test_host *st_test_host_default(void)
{
    if (!g_host_ready) {
        st_test_host_init(&g_host);
        g_host_ready = true;
    }
    return &g_host;
}

const st_host_services *st_test_host_services(void)
{
    return &st_test_host_default()->services;
}

/* A process-wide host with one extension turned on by `on`. */
static const st_host_services *host_with(st_test_host *th, bool *ready, bool *on)
{
    if (!*ready) {
        st_test_host_init(th);
        *on = true;
        *ready = true;
    }
    return &th->services;
}

const st_host_services *st_test_host_vocab_services(void)
{
    static st_test_host vh;
    static bool ready;
    return host_with(&vh, &ready, &vh.vocab);
}

const st_host_services *st_test_host_encoder_services(void)
{
    static st_test_host eh;
    static bool ready;
    return host_with(&eh, &ready, &eh.encoder);
}

const st_plugin_entry *st_test_load_plugin(const char *plugin_dir, const char *kind,
                                           const char *name, char *why, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s/%s.so", plugin_dir, kind, name, name);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, cap, "dlopen %s: %s", path, dlerror());
        return NULL;
    }
    const st_plugin_entry *e = dlsym(h, ST_PLUGIN_ENTRY_SYMBOL);
    if (!e) {
        snprintf(why, cap, "%s: no symbol %s", path, ST_PLUGIN_ENTRY_SYMBOL);
        dlclose(h);
        return NULL;
    }
    return e;
}

/* ---- parameter maps ---- */

void st_test_params_init(st_test_params *p)
{
    memset(p, 0, sizeof *p);
}

static msgpack_object *add_key(st_test_params *p, const char *key)
{
    if (p->n == ST_TEST_PARAMS_MAX)
        return NULL;
    size_t i = p->n++;
    snprintf(p->keys[i], sizeof p->keys[i], "%s", key);
    p->kv[i].key.type = MSGPACK_OBJECT_STR;
    p->kv[i].key.via.str.ptr = p->keys[i];
    p->kv[i].key.via.str.size = (uint32_t)strlen(p->keys[i]);
    return &p->kv[i].val;
}

void st_test_params_int(st_test_params *p, const char *key, int64_t v)
{
    msgpack_object *o = add_key(p, key);
    if (!o)
        return;
    if (v >= 0) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = (uint64_t)v;
    } else {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = v;
    }
}

void st_test_params_float(st_test_params *p, const char *key, double v)
{
    msgpack_object *o = add_key(p, key);
    if (!o)
        return;
    o->type = MSGPACK_OBJECT_FLOAT64;
    o->via.f64 = v;
}

void st_test_params_bool(st_test_params *p, const char *key, bool v)
{
    msgpack_object *o = add_key(p, key);
    if (!o)
        return;
    o->type = MSGPACK_OBJECT_BOOLEAN;
    o->via.boolean = v;
}

void st_test_params_str(st_test_params *p, const char *key, const char *v)
{
    msgpack_object *o = add_key(p, key);
    if (!o)
        return;
    size_t i = p->n - 1;
    snprintf(p->strs[i], sizeof p->strs[i], "%s", v);
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = p->strs[i];
    o->via.str.size = (uint32_t)strlen(p->strs[i]);
}

const msgpack_object *st_test_params_get(st_test_params *p)
{
    p->obj.type = MSGPACK_OBJECT_MAP;
    p->obj.via.map.size = (uint32_t)p->n;
    p->obj.via.map.ptr = p->kv;
    return &p->obj;
}

void st_test_params_copy(st_test_params *dst, const st_test_params *src)
{
    st_test_params_init(dst);
    if (!src)
        return;
    memcpy(dst->keys, src->keys, sizeof dst->keys);
    memcpy(dst->strs, src->strs, sizeof dst->strs);
    memcpy(dst->kv, src->kv, sizeof dst->kv);
    dst->n = src->n;
    for (size_t i = 0; i < dst->n; i++) { /* point into the copy */
        dst->kv[i].key.via.str.ptr = dst->keys[i];
        if (dst->kv[i].val.type == MSGPACK_OBJECT_STR)
            dst->kv[i].val.via.str.ptr = dst->strs[i];
    }
}

void st_test_params_destroy(st_test_params *p)
{
    if (p->has_validated) {
        msgpack_unpacked_destroy(&p->validated);
        msgpack_sbuffer_destroy(&p->validated_buf);
    }
    memset(p, 0, sizeof *p);
}

/* ---- instances through the host's validation ---- */

static st_value *value_of(const msgpack_object *o)
{
    st_value *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->file = "test parameters";
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: v->type = ST_VALUE_INT; v->i = (int64_t)o->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: v->type = ST_VALUE_INT; v->i = o->via.i64; break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: v->type = ST_VALUE_FLOAT; v->f = o->via.f64; break;
    case MSGPACK_OBJECT_BOOLEAN: v->type = ST_VALUE_BOOL; v->b = o->via.boolean; break;
    case MSGPACK_OBJECT_STR:
        v->type = ST_VALUE_STRING;
        v->s = strndup(o->via.str.ptr, o->via.str.size);
        break;
    default: v->type = ST_VALUE_NULL; break;
    }
    if (!v->s) {
        char text[64];
        if (v->type == ST_VALUE_INT)
            snprintf(text, sizeof text, "%lld", (long long)v->i);
        else if (v->type == ST_VALUE_FLOAT)
            snprintf(text, sizeof text, "%.17g", v->f);
        else
            snprintf(text, sizeof text, "%s", v->type == ST_VALUE_BOOL ? (v->b ? "true" : "false") : "null");
        v->s = strdup(text);
    }
    return v;
}

static st_value *map_of(st_test_params *p)
{
    st_value *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->type = ST_VALUE_MAP;
    m->file = "test parameters";
    size_t n = p ? p->n : 0;
    m->entries = calloc(n ? n : 1, sizeof *m->entries);
    for (size_t i = 0; m->entries && i < n; i++) {
        m->entries[i].key = strdup(p->keys[i]);
        m->entries[i].value = value_of(&p->kv[i].val);
        m->n++;
    }
    return m;
}

const msgpack_object *st_test_params_validated(const st_plugin_entry *e, st_test_params *p,
                                               st_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s/plugin.yaml", ST_TEST_PLUGIN_DIR, st_kind_name(e->kind),
             e->name);
    st_plugin_manifest *m = NULL;
    st_diag diag;
    memset(&diag, 0, sizeof diag);
    if (st_plugin_manifest_load(path, &m, &diag) != ST_OK)
        return st_test_params_get(p);
    if (p->has_validated) {
        msgpack_unpacked_destroy(&p->validated);
        msgpack_sbuffer_destroy(&p->validated_buf);
        p->has_validated = false;
    }
    st_value *given = map_of(p);
    msgpack_sbuffer_init(&p->validated_buf);
    msgpack_unpacked_init(&p->validated);
    p->has_validated = true;
    st_status st = st_params_validate(m, given, &p->validated_buf, &diag);
    st_value_free(given);
    st_plugin_manifest_free(m);
    size_t off = 0;
    if (st == ST_OK && msgpack_unpack_next(&p->validated, p->validated_buf.data,
                                           p->validated_buf.size, &off) != MSGPACK_UNPACK_SUCCESS) {
        st = ST_E_INTERNAL;
        snprintf(diag.message, sizeof diag.message, "validated parameters do not unpack");
    }
    if (st != ST_OK) {
        err->status = st;
        snprintf(err->message, sizeof err->message, "%.500s", diag.message);
        return NULL;
    }
    return &p->validated.data;
}

st_status st_test_create(const st_plugin_entry *e, const st_host_services *host,
                         st_test_params *p, void **inst, st_error *err)
{
    if (!host)
        host = st_test_host_services();
    /* A copy: the validated map lives only for this create, so nothing
     * stays behind in `p` (tests need not destroy it). */
    st_test_params local;
    st_test_params_copy(&local, p);
    const msgpack_object *map = st_test_params_validated(e, &local, err);
    st_status st = map ? st_plugin_create(e, host, map, inst, err, NULL) : err->status;
    st_test_params_destroy(&local);
    return st;
}
