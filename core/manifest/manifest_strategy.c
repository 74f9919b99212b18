/*
 * core/manifest_strategy.c - strategy manifests: the model, backend and
 * context, and one plugin per kind (samplers as a chain) with parameters.
 *
 * `extends:` is how users mix strategies, so it is resolved here: the
 * parent is loaded first (recursively) into the same st_strategy, then the
 * child's keys are applied over it. Each value keeps the file and line:col
 * it was written at, so a bad parameter inherited from a parent is reported
 * in the parent. Parameter values are only checked against plugin schemas
 * later (st_params_validate), once the registry knows the plugins.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stretch/plugin.h>

#include "kv_type.h"
#include "manifest.h"
#include "paths.h"
#include "stock_manifests.h"
#include "yaml_manifest.h"

#define ST_STRATEGY_DEFAULT_BACKEND "cpu"
#define ST_STRATEGY_DEFAULT_CONTEXT 2048
#define ST_STRATEGY_THREADS_MAX 65536
#define ST_STRATEGY_PARALLEL_MAX ST_PARALLEL_MAX
/* A chain this deep is a mistake; it also bounds the recursion. */
#define ST_STRATEGY_EXTENDS_MAX 32

static const char *const st_strategy_keys[] = {
    "format", "extends", "model", "backend", "device", "context", "kv-type", "threads",
    "parallel", "plugin-dirs",
    "tokenizer", "positional-encoding", "attention", "samplers", "retriever", NULL};

static const char *const st_block_keys[] = {"plugin", "params", NULL};
/* The retriever block also says which saved index to search and how many
 * hits reach the prompt, through which template. */
static const char *const st_retriever_keys[] = {"plugin", "params", "index", "top_k",
                                                "template", "rerank", "rerank_template",
                                                "prerequisites", NULL};
#define ST_RETRIEVER_TOP_K_MAX 100

typedef struct st_strategy_loader {
    st_strategy *s;
    st_diag *diag;
    /* The chain being loaded, top file first: canonical paths (for cycle
     * detection) and the labels used in messages. */
    char *chain_real[ST_STRATEGY_EXTENDS_MAX + 1];
    const char *chain_label[ST_STRATEGY_EXTENDS_MAX + 1];
    size_t depth;
    int top_line, top_col; /* the top file's root mapping */
} st_strategy_loader;

static void st_plugin_ref_clear(st_plugin_ref *r)
{
    free(r->plugin);
    st_value_free(r->params);
    memset(r, 0, sizeof *r);
}

void st_strategy_free(st_strategy *s)
{
    if (!s)
        return;
    st_plugin_ref_clear(&s->tokenizer);
    st_plugin_ref_clear(&s->posenc);
    st_plugin_ref_clear(&s->attention);
    st_plugin_ref_clear(&s->retriever);
    free(s->retriever_index);
    free(s->retriever_template);
    free(s->retriever_rerank_template);
    for (size_t k = 0; k < s->n_samplers; k++)
        st_plugin_ref_clear(&s->samplers[k]);
    free(s->samplers);
    for (size_t k = 0; k < s->n_plugin_dirs; k++)
        free(s->plugin_dirs[k]);
    free(s->plugin_dirs);
    for (size_t k = 0; k < s->n_files; k++)
        free(s->files[k]);
    free(s->files);
    free(s->path);
    free(s->model);
    free(s->backend);
    free(s->device);
    free(s);
}

static st_status st_nomem(st_strategy_loader *L, const st_value *at)
{
    return st_yaml_error_at(L->diag, ST_E_NOMEM, at, "out of memory");
}

/* Keep a copy of `label` in s->files; the copy is what values point at. */
static const char *st_strategy_intern(st_strategy *s, const char *label)
{
    char **files = realloc(s->files, (s->n_files + 1) * sizeof *files);
    if (!files)
        return NULL;
    s->files = files;
    if (!(files[s->n_files] = strdup(label)))
        return NULL;
    return files[s->n_files++];
}

