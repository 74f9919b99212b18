/*
 * core/engine/engine_prompt_file.c - the prompt-prefix cache in a file
 * (st_engine_save_prompt / st_engine_load_prompt, stretch.h; llama-cli's
 * --prompt-cache). The file holds the slots the prefix cache would offer
 * the engine's next request, with what made them: a later process whose
 * prompt begins the same way takes them instead of prefilling them, and
 * its answer is still an empty cache's, bit for bit. So the file names
 * everything that decides those bits, and a file made under anything else
 * is refused, naming what differs:
 *
 *   "STPROMPT" | u32 version | u32 header bytes | the fields of
 *   prompt_header below | i32 tokens[n] | i32 pos[n] | i32 rot_pos[n] |
 *   for each layer: keys then values, each KV head's n rows in turn |
 *   u64 four-lane word hash (st_word_hasher4) of everything after the
 *   magic and before it.
 *
 * Little-endian, as the cache is in memory (x86-64 and aarch64). The file
 * is written beside its path and renamed over it, so a failed write keeps
 * the old file; a load maps the file and checks all of it before it
 * touches the cache, so a refused file leaves the engine's cache as it was.
 */
#include "engine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu/cpu_features.h"
#include "cpu/ggml_compat.h"
#include "word_hash.h"

#define PROMPT_MAGIC "STPROMPT"
#define PROMPT_VERSION 1u

/* What decides the cached bits besides the tokens. */
typedef struct prompt_header {
    uint64_t model_hash;     /* sampled from the model file's bytes */
    uint64_t posenc_hash;    /* the plugin's name and parameters */
    uint64_t attention_hash; /* the same for the attention plugin */
    uint32_t n_layers, n_kv_heads, head_dim, kv_type;
    uint32_t n_ctx, block, numerics_ggml, abi;
    char isa[16];
    char version[32];
    uint32_t n_slots;
    uint32_t reserved;
} prompt_header;

static uint64_t hash_str(uint64_t h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    h = st_word_hash(h, &n, sizeof n);
    return n ? st_word_hash(h, s, n) : h;
}

/* A plugin's parameters as the manifest gives them: types, keys and
 * values in document order (the same values written in another order
 * count as different, which only costs a prefill). */
static uint64_t hash_value(uint64_t h, const st_value *v)
{
    uint32_t t = v ? (uint32_t)v->type : 0xffffffffu;
    h = st_word_hash(h, &t, sizeof t);
    if (!v)
        return h;
    switch (v->type) {
    case ST_VALUE_NULL:
        break;
    case ST_VALUE_BOOL:
        h = st_word_hash(h, &v->b, sizeof v->b);
        break;
    case ST_VALUE_INT:
        h = st_word_hash(h, &v->i, sizeof v->i);
        break;
    case ST_VALUE_FLOAT:
        h = st_word_hash(h, &v->f, sizeof v->f);
        break;
    case ST_VALUE_STRING:
        h = hash_str(h, v->s);
        break;
    case ST_VALUE_LIST:
        for (size_t i = 0; i < v->n; i++)
            h = hash_value(h, v->items[i]);
        break;
    case ST_VALUE_MAP:
        for (size_t i = 0; i < v->n; i++)
            h = hash_value(hash_str(h, v->entries[i].key), v->entries[i].value);
        break;
    }
    return h;
}

static uint64_t hash_plugin(const st_engine_plugin *p, const st_plugin_ref *ref)
{
    return hash_value(hash_str(ST_WORD_HASH_INIT, p->lib->entry->name), ref->params);
}

/* The model file's size, its first MiB (the header, metadata and tensor
 * table) and 64 KiB at 16 places through the weights: a different model
 * or quantization differs in the first, a fine-tune of the same shape in
 * the others, without reading gigabytes on every load. */
static uint64_t hash_model(const st_gguf *g)
{
    uint64_t h = st_word_hash(ST_WORD_HASH_INIT, &g->map_len, sizeof g->map_len);
    const uint64_t head = 1u << 20, piece = 1u << 16;
    h = st_word_hash(h, g->map, g->map_len < head ? g->map_len : head);
    if (g->map_len <= head + piece)
        return h;
    for (uint64_t k = 1; k <= 16; k++) {
        uint64_t at = head + (g->map_len - head - piece) / 16 * k;
        at -= at % 8;
        h = st_word_hash(h, g->map + at, piece);
    }
    return h;
}

