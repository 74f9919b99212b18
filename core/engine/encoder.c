/*
 * core/engine/encoder.c - a sentence encoder: the BERT model of a GGUF
 * (core/model/bert.c, core/compute/bert_forward.c) with the `wordpiece`
 * tokenizer plugin reading that GGUF's vocabulary through its own host.
 * Also the host extension ST_HOST_ENCODER_V1, so retriever plugins embed
 * text without linking the host.
 */
#include <stdlib.h>
#include <string.h>

#include <stretch/tokenizer.h>

#include "abi_sizes.h"
#include "bert_forward.h"
#include "cpu_features.h"
#include "encoder_internal.h"
#include "engine_internal.h"
#include "gguf.h"
#include "paths.h"
#include "plugin_site.h"

#define ENCODER_TOKENIZER "wordpiece"

struct st_encoder {
    st_registry *own_registry;   /* st_encoder_open only */
    st_gguf *gguf;
    st_bert_model *model;
    st_host *host;               /* the tokenizer's: its model metadata is the GGUF */
    st_engine_plugin tok;
    const st_tokenizer_ops *ops;
    st_special_tokens sp;
    st_threadpool *pool;
    const st_cpu_kernels *kern;
    int32_t *ids;                /* scratch for encode */
    size_t ids_cap;
};

void st_encoder_close(st_encoder *e)
{
    if (!e)
        return;
    st_engine_plugin_release(&e->tok);
    st_host_free(e->host);
    st_threadpool_destroy(e->pool);
    st_bert_model_free(e->model);
    st_gguf_close(e->gguf);
    st_registry_free(e->own_registry);
    free(e->ids);
    free(e);
}

