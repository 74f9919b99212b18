/*
 * core/engine.c - open an engine from a strategy manifest and tear it down;
 * tokenization and model facts. Generation lives in engine_generate.c,
 * scoring in engine_score.c.
 *
 * Open reads straight down the data flow of DESIGN.md: manifest -> registry
 * -> model -> plugins (validated params, ABI-checked load, create) -> the
 * description the positional plugin gives -> KV cache sized by the attention
 * plugin's budget -> forward context. Any failure unwinds everything.
 */
#include "engine_internal.h"
#include "plugin_call.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abi_sizes.h"
#include "chat_template.h"
#include "encoder_internal.h"
#include "retrieval_internal.h"
#include "sampler_override.h"

st_status st_engine_fail_wrap(st_error *err, st_status st, const char *fmt, ...)
{
    if (!err)
        return st;
    char reason[sizeof err->message];
    memcpy(reason, err->message, sizeof reason);
    reason[sizeof reason - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    /* Append ": <reason>" by hand, cut to what fits. */
    const char *why = reason[0] ? reason : "(no message)";
    size_t at = strlen(err->message), room = sizeof err->message - 1;
    for (const char *p = ": "; *p && at < room; p++)
        err->message[at++] = *p;
    size_t n = strlen(why);
    if (n > room - at)
        n = room - at;
    memcpy(err->message + at, why, n);
    err->message[at + n] = '\0';
    err->status = st;
    return st;
}

static void plugin_release(st_engine_plugin *p)
{
    st_engine_plugin_release(p);
}


/* Find, load and create the plugin a strategy names for `kind`. */
static st_status plugin_open(st_engine *e, st_kind kind, const st_plugin_ref *ref,
                             st_engine_plugin *out, st_error *err)
{
    const st_plugin_site site = {e->registry, e->host, e->backend_name, e->gguf != NULL, false};
    return st_engine_plugin_open(&site, kind, ref, out, err);
}

uint32_t st_engine_online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint32_t)n : 1;
}

static st_status open_model(st_engine *e, st_error *err)
{
    st_diag d;
    st_diag_clear(&d);
    if (!e->model_path)
        return st_error_set(err, ST_E_INVALID,
                            "%s: no model: set `model:` in the strategy manifest or pass one",
                            e->strategy->path);
    st_status st = st_gguf_open(e->model_path, &e->gguf, &d);
    if (st == ST_OK)
        st = st_model_load(e->gguf, &e->model, &d);
    if (st != ST_OK)
        return st_error_from_diag(err, &d);
    const st_model_hparams *hp = &e->model->hp;
    e->shape = (st_model_shape){
        .struct_size = sizeof(st_model_shape),
        .n_layers = hp->n_layers, .n_heads = hp->n_heads, .n_kv_heads = hp->n_kv_heads,
        .head_dim = hp->head_dim, .rope_dims = hp->rope_dims, .rope_base = hp->rope_base,
        .n_ctx_train = hp->n_ctx_train, .n_ctx = e->n_ctx, .n_embd = hp->n_embd,
        .n_vocab = hp->n_vocab, .n_pos_rows = e->model->n_pos,
    };
    st_host_set_model(e->host, e->gguf);
    /* Plugins may score from create on: the scorer needs only the model
     * (it makes its own cache and runs on the caller until the engine's
     * thread pool exists). */
    st_host_set_scorer(e->host, st_engine_model_score, e);
    return ST_OK;
}

/* The OpenCL device, before the plugins: a plugin with `requires: [opencl]`
 * compiles its kernels in create(). The CPU backend is the forward pass's
 * default and needs nothing here. */
static st_status open_backend(st_engine *e, st_error *err)
{
    if (strcmp(e->backend_name, "cpu") == 0)
        return ST_OK;
    st_diag d;
    st_diag_clear(&d);
    st_opencl_options o = { .backend = e->backend_name, .device = e->device,
                            .no_kernel_cache = e->no_kernel_cache };
    st_status st = st_opencl_backend_open(&o, e->model, &e->backend, &d);
    if (st != ST_OK)
        return st_error_set(err, st, "%s: backend '%s': %s", e->strategy->path, e->backend_name,
                            d.message);
    st_opencl_backend_report(e->backend, &e->cl_report);
    st_host_set_kernels(e->host, st_opencl_host_kernels(), e->backend);
    return ST_OK;
}

