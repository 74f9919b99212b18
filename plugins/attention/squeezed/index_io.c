/*
 * index_io.c - the clustering of a fixed context, kept between runs so the
 * offline phase (k-means over every layer and head) is paid once.
 *
 * File: one msgpack map (format name, version, everything the clustering
 * depends on, then per layer and KV head the centroids, cluster sizes and
 * assignments as raw float32/uint32 arrays in host byte order), followed by
 * a msgpack uint64: the FNV-1a 64 of the map's bytes. A truncated file fails
 * to unpack, a flipped byte fails the checksum, and a file for another
 * model, fixed context or clustering parameters is refused as a mismatch.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>
#include <stretch/msgpack_bounds.h>
#include <stretch/msgpack_map.h>

#include "squeezed_internal.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
/* Bigger than any clustering of a 1M-token context of a small model. */
#define MAX_FILE_BYTES ((size_t)1 << 32)

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t st_sq_token_hash(const int32_t *tokens, size_t n)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = (uint32_t)tokens[i];
        uint8_t b[4] = {(uint8_t)t, (uint8_t)(t >> 8), (uint8_t)(t >> 16), (uint8_t)(t >> 24)};
        h = fnv1a(h, b, 4);
    }
    return h;
}

bool st_sq_index_key_equal(const st_sq_index_key *a, const st_sq_index_key *b)
{
    return a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->fixed_len == b->fixed_len && a->observation == b->observation &&
           a->levels == b->levels && a->k_coarse == b->k_coarse &&
           a->kmeans_iters == b->kmeans_iters && a->rotary == b->rotary && a->seed == b->seed &&
           a->cluster_fraction == b->cluster_fraction && a->quantile == b->quantile &&
           a->token_hash == b->token_hash;
}

void st_sq_head_clear(st_sq_head_index *h)
{
    free(h->centroids);
    free(h->mass);
    free(h->assign);
    free(h->coarse_centroids);
    free(h->coarse_mass);
    free(h->parent);
    free(h->member_off);
    free(h->members);
    memset(h, 0, sizeof *h);
}

st_status st_sq_head_members(st_sq_head_index *h)
{
    free(h->member_off);
    free(h->members);
    h->member_off = calloc((size_t)h->k + 1, sizeof(uint32_t));
    h->members = malloc(sizeof(uint32_t) * (h->n_keys ? h->n_keys : 1));
    if (!h->member_off || !h->members)
        return ST_E_NOMEM;
    for (uint32_t i = 0; i < h->n_keys; i++)
        h->member_off[h->assign[i] + 1]++;
    for (uint32_t c = 0; c < h->k; c++)
        h->member_off[c + 1] += h->member_off[c];
    uint32_t *fill = malloc(sizeof(uint32_t) * (h->k ? h->k : 1));
    if (!fill)
        return ST_E_NOMEM;
    memcpy(fill, h->member_off, sizeof(uint32_t) * h->k);
    for (uint32_t i = 0; i < h->n_keys; i++) /* ascending within each cluster */
        h->members[fill[h->assign[i]]++] = i;
    free(fill);
    return ST_OK;
}

st_status st_sq_index_init(st_sq_index *ix, const st_sq_index_key *key)
{
    memset(ix, 0, sizeof *ix);
    ix->key = *key;
    ix->layers = calloc(key->n_layers ? key->n_layers : 1, sizeof *ix->layers);
    if (!ix->layers)
        return ST_E_NOMEM;
    for (uint32_t l = 0; l < key->n_layers; l++) {
        ix->layers[l].heads = calloc(key->n_kv_heads ? key->n_kv_heads : 1,
                                     sizeof(st_sq_head_index));
        if (!ix->layers[l].heads) {
            st_sq_index_free(ix);
            return ST_E_NOMEM;
        }
    }
    return ST_OK;
}

void st_sq_index_free(st_sq_index *ix)
{
    if (!ix->layers)
        return;
    for (uint32_t l = 0; l < ix->key.n_layers; l++) {
        if (!ix->layers[l].heads)
            continue;
        for (uint32_t h = 0; h < ix->key.n_kv_heads; h++)
            st_sq_head_clear(&ix->layers[l].heads[h]);
        free(ix->layers[l].heads);
    }
    free(ix->layers);
    ix->layers = NULL;
}

