/*
 * core/yaml_path.c - the path arithmetic manifests need: "relative to this
 * file" (lexical joins) and "does this library stay inside the plugin's
 * directory" (canonical paths, symlinks followed even when the final file
 * does not exist yet, since the manifest loader never opens the library).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"
#include "yaml_manifest.h"

/* Symlink hops before giving up, like the kernel's ELOOP limit. */
#define ST_YAML_LINK_HOPS 40

char *st_yaml_path_normalize(const char *path)
{
    size_t len = strlen(path);
    bool absolute = path[0] == '/';
    /* A stack of component start offsets into a scratch copy. */
    char *scratch = strdup(path);
    const char **parts = calloc(len / 2 + 2, sizeof *parts);
    char *out = malloc(len + 2);
    if (!scratch || !parts || !out) {
        free(scratch);
        free(parts);
        free(out);
        return NULL;
    }
    size_t n = 0;
    char *save = NULL;
    for (char *c = strtok_r(scratch, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            if (n > 0 && strcmp(parts[n - 1], "..") != 0)
                n--;
            else if (!absolute)
                parts[n++] = c; /* a relative path may climb above its start */
            continue;              /* "/.." is "/" */
        }
        parts[n++] = c;
    }
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        if (absolute || k)
            out[o++] = '/';
        size_t l = strlen(parts[k]);
        memcpy(out + o, parts[k], l);
        o += l;
    }
    if (o == 0)
        out[o++] = absolute ? '/' : '.';
    out[o] = '\0';
    free(scratch);
    free(parts);
    return out;
}

char *st_yaml_path_resolve(const char *dir, const char *p)
{
    if (p[0] == '/')
        return st_yaml_path_normalize(p);
    size_t a = strlen(dir), b = strlen(p);
    char *joined = malloc(a + b + 2);
    if (!joined)
        return NULL;
    memcpy(joined, dir, a);
    joined[a] = '/';
    memcpy(joined + a + 1, p, b + 1);
    char *n = st_yaml_path_normalize(joined);
    free(joined);
    return n;
}

static char *st_yaml_path_canonical_hops(const char *abs_path, int hops)
{
    char *real = realpath(abs_path, NULL);
    if (real)
        return real;
    if (hops > ST_YAML_LINK_HOPS) {
        errno = ELOOP;
        return NULL;
    }
    struct stat sb;
    if (lstat(abs_path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        /* A dangling link: follow it by hand to see where it points. */
        char target[PATH_MAX];
        ssize_t n = readlink(abs_path, target, sizeof target - 1);
        if (n < 0)
            return NULL;
        target[n] = '\0';
        char *dir = st_path_dirname(abs_path);
        if (!dir)
            return NULL;
        char *next = st_yaml_path_resolve(dir, target);
        free(dir);
        if (!next)
            return NULL;
        char *r = st_yaml_path_canonical_hops(next, hops + 1);
        free(next);
        return r;
    }
    /* Missing: canonicalise the parent, append the last component. */
    char *dir = st_path_dirname(abs_path);
    if (!dir)
        return NULL;
    if (strcmp(dir, abs_path) == 0) {
        free(dir);
        return strdup(abs_path);
    }
    char *real_dir = st_yaml_path_canonical_hops(dir, hops + 1);
    free(dir);
    if (!real_dir)
        return NULL;
    const char *base = strrchr(abs_path, '/');
    base = base ? base + 1 : abs_path;
    char *r = st_yaml_path_resolve(real_dir, base);
    free(real_dir);
    return r;
}

char *st_yaml_path_canonical(const char *abs_path)
{
    char *clean = st_yaml_path_normalize(abs_path);
    if (!clean)
        return NULL;
    char *r = st_yaml_path_canonical_hops(clean, 0);
    free(clean);
    return r;
}

bool st_yaml_path_is_beneath(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/' && path[1] != '\0';
    return strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] != '\0';
}
