/*
 * core/gguf.c - open and validate a GGUF file (v2/v3) through mmap.
 *
 * Every read goes through a cursor that checks the bytes are there first,
 * so a truncated or hostile file ends in one ST_E_FORMAT diagnostic:
 *   "path: <what> at byte offset N (expected ..., found ...)"
 * Counts and lengths are compared with the bytes left before anything is
 * allocated, so an absurd n_kv or string length cannot make us allocate or
 * loop for long. All arithmetic on file-supplied numbers is overflow-checked.
 */
#include "gguf.h"
#include "paths.h"
#include "quant.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY_LEN 65535u
#define GGUF_MAX_NAME_LEN 255u
/* Arrays of arrays are legal GGUF; nesting deeper than this is refused so a
 * hostile file cannot recurse us off the stack. */
#define GGUF_MAX_ARRAY_DEPTH 4

/* Smallest possible encodings, used to refuse counts that cannot fit. */
#define GGUF_MIN_KV_BYTES (8 + 1 + 4 + 1)          /* key len, key, type, u8 */
#define GGUF_MIN_TINFO_BYTES (8 + 1 + 4 + 8 + 4 + 8) /* name, n_dims, ne0, type, offset */

typedef struct cursor {
    st_gguf *g;
    uint64_t pos;
    st_diag *diag;
} cursor;

static uint64_t left(const cursor *c) { return c->g->map_len - c->pos; }

