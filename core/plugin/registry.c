/*
 * core/registry.c - find plugins by reading plugin.yaml files (never by
 * running plugin code). See registry.h for the search order and states.
 */
#include "registry.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paths.h"

#define ST_SCAN_MAX_DEPTH 16

struct st_registry {
    char **dirs;              /* explicit dirs, in order added */
    size_t n_dirs;
    char **searched;          /* every dir actually scanned, for messages */
    size_t n_searched;
    st_plugin_record **recs;  /* pointers stay valid as the array grows */
    size_t n_recs, cap_recs;
    char **real_paths;        /* canonical manifest path per record (dedupe) */
};

static bool push_str(char ***arr, size_t *n, const char *s)
{
    char *copy = strdup(s);
    char **grown = copy ? realloc(*arr, (*n + 1) * sizeof **arr) : NULL;
    if (!grown) {
        free(copy);
        return false;
    }
    grown[(*n)++] = copy;
    *arr = grown;
    return true;
}

st_registry *st_registry_new(void)
{
    return calloc(1, sizeof(st_registry));
}

void st_registry_free(st_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_dirs; i++)
        free(r->dirs[i]);
    free(r->dirs);
    for (size_t i = 0; i < r->n_searched; i++)
        free(r->searched[i]);
    free(r->searched);
    for (size_t i = 0; i < r->n_recs; i++) {
        st_plugin_manifest_free(r->recs[i]->manifest);
        free(r->recs[i]->manifest_path);
        free(r->recs[i]);
        free(r->real_paths[i]);
    }
    free(r->recs);
    free(r->real_paths);
    free(r);
}

st_status st_registry_add_dir(st_registry *r, const char *dir, st_diag *diag)
{
    if (!st_path_is_dir(dir))
        return st_diag_set(diag, ST_E_NOT_FOUND, dir, 0, 0,
                           "plugin directory does not exist or is not a directory");
    if (!push_str(&r->dirs, &r->n_dirs, dir))
        return st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
    return ST_OK;
}

static const st_plugin_record *find_live(const st_registry *r, st_kind kind,
                                         const char *name)
{
    for (size_t i = 0; i < r->n_recs; i++) {
        const st_plugin_record *rec = r->recs[i];
        if (!rec->manifest || rec->state == ST_PLUGIN_SHADOWED ||
            rec->state == ST_PLUGIN_BROKEN)
            continue;
        if ((kind == 0 || rec->manifest->kind == kind) &&
            strcmp(rec->manifest->name, name) == 0)
            return rec;
    }
    return NULL;
}

/* Append a record for `path`. A manifest already listed (same real path,
 * reached through two search dirs) is returned as is, not listed twice. */
