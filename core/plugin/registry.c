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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "paths.h"

#define ST_SCAN_MAX_DEPTH 16
/* Directory entries read per search directory: plugin trees hold dozens;
 * a symlink to / or a directory like /proc must not turn a listing into a
 * walk of the whole machine. */
#define ST_SCAN_MAX_ENTRIES 20000
/* Notes kept per registry; the rest are only counted. */
#define ST_REGISTRY_NOTES_MAX 16

struct st_registry {
    char **dirs;              /* explicit dirs, in order added */
    size_t n_dirs;
    char **searched;          /* every dir actually scanned, for messages */
    size_t n_searched;
    st_plugin_record **recs;  /* pointers stay valid as the array grows */
    size_t n_recs, cap_recs;
    char **real_paths;        /* canonical manifest path per record (dedupe) */
    st_diag notes[ST_REGISTRY_NOTES_MAX]; /* what a scan skipped, and why */
    size_t n_notes, n_notes_dropped;
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

static void add_note(st_registry *r, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_note(st_registry *r, const char *path, const char *fmt, ...)
{
    if (r->n_notes == ST_REGISTRY_NOTES_MAX) {
        r->n_notes_dropped++;
        return;
    }
    char msg[ST_DIAG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st_diag_set(&r->notes[r->n_notes++], ST_OK, path, 0, 0, "%s", msg);
}

/* One search directory's walk: every directory is entered once, however
 * many symlinks lead to it, and only so many entries are read. */
typedef struct scan_state {
    struct { dev_t dev; ino_t ino; } *seen;
    size_t n_seen, cap_seen;
    size_t entries;
    bool stopped;
    /* The built-in directory is searched even when world-writable (with a
     * warning): it comes last, so it shadows nothing, and skipping it would
     * leave a sloppily installed stretch with no plugins at all. */
    bool builtin;
} scan_state;

/* True when (dev, ino) was not entered yet (and remembers it). */
static st_status first_visit(scan_state *sc, const struct stat *sb, bool *first)
{
    *first = false;
    for (size_t i = 0; i < sc->n_seen; i++)
        if (sc->seen[i].dev == sb->st_dev && sc->seen[i].ino == sb->st_ino)
            return ST_OK;
    if (sc->n_seen == sc->cap_seen) {
        size_t cap = sc->cap_seen ? 2 * sc->cap_seen : 64;
        void *grown = realloc(sc->seen, cap * sizeof *sc->seen);
        if (!grown)
            return ST_E_NOMEM;
        sc->seen = grown;
        sc->cap_seen = cap;
    }
    sc->seen[sc->n_seen].dev = sb->st_dev;
    sc->seen[sc->n_seen].ino = sb->st_ino;
    sc->n_seen++;
    *first = true;
    return ST_OK;
}

/* Anyone may write there, so anyone could plant a plugin that shadows a
 * built-in one (the first of a name wins): such places are not searched. */
static bool world_writable(const struct stat *sb)
{
    return (sb->st_mode & S_IWOTH) != 0;
}

/* Notes the place; true when it must be skipped. */
static bool skip_world_writable(st_registry *r, const scan_state *sc, const char *path,
                                const struct stat *sb)
{
    if (!world_writable(sb))
        return false;
    add_note(r, path, "%s: %s is world-writable (mode %04o), so anyone could plant a "
             "plugin there; remove write permission for others (chmod o-w)",
             sc->builtin ? "searched anyway (built-in directory)" : "not searched",
             S_ISDIR(sb->st_mode) ? "the directory" : "the manifest",
             (unsigned)(sb->st_mode & 07777));
    return !sc->builtin;
}

/* Depth-first, entries in name order so listings are stable. Symlinked
 * directories are followed, but each directory is entered once. */
static st_status scan_dir(st_registry *r, scan_state *sc, const char *dir, int depth,
                          st_diag *diag)
{
    if (depth > ST_SCAN_MAX_DEPTH || sc->stopped)
        return ST_OK;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return ST_OK;
    bool first = false;
    if (first_visit(sc, &sb, &first) != ST_OK)
        return st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
    if (!first)
        return ST_OK;
    if (skip_world_writable(r, sc, dir, &sb))
        return ST_OK;
    DIR *d = opendir(dir);
    if (!d)
        return ST_OK; /* unreadable subdirectories are skipped, like PATH */
    char **names = NULL;
    size_t n = 0;
    st_status st = ST_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (++sc->entries > ST_SCAN_MAX_ENTRIES) {
            sc->stopped = true;
            add_note(r, dir, "search stopped here after %d directory entries; plugins "
                     "further on were not looked for (is a search directory, or a "
                     "symlink in it, too broad?)", ST_SCAN_MAX_ENTRIES);
            break;
        }
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
        struct stat msb;
        if (stat(path, &msb) != 0 || !S_ISREG(msb.st_mode)) {
            /* not a manifest file: nothing to list */
        } else if (skip_world_writable(r, sc, path, &msb)) {
            /* noted */
        } else {
            st_status added = add_record(r, path, NULL, NULL);
            if (added == ST_E_NOMEM)
                st = st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
        }
        free(path);
    }
    for (size_t i = 0; st == ST_OK && !sc->stopped && i < n; i++) {
        char *path = st_path_join(dir, names[i]);
        if (!path) {
            st = st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
            break;
        }
        if (st_path_is_dir(path))
            st = scan_dir(r, sc, path, depth + 1, diag);
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

static st_status scan_root(st_registry *r, const char *dir, bool builtin, st_diag *diag)
{
    if (!st_path_is_dir(dir))
        return ST_OK;
    if (!push_str(&r->searched, &r->n_searched, dir))
        return st_diag_set(diag, ST_E_NOMEM, dir, 0, 0, "out of memory");
    scan_state sc = {.builtin = builtin};
    st_status st = scan_dir(r, &sc, dir, 0, diag);
    free(sc.seen);
    return st;
}

st_status st_registry_scan(st_registry *r, st_diag *diag)
{
    st_status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < r->n_dirs; i++)
        st = scan_root(r, r->dirs[i], false, diag);
    const char *env = getenv("STRETCH_PLUGIN_PATH");
    if (st == ST_OK && env && *env) {
        char *copy = strdup(env);
        if (!copy)
            return st_diag_set(diag, ST_E_NOMEM, NULL, 0, 0, "out of memory");
        char *save = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok && st == ST_OK;
             tok = strtok_r(NULL, ":", &save))
            st = scan_root(r, tok, false, diag);
        free(copy);
    }
    const char *builtin = st_builtin_plugin_dir();
    if (st == ST_OK && builtin)
        st = scan_root(r, builtin, true, diag);
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

size_t st_registry_note_count(const st_registry *r) { return r->n_notes; }

const st_diag *st_registry_note_at(const st_registry *r, size_t i)
{
    return i < r->n_notes ? &r->notes[i] : NULL;
}

size_t st_registry_notes_dropped(const st_registry *r) { return r->n_notes_dropped; }

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
    /* A name under the wrong key ("attention: {plugin: typical}" for a
     * sampler) is the likeliest slip: say which kind has it. */
    const st_plugin_record *other = kind ? find_live(r, 0, name) : NULL;
    char hint[96] = "";
    if (other)
        snprintf(hint, sizeof hint, "; a %s plugin named '%s' exists: is it under the right key?",
                 st_kind_name(other->manifest->kind), name);
    st_diag_set(diag, ST_E_NOT_FOUND, NULL, 0, 0,
                "no %s%splugin named '%s' (searched: %s)%s%s",
                kind ? st_kind_name(kind) : "", kind ? " " : "", name,
                r->n_searched ? where : "no plugin directories exist",
                broken ? "; some manifests are broken: see `stretch plugins`" : "", hint);
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
        char *own = st_path_dirname(info.dli_fname);
        bool found = own && (builtin_try(own, "stretch/plugins") ||
                             builtin_try(own, "../lib/stretch/plugins"));
        free(own);
        if (found)
            return;
    }
    const char *exe = st_exe_dir();
    if (exe && builtin_try(exe, "../lib/stretch/plugins"))
        return;
#ifdef ST_INSTALL_PLUGIN_DIR
    st_builtin_dir = ST_INSTALL_PLUGIN_DIR;
#endif
}

const char *st_builtin_plugin_dir(void)
{
    pthread_once(&st_builtin_once, builtin_init);
    return st_builtin_dir;
}
