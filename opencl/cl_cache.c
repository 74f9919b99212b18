/* The program binary cache: one file per (platform, device, driver, build
 * options, source) under $XDG_CACHE_HOME/stretch/opencl/. A driver may
 * accept a damaged binary and crash later, so every entry is checked
 * before it is handed to the driver: magic, the full key (a stale entry of
 * another key under the same name), the length (truncated) and a checksum
 * of the payload (corrupted).
 *
 * File layout: "STCLBIN1", u32 key length, key text, u64 payload length,
 * u64 payload FNV-1a hash, payload. Little-endian as the host writes it:
 * the cache is per machine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opencl_internal.h"

static const char MAGIC[8] = { 'S', 'T', 'C', 'L', 'B', 'I', 'N', '1' };

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define FNV_SEED 14695981039346656037ull

bool st_cl_cache_dir(const char *dir, char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int w;
    if (dir && *dir)
        w = snprintf(out, cap, "%s", dir);
    else if (xdg && *xdg)
        w = snprintf(out, cap, "%s/stretch/opencl", xdg);
    else if (home && *home)
        w = snprintf(out, cap, "%s/.cache/stretch/opencl", home);
    else
        return false;
    return w > 0 && (size_t)w < cap;
}

void st_cl_cache_key(const st_device_info *dev, const char *options, const char *source,
                     size_t source_len, char *out, size_t cap)
{
    snprintf(out, cap, "platform=%s\ndevice=%s\ndriver=%s\noptions=%s\nsource=%016llx/%zu\n",
             dev->platform_name, dev->name, dev->driver_version, options ? options : "",
             (unsigned long long)fnv1a(source, source_len, FNV_SEED), source_len);
}

void st_cl_cache_path(const char *dir, const char *key, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%016llx.bin", dir,
             (unsigned long long)fnv1a(key, strlen(key), FNV_SEED));
}

/* mkdir -p */
static st_status make_dirs(const char *dir, st_diag *diag)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return st_diag_set(diag, ST_E_RANGE, dir, 0, 0, "kernel cache: path too long");
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return st_diag_set(diag, ST_E_IO, buf, 0, 0,
                                   "kernel cache: cannot create the directory: %s",
                                   strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    return ST_OK;
}

static bool read_exact(FILE *f, void *p, size_t n)
{
    return fread(p, 1, n, f) == n;
}

st_status st_cl_cache_load(const char *dir, const char *key, unsigned char **bin, size_t *len,
                           st_diag *diag)
{
    char path[1100];
    st_cl_cache_path(dir, key, path, sizeof path);
    *bin = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ST_E_NOT_FOUND;
    st_status s = ST_E_FORMAT;
    const char *why = "truncated";
    char magic[8];
    uint32_t klen = 0;
    uint64_t plen = 0, hash = 0;
    char *k = NULL;
    unsigned char *payload = NULL;
    if (!read_exact(f, magic, sizeof magic) || memcmp(magic, MAGIC, sizeof magic) != 0) {
        why = "not a stretch kernel cache entry";
        goto done;
    }
    if (!read_exact(f, &klen, sizeof klen))
        goto done;
    if (klen != strlen(key)) {
        why = "stale (made for another device, driver, option set or source)";
        goto done;
    }
    if (!(k = malloc(klen)) || !read_exact(f, k, klen))
        goto done;
    if (memcmp(k, key, klen) != 0) {
        why = "stale (made for another device, driver, option set or source)";
        goto done;
    }
    if (!read_exact(f, &plen, sizeof plen) || !read_exact(f, &hash, sizeof hash))
        goto done;
    /* A length larger than what is left of the file is a truncation, not
     * an allocation to attempt. */
    long here = ftell(f);
    if (fseek(f, 0, SEEK_END) != 0)
        goto done;
    long end = ftell(f);
    if (here < 0 || end < here || (uint64_t)(end - here) != plen || plen == 0) {
        why = (end >= here && (uint64_t)(end - here) < plen) ? "truncated"
                                                            : "of the wrong length";
        goto done;
    }
    fseek(f, here, SEEK_SET);
    if (!(payload = malloc(plen)) || !read_exact(f, payload, plen))
        goto done;
    if (fnv1a(payload, plen, FNV_SEED) != hash) {
        why = "corrupted (its checksum does not match)";
        goto done;
    }
    *bin = payload;
    *len = plen;
    payload = NULL;
    s = ST_OK;
done:
    fclose(f);
    free(k);
    free(payload);
    if (s != ST_OK)
        st_diag_set(diag, s, path, 0, 0, "kernel cache entry is %s; rebuilding it", why);
    return s;
}

st_status st_cl_cache_store(const char *dir, const char *key, const unsigned char *bin,
                            size_t len, st_diag *diag)
{
    st_status s = make_dirs(dir, diag);
    if (s != ST_OK)
        return s;
    char path[1100], tmp[1200];
    st_cl_cache_path(dir, key, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return st_diag_set(diag, ST_E_IO, tmp, 0, 0, "kernel cache: cannot write: %s",
                           strerror(errno));
    uint32_t klen = (uint32_t)strlen(key);
    uint64_t plen = len, hash = fnv1a(bin, len, FNV_SEED);
    bool ok = fwrite(MAGIC, 1, sizeof MAGIC, f) == sizeof MAGIC &&
              fwrite(&klen, sizeof klen, 1, f) == 1 && fwrite(key, 1, klen, f) == klen &&
              fwrite(&plen, sizeof plen, 1, f) == 1 && fwrite(&hash, sizeof hash, 1, f) == 1 &&
              fwrite(bin, 1, len, f) == len;
    if (fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return st_diag_set(diag, ST_E_IO, path, 0, 0, "kernel cache: cannot write: %s",
                           strerror(e));
    }
    return ST_OK;
}
