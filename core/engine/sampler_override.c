/*
 * core/engine/sampler_override.c - per-request sampler parameters and
 * constraints. For an override the manifest's parameters are cloned and
 * the overridden keys set; a constraint sampler is found by name and
 * created from the request's text parameters. Either way the plugin's
 * create() runs through the same validation as a manifest's values, so a
 * request can never hand a plugin what its schema refuses.
 */
#include "sampler_override.h"

#include "manifest.h"
#include "registry.h"

#include <stdlib.h>
#include <string.h>

/* A constraint's name and parameters as one string of NUL-ended fields:
 * two requests with the same key get the same sampler from create(). */
static char *constraint_key(const st_generate_params *p, size_t *len)
{
    size_t n = strlen(p->constraint) + 1;
    for (size_t k = 0; k < p->n_constraint_params; k++)
        n += strlen(p->constraint_params[k].name) + strlen(p->constraint_params[k].value) + 2;
    char *key = malloc(n), *at = key;
    if (!key)
        return NULL;
    at = stpcpy(at, p->constraint) + 1;
    for (size_t k = 0; k < p->n_constraint_params; k++) {
        at = stpcpy(at, p->constraint_params[k].name) + 1;
        at = stpcpy(at, p->constraint_params[k].value) + 1;
    }
    *len = n;
    return key;
}

void st_request_constraint_forget(st_engine *e)
{
    st_engine_plugin_release(&e->kept_constraint);
    free(e->kept_key);
    e->kept_key = NULL;
    e->kept_key_len = 0;
}

/* Keep the request's constraint sampler for the next request (the one kept
 * before goes), where its plugin can reset it: every request starts by
 * resetting its chain, so the kept one starts as a new one would. */
static void keep_constraint(st_request_samplers *rs)
{
    st_engine *e = rs->e;
    const st_sampler_ops *ops = rs->constraint.in ? rs->constraint.in->ops : NULL;
    if (!e || !rs->constraint_key || !ops || !ops->reset)
        return;
    st_request_constraint_forget(e);
    e->kept_constraint = rs->constraint;
    e->kept_key = rs->constraint_key;
    e->kept_key_len = rs->constraint_key_len;
    memset(&rs->constraint, 0, sizeof rs->constraint);
    rs->constraint_key = NULL;
}

/* The kept constraint sampler when it is the one `key` asks for (moved
 * into *out); false otherwise. */
static bool take_kept(st_engine *e, const char *key, size_t len, st_engine_plugin *out)
{
    if (!e->kept_constraint.in || e->kept_key_len != len || memcmp(e->kept_key, key, len) != 0)
        return false;
    *out = e->kept_constraint;
    memset(&e->kept_constraint, 0, sizeof e->kept_constraint);
    free(e->kept_key);
    e->kept_key = NULL;
    e->kept_key_len = 0;
    return true;
}

void st_request_samplers_close(st_request_samplers *rs)
{
    if (rs->e) {
        rs->e->chain.samplers = rs->engine_chain;
        rs->e->chain.n = rs->engine_n;
        if (rs->bias) {
            rs->e->chain.bias = NULL;
            rs->e->chain.n_bias = 0;
        }
    }
    if (rs->owned)
        for (size_t i = 0; i < rs->n; i++)
            st_instance_destroy(rs->owned[i]);
    keep_constraint(rs);
    st_engine_plugin_release(&rs->constraint);
    free(rs->constraint_key);
    free(rs->bias);
    free(rs->owned);
    free(rs->chain);
    memset(rs, 0, sizeof *rs);
}

/* A request's parameter text as the plugin's schema types it: "16" for
 * an int parameter is 16, "true" for a bool one true. Text that does not
 * read as its type stays a string, which validation refuses by name; a
 * string parameter is always the text ("42" stays a regex). */