/* ---- save ------------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_bin(msgpack_packer *pk, const char *name, const void *data, size_t bytes)
{
    pack_str(pk, name);
    msgpack_pack_bin(pk, bytes);
    if (bytes)
        msgpack_pack_bin_body(pk, data, bytes);
}

static void pack_u64(msgpack_packer *pk, const char *name, uint64_t v)
{
    pack_str(pk, name);
    msgpack_pack_uint64(pk, v);
}

static void pack_f64(msgpack_packer *pk, const char *name, double v)
{
    pack_str(pk, name);
    msgpack_pack_double(pk, v);
}

static void pack_head(msgpack_packer *pk, const st_sq_head_index *h, uint32_t hd)
{
    msgpack_pack_map(pk, 9);
    pack_u64(pk, "n_keys", h->n_keys);
    pack_u64(pk, "k", h->k);
    pack_u64(pk, "kc", h->kc);
    pack_bin(pk, "centroids", h->centroids, sizeof(float) * (size_t)h->k * hd);
    pack_bin(pk, "mass", h->mass, sizeof(float) * h->k);
    pack_bin(pk, "assign", h->assign, sizeof(uint32_t) * h->n_keys);
    pack_bin(pk, "coarse_centroids", h->coarse_centroids, sizeof(float) * (size_t)h->kc * hd);
    pack_bin(pk, "coarse_mass", h->coarse_mass, sizeof(float) * h->kc);
    pack_bin(pk, "parent", h->parent, h->kc ? sizeof(uint32_t) * h->k : 0);
}

bool st_sq_index_replaceable(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    uint8_t head[64];
    size_t n = 0;
    ssize_t got = 1;
    while (n < sizeof head && got > 0) {
        got = read(fd, head + n, sizeof head - n);
        if (got > 0)
            n += (size_t)got;
    }
    close(fd);
    if (got < 0)
        return false;
    if (n == 0)
        return true; /* empty: nothing to lose */
    /* Past the map header (fixmap, map16 or map32) our files begin with
     * "format": MAGIC, whatever their version; pack that to compare. */
    size_t skip = (head[0] & 0xF0) == 0x80 ? 1 : head[0] == 0xDE ? 3 : head[0] == 0xDF ? 5 : 0;
    if (skip == 0)
        return false;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_str(&pk, "format");
    pack_str(&pk, ST_SQ_INDEX_MAGIC);
    bool ours = n >= skip + sb.size && memcmp(head + skip, sb.data, sb.size) == 0;
    msgpack_sbuffer_destroy(&sb);
    return ours;
}

st_status st_sq_index_save(const st_sq_index *ix, const char *path, char *msg, size_t cap)
{
    const st_sq_index_key *k = &ix->key;
    /* index_path may name someone's file by mistake: never replace one
     * that is not a clustering index (a damaged index of ours is fine). */
    if (!st_sq_index_replaceable(path)) {
        snprintf(msg, cap, "squeezed: %s: exists and is not a clustering index (or cannot be "
                 "read); left as it is, the clustering is not saved", path);
        return ST_E_STATE;
    }
    for (uint32_t l = 0; l < k->n_layers; l++)
        if (!ix->layers[l].built) {
            snprintf(msg, cap, "squeezed: %s: layer %u is not clustered yet, nothing saved", path,
                     l);
            return ST_E_STATE;
        }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 17);
    pack_str(&pk, "format");
    pack_str(&pk, ST_SQ_INDEX_MAGIC);
    pack_u64(&pk, "version", ST_SQ_INDEX_VERSION);
    pack_u64(&pk, "n_layers", k->n_layers);
    pack_u64(&pk, "n_heads", k->n_heads);
    pack_u64(&pk, "n_kv_heads", k->n_kv_heads);
    pack_u64(&pk, "head_dim", k->head_dim);
    pack_u64(&pk, "fixed_len", k->fixed_len);
    pack_u64(&pk, "observation", k->observation);
    pack_u64(&pk, "levels", k->levels);
    pack_u64(&pk, "k_coarse", k->k_coarse);
    pack_u64(&pk, "kmeans_iters", k->kmeans_iters);
    pack_u64(&pk, "rotary", k->rotary);
    pack_u64(&pk, "seed", k->seed);
    pack_f64(&pk, "cluster_fraction", k->cluster_fraction);
    pack_f64(&pk, "quantile", k->quantile);
    pack_u64(&pk, "token_hash", k->token_hash);
    pack_str(&pk, "layers");
    msgpack_pack_array(&pk, k->n_layers);
    for (uint32_t l = 0; l < k->n_layers; l++) {
        const st_sq_layer_index *L = &ix->layers[l];
        msgpack_pack_map(&pk, 4);
        pack_str(&pk, "calibrated");
        if (L->calibrated)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
        pack_f64(&pk, "thr_fine", L->thr_fine);
        pack_f64(&pk, "thr_coarse", L->thr_coarse);
        pack_str(&pk, "heads");
        msgpack_pack_array(&pk, k->n_kv_heads);
        for (uint32_t h = 0; h < k->n_kv_heads; h++)
            pack_head(&pk, &L->heads[h], k->head_dim);
    }
    uint64_t sum = fnv1a(FNV_OFFSET, sb.data, sb.size);
    msgpack_pack_uint64(&pk, sum);

    /* A fresh temporary (O_EXCL: never one planted there) renamed over
     * path, so a reader sees the old file or the whole new one. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    st_status st = ST_OK;
    errno = ENAMETOOLONG;
    int fd = strlen(path) + 12 < sizeof tmp ? mkostemp(tmp, O_CLOEXEC) : -1;
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        snprintf(msg, cap, "squeezed: %s: cannot write: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            remove(tmp);
        }
        st = ST_E_IO;
    } else {
        size_t wrote = fwrite(sb.data, 1, sb.size, f);
        int closed = fclose(f);
        if (wrote != sb.size || closed != 0) {
            snprintf(msg, cap, "squeezed: %s: write failed: %s", tmp, strerror(errno));
            remove(tmp);
            st = ST_E_IO;
        } else if (rename(tmp, path) != 0) {
            snprintf(msg, cap, "squeezed: %s: cannot rename into place: %s", path,
                     strerror(errno));
            remove(tmp);
            st = ST_E_IO;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    return st;
}

/* ---- load ------------------------------------------------------------- */

