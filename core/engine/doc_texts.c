/*
 * core/engine/doc_texts.c - the documents' texts beside a retriever index.
 * The .texts file names the index it belongs to by size and FNV-1a hash, so
 * a stale one (the index rebuilt, the .texts left over) is refused before
 * either is loaded: a load then keeps the current index untouched.
 */
#include "doc_texts.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/msgpack_bounds.h>
#include <stretch/msgpack_map.h>

#include "diag.h"
#include "word_hash.h"

#define TEXTS_FORMAT "stretch.texts"
#define TEXTS_VERSION 2

void st_doc_texts_free(st_doc_texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->text[i]);
    free(t->text);
    free(t->len);
    memset(t, 0, sizeof *t);
}

bool st_doc_texts_push(st_doc_texts *t, const char *text, size_t len)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **tx = realloc(t->text, cap * sizeof *tx);
        if (!tx)
            return false;
        t->text = tx;
        size_t *ln = realloc(t->len, cap * sizeof *ln);
        if (!ln)
            return false;
        t->len = ln;
        t->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return false;
    if (len)
        memcpy(copy, text, len);
    copy[len] = '\0';
    t->text[t->n] = copy;
    t->len[t->n++] = len;
    return true;
}

void st_doc_texts_pop(st_doc_texts *t)
{
    if (t->n)
        free(t->text[--t->n]);
}

static char *texts_path(const char *path)
{
    size_t n = strlen(path);
    char *p = malloc(n + sizeof ".texts");
    if (p) {
        memcpy(p, path, n);
        memcpy(p + n, ".texts", sizeof ".texts");
    }
    return p;
}

/* The whole file; NULL with errno set on failure. */
static char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            char *grown = realloc(data, cap);
            if (!grown) {
                free(data);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            data = grown;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        errno = EIO;
        return NULL;
    }
    *size = n;
    return data;
}

/* Version 1 tied the texts to the index by FNV-1a 64 over its bytes, one
 * byte per multiply: 0.2 s for a 155 MB index (100k vectors) on every
 * load, a quarter of a query. Version 2 takes FNV's constants over 8-byte
 * little-endian words (the tail zero-padded), the state rotated before
 * each word so that every bit of a word reaches every bit of the hash:
 * eight times fewer dependent multiplies. Both are computed streaming the
 * file through a small buffer, never holding the index. */
typedef struct index_hash {
    uint64_t fnv1a;  /* version 1 */
    uint64_t words;  /* version 2 */
    uint64_t size;
} index_hash;

/* Hash the file at `path` the way `version` of the texts file names it.
 * False with errno set when it cannot be read. */
static bool hash_index(const char *path, int version, index_hash *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    enum { CHUNK = 1 << 20 }; /* a multiple of 8: words never straddle two reads */
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        errno = ENOMEM;
        return false;
    }
    uint64_t fnv = 1469598103934665603ULL, words = 1469598103934665603ULL, size = 0;
    size_t got;
    while ((got = fread(buf, 1, CHUNK, f)) > 0) {
        if (version == 1) {
            for (size_t i = 0; i < got; i++) {
                fnv ^= buf[i];
                fnv *= 1099511628211ULL;
            }
        } else {
            words = st_word_hash(words, buf, got);
        }
        size += got;
    }
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad) {
        errno = EIO;
        return false;
    }
    out->fnv1a = fnv;
    out->words = words ^ size;
    out->size = size;
    return true;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

st_status st_doc_texts_save(const st_doc_texts *t, const char *path, st_doc_id_fn ids,
                            void *ctx, st_error *err)
{
    index_hash ih;
    if (!hash_index(path, TEXTS_VERSION, &ih))
        return st_error_set(err, ST_E_IO, "%s: cannot read the index just saved: %s", path,
                            strerror(errno));

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pack_str(&pk, "format", 6);
    pack_str(&pk, TEXTS_FORMAT, strlen(TEXTS_FORMAT));
    pack_str(&pk, "version", 7);
    msgpack_pack_uint32(&pk, TEXTS_VERSION);
    pack_str(&pk, "index_bytes", 11);
    msgpack_pack_uint64(&pk, ih.size);
    pack_str(&pk, "index_hash64", 12);
    msgpack_pack_uint64(&pk, ih.words);
    pack_str(&pk, "docs", 4);
    msgpack_pack_array(&pk, t->n);
    st_status st = ST_OK;
    for (size_t i = 0; i < t->n && st == ST_OK; i++) {
        const char *id;
        size_t id_len;
        if ((st = ids(ctx, i, &id, &id_len, err)) != ST_OK)
            break;
        msgpack_pack_array(&pk, 2);
        pack_str(&pk, id, id_len);
        pack_str(&pk, t->text[i], t->len[i]);
    }
    char *out = texts_path(path), *tmp = out ? malloc(strlen(out) + 5) : NULL;
    if (st == ST_OK && (!out || !tmp || !sb.data))
        st = st_error_set(err, ST_E_NOMEM, "out of memory saving %s.texts", path);
    if (st == ST_OK) {
        sprintf(tmp, "%s.tmp", out);
        FILE *f = fopen(tmp, "wb");
        bool ok = f && fwrite(sb.data, 1, sb.size, f) == sb.size;
        if (f && fclose(f) != 0)
            ok = false;
        if (!ok || rename(tmp, out) != 0) {
            st = st_error_set(err, ST_E_IO, "%s: cannot write: %s", ok ? out : tmp,
                              strerror(errno));
            remove(tmp);
        }
    }
    free(tmp);
    free(out);
    msgpack_sbuffer_destroy(&sb);
    return st;
}