static st_value *st_empty_map_at(const st_value *at)
{
    st_value *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->type = ST_VALUE_MAP;
    v->file = at->file;
    v->line = at->line;
    v->col = at->col;
    return v;
}

/* Child params over parent params, key by key; new keys are appended. */
static st_status st_merge_params(st_strategy_loader *L, st_value *into, const st_value *from)
{
    for (size_t k = 0; k < from->n; k++) {
        const st_value_entry *src = &from->entries[k];
        st_value *copy = st_value_clone(src->value);
        if (!copy)
            return st_nomem(L, src->value);
        st_value_entry *dst = NULL;
        for (size_t j = 0; j < into->n && !dst; j++)
            if (strcmp(into->entries[j].key, src->key) == 0)
                dst = &into->entries[j];
        if (dst) {
            st_value_free(dst->value);
        } else {
            char *key = strdup(src->key);
            st_value_entry *e = key ? realloc(into->entries, (into->n + 1) * sizeof *e) : NULL;
            if (!e) {
                free(key);
                st_value_free(copy);
                return st_nomem(L, src->value);
            }
            into->entries = e;
            dst = &e[into->n++];
            dst->key = key;
        }
        dst->value = copy;
        dst->line = src->line;
        dst->col = src->col;
    }
    return ST_OK;
}

/* Read a plugin block ({plugin: name, params: {...}}) and its parts. */
static st_status st_read_block(st_strategy_loader *L, const char *what, const st_value *block,
                               const char *const *keys, const st_value **plugin,
                               const st_value **params)
{
    char where[96], desc[96];
    if (block->type != ST_VALUE_MAP)
        return st_yaml_error_at(L->diag, ST_E_INVALID, block,
                                "%s: expected a mapping like {plugin: NAME, params: {...}}, found %s",
                                what, st_yaml_describe(block, desc, sizeof desc));
    snprintf(where, sizeof where, "%s block", what);
    st_status st = st_yaml_check_keys(block, keys, where, L->diag);
    if (st != ST_OK)
        return st;
    *plugin = st_value_get(block, "plugin");
    *params = st_value_get(block, "params");
    if (*plugin && ((*plugin)->type != ST_VALUE_STRING || !st_yaml_is_plugin_name((*plugin)->s)))
        return st_yaml_error_at(L->diag, ST_E_INVALID, *plugin,
                                "%s: expected 'plugin' to name a plugin ([a-z0-9][a-z0-9._-]*), "
                                "found %s", what, st_yaml_describe(*plugin, desc, sizeof desc));
    if (*params && (*params)->type == ST_VALUE_NULL)
        *params = NULL;
    if (*params && (*params)->type != ST_VALUE_MAP)
        return st_yaml_error_at(L->diag, ST_E_INVALID, *params,
                                "%s: expected 'params' to be a mapping of parameter name -> value, "
                                "found %s", what, st_yaml_describe(*params, desc, sizeof desc));
    return ST_OK;
}

/* A fresh ref from a block that names its plugin. */
static st_status st_new_ref(st_strategy_loader *L, const st_value *block, const st_value *plugin,
                            const st_value *params, st_plugin_ref *out)
{
    memset(out, 0, sizeof *out);
    out->plugin = strdup(plugin->s);
    out->params = params ? st_value_clone(params) : st_empty_map_at(block);
    if (!out->plugin || !out->params) {
        st_plugin_ref_clear(out);
        return st_nomem(L, block);
    }
    out->file = plugin->file;
    out->line = plugin->line;
    out->col = plugin->col;
    return ST_OK;
}

/* tokenizer / positional-encoding / attention / retriever over what the
 * parents chose: a different plugin replaces the block; the same plugin,
 * or no `plugin:` at all, merges params key by key. */
