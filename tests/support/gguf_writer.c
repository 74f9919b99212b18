/*
 * tests/support/gguf_writer.c - see gguf_writer.h. Everything is kept as
 * encoded bytes: each kv is stored already serialized (key + type + value),
 * tensors keep their info fields and data until st_gw_build lays them out.
 */
#include "gguf_writer.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

typedef struct gw_tensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[8];
    bool explicit_offset;
    uint64_t offset;
    uint8_t *data;       /* NULL: zeros */
    size_t data_len;
} gw_tensor;

struct st_gw {
    bool failed;
    char magic[4];
    uint32_t version;
    bool set_n_tensors, set_n_kv;
    uint64_t n_tensors_override, n_kv_override;
    uint32_t alignment;
    bytes *kvs;          /* one serialized kv each */
    uint64_t n_kv;
    gw_tensor *tensors;
    uint64_t n_tensors;
    uint64_t *kv_at, *tensor_at;
};

static void put(st_gw *w, bytes *b, const void *src, size_t n)
{
    if (w->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            w->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_le(st_gw *w, bytes *b, uint64_t v, unsigned n)
{
    uint8_t tmp[8];
    for (unsigned i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    put(w, b, tmp, n);
}

static void put_str(st_gw *w, bytes *b, const char *s, uint64_t len)
{
    put_le(w, b, len, 8);
    put(w, b, s, (size_t)len);
}

st_gw *st_gw_new(void)
{
    st_gw *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    memcpy(w->magic, "GGUF", 4);
    w->version = 3;
    w->alignment = 32;
    return w;
}

void st_gw_free(st_gw *w)
{
    if (!w)
        return;
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->kvs[i].p);
    free(w->kvs);
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->tensors);
    free(w->kv_at);
    free(w->tensor_at);
    free(w);
}

/* Start a new kv: key and type; returns its buffer or NULL on failure. */
static bytes *kv_begin(st_gw *w, const char *key, uint32_t type)
{
    if (w->failed)
        return NULL;
    bytes *kvs = realloc(w->kvs, (w->n_kv + 1) * sizeof *kvs);
    if (!kvs) {
        w->failed = true;
        return NULL;
    }
    w->kvs = kvs;
    bytes *b = &w->kvs[w->n_kv++];
    memset(b, 0, sizeof *b);
    put_str(w, b, key, strlen(key));
    put_le(w, b, type, 4);
    return b;
}

static void kv_scalar(st_gw *w, const char *key, uint32_t type, uint64_t bits, unsigned n)
{
    bytes *b = kv_begin(w, key, type);
    if (b)
        put_le(w, b, bits, n);
}

void st_gw_u8(st_gw *w, const char *k, uint8_t v) { kv_scalar(w, k, ST_GGUF_U8, v, 1); }
void st_gw_i8(st_gw *w, const char *k, int8_t v) { kv_scalar(w, k, ST_GGUF_I8, (uint8_t)v, 1); }
void st_gw_u16(st_gw *w, const char *k, uint16_t v) { kv_scalar(w, k, ST_GGUF_U16, v, 2); }
void st_gw_i16(st_gw *w, const char *k, int16_t v) { kv_scalar(w, k, ST_GGUF_I16, (uint16_t)v, 2); }
void st_gw_u32(st_gw *w, const char *k, uint32_t v) { kv_scalar(w, k, ST_GGUF_U32, v, 4); }
void st_gw_i32(st_gw *w, const char *k, int32_t v) { kv_scalar(w, k, ST_GGUF_I32, (uint32_t)v, 4); }
void st_gw_u64(st_gw *w, const char *k, uint64_t v) { kv_scalar(w, k, ST_GGUF_U64, v, 8); }
void st_gw_i64(st_gw *w, const char *k, int64_t v) { kv_scalar(w, k, ST_GGUF_I64, (uint64_t)v, 8); }
void st_gw_bool(st_gw *w, const char *k, bool v) { kv_scalar(w, k, ST_GGUF_BOOL, v ? 1 : 0, 1); }

void st_gw_f32(st_gw *w, const char *k, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    kv_scalar(w, k, ST_GGUF_F32, u, 4);
}

void st_gw_f64(st_gw *w, const char *k, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    kv_scalar(w, k, ST_GGUF_F64, u, 8);
}

void st_gw_string_n(st_gw *w, const char *key, const char *s, uint64_t len)
{
    bytes *b = kv_begin(w, key, ST_GGUF_STRING);
    if (b)
        put_str(w, b, s, len);
}

void st_gw_string(st_gw *w, const char *key, const char *s) { st_gw_string_n(w, key, s, strlen(s)); }

static unsigned vsize(uint32_t t)
{
    switch (t) {
    case ST_GGUF_U8: case ST_GGUF_I8: case ST_GGUF_BOOL: return 1;
    case ST_GGUF_U16: case ST_GGUF_I16: return 2;
    case ST_GGUF_U32: case ST_GGUF_I32: case ST_GGUF_F32: return 4;
    case ST_GGUF_U64: case ST_GGUF_I64: case ST_GGUF_F64: return 8;
    default: return 0;
    }
}

void st_gw_array(st_gw *w, const char *key, st_gguf_vtype et, const void *elems, uint64_t n)
{
    unsigned sz = vsize(et);
    bytes *b = kv_begin(w, key, ST_GGUF_ARRAY);
    if (!b)
        return;
    put_le(w, b, et, 4);
    put_le(w, b, n, 8);
    const uint8_t *p = elems;
    for (uint64_t i = 0; i < n && sz; i++) {
        uint64_t v = 0;
        switch (sz) {
        case 1: v = p[i]; break;
        case 2: { uint16_t x; memcpy(&x, p + 2 * i, 2); v = x; break; }
        case 4: { uint32_t x; memcpy(&x, p + 4 * i, 4); v = x; break; }
        case 8: memcpy(&v, p + 8 * i, 8); break;
        }
        put_le(w, b, v, sz);
    }
}

void st_gw_str_array(st_gw *w, const char *key, const char *const *strs, uint64_t n)
{
    bytes *b = kv_begin(w, key, ST_GGUF_ARRAY);
    if (!b)
        return;
    put_le(w, b, ST_GGUF_STRING, 4);
    put_le(w, b, n, 8);
    for (uint64_t i = 0; i < n; i++)
        put_str(w, b, strs[i], strlen(strs[i]));
}

void st_gw_raw(st_gw *w, const char *key, uint32_t type, const void *raw, size_t len)
{
    bytes *b = kv_begin(w, key, type);
    if (b)
        put(w, b, raw, len);
}

void st_gw_set_alignment(st_gw *w, uint32_t alignment)
{
    w->alignment = alignment;
    st_gw_u32(w, "general.alignment", alignment);
}

void st_gw_set_magic(st_gw *w, const char magic[4]) { memcpy(w->magic, magic, 4); }
void st_gw_set_version(st_gw *w, uint32_t version) { w->version = version; }

void st_gw_set_counts(st_gw *w, bool set_n_tensors, uint64_t n_tensors, bool set_n_kv, uint64_t n_kv)
{
    w->set_n_tensors = set_n_tensors;
    w->n_tensors_override = n_tensors;
    w->set_n_kv = set_n_kv;
    w->n_kv_override = n_kv;
}

static gw_tensor *tensor_add(st_gw *w, const char *name, uint32_t type, uint32_t n_dims,
                             const uint64_t *ne, const void *data, size_t data_len)
{
    if (w->failed)
        return NULL;
    gw_tensor *ts = realloc(w->tensors, (w->n_tensors + 1) * sizeof *ts);
    if (!ts) {
        w->failed = true;
        return NULL;
    }
    w->tensors = ts;
    gw_tensor *t = &ts[w->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < n_dims && d < 8; d++)
        t->ne[d] = ne[d];
    t->data_len = data_len;
    if (data && data_len) {
        t->data = malloc(data_len);
        if (t->data)
            memcpy(t->data, data, data_len);
    }
    if (!t->name || (data && data_len && !t->data))
        w->failed = true;
    return t;
}

static uint64_t nelems(uint32_t n_dims, const uint64_t *ne)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        n *= ne[d];
    return n;
}