static st_status open_plugins(st_engine *e, st_error *err)
{
    st_strategy *s = e->strategy;
    st_status st;
    if ((st = plugin_open(e, ST_KIND_TOKENIZER, &s->tokenizer, &e->tokenizer, err)) ||
        (st = plugin_open(e, ST_KIND_POSENC, &s->posenc, &e->posenc, err)) ||
        (st = plugin_open(e, ST_KIND_ATTENTION, &s->attention, &e->attention, err)))
        return st;
    if (s->retriever.plugin &&
        ((st = st_encoder_service_install(e->host, e->registry, s, e->n_threads, &e->encoders,
                                          err)) ||
         (st = plugin_open(e, ST_KIND_RETRIEVER, &s->retriever, &e->retriever, err)) ||
         (st = st_retrieval_attach(e, s, e->retriever.in, &e->retrieval, err))))
        return st;
    /* Samplers may ask for the vocabulary's bytes in create(). */
    e->tok = e->tokenizer.in->ops;
    e->special.struct_size = sizeof e->special;
    e->special.bos = e->special.eos = e->special.eot = -1;
    e->special.pad = e->special.unk = e->special.sep = -1;
    e->tok->special(e->tokenizer.in->inst, &e->special);
    st_engine_install_vocab(e);
    e->samplers = calloc(s->n_samplers ? s->n_samplers : 1, sizeof *e->samplers);
    e->sampler_instances = calloc(s->n_samplers ? s->n_samplers : 1, sizeof(st_instance *));
    e->sampler_names = calloc(s->n_samplers ? s->n_samplers : 1, sizeof(const char *));
    if (!e->samplers || !e->sampler_instances || !e->sampler_names)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    for (size_t i = 0; i < s->n_samplers; i++) {
        if ((st = plugin_open(e, ST_KIND_SAMPLER, &s->samplers[i], &e->samplers[i], err)))
            return st;
        e->n_samplers++;
        e->sampler_instances[i] = e->samplers[i].in;
        e->sampler_names[i] = e->samplers[i].lib->entry->name;
    }
    e->pe = e->posenc.in->ops;
    e->attn = e->attention.in->ops;
    return ST_OK;
}

/* A model with a learned absolute position table: the posenc plugin may
 * stretch it (stretch_table, sized by a first call without a buffer);
 * either way it must cover every position of the context. */
static st_status prepare_pos_table(st_engine *e, st_error *err)
{
    const st_model *m = e->model;
    if (!m->pos_embd)
        return ST_OK;
    const char *pe = e->posenc.lib->entry->name;
    e->pos_table = m->pos_embd;
    e->pos_rows = m->n_pos;
    if (e->pe->stretch_table) {
        st_error perr;
        memset(&perr, 0, sizeof perr);
        uint32_t need = 0;
        st_status st = e->pe->stretch_table(e->posenc.in->inst, m->pos_embd, m->n_pos,
                                            m->hp.n_embd, NULL, 0, &need, &perr);
        if (st != ST_OK && st != ST_E_RANGE)
            return st_error_set(err, st, "positional-encoding plugin '%s': stretch_table: %s",
                                pe, perr.message);
        if (need == 0)
            return st_error_set(err, ST_E_PLUGIN,
                                "positional-encoding plugin '%s' stretched the %u-row position "
                                "table to 0 rows", pe, m->n_pos);
        e->pos_table_owned = malloc((size_t)need * m->hp.n_embd * sizeof(float));
        if (!e->pos_table_owned)
            return st_error_set(err, ST_E_NOMEM, "out of memory for the position table");
        uint32_t got = 0;
        memset(&perr, 0, sizeof perr);
        st = e->pe->stretch_table(e->posenc.in->inst, m->pos_embd, m->n_pos, m->hp.n_embd,
                                  e->pos_table_owned, need, &got, &perr);
        if (st != ST_OK || got == 0 || got > need)
            return st_error_set(err, st != ST_OK ? st : ST_E_PLUGIN,
                                "positional-encoding plugin '%s': stretch_table into %u rows: "
                                "%s", pe, need, st != ST_OK ? perr.message : "bad row count");
        e->pos_table = e->pos_table_owned;
        e->pos_rows = got;
    }
    if (e->pos_rows < e->n_ctx)
        return st_error_set(err, ST_E_RANGE,
                            "%s: context %u exceeds the model's learned position table (%u "
                            "rows%s); lower `context:` or use a positional-encoding plugin "
                            "that stretches the table (long-clip)",
                            e->strategy->path, e->n_ctx, e->pos_rows,
                            e->pos_table_owned ? ", as stretched by the posenc plugin" : "");
    return ST_OK;
}