static st_status st_apply_block(st_strategy_loader *L, const st_value_entry *e,
                                st_plugin_ref *ref, bool optional)
{
    const st_value *block = e->value;
    if (block->type == ST_VALUE_NULL && optional) {
        st_plugin_ref_clear(ref); /* `retriever: null` drops an inherited one */
        return ST_OK;
    }
    const st_value *plugin = NULL, *params = NULL;
    st_status st = st_read_block(L, e->key, block, ref == &L->s->retriever ? st_retriever_keys
                                                                         : st_block_keys,
                                 &plugin, &params);
    if (st != ST_OK)
        return st;
    if (plugin && (!ref->plugin || strcmp(ref->plugin, plugin->s) != 0)) {
        st_plugin_ref fresh;
        if ((st = st_new_ref(L, block, plugin, params, &fresh)) != ST_OK)
            return st;
        st_plugin_ref_clear(ref);
        *ref = fresh;
        return ST_OK;
    }
    if (!ref->plugin)
        return st_yaml_error_at(L->diag, ST_E_INVALID, block,
                                "%s: expected 'plugin: NAME' (no manifest this one extends chose "
                                "one), found only params", e->key);
    if (plugin) {
        ref->file = plugin->file;
        ref->line = plugin->line;
        ref->col = plugin->col;
    }
    if (!params)
        return ST_OK;
    return st_merge_params(L, ref->params, params);
}

/* `samplers:` replaces the whole chain. */
static st_status st_apply_samplers(st_strategy_loader *L, const st_value *list)
{
    char desc[96];
    if (list->type != ST_VALUE_LIST)
        return st_yaml_error_at(L->diag, ST_E_INVALID, list,
                                "samplers: expected a list of {plugin: NAME, params: {...}} "
                                "(applied in order), found %s",
                                st_yaml_describe(list, desc, sizeof desc));
    st_plugin_ref *chain = calloc(list->n ? list->n : 1, sizeof *chain);
    if (!chain)
        return st_nomem(L, list);
    st_status st = ST_OK;
    size_t n = 0;
    for (; n < list->n && st == ST_OK; n++) {
        const st_value *block = list->items[n], *plugin = NULL, *params = NULL;
        st = st_read_block(L, "samplers item", block, st_block_keys, &plugin, &params);
        if (st == ST_OK && !plugin)
            st = st_yaml_error_at(L->diag, ST_E_INVALID, block,
                                  "samplers item: missing required key 'plugin' (the sampler's "
                                  "name)");
        if (st == ST_OK)
            st = st_new_ref(L, block, plugin, params, &chain[n]);
    }
    if (st != ST_OK) {
        for (size_t k = 0; k < n; k++)
            st_plugin_ref_clear(&chain[k]);
        free(chain);
        return st;
    }
    for (size_t k = 0; k < L->s->n_samplers; k++)
        st_plugin_ref_clear(&L->s->samplers[k]);
    free(L->s->samplers);
    L->s->samplers = chain;
    L->s->n_samplers = list->n;
    return ST_OK;
}

static bool st_is_uint_text(const char *s, size_t n)
{
    if (n == 0 || n > 9)
        return false;
    for (size_t k = 0; k < n; k++)
        if (s[k] < '0' || s[k] > '9')
            return false;
    return true;
}

/* cpu | opencl | opencl:<platform>:<device> */
static bool st_is_backend(const char *s)
{
    if (strcmp(s, "cpu") == 0 || strcmp(s, "opencl") == 0)
        return true;
    if (strncmp(s, "opencl:", 7) != 0)
        return false;
    const char *p = s + 7, *colon = strchr(p, ':');
    return colon && st_is_uint_text(p, (size_t)(colon - p)) &&
           st_is_uint_text(colon + 1, strlen(colon + 1));
}

