/*
 * bpe_vocab.c - read a GPT-2 style vocabulary from the model's metadata
 * (tokenizer.ggml.*) through the host services, and the two lookups BPE
 * needs: token bytes -> id and (left, right) -> merge rank.
 *
 * BPE works on raw bytes here, not on GPT-2's printable stand-in text: each
 * token's text is mapped back through the byte map once, at load time, so
 * encoding never builds stand-in strings. The map is a bijection, so this
 * finds exactly the tokens and merges llama.cpp finds by text.
 */
#include <stdlib.h>
#include <string.h>

#include "bpe_internal.h"

#define META_PREFIX "tokenizer.ggml."

uint32_t st_bpe_hash(const uint8_t *bytes, size_t len, uint32_t seed)
{
    uint32_t h = 2166136261u ^ seed; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= bytes[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t merge_hash(const uint8_t *l, size_t ln, const uint8_t *r, size_t rn)
{
    uint32_t h = st_bpe_hash(l, ln, 0);
    return st_bpe_hash(r, rn, h * 0x9E3779B1u);
}

static uint32_t table_size_for(size_t n)
{
    uint32_t size = 16;
    while (size < 2 * n)
        size <<= 1;
    return size;
}

/* Append bytes to the arena; *off gets where they went. */
static st_status arena_put(st_bpe *b, const void *bytes, size_t len, uint32_t *off)
{
    /* Allocated even for an empty first entry: an empty token's key must
     * point into the arena, never be NULL (memcmp with NULL is undefined). */
    if (!b->arena || b->arena_len + len > b->arena_cap) {
        size_t cap = b->arena_cap ? b->arena_cap : 1 << 16;
        while (cap < b->arena_len + len)
            cap *= 2;
        if (cap > UINT32_MAX)
            return ST_E_RANGE;
        char *a = b->host->realloc(b->host->host, b->arena, cap);
        if (!a)
            return ST_E_NOMEM;
        b->arena = a;
        b->arena_cap = cap;
    }
    if (len)
        memcpy(b->arena + b->arena_len, bytes, len);
    *off = (uint32_t)b->arena_len;
    b->arena_len += len;
    return ST_OK;
}

/* Map a stand-in text back to bytes into buf (room for len). Returns the
 * byte count, or -1 when the text is not pure byte-level (a code point
 * outside the byte map, or invalid UTF-8). */
static long text_to_bytes(const st_bpe *b, const char *text, size_t len, uint8_t *buf)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0, n = 0;
    while (i < len) {
        size_t used;
        uint32_t cp = st_bpe_utf8_decode(s + i, len - i, &used);
        if (cp >= ST_BPE_CP_BYTE_SIZE || b->cp_byte[cp] < 0)
            return -1;
        buf[n++] = (uint8_t)b->cp_byte[cp];
        i += used;
    }
    return (long)n;
}

/* What a normal token decodes to: stand-ins become their bytes; any other
 * code point is kept as its UTF-8 (llama.cpp writes an [UNK_BYTE_..] marker
 * there; such tokens do not occur in byte-level vocabularies). */
static size_t text_to_piece(const st_bpe *b, const char *text, size_t len, uint8_t *buf)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0, n = 0;
    while (i < len) {
        size_t used;
        uint32_t cp = st_bpe_utf8_decode(s + i, len - i, &used);
        if (cp < ST_BPE_CP_BYTE_SIZE && b->cp_byte[cp] >= 0) {
            buf[n++] = (uint8_t)b->cp_byte[cp];
        } else {
            memcpy(buf + n, s + i, used);
            n += used;
        }
        i += used;
    }
    return n;
}

int32_t st_bpe_key_lookup(const st_bpe *b, const uint8_t *bytes, size_t len)
{
    uint32_t i = st_bpe_hash(bytes, len, 0) & b->key_mask;
    for (;;) {
        int32_t id = b->key_table[i];
        if (id < 0)
            return -1;
        const st_bpe_token *t = &b->tokens[id];
        if (t->key_len == len && memcmp(b->arena + t->key_off, bytes, len) == 0)
            return id;
        i = (i + 1) & b->key_mask;
    }
}

