/*
 * tests/fuzz/fuzz_util.c - temporary files and input splitting for the
 * fuzz targets (see fuzz_util.h).
 */
#include "fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[512];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(void)
{
    if (g_dir[0])
        nftw(g_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

const char *st_fuzz_dir(void)
{
    if (g_dir[0])
        return g_dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/st-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", g_dir, strerror(errno));
        abort();
    }
    atexit(remove_dir);
    return g_dir;
}

const char *st_fuzz_write(int slot, const char *name, const void *data, size_t size)
{
    static char paths[8][1024];
    char *path = paths[slot & 7];
    snprintf(path, sizeof paths[0], "%s/%s", st_fuzz_dir(), name);
    char *slash = strrchr(path, '/');
    if (slash > path + strlen(g_dir)) {
        *slash = '\0';
        mkdir(path, 0700);
        *slash = '/';
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
    return path;
}

void st_fuzz_remove(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", st_fuzz_dir(), name);
    remove(path);
}

size_t st_fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *part_len,
                     size_t max_parts)
{
    const size_t sep_len = strlen(ST_FUZZ_SEPARATOR);
    size_t n = 0, start = 0;
    for (size_t i = 0; n + 1 < max_parts && i + sep_len <= size; i++)
        if (memcmp(data + i, ST_FUZZ_SEPARATOR, sep_len) == 0) {
            part[n] = data + start;
            part_len[n++] = i - start;
            start = i + sep_len;
            i = start - 1;
        }
    part[n] = data + start;
    part_len[n++] = size - start;
    return n;
}

void st_fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz oracle: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