static void describe(const st_engine *e, prompt_header *h)
{
    memset(h, 0, sizeof *h);
    h->model_hash = hash_model(e->gguf);
    h->posenc_hash = hash_plugin(&e->posenc, &e->strategy->posenc);
    h->attention_hash = hash_plugin(&e->attention, &e->strategy->attention);
    h->n_layers = e->kv->n_layers;
    h->n_kv_heads = e->kv->n_kv_heads;
    h->head_dim = e->kv->head_dim;
    h->kv_type = (uint32_t)e->kv->type;
    h->n_ctx = e->n_ctx;
    h->block = e->block;
    h->numerics_ggml = e->numerics == ST_NUMERICS_GGML ||
                       (e->numerics == ST_NUMERICS_DEFAULT && st_gc_env_enabled());
    h->abi = (uint32_t)ST_ABI_MAJOR << 16 | ST_ABI_MINOR;
    snprintf(h->isa, sizeof h->isa, "%s", st_cpu_isa_name(st_cpu_isa_active()));
    snprintf(h->version, sizeof h->version, "%s", st_version());
}

/* Why a file's header does not describe this engine; NULL when it does.
 * (Its cache's shape and kv-type map_checked has compared already.) */
static const char *mismatch(const prompt_header *f, const prompt_header *e, char *buf,
                            size_t cap)
{
    if (f->model_hash != e->model_hash)
        return "it was made with another model file";
    if (f->posenc_hash != e->posenc_hash)
        return "it was made with another positional encoding (plugin or parameters)";
    if (f->attention_hash != e->attention_hash)
        return "it was made with another attention plugin or parameters";
    if (f->n_ctx != e->n_ctx) {
        snprintf(buf, cap, "it was made with a context of %u tokens, this engine has %u",
                 f->n_ctx, e->n_ctx);
        return buf;
    }
    if (f->numerics_ggml != e->numerics_ggml) {
        snprintf(buf, cap, "it was made with --numerics %s, this engine runs %s",
                 f->numerics_ggml ? "ggml" : "fast", e->numerics_ggml ? "ggml" : "fast");
        return buf;
    }
    if (strcmp(f->isa, e->isa) || f->block != e->block || f->abi != e->abi ||
        strcmp(f->version, e->version)) {
        snprintf(buf, cap, "it was made by stretch %s (ABI %u.%u, %s kernels), this is %s "
                 "(ABI %u.%u, %s)", f->version, f->abi >> 16, f->abi & 0xffff, f->isa,
                 e->version, e->abi >> 16, e->abi & 0xffff, e->isa);
        return buf;
    }
    return NULL;
}

/* What save and load both ask first: *n = 0, a path, a strategy whose
 * prompt slots a later request can take. */
static st_status usable(const st_engine *e, const char *path, uint32_t *n, st_error *err)
{
    if (n)
        *n = 0;
    if (!path || !*path)
        return st_error_set(err, ST_E_INVALID, "the prompt cache needs a file path");
    if (!e->prefix_ok)
        return st_error_set(err, ST_E_UNAVAILABLE, "the strategy's cache cannot be taken up "
                            "by a later prompt (attention plugin '%s'%s): a prompt cache needs "
                            "a plugin that allows prefix reuse (dense), no retention and the "
                            "CPU backend", e->attention.lib->entry->name,
                            e->backend ? ", OpenCL" : "");
    return ST_OK;
}

/* The size of the payload after the header: positions and rows. */
static uint64_t payload_bytes(const st_kv_cache *kv, uint32_t n)
{
    return 3 * (uint64_t)n * sizeof(int32_t) + (uint64_t)n * st_kv_bytes_per_token(kv);
}

static bool put(FILE *f, const void *p, size_t n, st_word_hasher4 *h)
{
    st_word_hasher4_feed(h, p, n);
    return fwrite(p, 1, n, f) == n;
}