typedef struct loader {
    const char *path;
    char *msg;
    size_t cap;
} loader;

static st_status bad(loader *ld, const char *what, uint32_t layer, uint32_t head)
{
    if (layer == UINT32_MAX)
        snprintf(ld->msg, ld->cap, "squeezed: %s: corrupt clustering index: %s", ld->path, what);
    else
        snprintf(ld->msg, ld->cap,
                 "squeezed: %s: corrupt clustering index: layer %u, KV head %u: %s", ld->path,
                 layer, head, what);
    return ST_E_FORMAT;
}

static bool get_u32(const msgpack_object *map, const char *key, uint32_t *out)
{
    int64_t v;
    if (st_mp_int(map, key, &v) != ST_OK || v < 0 || v > (int64_t)UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool get_u64(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *v = st_mp_find(map, key);
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = v->via.u64;
    return true;
}

/* A bin of exactly `bytes` bytes, copied into a fresh allocation. */
static bool get_bin(const msgpack_object *map, const char *key, size_t bytes, void **out)
{
    const msgpack_object *v = st_mp_find(map, key);
    if (!v || v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != bytes)
        return false;
    *out = malloc(bytes ? bytes : 1);
    if (!*out)
        return false;
    if (bytes)
        memcpy(*out, v->via.bin.ptr, bytes);
    return true;
}

static st_status load_head(loader *ld, const msgpack_object *o, const st_sq_index_key *key,
                           uint32_t l, uint32_t hi, st_sq_head_index *h)
{
    uint32_t hd = key->head_dim;
    if (o->type != MSGPACK_OBJECT_MAP)
        return bad(ld, "expected a map", l, hi);
    if (!get_u32(o, "n_keys", &h->n_keys) || !get_u32(o, "k", &h->k) || !get_u32(o, "kc", &h->kc))
        return bad(ld, "n_keys, k or kc missing", l, hi);
    if (h->n_keys > key->fixed_len || h->k > h->n_keys || (h->n_keys > 0 && h->k == 0) ||
        h->kc > h->k || (key->levels == 1 && h->kc != 0) ||
        (key->levels == 2 && (h->kc == 0) != (h->k == 0)))
        return bad(ld, "cluster counts inconsistent with the keys and levels", l, hi);
    if (!get_bin(o, "centroids", sizeof(float) * (size_t)h->k * hd, (void **)&h->centroids) ||
        !get_bin(o, "mass", sizeof(float) * h->k, (void **)&h->mass) ||
        !get_bin(o, "assign", sizeof(uint32_t) * h->n_keys, (void **)&h->assign) ||
        !get_bin(o, "coarse_centroids", sizeof(float) * (size_t)h->kc * hd,
                 (void **)&h->coarse_centroids) ||
        !get_bin(o, "coarse_mass", sizeof(float) * h->kc, (void **)&h->coarse_mass) ||
        !get_bin(o, "parent", h->kc ? sizeof(uint32_t) * h->k : 0, (void **)&h->parent))
        return bad(ld, "an array is missing or has the wrong size", l, hi);
    for (uint32_t i = 0; i < h->n_keys; i++)
        if (h->assign[i] >= h->k)
            return bad(ld, "a key is assigned to a cluster that does not exist", l, hi);
    for (uint32_t c = 0; h->kc && c < h->k; c++)
        if (h->parent[c] >= h->kc)
            return bad(ld, "a cluster's coarse parent does not exist", l, hi);
    for (size_t i = 0; i < (size_t)h->k * hd; i++)
        if (!isfinite(h->centroids[i]))
            return bad(ld, "a centroid is not finite", l, hi);
    if (st_sq_head_members(h) != ST_OK) {
        snprintf(ld->msg, ld->cap, "squeezed: %s: out of memory", ld->path);
        return ST_E_NOMEM;
    }
    return ST_OK;
}

static st_status load_map(loader *ld, st_sq_index *ix, const st_sq_index_key *expect,
                          const msgpack_object *root)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return bad(ld, "the top level is not a map", UINT32_MAX, 0);
    const msgpack_object *fmt = st_mp_find(root, "format");
    if (!fmt || fmt->type != MSGPACK_OBJECT_STR || fmt->via.str.size != strlen(ST_SQ_INDEX_MAGIC) ||
        memcmp(fmt->via.str.ptr, ST_SQ_INDEX_MAGIC, fmt->via.str.size) != 0)
        return bad(ld, "format is not \"" ST_SQ_INDEX_MAGIC "\"", UINT32_MAX, 0);
    uint32_t version = 0;
    if (!get_u32(root, "version", &version) || version != ST_SQ_INDEX_VERSION) {
        snprintf(ld->msg, ld->cap, "squeezed: %s: index format version %u, expected %u",
                 ld->path, version, ST_SQ_INDEX_VERSION);
        return ST_E_FORMAT;
    }
    st_sq_index_key k = {0};
    double cf, q;
    if (!get_u32(root, "n_layers", &k.n_layers) || !get_u32(root, "n_heads", &k.n_heads) ||
        !get_u32(root, "n_kv_heads", &k.n_kv_heads) || !get_u32(root, "head_dim", &k.head_dim) ||
        !get_u32(root, "fixed_len", &k.fixed_len) ||
        !get_u32(root, "observation", &k.observation) || !get_u32(root, "levels", &k.levels) ||
        !get_u32(root, "k_coarse", &k.k_coarse) ||
        !get_u32(root, "kmeans_iters", &k.kmeans_iters) || !get_u32(root, "rotary", &k.rotary) ||
        !get_u64(root, "seed", &k.seed) ||
        st_mp_float(root, "cluster_fraction", &cf) != ST_OK ||
        st_mp_float(root, "quantile", &q) != ST_OK ||
        !get_u64(root, "token_hash", &k.token_hash))
        return bad(ld, "a header field is missing or has the wrong type", UINT32_MAX, 0);
    k.cluster_fraction = cf;
    k.quantile = q;
    if (!st_sq_index_key_equal(&k, expect)) {
        snprintf(ld->msg, ld->cap,
                 "squeezed: %s: built for another model, fixed context or clustering "
                 "parameters (fixed_len %u, %u layers, token hash %016llx; expected fixed_len "
                 "%u, %u layers, token hash %016llx)",
                 ld->path, k.fixed_len, k.n_layers, (unsigned long long)k.token_hash,
                 expect->fixed_len, expect->n_layers, (unsigned long long)expect->token_hash);
        return ST_E_STATE;
    }
    const msgpack_object *layers = st_mp_find(root, "layers");
    if (!layers || layers->type != MSGPACK_OBJECT_ARRAY || layers->via.array.size != k.n_layers)
        return bad(ld, "layers is not an array of one entry per layer", UINT32_MAX, 0);
    for (uint32_t l = 0; l < k.n_layers; l++) {
        const msgpack_object *L = &layers->via.array.ptr[l];
        st_sq_layer_index *dst = &ix->layers[l];
        if (L->type != MSGPACK_OBJECT_MAP)
            return bad(ld, "a layer is not a map", l, 0);
        const msgpack_object *cal = st_mp_find(L, "calibrated");
        const msgpack_object *heads = st_mp_find(L, "heads");
        double tf, tc;
        if (!cal || cal->type != MSGPACK_OBJECT_BOOLEAN ||
            st_mp_float(L, "thr_fine", &tf) != ST_OK ||
            st_mp_float(L, "thr_coarse", &tc) != ST_OK || !heads ||
            heads->type != MSGPACK_OBJECT_ARRAY || heads->via.array.size != k.n_kv_heads)
            return bad(ld, "calibrated, thresholds or heads missing", l, 0);
        dst->calibrated = cal->via.boolean;
        dst->thr_fine = (float)tf;
        dst->thr_coarse = (float)tc;
        for (uint32_t h = 0; h < k.n_kv_heads; h++) {
            st_status st = load_head(ld, &heads->via.array.ptr[h], &k, l, h, &dst->heads[h]);
            if (st != ST_OK)
                return st;
        }
        dst->built = true;
    }
    return ST_OK;
}

/* Put every layer back to unbuilt and empty. */
static void clear_layers(st_sq_index *ix)
{
    for (uint32_t l = 0; l < ix->key.n_layers; l++) {
        for (uint32_t h = 0; h < ix->key.n_kv_heads; h++)
            st_sq_head_clear(&ix->layers[l].heads[h]);
        ix->layers[l].built = ix->layers[l].calibrated = false;
    }
}

static st_status read_file(loader *ld, char **data, size_t *size)
{
    FILE *f = fopen(ld->path, "rb");
    if (!f) {
        snprintf(ld->msg, ld->cap, "squeezed: %s: cannot open: %s", ld->path, strerror(errno));
        return errno == ENOENT ? ST_E_NOT_FOUND : ST_E_IO;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    st_status st = ST_OK;
    while (buf) {
        if (n == cap) {
            if (cap >= MAX_FILE_BYTES) {
                snprintf(ld->msg, ld->cap, "squeezed: %s: larger than %zu bytes", ld->path,
                         MAX_FILE_BYTES);
                st = ST_E_FORMAT;
                break;
            }
            char *p = realloc(buf, cap * 2);
            if (!p)
                break;
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (!buf) {
        snprintf(ld->msg, ld->cap, "squeezed: %s: out of memory reading it", ld->path);
        st = ST_E_NOMEM;
    } else if (st == ST_OK && ferror(f)) {
        snprintf(ld->msg, ld->cap, "squeezed: %s: read error", ld->path);
        st = ST_E_IO;
    }
    fclose(f);
    if (st != ST_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *size = n;
    return ST_OK;
}

st_status st_sq_index_load(st_sq_index *ix, const st_sq_index_key *expect, const char *path,
                           char *msg, size_t cap)
{
    loader ld = {path, msg, cap};
    char *data = NULL;
    size_t size = 0;
    st_status st = read_file(&ld, &data, &size);
    if (st != ST_OK)
        return st;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (!st_msgpack_counts_fit(data, size)) {
        st = bad(&ld, "a list or map declares more elements than the file holds", UINT32_MAX, 0);
        goto done;
    }
    if (msgpack_unpack_next(&up, data, size, &off) != MSGPACK_UNPACK_SUCCESS) {
        st = bad(&ld, "truncated or not msgpack", UINT32_MAX, 0);
        goto done;
    }
    size_t map_end = off;
    msgpack_unpacked tail;
    msgpack_unpacked_init(&tail);
    bool sum_ok = msgpack_unpack_next(&tail, data, size, &off) == MSGPACK_UNPACK_SUCCESS &&
                  tail.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                  tail.data.via.u64 == fnv1a(FNV_OFFSET, data, map_end) && off == size;
    msgpack_unpacked_destroy(&tail);
    if (!sum_ok) {
        st = bad(&ld, "checksum missing or wrong (truncated or modified)", UINT32_MAX, 0);
        goto done;
    }
    st = load_map(&ld, ix, expect, &up.data);
done:
    if (st != ST_OK)
        clear_layers(ix);
    msgpack_unpacked_destroy(&up);
    free(data);
    return st;
}