static st_status st_apply_int(st_strategy_loader *L, const st_value *v, const char *key,
                              int64_t min, int64_t max, uint32_t *out)
{
    char desc[96];
    if (v->type != ST_VALUE_INT)
        return st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                "%s: expected an int in %lld..%lld, found %s", key, (long long)min,
                                (long long)max, st_yaml_describe(v, desc, sizeof desc));
    if (v->i < min || v->i > max)
        return st_yaml_error_at(L->diag, ST_E_RANGE, v, "%s: expected an int in %lld..%lld, found %lld",
                                key, (long long)min, (long long)max, (long long)v->i);
    *out = (uint32_t)v->i;
    return ST_OK;
}

static st_status st_apply_path(st_strategy_loader *L, const st_value *v, const char *key,
                               const char *dir, char **out)
{
    char desc[96];
    if (v->type != ST_VALUE_STRING || !v->s[0])
        return st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                "%s: expected a path (relative to this manifest), found %s", key,
                                st_yaml_describe(v, desc, sizeof desc));
    if (!(*out = st_yaml_path_resolve(dir, v->s)))
        return st_nomem(L, v);
    return ST_OK;
}

static st_status st_apply_plugin_dirs(st_strategy_loader *L, const st_value *v, const char *dir)
{
    char desc[96];
    if (v->type != ST_VALUE_LIST)
        return st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                "plugin-dirs: expected a list of directories (relative to this "
                                "manifest), found %s", st_yaml_describe(v, desc, sizeof desc));
    st_strategy *s = L->s;
    char **dirs = realloc(s->plugin_dirs, (s->n_plugin_dirs + v->n + 1) * sizeof *dirs);
    if (!dirs)
        return st_nomem(L, v);
    s->plugin_dirs = dirs;
    for (size_t k = 0; k < v->n; k++) {
        char *p = NULL;
        st_status st = st_apply_path(L, v->items[k], "plugin-dirs item", dir, &p);
        if (st != ST_OK)
            return st; /* the ones appended so far are freed with s */
        s->plugin_dirs[s->n_plugin_dirs++] = p;
    }
    return ST_OK;
}

static void st_retriever_extras_clear(st_strategy *s)
{
    free(s->retriever_index);
    free(s->retriever_template);
    free(s->retriever_rerank_template);
    s->retriever_index = s->retriever_template = s->retriever_rerank_template = NULL;
    s->retriever_top_k = s->retriever_rerank = 0;
    s->retriever_prerequisites = false;
}

/* The retriever block: the plugin as any block, then `index`, `top_k` and
 * `template`. A child that switches to another retriever plugin starts
 * without the parent's index (it was saved in the other plugin's format). */