st_status st_engine_save_prompt(st_engine *e, const char *path, uint32_t *n_saved,
                                st_error *err)
{
    st_status st = usable(e, path, n_saved, err);
    if (st != ST_OK)
        return st;
    const st_kv_cache *kv = e->kv;
    uint32_t n = st_engine_offered_slots(e);
    prompt_header h;
    describe(e, &h);
    h.n_slots = n;
    size_t tmp_len = strlen(path) + 32;
    char *tmp = malloc(tmp_len);
    if (!tmp)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    snprintf(tmp, tmp_len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st_status st = st_error_set(err, ST_E_IO, "%s: cannot write the prompt cache: %s", path,
                                    strerror(errno));
        free(tmp);
        return st;
    }
    uint32_t version = PROMPT_VERSION, hb = (uint32_t)sizeof h;
    st_word_hasher4 sum;
    st_word_hasher4_init(&sum);
    bool ok = fwrite(PROMPT_MAGIC, 1, 8, f) == 8 && put(f, &version, 4, &sum) &&
              put(f, &hb, 4, &sum) && put(f, &h, sizeof h, &sum) &&
              put(f, kv->tokens, n * sizeof(int32_t), &sum) &&
              put(f, kv->pos, n * sizeof(int32_t), &sum) &&
              put(f, kv->rot_pos, n * sizeof(int32_t), &sum);
    /* The file holds key rows whatever the cache's layout: blocked keys
     * are gathered into rows a head at a time. */
    uint8_t *krows = kv->k_blocked && n ? malloc((size_t)n * kv->row_bytes) : NULL;
    ok = ok && (krows || !kv->k_blocked || !n);
    for (uint32_t l = 0; ok && l < kv->n_layers; l++)
        for (int which = 0; ok && which < 2; which++)
            for (uint32_t hd = 0; ok && hd < kv->n_kv_heads; hd++) {
                const uint8_t *rows = st_kv_at(kv, l, which ? kv->v[l] : kv->k[l], hd, 0);
                if (!which && kv->k_blocked) {
                    for (uint32_t j = 0; j < n; j++)
                        st_kv_key_get(kv, l, kv->k[l], hd, j, krows + (size_t)j * kv->row_bytes);
                    rows = krows;
                }
                ok = put(f, rows, (size_t)n * kv->row_bytes, &sum);
            }
    free(krows);
    uint64_t check = st_word_hasher4_end(&sum);
    ok = ok && fwrite(&check, 1, sizeof check, f) == sizeof check;
    int saved_errno = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        saved_errno = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved_errno = errno;
    }
    if (!ok) {
        remove(tmp);
        free(tmp);
        return st_error_set(err, ST_E_IO, "%s: cannot write the prompt cache: %s", path,
                            strerror(saved_errno));
    }
    free(tmp);
    if (n_saved)
        *n_saved = n;
    return ST_OK;
}

/* A prompt cache file mapped for reading (no copy of tens of megabytes
 * before the one into the cache). */
typedef struct prompt_map {
    void *base;
    size_t len;
} prompt_map;

static void unmap(prompt_map *m)
{
    if (m->base)
        munmap(m->base, m->len);
    m->base = NULL;
}

/* The file mapped, its header in *h and the bytes after it in *body,
 * checked against its checksum and this cache's shape: ST_OK, or why not
 * (nothing mapped then). */