int32_t st_bpe_merge_rank(const st_bpe *b, const uint8_t *left, size_t left_len,
                          const uint8_t *right, size_t right_len)
{
    if (!b->merge_table)
        return -1;
    uint32_t i = merge_hash(left, left_len, right, right_len) & b->merge_mask;
    for (;;) {
        int32_t rank = b->merge_table[i];
        if (rank < 0)
            return -1;
        const st_bpe_merge *m = &b->merges[rank];
        if (m->left_len == left_len && m->right_len == right_len &&
            memcmp(b->arena + m->left_off, left, left_len) == 0 &&
            memcmp(b->arena + m->right_off, right, right_len) == 0)
            return rank;
        i = (i + 1) & b->merge_mask;
    }
}

/* ---- metadata access ---------------------------------------------------- */

static st_status meta_get(st_bpe *b, const char *key, st_meta_value *v, st_error *err)
{
    const st_host_services *h = b->host;
    if (!h->model_meta)
        return h->error(err, ST_E_UNAVAILABLE, "bpe: the host offers no model metadata");
    memset(v, 0, sizeof *v);
    return h->model_meta(h->host, key, v, err);
}

/* An optional integer key: *out untouched when absent. */
static st_status meta_opt_int(st_bpe *b, const char *key, int64_t *out, st_error *err)
{
    st_meta_value v;
    st_status st = meta_get(b, key, &v, err);
    if (st == ST_E_NOT_FOUND)
        return ST_OK;
    if (st != ST_OK)
        return st;
    if (v.type != ST_META_INT)
        return b->host->error(err, ST_E_FORMAT,
                              "bpe: model metadata %s must be an integer", key);
    *out = v.i;
    return ST_OK;
}

static st_status meta_string_array(st_bpe *b, const char *key, uint64_t *n, st_error *err)
{
    st_meta_value v;
    st_status st = meta_get(b, key, &v, err);
    if (st == ST_E_NOT_FOUND)
        return b->host->error(err, ST_E_FORMAT, "bpe: model metadata has no %s", key);
    if (st != ST_OK)
        return st;
    if (v.type != ST_META_ARRAY || v.array_type != ST_META_STRING)
        return b->host->error(err, ST_E_FORMAT,
                              "bpe: model metadata %s must be an array of strings", key);
    *n = v.len;
    return ST_OK;
}

static st_status check_model(st_bpe *b, st_error *err)
{
    st_meta_value v;
    st_status st = meta_get(b, META_PREFIX "model", &v, err);
    if (st == ST_E_NOT_FOUND)
        return b->host->error(err, ST_E_FORMAT,
                              "bpe: model metadata has no " META_PREFIX "model");
    if (st != ST_OK)
        return st;
    if (v.type != ST_META_STRING || v.len != 4 || memcmp(v.str, "gpt2", 4) != 0)
        return b->host->error(err, ST_E_INVALID,
                              "bpe: the model's tokenizer is \"%.*s\", expected \"gpt2\" "
                              "(byte-level BPE); choose the tokenizer plugin for that model",
                              v.type == ST_META_STRING ? (int)(v.len > 64 ? 64 : v.len) : 1,
                              v.type == ST_META_STRING ? v.str : "?");

    /* The pre-tokenizer type picks the regex. These share llama.cpp's
     * "digits apart, then GPT-2" rule; plain GPT-2 ones omit the first step. */
    static const char *const digit_split[] = {"smollm", "starcoder", "refact", "command-r",
                                              "codeshell", "exaone", "minerva", NULL};
    static const char *const plain[] = {"gpt2", "default", "mpt", "olmo", "jais", NULL};
    st = meta_get(b, META_PREFIX "pre", &v, err);
    if (st == ST_E_NOT_FOUND) {
        b->split_digits = false; /* llama.cpp's default for gpt2 vocabularies */
        return ST_OK;
    }
    if (st != ST_OK)
        return st;
    if (v.type != ST_META_STRING)
        return b->host->error(err, ST_E_FORMAT, "bpe: model metadata " META_PREFIX
                              "pre must be a string");
    for (int i = 0; digit_split[i]; i++)
        if (v.len == strlen(digit_split[i]) && memcmp(v.str, digit_split[i], v.len) == 0) {
            b->split_digits = true;
            return ST_OK;
        }
    for (int i = 0; plain[i]; i++)
        if (v.len == strlen(plain[i]) && memcmp(v.str, plain[i], v.len) == 0) {
            b->split_digits = false;
            return ST_OK;
        }
    return b->host->error(err, ST_E_INVALID,
                          "bpe: pre-tokenizer \"%.*s\" (" META_PREFIX "pre) is not supported; "
                          "supported: smollm, starcoder, refact, command-r, codeshell, exaone, "
                          "minerva, gpt2, default, mpt, olmo, jais",
                          (int)(v.len > 64 ? 64 : v.len), v.str);
}