static st_status fail(cursor *c, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static st_status fail(cursor *c, uint64_t at, const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* Call sites write "<what> (expected ..., found ...)"; the message reads
     * "<what> at byte offset N (expected ..., found ...)". The last
     * " (expected" is ours even when a key name from the file contains one. */
    const char *detail = "";
    for (char *p = strstr(what, " (expected"); p; p = strstr(p + 1, " (expected"))
        detail = p;
    if (*detail) {
        what[detail - what] = '\0';
        detail++;
    }
    return st_diag_set(c->diag, ST_E_FORMAT, c->g->path, 0, 0, "%s at byte offset %llu%s%s",
                       what, (unsigned long long)at, *detail ? " " : "", detail);
}

/* The "(expected ..., found ...)" part goes inside `what` for most errors; a
 * truncation always says how many bytes were needed and how many remain. */
static st_status need(cursor *c, uint64_t n, const char *what)
{
    if (n <= left(c))
        return ST_OK;
    return st_diag_set(c->diag, ST_E_FORMAT, c->g->path, 0, 0,
                       "truncated file: %s at byte offset %llu (expected %llu bytes, found %llu)",
                       what, (unsigned long long)c->pos, (unsigned long long)n,
                       (unsigned long long)left(c));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static st_status rd_u32(cursor *c, uint32_t *v, const char *what)
{
    st_status s = need(c, 4, what);
    if (s) return s;
    *v = le32(c->g->map + c->pos);
    c->pos += 4;
    return ST_OK;
}

static st_status rd_u64(cursor *c, uint64_t *v, const char *what)
{
    st_status s = need(c, 8, what);
    if (s) return s;
    *v = le64(c->g->map + c->pos);
    c->pos += 8;
    return ST_OK;
}

/* A GGUF string: u64 length then bytes. `what` names it for errors. */
static st_status rd_string(cursor *c, const char **str, uint64_t *len,
                           uint64_t max_len, const char *what)
{
    uint64_t at = c->pos;
    char w[300];
    snprintf(w, sizeof w, "%s length", what);
    st_status s = rd_u64(c, len, w);
    if (s) return s;
    if (*len > max_len) {
        c->pos = at;
        return fail(c, at, "%s too long (expected at most %llu bytes, found %llu)",
                    what, (unsigned long long)max_len, (unsigned long long)*len);
    }
    s = need(c, *len, what);
    if (s) return s;
    *str = (const char *)c->g->map + c->pos;
    c->pos += *len;
    return ST_OK;
}

uint64_t st_gguf_scalar_size(uint32_t t)
{
    switch (t) {
    case ST_GGUF_U8: case ST_GGUF_I8: case ST_GGUF_BOOL: return 1;
    case ST_GGUF_U16: case ST_GGUF_I16: return 2;
    case ST_GGUF_U32: case ST_GGUF_I32: case ST_GGUF_F32: return 4;
    case ST_GGUF_U64: case ST_GGUF_I64: case ST_GGUF_F64: return 8;
    default: return 0;
    }
}

static bool vtype_known(uint32_t t) { return t <= ST_GGUF_F64; }

static const char *vtype_name(uint32_t t)
{
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t <= ST_GGUF_F64 ? names[t] : "unknown";
}

/* Skip one array payload (after its type and count) of `n` elements of
 * type `et`, checking every element is inside the file. When `offs` is given
 * (string arrays), record each element's offset relative to `base`. */
static st_status skip_array(cursor *c, const char *key, uint32_t et, uint64_t n,
                            int depth, uint64_t *offs, uint64_t base)
{
    char w[400];
    uint64_t sz = st_gguf_scalar_size(et);
    if (sz) {
        if (n > left(c) / sz)
            return fail(c, c->pos, "array '%s' does not fit in the file (expected %llu elements of %llu bytes, found %llu bytes left)",
                        key, (unsigned long long)n, (unsigned long long)sz,
                        (unsigned long long)left(c));
        c->pos += n * sz;
        return ST_OK;
    }
    if (et == ST_GGUF_STRING) {
        if (n > left(c) / 8)
            return fail(c, c->pos, "string array '%s' does not fit in the file (expected %llu strings, found %llu bytes left)",
                        key, (unsigned long long)n, (unsigned long long)left(c));
        for (uint64_t i = 0; i < n; i++) {
            const char *s;
            uint64_t len;
            if (offs)
                offs[i] = c->pos - base;
            snprintf(w, sizeof w, "element %llu of string array '%s'", (unsigned long long)i, key);
            st_status st = rd_string(c, &s, &len, UINT64_MAX, w);
            if (st) return st;
        }
        return ST_OK;
    }
    /* et == ARRAY: each element is its own (type, count, payload). */
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return fail(c, c->pos, "array '%s' nested too deep (expected at most %d levels, found more)",
                    key, GGUF_MAX_ARRAY_DEPTH);
    if (n > left(c) / 12)
        return fail(c, c->pos, "array of arrays '%s' does not fit in the file (expected %llu arrays, found %llu bytes left)",
                    key, (unsigned long long)n, (unsigned long long)left(c));
    for (uint64_t i = 0; i < n; i++) {
        uint32_t t;
        uint64_t m;
        uint64_t at = c->pos;
        snprintf(w, sizeof w, "element type of nested array in '%s'", key);
        st_status st = rd_u32(c, &t, w);
        if (st) return st;
        if (!vtype_known(t))
            return fail(c, at, "unknown element type in nested array '%s' (expected 0..12, found %u)", key, t);
        snprintf(w, sizeof w, "element count of nested array in '%s'", key);
        st = rd_u64(c, &m, w);
        if (st) return st;
        st = skip_array(c, key, t, m, depth + 1, NULL, 0);
        if (st) return st;
    }
    return ST_OK;
}

static st_status parse_kv(cursor *c, st_gguf_kv *kv, uint64_t index)
{
    char w[400];
    uint64_t key_at = c->pos;
    snprintf(w, sizeof w, "key of metadata entry %llu", (unsigned long long)index);
    st_status s = rd_string(c, &kv->key, &kv->key_len, GGUF_MAX_KEY_LEN, w);
    if (s) return s;
    if (kv->key_len == 0)
        return fail(c, key_at, "empty key in metadata entry %llu (expected a name, found length 0)",
                    (unsigned long long)index);
    if (memchr(kv->key, 0, kv->key_len))
        return fail(c, key_at, "key of metadata entry %llu contains a NUL byte", (unsigned long long)index);
    /* The specification makes keys ASCII; anything else (invalid UTF-8,
     * control characters) would also reach every message that names it. */
    for (uint64_t i = 0; i < kv->key_len; i++) {
        uint8_t b = (uint8_t)kv->key[i];
        if (b < 0x20 || b > 0x7E)
            return fail(c, key_at, "key of metadata entry %llu is not printable ASCII "
                        "(expected bytes 0x20..0x7e, found 0x%02x at key byte %llu)",
                        (unsigned long long)index, b, (unsigned long long)i);
    }

    /* keys are not NUL-terminated in the file; copy for messages */
    char key[160];
    snprintf(key, sizeof key, "%.*s%s", (int)(kv->key_len > 120 ? 120 : kv->key_len), kv->key,
             kv->key_len > 120 ? "..." : "");

    uint32_t t;
    uint64_t type_at = c->pos;
    snprintf(w, sizeof w, "value type of '%s'", key);
    s = rd_u32(c, &t, w);
    if (s) return s;
    if (!vtype_known(t))
        return fail(c, type_at, "unknown value type for key '%s' (expected 0..12, found %u)", key, t);
    kv->type = (st_gguf_vtype)t;

    if (t == ST_GGUF_STRING) {
        const char *str;
        uint64_t len;
        kv->data = c->g->map + c->pos;
        snprintf(w, sizeof w, "string value of '%s'", key);
        s = rd_string(c, &str, &len, UINT64_MAX, w);
        if (s) return s;
        kv->data_len = 8 + len;
        return ST_OK;
    }
    if (t != ST_GGUF_ARRAY) {
        uint64_t sz = st_gguf_scalar_size(t);
        snprintf(w, sizeof w, "%s value of '%s'", vtype_name(t), key);
        s = need(c, sz, w);
        if (s) return s;
        kv->data = c->g->map + c->pos;
        kv->data_len = sz;
        c->pos += sz;
        if (t == ST_GGUF_BOOL && kv->data[0] > 1)
            return fail(c, c->pos - 1, "bad bool value for key '%s' (expected 0 or 1, found %u)",
                        key, kv->data[0]);
        return ST_OK;
    }

    uint32_t et;
    uint64_t et_at = c->pos;
    snprintf(w, sizeof w, "array element type of '%s'", key);
    s = rd_u32(c, &et, w);
    if (s) return s;
    if (!vtype_known(et))
        return fail(c, et_at, "unknown array element type for key '%s' (expected 0..12, found %u)", key, et);
    snprintf(w, sizeof w, "array length of '%s'", key);
    s = rd_u64(c, &kv->array_len, w);
    if (s) return s;
    kv->array_type = (st_gguf_vtype)et;
    kv->data = c->g->map + c->pos;
    uint64_t start = c->pos;
    if (et == ST_GGUF_STRING) {
        /* refuse before allocating: each string takes at least 8 bytes */
        if (kv->array_len > left(c) / 8)
            return fail(c, c->pos, "string array '%s' does not fit in the file (expected %llu strings, found %llu bytes left)",
                        key, (unsigned long long)kv->array_len, (unsigned long long)left(c));
        kv->str_offsets = malloc((kv->array_len ? kv->array_len : 1) * sizeof(uint64_t));
        if (!kv->str_offsets)
            return st_diag_set(c->diag, ST_E_NOMEM, c->g->path, 0, 0,
                               "out of memory indexing string array '%s' (%llu elements)",
                               key, (unsigned long long)kv->array_len);
    }
    s = skip_array(c, key, et, kv->array_len, 1, kv->str_offsets, start);
    if (s) return s;
    kv->data_len = c->pos - start;
    return ST_OK;
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
    if (a != 0 && b > UINT64_MAX / a)
        return false;
    *r = a * b;
    return true;
}

static st_status parse_tensor_info(cursor *c, st_gguf_tensor *t, uint64_t index)
{
    char w[400];
    const char *name;
    uint64_t len, at = c->pos;
    snprintf(w, sizeof w, "name of tensor %llu", (unsigned long long)index);
    st_status s = rd_string(c, &name, &len, GGUF_MAX_NAME_LEN, w);
    if (s) return s;
    if (len == 0)
        return fail(c, at, "empty name for tensor %llu (expected 1..255 bytes, found 0)",
                    (unsigned long long)index);
    if (memchr(name, 0, len))
        return fail(c, at, "name of tensor %llu contains a NUL byte", (unsigned long long)index);
    memcpy(t->name, name, len);
    t->name[len] = '\0';

    at = c->pos;
    snprintf(w, sizeof w, "n_dims of tensor '%s'", t->name);
    s = rd_u32(c, &t->n_dims, w);
    if (s) return s;
    if (t->n_dims < 1 || t->n_dims > ST_GGUF_MAX_DIMS)
        return fail(c, at, "bad n_dims for tensor '%s' (expected 1..%d, found %u)",
                    t->name, ST_GGUF_MAX_DIMS, t->n_dims);
    uint64_t nelem = 1;
    for (uint32_t d = 0; d < ST_GGUF_MAX_DIMS; d++)
        t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = c->pos;
        snprintf(w, sizeof w, "ne[%u] of tensor '%s'", d, t->name);
        s = rd_u64(c, &t->ne[d], w);
        if (s) return s;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return fail(c, at, "bad dimension ne[%u] for tensor '%s' (expected 1..2^63-1, found %llu)",
                        d, t->name, (unsigned long long)t->ne[d]);
        if (!mul_ok(nelem, t->ne[d], &nelem) || nelem > (uint64_t)INT64_MAX)
            return fail(c, at, "element count of tensor '%s' overflows (expected at most 2^63-1 elements)",
                        t->name);
    }

    uint32_t type;
    at = c->pos;
    snprintf(w, sizeof w, "type of tensor '%s'", t->name);
    s = rd_u32(c, &type, w);
    if (s) return s;
    uint32_t be = st_ggml_block_elems((st_ggml_type)type);
    if (be == 0)
        return fail(c, at, "unsupported type for tensor '%s' (expected F32=0, F16=1, Q4_0=2, Q4_1=3 or Q8_0=8, found %u)",
                    t->name, type);
    t->type = (st_ggml_type)type;
    if (t->ne[0] % be != 0)
        return fail(c, at, "tensor '%s' of type %s has ne[0] not a multiple of the block size (expected a multiple of %u, found %llu)",
                    t->name, st_ggml_type_name(t->type), be, (unsigned long long)t->ne[0]);
    uint64_t row = st_ggml_row_bytes(t->type, t->ne[0]);
    uint64_t rows = nelem / t->ne[0];
    if (row == 0 || !mul_ok(row, rows, &t->size))
        return fail(c, at, "byte size of tensor '%s' overflows", t->name);

    snprintf(w, sizeof w, "data offset of tensor '%s'", t->name);
    return rd_u64(c, &t->offset, w);
}

/* For sorting tensors by data offset (overlap check) and names/keys
 * (duplicate checks) without an O(n^2) scan on a hostile file. */
static const st_gguf *sort_g;
static int cmp_tensor_offset(const void *a, const void *b)
{
    const st_gguf_tensor *x = &sort_g->tensors[*(const uint64_t *)a];
    const st_gguf_tensor *y = &sort_g->tensors[*(const uint64_t *)b];
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}
static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(sort_g->tensors[*(const uint64_t *)a].name,
                  sort_g->tensors[*(const uint64_t *)b].name);
}
static int cmp_key(const void *a, const void *b)
{
    const st_gguf_kv *x = &sort_g->kv[*(const uint64_t *)a];
    const st_gguf_kv *y = &sort_g->kv[*(const uint64_t *)b];
    uint64_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int r = memcmp(x->key, y->key, n);
    if (r) return r;
    return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

/* qsort's comparator has no context argument; a mutex keeps concurrent
 * opens from sharing `sort_g`. */
static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t *sorted_index(const st_gguf *g, uint64_t n, int (*cmp)(const void *, const void *))
{
    uint64_t *ix = malloc((n ? n : 1) * sizeof *ix);
    if (!ix)
        return NULL;
    for (uint64_t i = 0; i < n; i++)
        ix[i] = i;
    pthread_mutex_lock(&sort_lock);
    sort_g = g;
    qsort(ix, n, sizeof *ix, cmp);
    sort_g = NULL;
    pthread_mutex_unlock(&sort_lock);
    return ix;
}

static st_status check_duplicate_keys(cursor *c)
{
    st_gguf *g = c->g;
    if (g->n_kv < 2)
        return ST_OK;
    uint64_t *ix = sorted_index(g, g->n_kv, cmp_key);
    if (!ix)
        return st_diag_set(c->diag, ST_E_NOMEM, g->path, 0, 0, "out of memory checking keys");
    st_status s = ST_OK;
    for (uint64_t i = 1; i < g->n_kv && !s; i++) {
        const st_gguf_kv *a = &g->kv[ix[i - 1]], *b = &g->kv[ix[i]];
        if (a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0) {
            const st_gguf_kv *later = ix[i] > ix[i - 1] ? b : a;
            s = fail(c, (uint64_t)((const uint8_t *)later->key - g->map) - 8,
                     "duplicate metadata key '%.*s' (expected each key once, found it twice)",
                     (int)(a->key_len > 200 ? 200 : a->key_len), a->key);
        }
    }
    free(ix);
    return s;
}

static st_status check_tensors(cursor *c, const uint64_t *info_at)
{
    st_gguf *g = c->g;
    if (g->n_tensors == 0)
        return ST_OK;
    uint64_t *ix = sorted_index(g, g->n_tensors, cmp_tensor_name);
    if (!ix)
        return st_diag_set(c->diag, ST_E_NOMEM, g->path, 0, 0, "out of memory checking tensors");
    st_status s = ST_OK;
    for (uint64_t i = 1; i < g->n_tensors && !s; i++) {
        if (strcmp(g->tensors[ix[i - 1]].name, g->tensors[ix[i]].name) == 0) {
            uint64_t later = ix[i] > ix[i - 1] ? ix[i] : ix[i - 1];
            s = fail(c, info_at[later], "duplicate tensor name '%s' (expected each name once, found it twice)",
                     g->tensors[later].name);
        }
    }
    free(ix);
    if (s)
        return s;

    if (g->data_offset > g->map_len)
        return fail(c, g->map_len, "truncated file: data section missing (expected it at byte %llu, found file end)",
                    (unsigned long long)g->data_offset);
    uint64_t data_len = g->map_len - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        st_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return fail(c, info_at[i], "misaligned data offset for tensor '%s' (expected a multiple of %llu, found %llu)",
                        t->name, (unsigned long long)g->alignment, (unsigned long long)t->offset);
        /* The mapping starts on a page, so a file offset that is a multiple
         * of the element's alignment gives an aligned pointer. With a
         * general.alignment of 1 or 2 nothing else guarantees it, and
         * reading a float or a half from a misaligned address is undefined
         * behaviour (found by tests/fuzz). */
        uint64_t need = t->type == ST_GGML_F32 ? 4 : 2;
        if ((g->data_offset + t->offset) % need != 0)
            return fail(c, info_at[i], "misaligned data of tensor '%s' (expected it at a multiple of %llu bytes from the start of the file for its type, found byte %llu; general.alignment is %llu)",
                        t->name, (unsigned long long)need,
                        (unsigned long long)(g->data_offset + t->offset),
                        (unsigned long long)g->alignment);
        if (t->offset > data_len || t->size > data_len - t->offset)
            return fail(c, info_at[i], "data of tensor '%s' runs past the end of the file (expected %llu bytes at data offset %llu, found %llu bytes in the data section)",
                        t->name, (unsigned long long)t->size, (unsigned long long)t->offset,
                        (unsigned long long)data_len);
        t->data = g->map + g->data_offset + t->offset;
    }

    ix = sorted_index(g, g->n_tensors, cmp_tensor_offset);
    if (!ix)
        return st_diag_set(c->diag, ST_E_NOMEM, g->path, 0, 0, "out of memory checking tensors");
    for (uint64_t i = 1; i < g->n_tensors && !s; i++) {
        const st_gguf_tensor *a = &g->tensors[ix[i - 1]], *b = &g->tensors[ix[i]];
        if (a->offset + a->size > b->offset)
            s = fail(c, info_at[ix[i]], "data of tensor '%s' overlaps tensor '%s' (expected data offset >= %llu, found %llu)",
                     b->name, a->name, (unsigned long long)(a->offset + a->size),
                     (unsigned long long)b->offset);
    }
    free(ix);
    return s;
}

