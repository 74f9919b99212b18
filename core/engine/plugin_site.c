/*
 * core/engine/plugin_site.c - open the plugins a strategy names: one path
 * for the engine and for the model-less retriever handle, so both refuse a
 * missing plugin, an unmet `requires:` or a bad parameter the same way.
 */
#include "plugin_site.h"

#include "abi_sizes.h"
#include "host_features.h"

#include <string.h>

st_status st_engine_options_read(const st_engine_options *caller, st_engine_options *copy,
                                 const st_engine_options **opts, st_error *err)
{
    *opts = NULL;
    if (!caller)
        return ST_OK;
    if (!st_sized_read(copy, sizeof *copy, caller, caller->struct_size,
                       ST_ENGINE_OPTIONS_SIZE_1_0))
        return st_error_set(err, ST_E_ABI,
                            "st_engine_options.struct_size is %u, expected at least %zu "
                            "(set it to sizeof(st_engine_options))",
                            caller->struct_size, (size_t)ST_ENGINE_OPTIONS_SIZE_1_0);
    *opts = copy;
    return ST_OK;
}

st_status st_engine_registry_fill(st_registry *registry, const st_engine_options *opts,
                                  const st_strategy *s, st_diag *d)
{
    st_status st = ST_OK;
    for (size_t i = 0; opts && i < opts->n_plugin_dirs && st == ST_OK; i++)
        if (opts->plugin_dirs[i])
            st = st_registry_add_dir(registry, opts->plugin_dirs[i], d);
    for (size_t i = 0; i < s->n_plugin_dirs && st == ST_OK; i++)
        st = st_registry_add_dir(registry, s->plugin_dirs[i], d);
    if (st == ST_OK)
        st = st_registry_scan(registry, d);
    return st;
}

void st_engine_plugin_release(st_engine_plugin *p)
{
    st_instance_destroy(p->in);
    st_library_close(p->lib);
    p->in = NULL;
    p->lib = NULL;
}

/* Two plugin directories holding a plugin of the same kind and name is
 * legal (a user's build shadows the installed one) but easy to forget:
 * say which one runs. */
static void warn_shadowed(const st_plugin_site *site, const st_plugin_record *winner)
{
    const st_host_services *svc = st_host_services_of(site->host);
    for (size_t i = 0; i < st_registry_count(site->registry); i++) {
        const st_plugin_record *r = st_registry_at(site->registry, i);
        if (r->state != ST_PLUGIN_SHADOWED || !r->manifest ||
            r->manifest->kind != winner->manifest->kind ||
            strcmp(r->manifest->name, winner->manifest->name) != 0)
            continue;
        svc->log(svc->host, ST_LOG_WARN, NULL,
                 "%s plugin '%s' is in two plugin directories: using %s, not %s",
                 st_kind_name(winner->manifest->kind), winner->manifest->name,
                 winner->manifest_path, r->manifest_path);
    }
}

/* A failure in d as the caller's error (see st_plugin_site.for_request). */
static st_status refused(const st_plugin_site *site, st_diag *d, st_error *err)
{
    if (site->for_request)
        d->file[0] = '\0';
    return st_error_from_diag(err, d);
}

/* Find, load and create the plugin a strategy names for `kind`. */
st_status st_engine_plugin_open(const st_plugin_site *site, st_kind kind,
                                const st_plugin_ref *ref, st_engine_plugin *out,
                                st_error *err)
{
    st_diag d;
    st_diag_clear(&d);
    const st_plugin_record *rec = st_registry_find(site->registry, kind, ref->plugin, &d);
    if (!rec) {
        st_diag_set(&d, ST_E_NOT_FOUND, ref->file, ref->line, ref->col,
                    "no %s plugin named '%s' was found (%s); `stretch plugins` lists "
                    "what is installed", st_kind_name(kind), ref->plugin, d.message);
        return refused(site, &d, err);
    }
    if (rec->state == ST_PLUGIN_BROKEN) {
        d = rec->diag;
        return refused(site, &d, err);
    }
    warn_shadowed(site, rec);
    /* Before any of its code runs: a plugin that declared it cannot work
     * without a feature is not created without it. */
    const st_plugin_manifest *m = rec->manifest;
    for (size_t i = 0; i < m->n_requires; i++) {
        const char *why_not = st_feature_unavailable(m->requires[i], kind, site->backend,
                                                     site->has_model);
        if (why_not) {
            st_diag_set(&d, ST_E_INVALID, ref->file, ref->line, ref->col,
                        "%s plugin '%s' requires '%s' (%s), which this engine cannot give: %s",
                        st_kind_name(kind), ref->plugin, m->requires[i], m->path, why_not);
            return refused(site, &d, err);
        }
    }
    /* Bad parameters are the strategy's fault (ST_E_INVALID, as `stretch
     * check` says); any refusal of the library or its create() is the
     * plugin's (ST_E_PLUGIN, whatever status the loader or plugin gave), so
     * a caller tells a load failure from a manifest error by status. */
    msgpack_sbuffer params;
    msgpack_sbuffer_init(&params);
    st_status st = st_params_validate(rec->manifest, ref->params, &params, &d);
    msgpack_sbuffer_destroy(&params);
    if (st != ST_OK)
        return refused(site, &d, err);
    st_refusal why = ST_REFUSE_NONE;
    st = st_library_open(rec->manifest, &out->lib, &why, &d);
    if (st != ST_OK) {
        d.status = st == ST_E_NOMEM ? st : ST_E_PLUGIN;
        return refused(site, &d, err);
    }
    st = st_instance_create(out->lib, st_host_services_of(site->host), ref->params, &out->in, &d);
    if (st != ST_OK) {
        st_library_close(out->lib);
        out->lib = NULL;
        d.status = st == ST_E_NOMEM ? st : ST_E_PLUGIN;
        return refused(site, &d, err);
    }
    return ST_OK;
}