static st_status load_tokens(st_bpe *b, st_error *err)
{
    const st_host_services *h = b->host;
    uint64_t n = 0;
    st_status st = meta_string_array(b, META_PREFIX "tokens", &n, err);
    if (st != ST_OK)
        return st;
    if (n == 0 || n > (uint64_t)INT32_MAX / 4)
        return h->error(err, ST_E_FORMAT, "bpe: " META_PREFIX "tokens has %llu entries",
                        (unsigned long long)n);
    b->n_vocab = (int32_t)n;
    b->tokens = h->calloc(h->host, (size_t)n, sizeof *b->tokens);
    if (!b->tokens)
        return h->error(err, ST_E_NOMEM, "bpe: out of memory for %llu tokens",
                        (unsigned long long)n);

    /* Types are optional: without them every token is normal. */
    st_meta_value tv;
    bool have_types = false;
    st = meta_get(b, META_PREFIX "token_type", &tv, err);
    if (st == ST_OK) {
        if (tv.type != ST_META_ARRAY || tv.array_type != ST_META_INT || tv.len != n)
            return h->error(err, ST_E_FORMAT,
                            "bpe: " META_PREFIX "token_type must be an integer array with one "
                            "entry per token (%llu)", (unsigned long long)n);
        have_types = true;
    } else if (st != ST_E_NOT_FOUND) {
        return st;
    }

    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    for (uint64_t i = 0; i < n; i++) {
        st_bpe_token *t = &b->tokens[i];
        const char *s;
        uint64_t len;
        st = h->meta_array_string(h->host, META_PREFIX "tokens", i, &s, &len, err);
        if (st != ST_OK)
            goto out;
        if (len > UINT32_MAX / 4) {
            st = h->error(err, ST_E_FORMAT, "bpe: token %llu is too long",
                          (unsigned long long)i);
            goto out;
        }
        t->text = s;
        t->text_len = (uint32_t)len;
        t->type = ST_BPE_TYPE_NORMAL;
        if (have_types) {
            int64_t ty;
            st = h->meta_array_int(h->host, META_PREFIX "token_type", i, &ty, err);
            if (st != ST_OK)
                goto out;
            t->type = (ty >= 0 && ty <= ST_BPE_TYPE_BYTE) ? (uint8_t)ty : ST_BPE_TYPE_UNDEFINED;
        }
        if (len > buf_cap) {
            size_t cap = len < 256 ? 256 : (size_t)len;
            uint8_t *nb = h->realloc(h->host, buf, cap);
            if (!nb) {
                st = h->error(err, ST_E_NOMEM, "bpe: out of memory");
                goto out;
            }
            buf = nb;
            buf_cap = cap;
        }
        long key_len = text_to_bytes(b, s, (size_t)len, buf);
        t->key_len = ST_BPE_NO_KEY;
        if (key_len >= 0) {
            st = arena_put(b, buf, (size_t)key_len, &t->key_off);
            if (st != ST_OK)
                goto nomem;
            t->key_len = (uint32_t)key_len;
        }
        bool verbatim = t->type == ST_BPE_TYPE_CONTROL || t->type == ST_BPE_TYPE_USER_DEFINED ||
                        t->type == ST_BPE_TYPE_UNKNOWN;
        if (verbatim) {
            st = arena_put(b, s, (size_t)len, &t->piece_off);
            t->piece_len = t->text_len;
        } else if (key_len >= 0) {
            t->piece_off = t->key_off; /* the usual case: the piece is the key */
            t->piece_len = (uint32_t)key_len;
        } else {
            size_t pn = text_to_piece(b, s, (size_t)len, buf);
            st = arena_put(b, buf, pn, &t->piece_off);
            t->piece_len = (uint32_t)pn;
        }
        if (st != ST_OK)
            goto nomem;
    }
    st = ST_OK;
    goto out;
nomem:
    st = h->error(err, st, "bpe: out of memory (or over 4 GiB) storing the vocabulary");
out:
    h->free(h->host, buf);
    return st;
}