static st_status add_record(st_registry *r, const char *path,
                            const st_plugin_record **out, st_diag *diag)
{
    char *real = st_path_canonical(path);
    if (!real)
        real = strdup(path);
    if (!real)
        return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
    for (size_t i = 0; i < r->n_recs; i++) {
        if (strcmp(r->real_paths[i], real) == 0) {
            free(real);
            if (out)
                *out = r->recs[i];
            if (diag && r->recs[i]->state == ST_PLUGIN_BROKEN)
                *diag = r->recs[i]->diag;
            return r->recs[i]->state == ST_PLUGIN_BROKEN ? r->recs[i]->diag.status
                                                          : ST_OK;
        }
    }
    if (r->n_recs == r->cap_recs) {
        size_t cap = r->cap_recs ? r->cap_recs * 2 : 16;
        st_plugin_record **recs = realloc(r->recs, cap * sizeof *recs);
        if (recs)
            r->recs = recs;
        char **reals = recs ? realloc(r->real_paths, cap * sizeof *reals) : NULL;
        if (!reals) {
            free(real);
            return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
        }
        r->real_paths = reals;
        r->cap_recs = cap;
    }
    st_plugin_record *rec = calloc(1, sizeof *rec);
    if (rec)
        rec->manifest_path = strdup(path);
    if (!rec || !rec->manifest_path) {
        free(rec);
        free(real);
        return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
    }
    st_status st = st_plugin_manifest_load(path, &rec->manifest, &rec->diag);
    if (st != ST_OK) {
        rec->manifest = NULL;
        rec->state = ST_PLUGIN_BROKEN;
        if (rec->diag.status == ST_OK) /* be robust to a parser that forgot */
            st_diag_set(&rec->diag, st, path, 0, 0, "manifest failed to load");
    } else {
        const st_plugin_record *first = find_live(r, rec->manifest->kind,
                                                  rec->manifest->name);
        if (first) {
            rec->state = ST_PLUGIN_SHADOWED;
            st_diag_set(&rec->diag, ST_OK, path, 0, 0,
                        "shadowed by %s (the first %s '%s' found wins)",
                        first->manifest_path, st_kind_name(rec->manifest->kind),
                        rec->manifest->name);
        } else {
            rec->state = ST_PLUGIN_OK;
            st_diag_clear(&rec->diag);
        }
    }
    r->recs[r->n_recs] = rec;
    r->real_paths[r->n_recs] = real;
    r->n_recs++;
    if (out)
        *out = rec;
    if (st != ST_OK && diag)
        *diag = rec->diag;
    return st;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directories above the one being scanned, to stop symlink loops. */
typedef struct scan_frame {
    dev_t dev;
    ino_t ino;
    const struct scan_frame *up;
} scan_frame;

/* Depth-first, entries in name order so listings are stable. Symlinked
 * directories are followed, except back into one of their own ancestors;
 * the depth limit bounds the rest. */
static st_status scan_dir(st_registry *r, const char *dir, int depth,
                          const scan_frame *up, st_diag *diag)
{
    if (depth > ST_SCAN_MAX_DEPTH)
        return ST_OK;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return ST_OK;
    for (const scan_frame *f = up; f; f = f->up)
        if (f->dev == sb.st_dev && f->ino == sb.st_ino)
            return ST_OK;
    scan_frame here = {sb.st_dev, sb.st_ino, up};
    DIR *d = opendir(dir);
    if (!d)
        return ST_OK; /* unreadable subdirectories are skipped, like PATH */
    char **names = NULL;
    size_t n = 0;
    st_status st = ST_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* ".", "..", and hidden dirs (.git) */
        if (!push_str(&names, &n, de->d_name)) {
            st = st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
            break;
        }
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    /* The manifest of this directory first, then subdirectories. */
    for (size_t i = 0; st == ST_OK && i < n; i++) {
        if (strcmp(names[i], "plugin.yaml") != 0)
            continue;
        char *path = st_path_join(dir, names[i]);
        if (!path) {
            st = st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
            break;
        }
        if (st_path_is_file(path)) {
            st_status added = add_record(r, path, NULL, NULL);
            if (added == ST_E_NOMEM)
                st = st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
        }
        free(path);
    }
    for (size_t i = 0; st == ST_OK && i < n; i++) {
        char *path = st_path_join(dir, names[i]);
        if (!path) {
            st = st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
            break;
        }
        if (st_path_is_dir(path))
            st = scan_dir(r, path, depth + 1, &here, diag);
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

static st_status scan_root(st_registry *r, const char *dir, st_diag *diag)
{
    if (!st_path_is_dir(dir))
        return ST_OK;
    if (!push_str(&r->searched, &r->n_searched, dir))
        return st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
    return scan_dir(r, dir, 0, NULL, diag);
}

st_status st_registry_scan(st_registry *r, st_diag *diag)
{
    st_status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < r->n_dirs; i++)
        st = scan_root(r, r->dirs[i], diag);
    const char *env = getenv("STRETCH_PLUGIN_PATH");
    if (st == ST_OK && env && *env) {
        char *copy = strdup(env);
        if (!copy)
            return st_diag_set(diag, ST_E_NOMEM, NULL, 0, 0, "out of memory");
        char *save = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok && st == ST_OK;
             tok = strtok_r(NULL, ":", &save))
            st = scan_root(r, tok, diag);
        free(copy);
    }
    const char *builtin = st_builtin_plugin_dir();
    if (st == ST_OK && builtin)
        st = scan_root(r, builtin, diag);
    return st;
}

st_status st_registry_add_manifest(st_registry *r, const char *path,
                                   const st_plugin_record **out, st_diag *diag)
{
    if (out)
        *out = NULL;
    if (!st_path_is_file(path))
        return st_diag_set(diag, ST_E_NOT_FOUND, path, 0, 0,
                           "no such plugin manifest");
    return add_record(r, path, out, diag);
}

size_t st_registry_count(const st_registry *r) { return r->n_recs; }

const st_plugin_record *st_registry_at(const st_registry *r, size_t i)
{
    return i < r->n_recs ? r->recs[i] : NULL;
}

const st_plugin_record *st_registry_find(const st_registry *r, st_kind kind,
                                         const char *name, st_diag *diag)
{
    const st_plugin_record *rec = find_live(r, kind, name);
    if (rec)
        return rec;
    char where[ST_DIAG_MESSAGE_MAX / 2];
    size_t used = 0;
    where[0] = '\0';
    for (size_t i = 0; i < r->n_searched && used < sizeof where; i++)
        used += (size_t)snprintf(where + used, sizeof where - used, "%s%s",
                                 i ? ", " : "", r->searched[i]);
    size_t broken = 0;
    for (size_t i = 0; i < r->n_recs; i++)
        broken += r->recs[i]->state == ST_PLUGIN_BROKEN;
    st_diag_set(diag, ST_E_NOT_FOUND, NULL, 0, 0,
                "no %s%splugin named '%s' (searched: %s)%s",
                kind ? st_kind_name(kind) : "", kind ? " " : "", name,
                r->n_searched ? where : "no plugin directories exist",
                broken ? "; some manifests are broken: see `stretch plugins`" : "");
    return NULL;
}

static char st_builtin_dir_buf[PATH_MAX];
static const char *st_builtin_dir;
static pthread_once_t st_builtin_once = PTHREAD_ONCE_INIT;

/* `dir`/`rel` as a canonical existing directory into st_builtin_dir. */
static bool builtin_try(const char *dir, const char *rel)
{
    int n = snprintf(st_builtin_dir_buf, sizeof st_builtin_dir_buf, "%s/%s", dir, rel);
    if (n <= 0 || (size_t)n >= sizeof st_builtin_dir_buf)
        return false;
    char *real = st_path_canonical(st_builtin_dir_buf);
    bool ok = real && st_path_is_dir(real) && strlen(real) < sizeof st_builtin_dir_buf;
    if (ok) {
        memcpy(st_builtin_dir_buf, real, strlen(real) + 1);
        st_builtin_dir = st_builtin_dir_buf;
    }
    free(real);
    return ok;
}

/* The built-in plugins lie beside the code that holds this function: the
 * shared library (<libdir>/stretch/plugins: the build tree's lib/ and the
 * install tree's libdir alike), or the executable it is linked into
 * (<bin>/../lib/stretch/plugins). Asking dladdr rather than /proc/self/exe
 * is what lets libstretch find them inside Python or any other host. */
static void builtin_init(void)
{
    Dl_info info;
    if (dladdr((const void *)builtin_try, &info) && info.dli_fname && info.dli_fname[0] == '/') {
        char *own = strdup(info.dli_fname);
        if (own) {
            char *slash = strrchr(own, '/');
            if (slash)
                *slash = '\0';
            bool found = builtin_try(own, "stretch/plugins") ||
                         builtin_try(own, "../lib/stretch/plugins");
            free(own);
            if (found)
                return;
        }
    }
    const char *exe = st_exe_dir();
    if (exe) {
        int n = snprintf(st_builtin_dir_buf, sizeof st_builtin_dir_buf,
                         "%s/../lib/stretch/plugins", exe);
        if (n > 0 && (size_t)n < sizeof st_builtin_dir_buf) {
            char *real = st_path_canonical(st_builtin_dir_buf);
            if (real && st_path_is_dir(real) && strlen(real) < sizeof st_builtin_dir_buf) {
                memcpy(st_builtin_dir_buf, real, strlen(real) + 1);
                st_builtin_dir = st_builtin_dir_buf;
            }
            free(real);
            if (st_builtin_dir)
                return;
        }
    }
#ifdef ST_INSTALL_PLUGIN_DIR
    st_builtin_dir = ST_INSTALL_PLUGIN_DIR;
#endif
}

const char *st_builtin_plugin_dir(void)
{
    pthread_once(&st_builtin_once, builtin_init);
    return st_builtin_dir;
}
