/*
 * tools/stretch/eval_fingerprint.c - see eval_common.h. A resumed
 * evaluation reuses scored points only for the same inputs; these hashes
 * say what the inputs were.
 */
#include "eval_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/registry.h>

#include "engine_cli.h"

#define FNV_PRIME 0x100000001b3ull

uint64_t st_eval_hash(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    /* Eight bytes a step: the model file can be gigabytes. */
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * FNV_PRIME;
    }
    for (; n; n--, p++)
        h = (h ^ *p) * FNV_PRIME;
    return h;
}

bool st_eval_hash_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static unsigned char buf[1 << 20];
    uint64_t h = ST_EVAL_HASH_INIT;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        h = st_eval_hash(h, buf, n);
    bool ok = !ferror(f);
    fclose(f);
    *out = h;
    return ok;
}

bool st_eval_hash_manifest(const char *path, uint64_t *out)
{
    /* A model given for the manifest runs with the default strategy
     * (st_cli_open_engine): that is the strategy to fingerprint. */
    if (st_cli_is_gguf(path) && !(path = st_cli_default_manifest(NULL)))
        return false;
    /* Every file of the extends chain, so a changed parent counts too. */
    st_resolve_options o = {.struct_size = sizeof o, .flags = ST_RESOLVE_PARSE_ONLY};
    st_strategy_report *s = NULL;
    if (st_strategy_resolve(path, &o, &s, NULL) != ST_OK || !s->parsed) {
        st_strategy_report_free(s);
        return false;
    }
    uint64_t h = ST_EVAL_HASH_INIT;
    bool ok = true;
    for (size_t i = 0; ok && i < s->n_files; i++) {
        uint64_t fh;
        ok = st_eval_hash_file(s->files[i], &fh);
        h = st_eval_hash(h, &fh, sizeof fh);
    }
    st_strategy_report_free(s);
    *out = h;
    return ok;
}

bool st_eval_input_fields(const char *model, const char *manifest, st_points_field f[2])
{
    uint64_t hm, hs;
    if (!st_eval_hash_file(model, &hm) || !st_eval_hash_manifest(manifest, &hs))
        return false;
    f[0].key = "model";
    snprintf(f[0].value, sizeof f[0].value, "%016llx", (unsigned long long)hm);
    f[1].key = "manifest";
    snprintf(f[1].value, sizeof f[1].value, "%016llx", (unsigned long long)hs);
    return true;
}