static st_status build_key_table(st_bpe *b, st_error *err)
{
    const st_host_services *h = b->host;
    uint32_t size = table_size_for((size_t)b->n_vocab);
    b->key_table = h->alloc(h->host, size * sizeof(int32_t));
    if (!b->key_table)
        return h->error(err, ST_E_NOMEM, "bpe: out of memory");
    memset(b->key_table, 0xFF, size * sizeof(int32_t));
    b->key_mask = size - 1;
    for (int32_t id = 0; id < b->n_vocab; id++) {
        const st_bpe_token *t = &b->tokens[id];
        if (t->key_len == ST_BPE_NO_KEY)
            continue;
        const uint8_t *key = (const uint8_t *)b->arena + t->key_off;
        uint32_t i = st_bpe_hash(key, t->key_len, 0) & b->key_mask;
        for (;;) {
            int32_t other = b->key_table[i];
            if (other < 0) {
                b->key_table[i] = id;
                break;
            }
            const st_bpe_token *o = &b->tokens[other];
            if (o->key_len == t->key_len &&
                memcmp(b->arena + o->key_off, key, t->key_len) == 0) {
                b->key_table[i] = id; /* a repeated text: the later id wins, as in llama.cpp */
                break;
            }
            i = (i + 1) & b->key_mask;
        }
    }
    return ST_OK;
}