void st_gw_tensor(st_gw *w, const char *name, st_ggml_type type, uint32_t n_dims,
                  const uint64_t *ne, const void *data)
{
    uint64_t n = nelems(n_dims, ne);
    uint64_t bytes_n = st_ggml_row_bytes(type, ne[0]) * (n / ne[0]);
    tensor_add(w, name, type, n_dims, ne, data, (size_t)bytes_n);
}

void st_gw_tensor_f32(st_gw *w, const char *name, st_ggml_type type, uint32_t n_dims,
                      const uint64_t *ne, const float *values)
{
    uint64_t n = nelems(n_dims, ne);
    uint64_t bytes_n = st_ggml_row_bytes(type, ne[0]) * (n / ne[0]);
    uint8_t *q = malloc(bytes_n ? (size_t)bytes_n : 1);
    if (!q || st_quantize(type, values, q, n) != ST_OK) {
        free(q);
        w->failed = true;
        return;
    }
    tensor_add(w, name, type, n_dims, ne, q, (size_t)bytes_n);
    free(q);
}

void st_gw_tensor_raw(st_gw *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, uint64_t offset, const void *data, size_t data_len)
{
    gw_tensor *t = tensor_add(w, name, type, n_dims, ne, data, data_len);
    if (t) {
        t->explicit_offset = true;
        t->offset = offset;
    }
}