static st_status read_alignment(cursor *c)
{
    st_gguf *g = c->g;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const st_gguf_kv *kv = st_gguf_find(g, "general.alignment");
    if (!kv)
        return ST_OK;
    uint64_t at = (uint64_t)(kv->data - g->map);
    int64_t v;
    st_status s = st_gguf_get_int(g, "general.alignment", &v);
    if (s == ST_E_RANGE) /* a u64 above INT64_MAX */
        return fail(c, at, "bad general.alignment (expected a power of two from 1 to 2^30, found %llu)",
                    (unsigned long long)le64(kv->data));
    if (s != ST_OK || kv->type == ST_GGUF_BOOL)
        return fail(c, at, "bad type for general.alignment (expected an integer, found %s)",
                    vtype_name(kv->type));
    if (v <= 0 || (v & (v - 1)) != 0 || v > (1 << 30))
        return fail(c, at, "bad general.alignment (expected a power of two from 1 to 2^30, found %lld)",
                    (long long)v);
    g->alignment = (uint64_t)v;
    return ST_OK;
}

static st_status parse(cursor *c)
{
    st_gguf *g = c->g;
    st_status s = need(c, 4, "GGUF magic");
    if (s) return s;
    if (memcmp(g->map, "GGUF", 4) != 0) {
        char found[20];
        const uint8_t *m = g->map;
        snprintf(found, sizeof found, "%02x %02x %02x %02x", m[0], m[1], m[2], m[3]);
        return fail(c, 0, "not a GGUF file: bad magic (expected \"GGUF\" = 47 47 55 46, found %s)", found);
    }
    c->pos = 4;
    s = rd_u32(c, &g->version, "GGUF version");
    if (s) return s;
    if (g->version != 2 && g->version != 3)
        return fail(c, 4, "unsupported GGUF version (expected 2 or 3, found %u%s)", g->version,
                    (g->version & 0xffff) == 0 ? "; a big-endian file?" : "");
    s = rd_u64(c, &g->n_tensors, "tensor count");
    if (s) return s;
    s = rd_u64(c, &g->n_kv, "metadata count");
    if (s) return s;
    if (g->n_kv > left(c) / GGUF_MIN_KV_BYTES)
        return fail(c, 16, "metadata count does not fit in the file (expected at most %llu entries, found %llu)",
                    (unsigned long long)(left(c) / GGUF_MIN_KV_BYTES), (unsigned long long)g->n_kv);
    if (g->n_tensors > left(c) / GGUF_MIN_TINFO_BYTES)
        return fail(c, 8, "tensor count does not fit in the file (expected at most %llu tensors, found %llu)",
                    (unsigned long long)(left(c) / GGUF_MIN_TINFO_BYTES), (unsigned long long)g->n_tensors);

    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors)
        return st_diag_set(c->diag, ST_E_NOMEM, g->path, 0, 0, "out of memory");

    /* n_kv is set already so close() frees every str_offsets */
    for (uint64_t i = 0; i < g->n_kv; i++) {
        s = parse_kv(c, &g->kv[i], i);
        if (s) return s;
    }
    s = check_duplicate_keys(c);
    if (s) return s;
    s = read_alignment(c);
    if (s) return s;

    uint64_t *info_at = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *info_at);
    if (!info_at)
        return st_diag_set(c->diag, ST_E_NOMEM, g->path, 0, 0, "out of memory");
    for (uint64_t i = 0; i < g->n_tensors && !s; i++) {
        info_at[i] = c->pos;
        s = parse_tensor_info(c, &g->tensors[i], i);
    }
    if (!s) {
        uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
        g->data_offset = c->pos + pad; /* c->pos <= map_len, no overflow */
        s = check_tensors(c, info_at);
    }
    free(info_at);
    return s;
}

