/*
 * tools/stretch/serve/models_dir.c - the served models: each *.yaml in the
 * manifests directory, named by its stem. A request's `model` is looked up
 * among these names only, so a request can never name a file.
 */
#include "server.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Stems a URL or a JSON string can carry without ambiguity. */
static bool stem_ok_n(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

bool st_models_stem_ok(const char *stem)
{
    return stem && stem_ok_n(stem, strlen(stem));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_file(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return false;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char **st_models_list(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **stems = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".yaml") != 0 ||
            !stem_ok_n(de->d_name, len - 5) || !is_file(dir, de->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(stems, cap * sizeof *grown);
            if (!grown)
                break;
            stems = grown;
        }
        if (!(stems[*n] = strndup(de->d_name, len - 5)))
            break;
        (*n)++;
    }
    closedir(d);
    if (*n)
        qsort(stems, *n, sizeof *stems, cmp_str);
    return stems;
}

void st_models_free(char **stems, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(stems[i]);
    free(stems);
}

char *st_models_resolve(const char *dir, const char *stem)
{
    if (!st_models_stem_ok(stem))
        return NULL;
    size_t n = 0;
    char **stems = st_models_list(dir, &n);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(stems[i], stem) == 0;
    st_models_free(stems, n);
    if (!found)
        return NULL;
    size_t len = strlen(dir) + strlen(stem) + 7;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%s/%s.yaml", dir, stem);
    return path;
}