static st_status st_apply_retriever(st_strategy_loader *L, const st_value_entry *e,
                                    const char *dir)
{
    st_strategy *s = L->s;
    char *before = s->retriever.plugin ? strdup(s->retriever.plugin) : NULL;
    if (s->retriever.plugin && !before)
        return st_nomem(L, e->value);
    st_status st = st_apply_block(L, e, &s->retriever, true);
    bool switched = !s->retriever.plugin || !before || strcmp(before, s->retriever.plugin) != 0;
    free(before);
    if (st != ST_OK)
        return st;
    if (switched)
        st_retriever_extras_clear(s);
    const st_value *block = e->value;
    if (block->type != ST_VALUE_MAP)
        return ST_OK;
    char desc[96];
    const st_value *v;
    if ((v = st_value_get(block, "index"))) {
        char *index = NULL;
        if ((st = st_apply_path(L, v, "retriever: index", dir, &index)) != ST_OK)
            return st;
        free(s->retriever_index);
        s->retriever_index = index;
        s->retriever_index_file = v->file;
        s->retriever_index_line = v->line;
        s->retriever_index_col = v->col;
    }
    if ((v = st_value_get(block, "top_k")) &&
        (st = st_apply_int(L, v, "retriever: top_k", 1, ST_RETRIEVER_TOP_K_MAX,
                           &s->retriever_top_k)) != ST_OK)
        return st;
    if ((v = st_value_get(block, "template"))) {
        if (v->type != ST_VALUE_STRING || !strstr(v->s, "{documents}") ||
            !strstr(v->s, "{query}"))
            return st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                    "retriever: template: expected a string holding both "
                                    "{documents} and {query}, found %s",
                                    st_yaml_describe(v, desc, sizeof desc));
        char *t = strdup(v->s);
        if (!t)
            return st_nomem(L, v);
        free(s->retriever_template);
        s->retriever_template = t;
    }
    if ((v = st_value_get(block, "rerank")) &&
        (st = st_apply_int(L, v, "retriever: rerank", 0, ST_RETRIEVER_TOP_K_MAX,
                           &s->retriever_rerank)) != ST_OK)
        return st;
    if ((v = st_value_get(block, "rerank_template"))) {
        if (v->type != ST_VALUE_STRING || !strstr(v->s, "{text}"))
            return st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                    "retriever: rerank_template: expected a string holding "
                                    "{text} (and optionally {id}), found %s",
                                    st_yaml_describe(v, desc, sizeof desc));
        char *t = strdup(v->s);
        if (!t)
            return st_nomem(L, v);
        free(s->retriever_rerank_template);
        s->retriever_rerank_template = t;
    }
    if ((v = st_value_get(block, "prerequisites"))) {
        if (v->type != ST_VALUE_BOOL)
            return st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                    "retriever: prerequisites: expected true or false, found %s",
                                    st_yaml_describe(v, desc, sizeof desc));
        s->retriever_prerequisites = v->b;
    }
    return ST_OK;
}

/* This file's own keys over what its parents set. `dir` is the canonical
 * directory of the file, which relative paths are resolved against. */
static st_status st_apply_keys(st_strategy_loader *L, const st_value *root, const char *dir)
{
    st_strategy *s = L->s;
    char desc[96];
    st_status st = ST_OK;
    for (size_t k = 0; k < root->n && st == ST_OK; k++) {
        const st_value_entry *e = &root->entries[k];
        const char *key = e->key;
        const st_value *v = e->value;
        if (strcmp(key, "format") == 0 || strcmp(key, "extends") == 0) {
            continue; /* handled before the parent was loaded */
        } else if (strcmp(key, "model") == 0) {
            char *model = NULL;
            if ((st = st_apply_path(L, v, key, dir, &model)) == ST_OK) {
                free(s->model);
                s->model = model;
            }
        } else if (strcmp(key, "backend") == 0) {
            if (v->type != ST_VALUE_STRING || !st_is_backend(v->s)) {
                st = st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                      "backend: expected cpu, opencl or opencl:<platform>:<device> "
                                      "(non-negative ints), found %s",
                                      st_yaml_describe(v, desc, sizeof desc));
            } else {
                char *b = strdup(v->s);
                if (!b) {
                    st = st_nomem(L, v);
                } else {
                    free(s->backend);
                    s->backend = b;
                }
            }
        } else if (strcmp(key, "device") == 0) {
            /* An index into `stretch devices` or a substring of a name;
             * the raw scalar text keeps "0" and "gfx" alike. */
            if ((v->type != ST_VALUE_STRING && !(v->type == ST_VALUE_INT && v->i >= 0)) ||
                !v->s || !v->s[0]) {
                st = st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                      "device: expected a device index (0, 1, ...) or a "
                                      "substring of a device name (see `stretch devices`), "
                                      "found %s", st_yaml_describe(v, desc, sizeof desc));
            } else {
                char *d = strdup(v->s);
                if (!d) {
                    st = st_nomem(L, v);
                } else {
                    free(s->device);
                    s->device = d;
                }
            }
        } else if (strcmp(key, "context") == 0) {
            st = st_apply_int(L, v, key, ST_STRATEGY_CONTEXT_MIN, ST_STRATEGY_CONTEXT_MAX, &s->context);
        } else if (strcmp(key, "kv-type") == 0) {
            st_kv_type t;
            if (v->type != ST_VALUE_STRING || !st_kv_type_parse(v->s, &t))
                st = st_yaml_error_at(L->diag, ST_E_INVALID, v,
                                      "kv-type: expected f16, q8_0 or f32, found %s",
                                      st_yaml_describe(v, desc, sizeof desc));
            else
                s->kv_type = (uint32_t)t;
        } else if (strcmp(key, "threads") == 0) {
            st = st_apply_int(L, v, key, 0, ST_STRATEGY_THREADS_MAX, &s->threads);
        } else if (strcmp(key, "parallel") == 0) {
            st = st_apply_int(L, v, key, 1, ST_STRATEGY_PARALLEL_MAX, &s->parallel);
        } else if (strcmp(key, "plugin-dirs") == 0) {
            st = st_apply_plugin_dirs(L, v, dir);
        } else if (strcmp(key, "tokenizer") == 0) {
            st = st_apply_block(L, e, &s->tokenizer, false);
        } else if (strcmp(key, "positional-encoding") == 0) {
            st = st_apply_block(L, e, &s->posenc, false);
        } else if (strcmp(key, "attention") == 0) {
            st = st_apply_block(L, e, &s->attention, false);
        } else if (strcmp(key, "retriever") == 0) {
            st = st_apply_retriever(L, e, dir);
        } else if (strcmp(key, "samplers") == 0) {
            st = st_apply_samplers(L, v);
        } else {
            st = st_yaml_error_at_key(L->diag, ST_E_INTERNAL, root, e, "unhandled key '%s'", key);
        }
    }
    return st;
}