/* Ask the positional and attention plugins for their description of the
 * model, then size the cache and build the forward context. */
static st_status configure_compute(st_engine *e, st_error *err)
{
    st_error perr;
    memset(&perr, 0, sizeof perr);
    memset(&e->desc, 0, sizeof e->desc);
    e->desc.struct_size = sizeof e->desc;
    e->desc.rotary_scale = 1.0f;
    e->desc.attn_temperature = 1.0f;
    st_plugin_call prev = st_plugin_call_enter(e->posenc.in, "configure");
    st_status st = e->pe->configure(e->posenc.in->inst, &e->shape, &e->desc, &perr);
    st_plugin_call_leave(prev);
    if (st != ST_OK)
        return st_error_set(err, st, "positional-encoding plugin '%s': configure failed: %s",
                            e->posenc.lib->entry->name, perr.message);
    if ((e->desc.flags & ST_POSENC_ROTARY) &&
        (!e->desc.inv_freq || e->desc.n_freq != e->shape.rope_dims / 2))
        return st_error_set(err, ST_E_PLUGIN,
                            "positional-encoding plugin '%s' gave %u rotary frequencies; "
                            "the model rotates %u dims, so %u were expected",
                            e->posenc.lib->entry->name, e->desc.n_freq,
                            e->shape.rope_dims, e->shape.rope_dims / 2);
    if ((st = prepare_pos_table(e, err)) != ST_OK)
        return st;
    e->attn_weights_layer = -1;
    st = e->attn->configure(e->attention.in->inst, &e->shape, &e->attn_needs,
                            &e->attn_weights_layer, &perr);
    if (st != ST_OK)
        return st_error_set(err, st, "attention plugin '%s': configure failed: %s",
                            e->attention.lib->entry->name, perr.message);
    if ((st = st_engine_configure_kv(e, err)) != ST_OK)
        return st;

    /* A bounded strategy keeps at most `budget` slots between steps; a
     * step appends up to one block before retention trims it again. */
    uint32_t budget = e->attn->cache_budget ? e->attn->cache_budget(e->attention.in->inst, e->n_ctx) : 0;
    e->block = 512;
    uint32_t capacity = budget ? budget + e->block : e->n_ctx;
    if (budget && capacity > e->n_ctx + e->block)
        capacity = e->n_ctx + e->block;

    st_diag d;
    st_diag_clear(&d);
    const st_model_hparams *hp = &e->model->hp;
    st = st_kv_cache_create(hp->n_layers, hp->n_kv_heads, hp->head_dim, capacity,
                            (st_kv_type)e->strategy->kv_type, &e->kv, &d);
    if (st == ST_OK && e->kvcfg.per_head_slots) {
        /* Each layer holds its own budget (configure_kv's layer_budget,
         * 0 = the plugin's cache_budget) + one block, no more: a cache
         * with per-layer budgets is their sum. */
        uint32_t *cap = malloc(hp->n_layers * sizeof *cap);
        if (!cap)
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        for (uint32_t l = 0; l < hp->n_layers; l++) {
            uint32_t b = e->layer_budget[l] ? e->layer_budget[l] : budget;
            cap[l] = budget && b + e->block < capacity ? b + e->block : capacity;
        }
        st = st_kv_cache_enable_heads(e->kv, cap, &d);
        free(cap);
    }
    if (st == ST_OK && !e->pool)
        st = st_threadpool_create(e->n_threads, &e->pool, &d);
    if (st == ST_OK)
        st = st_engine_forward_init(e, &d);
    /* After the forward pass chose the keys' layout (blocks take whole
     * 16-slot blocks per head). */
    if (st == ST_OK && !(e->kv_layer_bytes = malloc(hp->n_layers * sizeof *e->kv_layer_bytes)))
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    for (uint32_t l = 0; st == ST_OK && l < hp->n_layers; l++)
        e->kv_layer_bytes[l] = st_kv_layer_bytes(e->kv, l);
    if (st != ST_OK)
        return st_error_from_diag(err, &d);
    e->logits = malloc(sizeof(float) * hp->n_vocab);
    if (!e->logits)
        return st_error_set(err, ST_E_NOMEM, "out of memory for logits");
    /* A request may start from the previous one's prompt only where that
     * gives the fresh request's answer bit for bit: an attention plugin
     * that promises a stateless plan, a cache that stays in position order
     * (no retention, no per-head sets), no observer that expects every
     * token, positions that do not depend on the length, and the CPU's
     * paths (whose rounding the prefill's cutting rule is made for). */
    e->prefix_ok = (e->attn_needs & ST_ATTN_PREFIX_REUSE) &&
                   !(e->attn_needs & (ST_ATTN_NEEDS_QK | ST_ATTN_NEEDS_ENTROPY |
                                      ST_ATTN_NEEDS_WEIGHTS)) &&
                   !e->attn->retain && !e->kvcfg.per_head_slots &&
                   e->kvcfg.stats == ST_STATS_NONE && !e->pe->update && !e->backend;
    return st_sampler_chain_init(&e->chain, e->sampler_instances, e->n_samplers,
                                 hp->n_vocab, err);
}