static st_status load_merges(st_bpe *b, st_error *err)
{
    const st_host_services *h = b->host;
    uint64_t n = 0;
    st_status st = meta_string_array(b, META_PREFIX "merges", &n, err);
    if (st != ST_OK)
        return st;
    if (n > (uint64_t)INT32_MAX / 4)
        return h->error(err, ST_E_FORMAT, "bpe: " META_PREFIX "merges has %llu entries",
                        (unsigned long long)n);
    b->n_merges = (uint32_t)n;
    if (n == 0)
        return ST_OK;
    b->merges = h->calloc(h->host, (size_t)n, sizeof *b->merges);
    uint32_t size = table_size_for((size_t)n);
    b->merge_table = h->alloc(h->host, size * sizeof(int32_t));
    if (!b->merges || !b->merge_table)
        return h->error(err, ST_E_NOMEM, "bpe: out of memory for %llu merges",
                        (unsigned long long)n);
    memset(b->merge_table, 0xFF, size * sizeof(int32_t));
    b->merge_mask = size - 1;

    uint8_t *buf = NULL;
    size_t buf_cap = 0;
    for (uint64_t r = 0; r < n; r++) {
        const char *s;
        uint64_t len;
        st = h->meta_array_string(h->host, META_PREFIX "merges", r, &s, &len, err);
        if (st != ST_OK)
            break;
        st_bpe_merge *m = &b->merges[r];
        m->left_len = m->right_len = ST_BPE_NO_KEY;
        /* "left right", split at the first space after the first byte (as
         * llama.cpp does); a merge without one can never apply. */
        const char *sp = len > 1 ? memchr(s + 1, ' ', (size_t)len - 1) : NULL;
        if (!sp)
            continue;
        if (len > buf_cap) {
            uint8_t *nb = h->realloc(h->host, buf, (size_t)len);
            if (!nb) {
                st = h->error(err, ST_E_NOMEM, "bpe: out of memory");
                break;
            }
            buf = nb;
            buf_cap = (size_t)len;
        }
        size_t ltext = (size_t)(sp - s), rtext = (size_t)len - ltext - 1;
        long ln = text_to_bytes(b, s, ltext, buf);
        long rn = ln < 0 ? -1 : text_to_bytes(b, sp + 1, rtext, buf + ln);
        if (ln <= 0 || rn <= 0)
            continue; /* not byte-level: BPE never produces these halves */
        uint32_t off;
        st = arena_put(b, buf, (size_t)(ln + rn), &off);
        if (st != ST_OK) {
            st = h->error(err, st, "bpe: out of memory storing merges");
            break;
        }
        const uint8_t *l = (const uint8_t *)b->arena + off;
        uint32_t i = merge_hash(l, (size_t)ln, l + ln, (size_t)rn) & b->merge_mask;
        bool dup = false;
        while (b->merge_table[i] >= 0) {
            const st_bpe_merge *o = &b->merges[b->merge_table[i]];
            if (o->left_len == (uint32_t)ln && o->right_len == (uint32_t)rn &&
                memcmp(b->arena + o->left_off, l, (size_t)(ln + rn)) == 0 &&
                o->right_off == o->left_off + (uint32_t)ln) {
                dup = true; /* the first rank wins, as in llama.cpp */
                break;
            }
            i = (i + 1) & b->merge_mask;
        }
        if (dup)
            continue;
        m->left_off = off;
        m->left_len = (uint32_t)ln;
        m->right_off = off + (uint32_t)ln;
        m->right_len = (uint32_t)rn;
        b->merge_table[i] = (int32_t)r;
    }
    h->free(h->host, buf);
    return st;
}

static st_status load_special_id(st_bpe *b, const char *key, int32_t *out, st_error *err)
{
    int64_t v = -1;
    st_status st = meta_opt_int(b, key, &v, err);
    if (st != ST_OK)
        return st;
    if (v < -1 || v >= b->n_vocab)
        return b->host->error(err, ST_E_FORMAT,
                              "bpe: model metadata %s = %lld is not a token id (vocabulary has "
                              "%d tokens)", key, (long long)v, (int)b->n_vocab);
    *out = (int32_t)v;
    return ST_OK;
}