static st_status st_load_layer(st_strategy_loader *L, const char *read_path, const char *label,
                               char *real, const st_value *from);

/* An error inside a parent names the way there: "...; extended from
 * child.yaml:2:10" (each level of the chain adds its own). */
static st_status st_note_extended_from(st_diag *diag, st_status st, const st_value *ext)
{
    if (!diag || st == ST_OK)
        return st;
    return st_diag_set(diag, st, diag->file, diag->line, diag->col, "%s; extended from %s:%d:%d", diag->message, ext->file, ext->line, ext->col);
}

/* A file reached by `extends:` that is not a strategy manifest (it does not
 * parse, is not a mapping, or lacks `format: 1`) may be any file the user
 * can read: say so without quoting a word of it. */
static st_status st_not_a_manifest(st_strategy_loader *L, st_status st, const char *label)
{
    return st_diag_set(L->diag, st == ST_E_NOMEM ? st : ST_E_INVALID, label, 0, 0,
                       "expected a strategy manifest (a YAML mapping with 'format: %d'), "
                       "found a file that is not one (its content is not quoted; run "
                       "`stretch check` on it to see why)", ST_MANIFEST_FORMAT);
}

/* Load the file named by `extends:` in `root` (read from `dir`). */
static st_status st_load_parent(st_strategy_loader *L, const st_value *root, const char *dir,
                                const char *label)
{
    const st_value *ext = st_value_get(root, "extends");
    char desc[96];
    if (!ext)
        return ST_OK;
    if (ext->type != ST_VALUE_STRING || !ext->s[0])
        return st_yaml_error_at(L->diag, ST_E_INVALID, ext,
                                "extends: expected the path of another strategy manifest, found %s",
                                st_yaml_describe(ext, desc, sizeof desc));
    if (L->depth >= ST_STRATEGY_EXTENDS_MAX)
        return st_yaml_error_at(L->diag, ST_E_RANGE, ext,
                                "extends: expected a chain of at most %d manifests, found a longer one",
                                ST_STRATEGY_EXTENDS_MAX);

    char *read_path = NULL, *parent_label = NULL;
    st_status st = ST_OK;
    /* "stretch:NAME" is always a stock manifest; a bare NAME is one when no
     * file of that name lies beside the manifest (a local file wins). */
    bool prefixed = strncmp(ext->s, ST_STOCK_PREFIX, strlen(ST_STOCK_PREFIX)) == 0;
    const char *stock_name = prefixed ? ext->s + strlen(ST_STOCK_PREFIX) : ext->s;
    if (!prefixed) {
        read_path = st_yaml_path_resolve(dir, ext->s);
        char *label_dir = st_path_dirname(label);
        parent_label = label_dir ? st_yaml_path_resolve(label_dir, ext->s) : NULL;
        free(label_dir);
        if (!read_path || !parent_label) {
            st = st_nomem(L, ext);
            goto done;
        }
    }
    if (prefixed || (!strchr(ext->s, '/') && access(read_path, F_OK) != 0)) {
        char searched[512];
        char *stock = st_stock_manifest_find(stock_name, searched, sizeof searched);
        if (stock) {
            free(read_path);
            free(parent_label);
            read_path = stock;
            parent_label = strdup(stock);
            if (!parent_label) {
                st = st_nomem(L, ext);
                goto done;
            }
        } else if (prefixed) {
            st = st_yaml_error_at(L->diag, ST_E_NOT_FOUND, ext,
                                  "extends: expected a stock strategy manifest named '%s' "
                                  "(searched: %s; STRETCH_MANIFEST_PATH adds directories)",
                                  stock_name, searched);
            goto done;
        }
    }
    char *real = realpath(read_path, NULL);
    if (!real) {
        st = st_yaml_error_at(L->diag, errno == ENOENT ? ST_E_NOT_FOUND : ST_E_IO, ext,
                              "extends: expected a readable strategy manifest, found '%s' "
                              "(%s): %s", ext->s, read_path, strerror(errno));
        goto done;
    }
    for (size_t k = 0; k < L->depth; k++) {
        if (strcmp(L->chain_real[k], real) != 0)
            continue;
        char chain[768] = "";
        size_t used = 0;
        for (size_t j = k; j < L->depth && used < sizeof chain; j++) {
            int w = snprintf(chain + used, sizeof chain - used, "%s -> ", L->chain_label[j]);
            used += w > 0 ? (size_t)w : 0;
        }
        if (used < sizeof chain)
            snprintf(chain + used, sizeof chain - used, "%s", parent_label);
        free(real);
        st = st_yaml_error_at(L->diag, ST_E_INVALID, ext,
                              "extends: expected a chain without cycles, found %s", chain);
        goto done;
    }
    const char *interned = st_strategy_intern(L->s, parent_label);
    if (!interned) {
        free(real);
        st = st_nomem(L, ext);
        goto done;
    }
    st = st_note_extended_from(L->diag, st_load_layer(L, read_path, interned, real, ext), ext);
done:
    free(read_path);
    free(parent_label);
    return st;
}