static st_status map_checked(const char *path, const st_kv_cache *kv, prompt_header *h,
                             prompt_map *m, const uint8_t **body, st_error *err)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_error_set(err, errno == ENOENT ? ST_E_NOT_FOUND : ST_E_IO, "%s: %s", path,
                            strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st_status st = st_error_set(err, ST_E_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return st_error_set(err, ST_E_IO, "%s: expected a prompt cache file, found %s", path,
                            S_ISDIR(sb.st_mode) ? "a directory" : "something else");
    }
    size_t len = (size_t)sb.st_size, head_len = 8 + 2 * sizeof(uint32_t) + sizeof *h;
    void *base = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    int map_errno = errno;
    close(fd);
    if (len && base == MAP_FAILED)
        return st_error_set(err, ST_E_IO, "%s: cannot map it: %s", path, strerror(map_errno));
    const uint8_t *p = len ? base : NULL;
    prompt_map got = {len ? base : NULL, len};
    if (len < 8 || memcmp(p, PROMPT_MAGIC, 8) != 0) {
        unmap(&got);
        return st_error_set(err, ST_E_FORMAT, "%s: not a stretch prompt cache (expected the "
                            "magic STPROMPT at its start)", path);
    }
    uint32_t head[2] = {0, 0};
    if (len >= 8 + sizeof head)
        memcpy(head, p + 8, sizeof head);
    if (len < head_len || head[0] != PROMPT_VERSION || head[1] != sizeof *h) {
        unmap(&got);
        return st_error_set(err, ST_E_FORMAT, "%s: a prompt cache of another version or cut "
                            "short in its header (expected version %u)", path, PROMPT_VERSION);
    }
    memcpy(h, p + 8 + sizeof head, sizeof *h);
    /* Bounded before the body is read: a file claims at most the slots
     * this engine's cache holds. */
    if (h->n_layers != kv->n_layers || h->n_kv_heads != kv->n_kv_heads ||
        h->head_dim != kv->head_dim || h->kv_type != (uint32_t)kv->type ||
        h->n_slots > kv->capacity) {
        unmap(&got);
        return st_error_set(err, ST_E_INVALID, "%s: the prompt cache does not fit this engine "
                            "(%u layers x %u KV heads x %u dims, %s, %u slots; this engine: "
                            "%u x %u x %u, %s, room for %u)", path, h->n_layers,
                            h->n_kv_heads, h->head_dim,
                            st_kv_type_name((st_kv_type)h->kv_type), h->n_slots,
                            kv->n_layers, kv->n_kv_heads, kv->head_dim,
                            st_kv_type_name(kv->type), kv->capacity);
    }
    uint64_t bytes = payload_bytes(kv, h->n_slots) + sizeof(uint64_t);
    uint64_t have = len - head_len;
    if (have != bytes) {
        unmap(&got);
        if (have < bytes)
            return st_error_set(err, ST_E_FORMAT, "%s: the prompt cache is cut short: %llu of "
                                "its %llu bytes after the header", path,
                                (unsigned long long)have, (unsigned long long)bytes);
        return st_error_set(err, ST_E_FORMAT, "%s: the prompt cache is damaged (bytes past "
                            "its end)", path);
    }
    const uint8_t *b = p + head_len;
    st_word_hasher4 w;
    st_word_hasher4_init(&w);
    st_word_hasher4_feed(&w, head, sizeof head);
    st_word_hasher4_feed(&w, h, sizeof *h);
    st_word_hasher4_feed(&w, b, bytes - sizeof(uint64_t));
    uint64_t stored;
    memcpy(&stored, b + bytes - sizeof stored, sizeof stored);
    if (stored != st_word_hasher4_end(&w)) {
        unmap(&got);
        return st_error_set(err, ST_E_FORMAT, "%s: the prompt cache is damaged (its checksum "
                            "does not match)", path);
    }
    *m = got;
    *body = b;
    return ST_OK;
}

st_status st_engine_load_prompt(st_engine *e, const char *path, uint32_t *n_loaded,
                                st_error *err)
{
    st_status st = usable(e, path, n_loaded, err);
    if (st != ST_OK)
        return st;
    st_kv_cache *kv = e->kv;
    prompt_header file, mine;
    prompt_map map;
    const uint8_t *body = NULL;
    st = map_checked(path, kv, &file, &map, &body, err);
    if (st != ST_OK)
        return st;
    describe(e, &mine);
    char why_buf[256];
    const char *why = mismatch(&file, &mine, why_buf, sizeof why_buf);
    uint32_t n = file.n_slots;
    const int32_t *tokens = (const int32_t *)body;
    const int32_t *pos = tokens + n, *rot = pos + n;
    /* The prefix cache takes slot i only at position i. */
    for (uint32_t i = 0; !why && i < n; i++)
        if (pos[i] != (int32_t)i || tokens[i] < 0 || (uint32_t)tokens[i] >= e->shape.n_vocab)
            why = "its slots are not a prompt's, token by token from position 0";
    if (why) {
        unmap(&map);
        return st_error_set(err, ST_E_INVALID, "%s: the prompt cache does not match: %s", path,
                            why);
    }
    st_kv_cache_reset(kv);
    memcpy(kv->tokens, tokens, n * sizeof *tokens);
    memcpy(kv->pos, pos, n * sizeof *pos);
    memcpy(kv->rot_pos, rot, n * sizeof *rot);
    const uint8_t *rows = (const uint8_t *)(rot + n);
    size_t head_bytes = (size_t)n * kv->row_bytes;
    for (uint32_t l = 0; l < kv->n_layers; l++)
        for (int which = 0; which < 2; which++)
            for (uint32_t hd = 0; hd < kv->n_kv_heads; hd++, rows += head_bytes) {
                if (!which && kv->k_blocked)
                    for (uint32_t j = 0; j < n; j++)
                        st_kv_key_put(kv, l, kv->k[l], hd, j, rows + (size_t)j * kv->row_bytes);
                else
                    memcpy(st_kv_at(kv, l, which ? kv->v[l] : kv->k[l], hd, 0), rows,
                           head_bytes);
            }
    kv->n_slots = n;
    kv->last_pos = n ? (int32_t)n - 1 : -1;
    st_engine_prefilled(e, n);
    unmap(&map);
    if (n_loaded)
        *n_loaded = e->reuse_slots;
    return ST_OK;
}