st_status st_encoder_open_in(st_registry *registry, const char *model, uint32_t n_threads,
                             st_encoder **out, st_error *err)
{
    *out = NULL;
    st_encoder *e = calloc(1, sizeof *e);
    if (!e)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_gguf_open(model, &e->gguf, &d);
    if (st == ST_OK)
        st = st_bert_model_load(e->gguf, &e->model, &d);
    if (st == ST_OK)
        st = st_threadpool_create(n_threads ? n_threads : st_engine_online_cores(), &e->pool,
                                  &d);
    if (st != ST_OK) {
        st_encoder_close(e);
        return st_error_from_diag(err, &d);
    }
    if (!(e->host = st_host_new())) {
        st_encoder_close(e);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    st_host_set_model(e->host, e->gguf);
    /* The tokenizer is chosen by the model, not by a manifest: a ref with
     * the plugin's defaults, pointing at the model file for messages. */
    st_value params = {.type = ST_VALUE_MAP, .file = model};
    st_plugin_ref ref = {.plugin = (char *)ENCODER_TOKENIZER, .params = &params, .file = model};
    const st_plugin_site site = {registry, e->host, "cpu", true, false};
    if ((st = st_engine_plugin_open(&site, ST_KIND_TOKENIZER, &ref, &e->tok, err)) != ST_OK) {
        st_encoder_close(e);
        return st_engine_fail_wrap(err, st, "%s: the encoder's tokenizer", model);
    }
    e->ops = e->tok.in->ops;
    e->sp.struct_size = sizeof e->sp;
    e->sp.bos = e->sp.eos = e->sp.eot = e->sp.pad = e->sp.unk = e->sp.sep = -1;
    e->ops->special(e->tok.in->inst, &e->sp);
    if (e->sp.bos < 0 || e->sp.sep < 0 || e->ops->vocab_size(e->tok.in->inst) !=
                                              (int32_t)e->model->n_vocab) {
        st_encoder_close(e);
        return st_error_set(err, ST_E_FORMAT,
                            "%s: the tokenizer '%s' gives no [CLS]/[SEP] or a vocabulary of "
                            "another size than the model's %u", model, ENCODER_TOKENIZER,
                            e->model->n_vocab);
    }
    e->kern = st_cpu_kernels_get(st_cpu_isa_active());
    *out = e;
    return ST_OK;
}

st_status st_encoder_open(const char *model, const st_engine_options *caller_opts,
                          st_encoder **out, st_error *err)
{
    *out = NULL;
    st_engine_options copy;
    const st_engine_options *opts;
    st_status st = st_engine_options_read(caller_opts, &copy, &opts, err);
    if (st != ST_OK)
        return st;
    st_registry *reg = st_registry_new();
    if (!reg)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_diag d;
    st_diag_clear(&d);
    st_strategy none;
    memset(&none, 0, sizeof none);
    if ((st = st_engine_registry_fill(reg, opts, &none, &d)) != ST_OK) {
        st_registry_free(reg);
        return st_error_from_diag(err, &d);
    }
    if ((st = st_encoder_open_in(reg, model, opts ? opts->n_threads : 0, out, err)) != ST_OK) {
        st_registry_free(reg);
        return st;
    }
    (*out)->own_registry = reg;
    return ST_OK;
}

uint32_t st_encoder_dim(const st_encoder *e)
{
    return e->model->n_embd;
}

uint32_t st_encoder_max_tokens(const st_encoder *e)
{
    return e->model->max_tokens;
}

/* The ids the model sees for `text`: [CLS], the wordpieces cut to fit,
 * [SEP]; into a new array of *n. */
static st_status tokenize(st_encoder *e, const char *text, size_t len, int32_t **out, size_t *n,
                          st_error *err)
{
    *out = NULL;
    if (!text && len)
        return st_error_set(err, ST_E_INVALID, "st_encoder_embed: NULL text");
    size_t need = 0;
    st_status st;
    for (;;) {
        /* Room for [CLS] in front; [SEP] is appended after the cut. */
        size_t cap = e->ids_cap > 2 ? e->ids_cap - 2 : 0;
        st = e->ops->encode(e->tok.in->inst, text ? text : "", len, 0,
                            e->ids ? e->ids + 1 : NULL, cap, &need, err);
        if (st != ST_E_RANGE || need <= cap)
            break;
        int32_t *grown = realloc(e->ids, (need + 2) * sizeof *grown);
        if (!grown)
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        e->ids = grown;
        e->ids_cap = need + 2;
    }
    if (st != ST_OK)
        return st_engine_fail_wrap(err, st, "tokenizer '%s': encode", ENCODER_TOKENIZER);
    if (!e->ids) {
        if (!(e->ids = malloc(2 * sizeof *e->ids)))
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        e->ids_cap = 2;
    }
    int32_t nv = e->ops->vocab_size(e->tok.in->inst);
    for (size_t i = 0; i < need; i++)
        if (e->ids[i + 1] < 0 || e->ids[i + 1] >= nv)
            return st_error_set(err, ST_E_PLUGIN, "tokenizer '%s' returned id %d outside [0, %d)",
                                ENCODER_TOKENIZER, e->ids[i + 1], nv);
    size_t body = need;
    if (body > e->model->max_tokens - 2)
        body = e->model->max_tokens - 2;
    e->ids[0] = e->sp.bos;
    e->ids[body + 1] = e->sp.sep;
    *n = body + 2;
    if (!(*out = malloc(*n * sizeof **out)))
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    memcpy(*out, e->ids, *n * sizeof **out);
    return ST_OK;
}

st_status st_encoder_embed(st_encoder *e, const char *text, size_t len, float *out,
                           int32_t **ids_out, size_t *n_ids_out, st_error *err)
{
    return st_encoder_embed_batch(e, 1, &text, &len, out, ids_out, n_ids_out, err);
}

/* Tokens per forward pass: the batch's activations (about 15 KB a token
 * for MiniLM) stay near 30 MB, and a GEMM of a few thousand rows already
 * reads each weight row once per tile of 8 tokens. */
#define ENCODER_BATCH_TOKENS 2048

st_status st_encoder_embed_batch(st_encoder *e, size_t n, const char *const *texts,
                                 const size_t *lens, float *out, int32_t **ids_out,
                                 size_t *n_ids_out, st_error *err)
{
    if (ids_out)
        for (size_t i = 0; i < n; i++)
            ids_out[i] = NULL;
    if (n && (!texts || !lens || !out))
        return st_error_set(err, ST_E_INVALID, "st_encoder_embed_batch: NULL argument");
    int32_t **ids = calloc(n ? n : 1, sizeof *ids);
    size_t *n_ids = calloc(n ? n : 1, sizeof *n_ids);
    st_status st = ids && n_ids ? ST_OK : st_error_set(err, ST_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == ST_OK; i++)
        st = tokenize(e, texts[i], lens[i], &ids[i], &n_ids[i], err);
    /* Forward passes over runs of sentences of at most ENCODER_BATCH_TOKENS
     * tokens (a longer sentence goes alone). */
    uint32_t dim = e->model->n_embd;
    for (size_t first = 0; first < n && st == ST_OK;) {
        size_t last = first + 1, tokens = n_ids[first];
        while (last < n && tokens + n_ids[last] <= ENCODER_BATCH_TOKENS)
            tokens += n_ids[last++];
        st = st_bert_embed_batch(e->model, e->pool, e->kern, (const int32_t *const *)ids + first,
                                 n_ids + first, last - first, out + first * dim, err);
        first = last;
    }
    for (size_t i = 0; ids && i < n; i++) {
        if (st == ST_OK && ids_out) {
            ids_out[i] = ids[i];
            n_ids_out[i] = n_ids[i];
        } else {
            free(ids[i]);
        }
    }
    free(ids);
    free(n_ids);
    return st;
}

/* ---- the host extension ---- */

struct st_encoder_service {
    st_registry *registry;
    char *base_dir;
    uint32_t n_threads;
};

static st_encoder_service *service_of(void *host)
{
    return st_host_encoder_ctx((st_host *)host);
}

static st_status ext_open(void *host, const char *model, st_host_encoder **out, uint32_t *dim,
                          st_error *err)
{
    st_encoder_service *svc = service_of(host);
    if (!svc)
        return st_error_set(err, ST_E_UNAVAILABLE, "this host has no encoder service");
    if (!model || !out || !dim)
        return st_error_set(err, ST_E_INVALID, "encoder open: NULL argument");
    char *path = model[0] == '/' || !svc->base_dir ? strdup(model)
                                                   : st_path_join(svc->base_dir, model);
    if (!path)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_encoder *e = NULL;
    st_status st = st_encoder_open_in(svc->registry, path, svc->n_threads, &e, err);
    free(path);
    if (st != ST_OK)
        return st;
    *dim = st_encoder_dim(e);
    *out = (st_host_encoder *)e;
    return ST_OK;
}

static st_status ext_embed(void *host, st_host_encoder *enc, const char *text, size_t len,
                           float *out, st_error *err)
{
    (void)host;
    if (!enc || !out)
        return st_error_set(err, ST_E_INVALID, "encoder embed: NULL argument");
    return st_encoder_embed((st_encoder *)enc, text, len, out, NULL, NULL, err);
}

static st_status ext_embed_batch(void *host, st_host_encoder *enc, size_t n,
                                 const char *const *texts, const size_t *lens, float *out,
                                 st_error *err)
{
    (void)host;
    if (!enc || (n && (!texts || !lens || !out)))
        return st_error_set(err, ST_E_INVALID, "encoder embed_batch: NULL argument");
    return st_encoder_embed_batch((st_encoder *)enc, n, texts, lens, out, NULL, NULL, err);
}

static void ext_close(void *host, st_host_encoder *enc)
{
    (void)host;
    st_encoder_close((st_encoder *)enc);
}

static const st_host_encoder_v1 encoder_ext = {sizeof encoder_ext, ext_open, ext_embed,
                                               ext_close, ext_embed_batch};

st_status st_encoder_service_install(st_host *host, st_registry *registry, const st_strategy *s,
                                     uint32_t n_threads, st_encoder_service **out, st_error *err)
{
    *out = NULL;
    st_encoder_service *svc = calloc(1, sizeof *svc);
    if (!svc)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    svc->registry = registry;
    svc->n_threads = n_threads;
    const st_value *model = s ? st_value_get(s->retriever.params, "model") : NULL;
    const char *file = model && model->file ? model->file : s ? s->retriever.file : NULL;
    if (file && !(svc->base_dir = st_path_dirname(file))) {
        free(svc);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    st_host_set_encoder(host, &encoder_ext, svc);
    *out = svc;
    return ST_OK;
}

void st_encoder_service_free(st_encoder_service *svc)
{
    if (!svc)
        return;
    free(svc->base_dir);
    free(svc);
}