/* One manifest of the chain: its parent first, then its own keys. Takes
 * ownership of `real` (its canonical path). `from` is the `extends:` value
 * that named this file, NULL for the top one. */
static st_status st_load_layer(st_strategy_loader *L, const char *read_path, const char *label,
                               char *real, const st_value *from)
{
    L->chain_real[L->depth] = real;
    L->chain_label[L->depth] = label;
    L->depth++;

    st_value *root = NULL;
    char *dir = NULL, *read_dir = NULL;
    char desc[96];
    st_status st = st_yaml_read_map(read_path, label, &root, L->diag);
    /* Opening errors (missing, unreadable, a FIFO) quote nothing; parse
     * errors may quote the text. */
    if (st != ST_OK && from && st != ST_E_NOT_FOUND && st != ST_E_IO)
        st = st_not_a_manifest(L, st, label);
    if (st != ST_OK)
        goto done;
    if (L->depth == 1) {
        L->top_line = root->line;
        L->top_col = root->col;
    }
    const st_value *format = st_value_get(root, "format");
    if (from && (!format || format->type != ST_VALUE_INT || format->i != ST_MANIFEST_FORMAT)) {
        st = st_not_a_manifest(L, ST_E_INVALID, label);
        goto done;
    }
    if ((st = st_yaml_check_keys(root, st_strategy_keys, "strategy manifest", L->diag)))
        goto done;
    if (!format) {
        st = st_yaml_error_at(L->diag, ST_E_INVALID, root,
                              "missing required key 'format' (expected format: %d)", ST_MANIFEST_FORMAT);
        goto done;
    }
    if (format->type != ST_VALUE_INT || format->i != ST_MANIFEST_FORMAT) {
        st = st_yaml_error_at(L->diag, format->type == ST_VALUE_INT ? ST_E_RANGE : ST_E_INVALID,
                              format, "format: expected %d, found %s", ST_MANIFEST_FORMAT,
                              st_yaml_describe(format, desc, sizeof desc));
        goto done;
    }
    /* Relative paths are relative to the directory the file was named in,
     * canonicalised so the strategy carries absolute paths. */
    read_dir = st_path_dirname(read_path);
    dir = read_dir ? realpath(read_dir, NULL) : NULL;
    if (!dir) {
        st = st_diag_set(L->diag, ST_E_IO, label, 0, 0, "cannot resolve the manifest's directory: %s",
                         strerror(errno));
        goto done;
    }
    if ((st = st_load_parent(L, root, dir, label)) == ST_OK)
        st = st_apply_keys(L, root, dir);
done:
    st_value_free(root);
    free(dir);
    free(read_dir);
    L->depth--;
    free(L->chain_real[L->depth]);
    L->chain_real[L->depth] = NULL;
    return st;
}

