/*
 * core/manifest/stock_manifests.c - the stock strategy manifests' search
 * path (see stock_manifests.h).
 */
#include "stock_manifests.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"

static char stock_dir_buf[4096];
static const char *stock_dir;
static pthread_once_t stock_once = PTHREAD_ONCE_INIT;

static bool stock_try(const char *dir, const char *rel)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (n <= 0 || (size_t)n >= sizeof path)
        return false;
    char *real = st_path_canonical(path);
    bool ok = real && st_path_is_dir(real) && strlen(real) < sizeof stock_dir_buf;
    if (ok) {
        memcpy(stock_dir_buf, real, strlen(real) + 1);
        stock_dir = stock_dir_buf;
    }
    free(real);
    return ok;
}

/* Beside the shared library or the executable holding this code: lib/ and
 * bin/ sit one level under the prefix, a multiarch libdir
 * (lib/x86_64-linux-gnu) two. */
static void stock_init(void)
{
    Dl_info info;
    if (dladdr((const void *)stock_try, &info) && info.dli_fname && info.dli_fname[0] == '/') {
        char *own = st_path_dirname(info.dli_fname);
        bool found = own && (stock_try(own, "../share/stretch/manifests") ||
                             stock_try(own, "../../share/stretch/manifests"));
        free(own);
        if (found)
            return;
    }
    const char *exe = st_exe_dir();
    if (exe && stock_try(exe, "../share/stretch/manifests"))
        return;
#ifdef ST_INSTALL_MANIFEST_DIR
    if (st_path_is_dir(ST_INSTALL_MANIFEST_DIR))
        stock_dir = ST_INSTALL_MANIFEST_DIR;
#endif
}

const char *st_stock_manifest_dir(void)
{
    pthread_once(&stock_once, stock_init);
    return stock_dir;
}

/* `dir`/`name`[.yaml] when it is a file: malloc'd, else NULL. */
static char *in_dir(const char *dir, const char *name)
{
    size_t n = strlen(name);
    bool has_ext = n > 5 && strcmp(name + n - 5, ".yaml") == 0;
    char *path = NULL;
    if (asprintf(&path, "%s/%s%s", dir, name, has_ext ? "" : ".yaml") < 0)
        return NULL;
    if (st_path_is_file(path))
        return path;
    free(path);
    return NULL;
}

static void note_searched(char *searched, size_t cap, size_t *used, const char *dir)
{
    if (*used >= cap)
        return;
    int w = snprintf(searched + *used, cap - *used, "%s%s", *used ? ", " : "", dir);
    *used += w > 0 ? (size_t)w : 0;
}

char *st_stock_manifest_find(const char *name, char *searched, size_t cap)
{
    size_t used = 0;
    if (cap)
        searched[0] = '\0';
    if (!name[0] || strchr(name, '/'))
        return NULL;
    const char *env = getenv("STRETCH_MANIFEST_PATH");
    if (env && env[0]) {
        char *copy = strdup(env), *save = NULL;
        for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
             dir = strtok_r(NULL, ":", &save)) {
            char *hit = in_dir(dir, name);
            if (hit) {
                free(copy);
                return hit;
            }
            note_searched(searched, cap, &used, dir);
        }
        free(copy);
    }
    const char *stock = st_stock_manifest_dir();
    if (stock) {
        char *hit = in_dir(stock, name);
        if (hit)
            return hit;
        note_searched(searched, cap, &used, stock);
    }
    if (used == 0)
        note_searched(searched, cap, &used, "no stock manifest directory exists");
    return NULL;
}