st_status st_engine_open(const char *strategy_path, const st_engine_options *caller_opts,
                         st_engine **out, st_error *err)
{
    *out = NULL;
    /* Honour the caller's struct_size: fields it does not know stay zero
     * (their defaults), and nothing past its struct is read. */
    st_engine_options opts_copy;
    const st_engine_options *opts = NULL;
    st_status st = st_engine_options_read(caller_opts, &opts_copy, &opts, err);
    if (st != ST_OK)
        return st;
    st_engine *e = calloc(1, sizeof *e);
    if (!e)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_diag d;
    st_diag_clear(&d);
    st = st_strategy_load(strategy_path, &e->strategy, &d);
    if (st != ST_OK) {
        st_engine_close(e);
        return st_error_from_diag(err, &d);
    }
    const st_strategy *s = e->strategy;
    e->backend_name = strdup(opts && opts->backend ? opts->backend : s->backend);
    const char *device = opts && opts->device ? opts->device : s->device;
    e->device = device ? strdup(device) : NULL;
    e->no_kernel_cache = opts && opts->no_kernel_cache;
    if (!e->backend_name || (device && !e->device)) {
        st_engine_close(e);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    if (strcmp(e->backend_name, "cpu") != 0 && !st_opencl_built()) {
        st_error_set(err, ST_E_UNAVAILABLE,
                     "%s: backend '%s': this build has no OpenCL backend: %s", strategy_path,
                     e->backend_name, ST_OPENCL_HOWTO);
        st_engine_close(e);
        return ST_E_UNAVAILABLE;
    }
    /* A device asked for by the caller on the CPU backend would be
     * ignored; say so instead (a manifest's `device:` may stay when
     * --backend cpu overrides it). */
    if (opts && opts->device && strcmp(e->backend_name, "cpu") == 0) {
        st_error_set(err, ST_E_INVALID,
                     "%s: device '%s' was asked for, but the backend is cpu; add "
                     "--backend opencl (or `backend: opencl`)", strategy_path, opts->device);
        st_engine_close(e);
        return ST_E_INVALID;
    }
    if (strcmp(e->backend_name, "cpu") != 0 && strncmp(e->backend_name, "opencl", 6) != 0) {
        st_error_set(err, ST_E_INVALID,
                     "backend '%s': expected cpu, opencl or opencl:PLATFORM:DEVICE",
                     e->backend_name);
        st_engine_close(e);
        return ST_E_INVALID;
    }
    if (opts && opts->context &&
        (opts->context < ST_STRATEGY_CONTEXT_MIN || opts->context > ST_STRATEGY_CONTEXT_MAX)) {
        st_error_set(err, ST_E_INVALID,
                     "%s: a context of %u tokens was asked for; `context:` takes %d to %d",
                     strategy_path, opts->context, ST_STRATEGY_CONTEXT_MIN,
                     ST_STRATEGY_CONTEXT_MAX);
        st_engine_close(e);
        return ST_E_INVALID;
    }
    if (opts && opts->parallel > ST_PARALLEL_MAX) {
        st_error_set(err, ST_E_INVALID, "%s: %u parallel sequences were asked for; at most %d",
                     strategy_path, opts->parallel, ST_PARALLEL_MAX);
        st_engine_close(e);
        return ST_E_INVALID;
    }
    e->n_ctx = (opts && opts->context) ? opts->context : s->context;
    e->n_threads = (opts && opts->n_threads) ? opts->n_threads : s->threads;
    if (!e->n_threads)
        e->n_threads = st_engine_online_cores();
    const char *model = (opts && opts->model) ? opts->model : s->model;
    e->model_path = model ? strdup(model) : NULL;
    e->numerics = opts ? opts->numerics : ST_NUMERICS_DEFAULT;

    e->registry = st_registry_new();
    e->host = st_host_new();
    if (!e->registry || !e->host) {
        st_engine_close(e);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    if (opts && opts->log) {
        st_host_set_log_sink(e->host, opts->log, opts->log_user);
        st_host_set_log_level(e->host, ST_LOG_DEBUG);
    }
    st = st_engine_registry_fill(e->registry, opts, s, &d);
    if (st != ST_OK) {
        st_engine_close(e);
        return st_error_from_diag(err, &d);
    }
    if ((st = open_model(e, err)) || (st = open_backend(e, err)) || (st = open_plugins(e, err)) ||
        (st = configure_compute(e, err))) {
        st_engine_close(e);
        return st;
    }
    e->parallel = (opts && opts->parallel) ? opts->parallel : s->parallel;
    if (!e->parallel)
        e->parallel = 1;
    if (!(e->sequences = calloc(e->parallel, sizeof *e->sequences))) {
        st_engine_close(e);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    int64_t add_bos = 0;
    e->add_bos = st_gguf_get_int(e->gguf, "tokenizer.ggml.add_bos_token", &add_bos) == ST_OK
                     ? add_bos != 0 : false;
    *out = e;
    return ST_OK;
}

void st_engine_close(st_engine *e)
{
    if (!e)
        return;
    if (e->sequences)
        for (uint32_t i = 0; i < e->parallel; i++)
            st_sequence_close(e->sequences[i]);
    free(e->sequences);
    st_sampler_chain_free(&e->chain);
    st_request_constraint_forget(e);
    st_engine_model_score_free(e);
    st_engine_forward_free(e);
    st_kv_cache_free(e->kv);
    free(e->stats_layers);
    free(e->layer_budget);
    free(e->kv_layer_bytes);
    free(e->logits);
    free(e->pos_table_owned);
    for (size_t i = e->n_samplers; i-- > 0;)
        plugin_release(&e->samplers[i]);
    free(e->samplers);
    free(e->sampler_instances);
    free(e->sampler_names);
    st_retriever_close(e->retrieval);
    plugin_release(&e->retriever);
    st_encoder_service_free(e->encoders);
    plugin_release(&e->attention);
    plugin_release(&e->posenc);
    plugin_release(&e->tokenizer);
    /* After the plugins: their kernels live on the device. */
    if (!e->parent) {
        /* What sequences borrow. */
        st_backend_free(e->backend);
        free(e->backend_name);
        free(e->device);
        st_threadpool_destroy(e->pool);
        st_model_free(e->model);
        st_gguf_close(e->gguf);
        st_host_free(e->host);
        st_registry_free(e->registry);
        st_strategy_free(e->strategy);
        free(e->model_path);
    }
    free(e);
}

st_status st_engine_open_child(st_engine *parent, st_engine **out, st_error *err)
{
    *out = NULL;
    st_engine *e = calloc(1, sizeof *e);
    if (!e)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    e->parent = parent;
    e->strategy = parent->strategy;
    e->registry = parent->registry;
    e->host = parent->host;
    e->model_path = parent->model_path;
    e->gguf = parent->gguf;
    e->model = parent->model;
    e->shape = parent->shape;
    e->n_ctx = parent->n_ctx;
    e->n_threads = parent->n_threads;
    e->numerics = parent->numerics;
    e->pool = parent->pool;
    e->add_bos = parent->add_bos;
    /* The device and its uploaded weights are the parent's too. */
    e->backend = parent->backend;
    e->backend_name = parent->backend_name;
    e->device = parent->device;
    e->cl_report = parent->cl_report;
    st_status st;
    if ((st = open_plugins(e, err)) || (st = configure_compute(e, err))) {
        st_engine_close(e);
        return st;
    }
    *out = e;
    return ST_OK;
}

static void fill_info(const st_engine *e, st_engine_info *out);

void st_engine_get_info(const st_engine *e, st_engine_info *caller_out)
{
    st_engine_info info;
    fill_info(e, &info);
    st_sized_write(caller_out, &info, sizeof info, ST_ENGINE_INFO_SIZE_1_0);
}

static void fill_info(const st_engine *e, st_engine_info *out)
{
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    out->n_vocab = e->shape.n_vocab;
    out->n_ctx = e->n_ctx;
    out->n_ctx_train = e->shape.n_ctx_train;
    out->n_layers = e->shape.n_layers;
    out->n_heads = e->shape.n_heads;
    out->n_kv_heads = e->shape.n_kv_heads;
    out->n_embd = e->shape.n_embd;
    out->head_dim = e->shape.head_dim;
    out->n_threads = e->n_threads;
    out->bos = e->special.bos;
    out->eos = e->special.eos;
    out->eot = e->special.eot;
    out->add_bos = e->add_bos;
    out->model_path = e->model_path;
    const st_engine_plugin *by_kind[5] = {&e->tokenizer, &e->posenc, &e->attention, NULL,
                                          &e->retriever};
    for (int k = 0; k < 5; k++) {
        if (k == ST_KIND_SAMPLER - 1)
            out->plugin_names[k] = e->n_samplers ? e->samplers[e->n_samplers - 1].lib->entry->name : NULL;
        else
            out->plugin_names[k] = by_kind[k]->lib ? by_kind[k]->lib->entry->name : NULL;
    }
    out->n_samplers = (uint32_t)e->n_samplers;
    out->sampler_names = (const char *const *)e->sampler_names;
    out->kv_type = st_kv_type_name(e->kv->type);
    out->kv_bytes_per_token = st_kv_bytes_per_token(e->kv);
    out->parallel = e->parent ? e->parent->parallel : e->parallel;
    out->reader = st_engine_reader_name((st_engine *)e);
    out->backend = e->backend ? e->backend->ops->name : "cpu";
    out->device_name = e->cl_report.device.name;
    out->kernel_compile_ms = e->cl_report.compile_ms;
    out->kernel_cache_hit = e->cl_report.from_cache;
    out->device_bytes = e->backend ? e->backend->ops->device_bytes(e->backend) : 0;
    out->kv_cache_bytes = st_kv_cache_bytes(e->kv);
    out->kv_layer_bytes = e->kv_layer_bytes;
    out->prefix_cache = e->prefix_ok;
    out->bounded_cache = e->attn->retain != NULL || e->attn->retain_heads != NULL;
}

bool st_engine_is_eog(const st_engine *e, int32_t token)
{
    return token >= 0 && (token == e->special.eos || token == e->special.eot);
}

/* One encode call, held to the contract: ST_OK means every id fits in
 * `cap` and lies inside the tokenizer's vocabulary. */
static st_status encode_checked(st_engine *e, const char *text, size_t len, uint32_t flags,
                                int32_t *buf, size_t cap, size_t *need, st_error *err)
{
    const char *name = e->tokenizer.lib->entry->name;
    *need = 0;
    st_plugin_call prev = st_plugin_call_enter(e->tokenizer.in, "encode");
    st_status st = e->tok->encode(e->tokenizer.in->inst, text, len, flags, buf, cap, need, err);
    st_plugin_call_leave(prev);
    if (st == ST_E_RANGE && *need > cap)
        return st;
    if (st != ST_OK)
        return st_engine_fail_wrap(err, st, "tokenizer plugin '%s': encode failed", name);
    if (*need > cap)
        return st_error_set(err, ST_E_PLUGIN,
                            "tokenizer plugin '%s' returned %zu ids into room for %zu: it "
                            "must return ST_E_RANGE when the ids do not fit",
                            name, *need, cap);
    int32_t nv = e->tok->vocab_size(e->tokenizer.in->inst);
    for (size_t i = 0; i < *need; i++)
        if (buf[i] < 0 || buf[i] >= nv)
            return st_error_set(err, ST_E_PLUGIN,
                                "tokenizer plugin '%s' returned id %d (at %zu), outside its "
                                "vocabulary of %d", name, buf[i], i, nv);
    return ST_OK;
}

st_status st_engine_tokenize(st_engine *e, const char *text, size_t len, uint32_t flags,
                             int32_t **ids, size_t *n_ids, st_error *err)
{
    size_t cap = len + 16, need = 0;
    int32_t *buf = malloc(cap * sizeof *buf);
    if (!buf)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_status st = encode_checked(e, text, len, flags, buf, cap, &need, err);
    if (st == ST_E_RANGE && need > cap) {
        int32_t *grown = need <= SIZE_MAX / sizeof *buf ? realloc(buf, need * sizeof *buf)
                                                        : NULL;
        if (!grown) {
            free(buf);
            return st_error_set(err, ST_E_NOMEM, "out of memory for %zu token ids", need);
        }
        buf = grown;
        cap = need;
        st = encode_checked(e, text, len, flags, buf, cap, &need, err);
        if (st == ST_E_RANGE)
            st = st_error_set(err, ST_E_PLUGIN,
                              "tokenizer plugin '%s' asked for room for %zu ids twice",
                              e->tokenizer.lib->entry->name, cap);
    }
    if (st != ST_OK) {
        free(buf);
        return st;
    }
    *ids = buf;
    *n_ids = need;
    return ST_OK;
}

st_status st_engine_chat_tokenize(st_engine *e, const char *user_message, uint32_t flags,
                                  int32_t **ids, size_t *n_ids, st_error *err)
{
    const char *tmpl = NULL;
    uint64_t n = 0;
    if (st_gguf_get_string(e->gguf, "tokenizer.chat_template", &tmpl, &n) != ST_OK)
        tmpl = NULL;
    char *text = NULL;
    size_t user_at = 0;
    st_status st = st_chat_render(tmpl, n, user_message, &text, &user_at, err);
    if (st != ST_OK)
        return st;
    /* Three pieces: the template before the message and after it with
     * special tokens parsed, the message itself as the flags say. */
    size_t user_len = strlen(user_message), total = strlen(text);
    struct { const char *p; size_t n; uint32_t flags; } part[3] = {
        {text, user_at, ST_ENCODE_PARSE_SPECIAL | (flags & ST_ENCODE_ADD_BOS)},
        {text + user_at, user_len, flags & ST_ENCODE_PARSE_SPECIAL},
        {text + user_at + user_len, total - user_at - user_len, ST_ENCODE_PARSE_SPECIAL},
    };
    int32_t *all = NULL;
    size_t n_all = 0;
    for (int i = 0; i < 3 && st == ST_OK; i++) {
        int32_t *got = NULL;
        size_t n_got = 0;
        if ((st = st_engine_tokenize(e, part[i].p, part[i].n, part[i].flags, &got, &n_got,
                                     err)) != ST_OK)
            break;
        int32_t *grown = realloc(all, (n_all + n_got + 1) * sizeof *all);
        if (!grown) {
            st = st_error_set(err, ST_E_NOMEM, "out of memory");
        } else {
            all = grown;
            memcpy(all + n_all, got, n_got * sizeof *all);
            n_all += n_got;
        }
        free(got);
    }
    free(text);
    if (st != ST_OK) {
        free(all);
        return st;
    }
    *ids = all;
    *n_ids = n_all;
    return ST_OK;
}

st_status st_engine_detokenize(st_engine *e, const int32_t *ids, size_t n, char **text,
                               size_t *len, st_error *err)
{
    void *inst = e->tokenizer.in->inst;
    size_t cap = n * 8 + 16, need = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_plugin_call prev = st_plugin_call_enter(e->tokenizer.in, "decode");
    st_status st = e->tok->decode(inst, ids, n, buf, cap, &need, err);
    if (st == ST_E_RANGE && need > cap) {
        char *grown = realloc(buf, need + 1);
        if (!grown) {
            free(buf);
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        }
        buf = grown;
        cap = need;
        st = e->tok->decode(inst, ids, n, buf, cap, &need, err);
    }
    st_plugin_call_leave(prev);
    if (st != ST_OK) {
        free(buf);
        return st;
    }
    buf[need] = '\0';
    *text = buf;
    *len = need;
    return ST_OK;
}

st_status st_engine_piece(st_engine *e, int32_t id, const char **bytes, size_t *len,
                          st_error *err)
{
    const char *name = e->tokenizer.lib->entry->name;
    int32_t nv = e->tok->vocab_size(e->tokenizer.in->inst);
    if (id < 0 || id >= nv)
        return st_error_set(err, ST_E_INVALID,
                            "token %d is outside the vocabulary of tokenizer '%s' (%d tokens)",
                            id, name, nv);
    const char *p = NULL;
    size_t n = 0;
    st_plugin_call prev = st_plugin_call_enter(e->tokenizer.in, "piece");
    st_status st = e->tok->piece(e->tokenizer.in->inst, id, &p, &n, err);
    st_plugin_call_leave(prev);
    if (st != ST_OK)
        return st_engine_fail_wrap(err, ST_E_PLUGIN, "tokenizer plugin '%s': piece of token %d",
                                   name, id);
    if (!p)
        return st_error_set(err, ST_E_PLUGIN,
                            "tokenizer plugin '%s' returned a NULL piece for token %d", name,
                            id);
    if (n > ST_PIECE_MAX_BYTES)
        return st_error_set(err, ST_E_PLUGIN,
                            "tokenizer plugin '%s' says token %d is %zu bytes long; a piece "
                            "has at most %d", name, id, n, ST_PIECE_MAX_BYTES);
    *bytes = p;
    *len = n;
    return ST_OK;
}

st_status st_engine_check_vocab(st_engine *e, st_error *err)
{
    int32_t nv = e->tok->vocab_size(e->tokenizer.in->inst);
    if (nv < 0 || (uint32_t)nv != e->shape.n_vocab)
        return st_error_set(err, ST_E_INVALID,
                            "tokenizer plugin '%s' has %d tokens but the model %s has %u: "
                            "they do not belong together (choose the model's tokenizer)",
                            e->tokenizer.lib->entry->name, nv, e->model_path,
                            e->shape.n_vocab);
    return ST_OK;
}

st_status st_engine_check_prompt(st_engine *e, const int32_t *prompt, size_t n, st_error *err)
{
    if (n == 0)
        return st_error_set(err, ST_E_INVALID, "the prompt is empty: nothing to continue");
    st_status st = st_engine_check_vocab(e, err);
    if (st != ST_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        if (prompt[i] < 0 || (uint32_t)prompt[i] >= e->shape.n_vocab)
            return st_error_set(err, ST_E_INVALID,
                                "prompt token %zu is %d, outside the vocabulary of %u", i,
                                prompt[i], e->shape.n_vocab);
    return ST_OK;
}

st_status st_engine_token_piece(st_engine *e, int32_t id, const char **bytes, size_t *len,
                                st_error *err)
{
    return st_engine_piece(e, id, bytes, len, err);
}

st_status st_engine_chat_prompt(st_engine *e, const char *user_message, char **out,
                                st_error *err)
{
    const char *tmpl = NULL;
    uint64_t n = 0;
    if (st_gguf_get_string(e->gguf, "tokenizer.chat_template", &tmpl, &n) != ST_OK)
        tmpl = NULL;
    return st_chat_render(tmpl, n, user_message, out, NULL, err);
}

void st_engine_cancel(st_engine *e)
{
    atomic_store(&e->cancel, 1);
}

bool st_engine_uncancel(st_engine *e)
{
    return st_engine_take_cancel(e);
}