static st_status st_strategy_check_complete(st_strategy_loader *L)
{
    static const char *const names[] = {"tokenizer", "positional-encoding", "attention"};
    const st_plugin_ref *refs[] = {&L->s->tokenizer, &L->s->posenc, &L->s->attention};
    for (size_t k = 0; k < 3; k++)
        if (!refs[k]->plugin)
            return st_diag_set(L->diag, ST_E_INVALID, L->s->path, L->top_line, L->top_col,
                               "incomplete strategy: expected a block '%s' choosing a plugin "
                               "(here or in a manifest it extends), found none", names[k]);
    if (L->s->n_samplers == 0)
        return st_diag_set(L->diag, ST_E_INVALID, L->s->path, L->top_line, L->top_col,
                           "incomplete strategy: expected 'samplers' with at least one sampler "
                           "(here or in a manifest it extends), found none");
    return ST_OK;
}

st_status st_strategy_load(const char *path, st_strategy **out, st_diag *diag)
{
    if (!path || !out)
        return st_diag_set(diag, ST_E_INVALID, path, 0, 0, "no strategy manifest path given");
    st_strategy *s = calloc(1, sizeof *s);
    st_strategy_loader L = {.s = s, .diag = diag};
    if (!s || !(s->path = strdup(path)) || !(s->backend = strdup(ST_STRATEGY_DEFAULT_BACKEND))) {
        st_strategy_free(s);
        return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
    }
    s->context = ST_STRATEGY_DEFAULT_CONTEXT;
    s->kv_type = ST_KV_F16;
    s->threads = 0;
    s->parallel = 1;

    st_status st;
    char *real = realpath(path, NULL);
    const char *label = NULL;
    if (!real) {
        st = st_diag_set(diag, errno == ENOENT ? ST_E_NOT_FOUND : ST_E_IO, path, 0, 0,
                         "cannot open strategy manifest: %s", strerror(errno));
    } else if (!(label = st_strategy_intern(s, path))) {
        free(real);
        st = st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
    } else {
        st = st_load_layer(&L, path, label, real, NULL);
        if (st == ST_OK)
            st = st_strategy_check_complete(&L);
    }
    if (st != ST_OK) {
        st_strategy_free(s);
        return st;
    }
    *out = s;
    return ST_OK;
}