st_status st_gguf_open(const char *path, st_gguf **out, st_diag *diag)
{
    if (!out || !path)
        return st_diag_set(diag, ST_E_INVALID, path ? path : "", 0, 0,
                           "st_gguf_open: no path or no place for the result");
    *out = NULL;
    const char *not_regular = NULL;
    int fd = st_path_open_regular(path, &not_regular);
    if (fd < 0 && not_regular)
        return st_diag_set(diag, ST_E_IO, path, 0, 0,
                           "expected a GGUF file, found %s (not a regular file)", not_regular);
    if (fd < 0)
        return st_diag_set(diag, errno == ENOENT ? ST_E_NOT_FOUND : ST_E_IO, path, 0, 0,
                           "cannot open GGUF file: %s", strerror(errno));
    struct stat stb;
    if (fstat(fd, &stb) != 0) {
        int e = errno;
        close(fd);
        return st_diag_set(diag, ST_E_IO, path, 0, 0, "cannot stat GGUF file: %s", strerror(e));
    }
    st_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        close(fd);
        return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
    }
    g->map_len = (uint64_t)stb.st_size;
    if (g->map_len > 0) {
        void *m = mmap(NULL, (size_t)g->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            g->map_len = 0;
            st_gguf_close(g);
            return st_diag_set(diag, ST_E_IO, path, 0, 0, "cannot mmap GGUF file: %s", strerror(e));
        }
        g->map = m;
    } else {
        static const uint8_t empty[1];
        g->map = empty; /* every read is refused by the length check */
    }
    close(fd);

    cursor c = {g, 0, diag};
    st_status s = parse(&c);
    if (s) {
        st_gguf_close(g);
        return s;
    }
    *out = g;
    return ST_OK;
}

void st_gguf_close(st_gguf *g)
{
    if (!g)
        return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++)
            free(g->kv[i].str_offsets);
    free(g->kv);
    free(g->tensors);
    if (g->map && g->map_len > 0)
        munmap((void *)g->map, (size_t)g->map_len);
    free(g->path);
    free(g);
}

const st_gguf_tensor *st_gguf_tensor_find(const st_gguf *g, const char *name)
{
    if (!g || !name)
        return NULL;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0)
            return &g->tensors[i];
    return NULL;
}