static bool set_param_text(st_value *params, const st_plugin_manifest *m, const char *name,
                           const char *text)
{
    const st_param_schema *ps = m ? st_plugin_manifest_param(m, name) : NULL;
    char *end = NULL;
    if (ps && ps->type == ST_PARAM_INT) {
        long long v = strtoll(text, &end, 10);
        if (text[0] && !*end && v > -9000000000000000LL && v < 9000000000000000LL)
            return st_value_map_set_number(params, name, (double)v);
    } else if (ps && ps->type == ST_PARAM_FLOAT) {
        double v = strtod(text, &end);
        if (text[0] && !*end)
            return st_value_map_set_number(params, name, v);
    } else if (ps && ps->type == ST_PARAM_BOOL && (!strcmp(text, "true") ||
                                                  !strcmp(text, "false"))) {
        return st_value_map_set_bool(params, name, text[0] == 't');
    }
    return st_value_map_set_string(params, name, text);
}

/* The request's constraint sampler, created with its text parameters. */
static st_status open_constraint(st_engine *e, const st_generate_params *p,
                                 st_engine_plugin *out, st_error *err)
{
    st_diag d;
    st_diag_clear(&d);
    /* The plugin's schema types the text (a missing plugin is refused by
     * name when it is opened). */
    const st_plugin_record *rec = st_registry_find(e->registry, ST_KIND_SAMPLER,
                                                   p->constraint, &d);
    const st_plugin_manifest *m = rec ? rec->manifest : NULL;
    st_value *params = calloc(1, sizeof *params);
    if (!params)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    params->type = ST_VALUE_MAP;
    for (size_t k = 0; k < p->n_constraint_params; k++) {
        const st_param_text *t = &p->constraint_params[k];
        if (!t->name || !t->value) {
            st_value_free(params);
            return st_error_set(err, ST_E_INVALID, "constraint '%s': parameter %zu: name and "
                                "value must both be set", p->constraint, k);
        }
        if (!set_param_text(params, m, t->name, t->value)) {
            st_value_free(params);
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        }
    }
    st_plugin_ref ref = {.plugin = (char *)p->constraint, .params = params,
                         .file = "the request's constraint"};
    const st_plugin_site site = {e->registry, e->host, e->backend_name, e->gguf != NULL,
                                 true};
    st_status st = st_engine_plugin_open(&site, ST_KIND_SAMPLER, &ref, out, err);
    st_value_free(params);
    if (st != ST_OK)
        return st_engine_fail_wrap(err, st == ST_E_NOMEM ? st : ST_E_INVALID,
                                   "constraint '%s'", p->constraint);
    return ST_OK;
}

/* A fresh instance of chain sampler i with every override that names it. */
static st_status override_one(st_engine *e, size_t i, const st_sampler_override *ov,
                              size_t n_ov, st_instance **out, st_error *err)
{
    const st_value *base = e->strategy->samplers[i].params;
    st_value *params = base ? st_value_clone(base) : calloc(1, sizeof *params);
    if (!params)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    params->type = ST_VALUE_MAP;
    const char *name = e->samplers[i].lib->entry->name;
    for (size_t k = 0; k < n_ov; k++)
        if (strcmp(ov[k].plugin, name) == 0 && !st_value_map_set_number(params, ov[k].param,
                                                                         ov[k].value)) {
            st_value_free(params);
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        }
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_instance_create(e->samplers[i].lib, st_host_services_of(e->host), params,
                                      out, &d);
    st_value_free(params);
    if (st != ST_OK) {
        st_error_from_diag(err, &d);
        return st_engine_fail_wrap(err, st == ST_E_NOMEM ? st : ST_E_INVALID,
                                   "sampler '%s': the request's parameters are refused", name);
    }
    return ST_OK;
}

/* Once the request is known to be good: its biases on the chain until
 * close. */