static bool is_str(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR;
}

static st_status texts_from(const msgpack_object *root, const char *file, const char *index,
                            st_doc_texts *out, st_error *err)
{
    if (root->type != MSGPACK_OBJECT_MAP || !st_mp_str_is(root, "format", TEXTS_FORMAT))
        return st_error_set(err, ST_E_FORMAT, "%s: not a stretch texts file (format is not "
                            "\"%s\")", file, TEXTS_FORMAT);
    int64_t version = 0, bytes = 0;
    if (st_mp_int(root, "version", &version) != ST_OK || version < 1 || version > TEXTS_VERSION)
        return st_error_set(err, ST_E_FORMAT, "%s: expected texts file version 1 to %d", file,
                            TEXTS_VERSION);
    const char *key = version == 1 ? "index_fnv1a64" : "index_hash64";
    const msgpack_object *hv = st_mp_find(root, key);
    if (st_mp_int(root, "index_bytes", &bytes) != ST_OK || !hv ||
        hv->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return st_error_set(err, ST_E_FORMAT, "%s: lacks index_bytes or %s", file, key);
    index_hash ih;
    if (!hash_index(index, (int)version, &ih))
        return st_error_set(err, ST_E_IO, "%s: cannot open: %s", index, strerror(errno));
    uint64_t index_hash = version == 1 ? ih.fnv1a : ih.words;
    if ((uint64_t)bytes != ih.size || hv->via.u64 != index_hash)
        return st_error_set(err, ST_E_FORMAT,
                            "%s: belongs to another index (it was saved with a %lld-byte index; "
                            "this one has %llu bytes%s): save the index again",
                            file, (long long)bytes, (unsigned long long)ih.size,
                            (uint64_t)bytes == ih.size ? " and other content" : "");
    const msgpack_object *docs = st_mp_find(root, "docs");
    if (!docs || docs->type != MSGPACK_OBJECT_ARRAY)
        return st_error_set(err, ST_E_FORMAT, "%s: lacks the docs array", file);
    for (uint32_t i = 0; i < docs->via.array.size; i++) {
        const msgpack_object *d = &docs->via.array.ptr[i];
        if (d->type != MSGPACK_OBJECT_ARRAY || d->via.array.size != 2 ||
            !is_str(&d->via.array.ptr[0]) || !is_str(&d->via.array.ptr[1]))
            return st_error_set(err, ST_E_FORMAT, "%s: document %u is not [id, text]", file, i);
        const msgpack_object *text = &d->via.array.ptr[1];
        if (!st_doc_texts_push(out, text->via.str.ptr, text->via.str.size))
            return st_error_set(err, ST_E_NOMEM, "%s: out of memory", file);
    }
    return ST_OK;
}

st_status st_doc_texts_load(const char *path, st_doc_texts *out, bool *found, st_error *err)
{
    memset(out, 0, sizeof *out);
    *found = false;
    char *file = texts_path(path);
    if (!file)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    size_t size = 0;
    char *data = read_all(file, &size);
    if (!data) {
        int e = errno;
        free(file);
        return e == ENOENT ? ST_OK : st_error_set(err, ST_E_IO, "%s.texts: cannot read: %s",
                                                   path, strerror(e));
    }
    *found = true;
    st_status st = ST_OK;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (st == ST_OK) {
        msgpack_unpack_return ret = st_msgpack_counts_fit(data, size)
                                        ? msgpack_unpack_next(&up, data, size, &off)
                                        : MSGPACK_UNPACK_PARSE_ERROR;
        if (ret == MSGPACK_UNPACK_CONTINUE)
            st = st_error_set(err, ST_E_FORMAT, "%s: truncated (%zu bytes)", file, size);
        else if ((ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES) ||
                 off != size)
            st = st_error_set(err, ST_E_FORMAT, "%s: corrupt (not one msgpack map)", file);
        else
            st = texts_from(&up.data, file, path, out, err);
    }
    msgpack_unpacked_destroy(&up);
    free(data);
    free(file);
    if (st != ST_OK)
        st_doc_texts_free(out);
    return st;
}