static int32_t find_text(const st_bpe *b, const char *text)
{
    size_t len = strlen(text);
    for (int32_t id = 0; id < b->n_vocab; id++)
        if (b->tokens[id].text_len == len && memcmp(b->tokens[id].text, text, len) == 0)
            return id;
    return -1;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static st_status load_specials(st_bpe *b, st_error *err)
{
    st_special_tokens *sp = &b->special;
    sp->struct_size = sizeof *sp;
    sp->bos = sp->eos = sp->eot = sp->pad = sp->unk = sp->sep = -1;
    st_status st;
    if ((st = load_special_id(b, META_PREFIX "bos_token_id", &sp->bos, err)) ||
        (st = load_special_id(b, META_PREFIX "eos_token_id", &sp->eos, err)) ||
        (st = load_special_id(b, META_PREFIX "eot_token_id", &sp->eot, err)) ||
        (st = load_special_id(b, META_PREFIX "padding_token_id", &sp->pad, err)) ||
        (st = load_special_id(b, META_PREFIX "unknown_token_id", &sp->unk, err)) ||
        (st = load_special_id(b, META_PREFIX "seperator_token_id", &sp->sep, err)))
        return st;

    /* No eot_token_id: find the end-of-turn token by its text as llama.cpp
     * does, and make it a control token (so it is split out and special). */
    if (sp->eot < 0) {
        static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>",
                                                "<end_of_turn>", "<|endoftext|>", "<EOT>",
                                                NULL};
        for (int i = 0; eot_texts[i] && sp->eot < 0; i++)
            sp->eot = find_text(b, eot_texts[i]);
        if (sp->eot >= 0 && b->tokens[sp->eot].type == ST_BPE_TYPE_NORMAL) {
            st_bpe_token *t = &b->tokens[sp->eot];
            t->type = ST_BPE_TYPE_CONTROL;
            uint32_t off;
            if (arena_put(b, t->text, t->text_len, &off) != ST_OK)
                return b->host->error(err, ST_E_NOMEM, "bpe: out of memory");
            t->piece_off = off;
            t->piece_len = t->text_len;
        }
    }

    for (int32_t id = 0; id < 256; id++)
        b->single_byte_token[id] = -1;
    size_t n_special = 0;
    for (int32_t id = 0; id < b->n_vocab; id++) {
        const st_bpe_token *t = &b->tokens[id];
        if (t->text_len == 1)
            b->single_byte_token[(uint8_t)t->text[0]] = id;
        if (t->text_len > 0 && (t->type == ST_BPE_TYPE_CONTROL || t->type == ST_BPE_TYPE_UNKNOWN ||
                                t->type == ST_BPE_TYPE_USER_DEFINED))
            n_special++;
    }
    if (n_special == 0)
        return ST_OK;
    b->specials = b->host->alloc(b->host->host, n_special * sizeof(int32_t));
    uint64_t *order = b->host->alloc(b->host->host, n_special * sizeof(uint64_t));
    if (!b->specials || !order) {
        b->host->free(b->host->host, order);
        return b->host->error(err, ST_E_NOMEM, "bpe: out of memory");
    }
    /* Longest text first, equal lengths in id order, so "<|im_start|>" wins
     * over any shorter token inside it. One key per token (inverted length
     * above, id below) makes that a plain sort: a vocabulary of millions of
     * control tokens must not take an insertion sort's quadratic time. */
    for (int32_t id = 0; id < b->n_vocab; id++) {
        const st_bpe_token *t = &b->tokens[id];
        if (!(t->text_len > 0 && (t->type == ST_BPE_TYPE_CONTROL || t->type == ST_BPE_TYPE_UNKNOWN ||
                                  t->type == ST_BPE_TYPE_USER_DEFINED)))
            continue;
        order[b->n_specials++] = ((uint64_t)(UINT32_MAX - t->text_len) << 32) | (uint32_t)id;
    }
    qsort(order, b->n_specials, sizeof *order, compare_u64);
    for (size_t i = 0; i < b->n_specials; i++)
        b->specials[i] = (int32_t)(uint32_t)order[i];
    b->host->free(b->host->host, order);
    return ST_OK;
}

st_status st_bpe_vocab_load(st_bpe *b, st_error *err)
{
    st_bpe_byte_map(b->byte_cp, b->cp_byte);
    st_status st;
    if ((st = check_model(b, err)) != ST_OK || (st = load_tokens(b, err)) != ST_OK ||
        (st = load_specials(b, err)) != ST_OK || (st = build_key_table(b, err)) != ST_OK ||
        (st = load_merges(b, err)) != ST_OK)
        return st;
    return ST_OK;
}

void st_bpe_vocab_free(st_bpe *b)
{
    const st_host_services *h = b->host;
    h->free(h->host, b->tokens);
    h->free(h->host, b->arena);
    h->free(h->host, b->key_table);
    h->free(h->host, b->merges);
    h->free(h->host, b->merge_table);
    h->free(h->host, b->specials);
}