static uint64_t align_up(uint64_t x, uint64_t a) { return a ? (x + a - 1) / a * a : x; }

st_status st_gw_build(st_gw *w, uint8_t **out, size_t *out_len, st_gw_layout *layout)
{
    if (w->failed)
        return ST_E_NOMEM;
    bytes b = {0};
    free(w->kv_at);
    free(w->tensor_at);
    w->kv_at = calloc(w->n_kv + 1, sizeof *w->kv_at);
    w->tensor_at = calloc(w->n_tensors + 1, sizeof *w->tensor_at);
    if (!w->kv_at || !w->tensor_at)
        return ST_E_NOMEM;

    put(w, &b, w->magic, 4);
    put_le(w, &b, w->version, 4);
    put_le(w, &b, w->set_n_tensors ? w->n_tensors_override : w->n_tensors, 8);
    put_le(w, &b, w->set_n_kv ? w->n_kv_override : w->n_kv, 8);
    uint64_t header_end = b.len;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        w->kv_at[i] = b.len;
        put(w, &b, w->kvs[i].p, w->kvs[i].len);
    }

    /* lay out the data: automatic offsets follow the furthest data so far */
    uint64_t next = 0, data_end = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        gw_tensor *t = &w->tensors[i];
        if (!t->explicit_offset)
            t->offset = align_up(next, w->alignment);
        if (t->data_len && t->offset + t->data_len > data_end)
            data_end = t->offset + t->data_len;
        if (data_end > next)
            next = data_end;
    }
    for (uint64_t i = 0; i < w->n_tensors; i++) {
        gw_tensor *t = &w->tensors[i];
        w->tensor_at[i] = b.len;
        put_str(w, &b, t->name, strlen(t->name));
        put_le(w, &b, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && d < 8; d++)
            put_le(w, &b, t->ne[d], 8);
        put_le(w, &b, t->type, 4);
        put_le(w, &b, t->offset, 8);
    }
    uint64_t infos_end = b.len;
    uint64_t data_offset = align_up(b.len, w->alignment);
    static const uint8_t zeros[64];
    while (b.len < data_offset && !w->failed)
        put(w, &b, zeros, (size_t)(data_offset - b.len) < sizeof zeros ? (size_t)(data_offset - b.len) : sizeof zeros);
    if (w->n_tensors > 0) {
        size_t start = b.len;
        for (uint64_t done = 0; done < data_end && !w->failed;) {
            size_t n = (size_t)(data_end - done) < sizeof zeros ? (size_t)(data_end - done) : sizeof zeros;
            put(w, &b, zeros, n);
            done += n;
        }
        for (uint64_t i = 0; i < w->n_tensors && !w->failed; i++) {
            gw_tensor *t = &w->tensors[i];
            if (t->data)
                memcpy(b.p + start + t->offset, t->data, t->data_len);
        }
    }
    if (w->failed) {
        free(b.p);
        return ST_E_NOMEM;
    }
    if (layout) {
        layout->header_end = header_end;
        layout->kv_at = w->kv_at;
        layout->n_kv = w->n_kv;
        layout->tensor_at = w->tensor_at;
        layout->n_tensors = w->n_tensors;
        layout->infos_end = infos_end;
        layout->data_offset = data_offset;
        layout->file_len = b.len;
    }
    *out = b.p;
    *out_len = b.len;
    return ST_OK;
}

st_status st_gw_write_bytes(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ST_E_IO;
    size_t n = len ? fwrite(buf, 1, len, f) : 0;
    int rc = fclose(f);
    return (n == len && rc == 0) ? ST_OK : ST_E_IO;
}

st_status st_gw_write(st_gw *w, const char *path, st_gw_layout *layout)
{
    uint8_t *buf;
    size_t len;
    st_status s = st_gw_build(w, &buf, &len, layout);
    if (s)
        return s;
    s = st_gw_write_bytes(path, buf, len);
    free(buf);
    return s;
}