static st_status install_bias(st_engine *e, const st_generate_params *p, size_t n_bias,
                              st_request_samplers *out, st_error *err)
{
    if (!n_bias)
        return ST_OK;
    /* Copied: a sequence's request outlives the call that started it. */
    if (!(out->bias = malloc(n_bias * sizeof *out->bias))) {
        st_request_samplers_close(out);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    memcpy(out->bias, p->logit_bias, n_bias * sizeof *out->bias);
    e->chain.bias = out->bias;
    e->chain.n_bias = n_bias;
    return ST_OK;
}

st_status st_request_samplers_open(st_engine *e, const st_generate_params *p,
                                   st_request_samplers *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    /* What close puts back, whatever the request changes of it. */
    out->e = e;
    out->engine_chain = e->chain.samplers;
    out->engine_n = e->chain.n;
    if (p && p->n_top_logprobs > ST_TOP_LOGPROBS_MAX)
        return st_error_set(err, ST_E_INVALID, "n_top_logprobs is %u: at most %d",
                            p->n_top_logprobs, ST_TOP_LOGPROBS_MAX);
    size_t n_bias = p && p->logit_bias ? p->n_logit_bias : 0;
    for (size_t k = 0; k < n_bias; k++) {
        const st_logit_bias *b = &p->logit_bias[k];
        if (b->token < 0 || (uint32_t)b->token >= e->shape.n_vocab)
            return st_error_set(err, ST_E_INVALID, "logit_bias %zu: token %d is outside the "
                                "vocabulary of %u", k, b->token, e->shape.n_vocab);
        if (!(b->bias >= -ST_LOGIT_BIAS_MAX && b->bias <= ST_LOGIT_BIAS_MAX))
            return st_error_set(err, ST_E_INVALID, "logit_bias %zu: the bias of token %d is "
                                "%g: expected -100 to 100", k, b->token, (double)b->bias);
    }
    const st_sampler_override *ov = p ? p->sampler_overrides : NULL;
    size_t n_ov = ov ? p->n_sampler_overrides : 0;
    const char *constraint = p ? p->constraint : NULL;
    if (n_ov == 0 && !constraint)
        return install_bias(e, p, n_bias, out, err);
    for (size_t k = 0; k < n_ov; k++)
        if (!ov[k].plugin || !ov[k].param)
            return st_error_set(err, ST_E_INVALID,
                                "sampler override %zu: plugin and param must both be set", k);
    if (constraint && p->n_constraint_params && !p->constraint_params)
        return st_error_set(err, ST_E_INVALID, "constraint '%s': %zu parameters announced, "
                            "none given", constraint, p->n_constraint_params);
    size_t cap = e->n_samplers + 1;
    out->chain = calloc(cap, sizeof *out->chain);
    out->owned = calloc(cap, sizeof *out->owned);
    if (!out->chain || !out->owned) {
        st_request_samplers_close(out);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    st_status st;
    if (constraint) {
        /* The parameters' names and values are checked before the key
         * reads them (open_constraint refuses them by index). */
        bool complete = true;
        for (size_t k = 0; k < p->n_constraint_params; k++)
            complete &= p->constraint_params[k].name && p->constraint_params[k].value;
        if (complete && !(out->constraint_key = constraint_key(p, &out->constraint_key_len))) {
            st_request_samplers_close(out);
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        }
        if (!complete || !take_kept(e, out->constraint_key, out->constraint_key_len,
                                    &out->constraint)) {
            if ((st = open_constraint(e, p, &out->constraint, err)) != ST_OK) {
                st_request_samplers_close(out);
                return st;
            }
        }
        out->chain[out->n++] = out->constraint.in;
    }
    for (size_t i = 0; i < e->n_samplers; i++) {
        const char *name = e->samplers[i].lib->entry->name;
        /* The request's constraint replaces the manifest's of its kind. */
        if (constraint && strcmp(name, constraint) == 0)
            continue;
        size_t at = out->n++;
        out->chain[at] = e->sampler_instances[i];
        bool named = false;
        for (size_t k = 0; k < n_ov; k++)
            named |= strcmp(ov[k].plugin, name) == 0;
        if (!named)
            continue;
        if ((st = override_one(e, i, ov, n_ov, &out->owned[at], err)) != ST_OK) {
            st_request_samplers_close(out);
            return st;
        }
        out->chain[at] = out->owned[at];
    }
    e->chain.samplers = out->chain;
    e->chain.n = out->n;
    return install_bias(e, p, n_bias, out, err);
}
