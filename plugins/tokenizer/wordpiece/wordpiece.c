/*
 * tokenizer `wordpiece`: BERT's WordPiece over the model's vocabulary
 * (tokenizer.ggml.model "bert"), as Hugging Face's BertNormalizer,
 * BertPreTokenizer and WordPiece model do it:
 *
 *   normalize  drop control characters, make every whitespace a space, put
 *              spaces around CJK ideographs, strip accents (NFD without
 *              combining marks) and lowercase (when the vocabulary is
 *              uncased; tables for non-ASCII in wordpiece_tables.c)
 *   split      on whitespace; every punctuation character is a word
 *   wordpiece  each word greedily into the longest vocabulary entries, the
 *              first as is and the rest with the "##" prefix; a word with
 *              a part no entry matches, or longer than 100 characters,
 *              becomes [UNK]
 *
 * The text does not survive a round trip (case, accents and spacing are
 * normalized): the plugin answers the capability ST_TOKENIZER_NORMALIZES_V1,
 * and decode gives the normalized text. docs/plugins/wordpiece.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

#include "wordpiece_tables.h"

#define META "tokenizer.ggml."
#define WP_WORD_MAX 1024 /* bytes of one normalized word kept for matching */

typedef struct wp_token {
    char *text;
    size_t len;
    uint64_t hash;
} wp_token;

typedef struct wordpiece {
    const st_host_services *host;
    wp_token *vocab;
    int32_t n_vocab;
    int32_t *slots; /* open addressing: id or -1 */
    size_t n_slots;
    bool lowercase;
    char prefix[16];
    size_t prefix_len;
    uint32_t max_word_chars;
    st_special_tokens special;
    int32_t cls, mask;
} wordpiece;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t x = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= (unsigned char)s[i];
        x *= 1099511628211ULL;
    }
    return x;
}

static int32_t vocab_find(const wordpiece *w, const char *s, size_t n)
{
    uint64_t h = hash_bytes(s, n);
    for (size_t i = h & (w->n_slots - 1);; i = (i + 1) & (w->n_slots - 1)) {
        int32_t id = w->slots[i];
        if (id < 0)
            return -1;
        const wp_token *t = &w->vocab[id];
        if (t->hash == h && t->len == n && memcmp(t->text, s, n) == 0)
            return id;
    }
}

static void wp_destroy(void *inst)
{
    wordpiece *w = inst;
    if (!w)
        return;
    const st_host_services *h = w->host;
    for (int32_t i = 0; i < w->n_vocab; i++)
        h->free(h->host, w->vocab[i].text);
    h->free(h->host, w->vocab);
    h->free(h->host, w->slots);
    h->free(h->host, w);
}

static int64_t meta_int(const st_host_services *h, const char *key, int64_t fallback)
{
    st_meta_value v;
    st_error err;
    if (h->model_meta(h->host, key, &v, &err) != ST_OK || v.type != ST_META_INT)
        return fallback;
    return v.i;
}

static st_status load_vocab(wordpiece *w, st_error *err)
{
    const st_host_services *h = w->host;
    st_meta_value v;
    st_status st = h->model_meta(h->host, META "model", &v, err);
    if (st != ST_OK)
        return st;
    if (v.type != ST_META_STRING || v.len != 4 || memcmp(v.str, "bert", 4) != 0)
        return h->error(err, ST_E_INVALID,
                        "wordpiece: the model's tokenizer.ggml.model is not \"bert\" (a "
                        "WordPiece vocabulary); use the tokenizer plugin made for it");
    if ((st = h->model_meta(h->host, META "tokens", &v, err)) != ST_OK)
        return st;
    if (v.type != ST_META_ARRAY || v.array_type != ST_META_STRING || v.len == 0 ||
        v.len > INT32_MAX / 4)
        return h->error(err, ST_E_FORMAT, "wordpiece: tokenizer.ggml.tokens is not a non-empty "
                                          "string array");
    w->n_vocab = 0;
    w->vocab = h->calloc(h->host, v.len, sizeof *w->vocab);
    w->n_slots = 1;
    while (w->n_slots < v.len * 2)
        w->n_slots *= 2;
    w->slots = h->alloc(h->host, w->n_slots * sizeof *w->slots);
    if (!w->vocab || !w->slots)
        return h->error(err, ST_E_NOMEM, "wordpiece: out of memory");
    memset(w->slots, 0xff, w->n_slots * sizeof *w->slots);
    for (uint64_t i = 0; i < v.len; i++) {
        const char *s;
        uint64_t n;
        if ((st = h->meta_array_string(h->host, META "tokens", i, &s, &n, err)) != ST_OK)
            return st;
        if (n == 0 || n > ST_PIECE_MAX_BYTES)
            return h->error(err, ST_E_FORMAT, "wordpiece: token %llu has %llu bytes (1..%d)",
                            (unsigned long long)i, (unsigned long long)n, ST_PIECE_MAX_BYTES);
        wp_token *t = &w->vocab[i];
        if (!(t->text = h->alloc(h->host, n + 1)))
            return h->error(err, ST_E_NOMEM, "wordpiece: out of memory");
        memcpy(t->text, s, n);
        t->text[n] = '\0';
        t->len = n;
        t->hash = hash_bytes(s, n);
        w->n_vocab = (int32_t)i + 1;
        if (vocab_find(w, s, n) >= 0)
            continue; /* a duplicate string: the first id wins, as in a dict */
        size_t at = t->hash & (w->n_slots - 1);
        while (w->slots[at] >= 0)
            at = (at + 1) & (w->n_slots - 1);
        w->slots[at] = (int32_t)i;
    }
    return ST_OK;
}

static int32_t special_id(const wordpiece *w, const char *key, const char *text)
{
    int64_t id = meta_int(w->host, key, -1);
    if (id < 0 || id >= w->n_vocab)
        id = vocab_find(w, text, strlen(text));
    return (int32_t)id;
}

static st_status wp_create(const st_host_services *host, const st_params *params, void **inst,
                           st_error *err)
{
    (void)params;
    wordpiece *w = host->calloc(host->host, 1, sizeof *w);
    if (!w)
        return host->error(err, ST_E_NOMEM, "wordpiece: out of memory");
    w->host = host;
    st_status st = load_vocab(w, err);
    if (st != ST_OK) {
        wp_destroy(w);
        return st;
    }
    w->lowercase = meta_int(host, "tokenizer.wordpiece.lowercase", 1) != 0;
    w->max_word_chars = (uint32_t)meta_int(host, "tokenizer.wordpiece.max_word_chars", 100);
    memcpy(w->prefix, "##", 3);
    st_meta_value v;
    st_error ignore;
    if (host->model_meta(host->host, "tokenizer.wordpiece.prefix", &v, &ignore) == ST_OK &&
        v.type == ST_META_STRING && v.len < sizeof w->prefix) {
        memcpy(w->prefix, v.str, v.len);
        w->prefix[v.len] = '\0';
    }
    w->prefix_len = strlen(w->prefix);
    w->special.struct_size = sizeof w->special;
    w->cls = special_id(w, META "cls_token_id", "[CLS]");
    w->special.bos = w->cls;
    w->special.sep = special_id(w, META "seperator_token_id", "[SEP]");
    w->special.eos = w->special.sep;
    w->special.eot = -1;
    w->special.pad = special_id(w, META "padding_token_id", "[PAD]");
    w->special.unk = special_id(w, META "unknown_token_id", "[UNK]");
    w->mask = special_id(w, META "mask_token_id", "[MASK]");
    if (w->special.unk < 0) {
        wp_destroy(w);
        return host->error(err, ST_E_FORMAT, "wordpiece: the vocabulary has no [UNK] token");
    }
    *inst = w;
    return ST_OK;
}

/* ---- the id list being built ---- */

typedef struct ids_out {
    const st_host_services *host;
    int32_t *ids;
    size_t n, cap;
    bool nomem;
} ids_out;

static void push(ids_out *o, int32_t id)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *grown = o->host->realloc(o->host->host, o->ids, cap * sizeof *grown);
        if (!grown) {
            o->nomem = true;
            return;
        }
        o->ids = grown;
        o->cap = cap;
    }
    o->ids[o->n++] = id;
}

/* Greedy longest match of one normalized word. */
static void wordpiece_word(const wordpiece *w, const char *word, size_t n, size_t n_chars,
                           ids_out *o)
{
    if (n_chars > w->max_word_chars || n > WP_WORD_MAX) {
        push(o, w->special.unk);
        return;
    }
    char buf[WP_WORD_MAX + 16];
    size_t first = o->n, start = 0;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        while (end > start) {
            size_t m = 0;
            if (start > 0) {
                memcpy(buf, w->prefix, w->prefix_len);
                m = w->prefix_len;
            }
            memcpy(buf + m, word + start, end - start);
            found = vocab_find(w, buf, m + end - start);
            if (found >= 0)
                break;
            /* One character shorter: back over UTF-8 continuation bytes. */
            do
                end--;
            while (end > start && ((unsigned char)word[end] & 0xC0) == 0x80);
        }
        if (found < 0) {
            o->n = first;
            push(o, w->special.unk);
            return;
        }
        push(o, found);
        start = end;
    }
}

/* One code point from s[*i..n); invalid bytes give U+FFFD (dropped). */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || *i + (size_t)len > n) {
        (*i)++;
        return 0xFFFD;
    }
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; k++) {
        if ((s[*i + k] & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    *i += (size_t)len;
    return cp;
}

static const wp_char_rule *rule_of(uint32_t cp)
{
    size_t lo = 0, hi = wp_n_rules;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (wp_rules[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < wp_n_rules && wp_rules[lo].cp == cp ? &wp_rules[lo] : NULL;
}

static bool is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static bool is_ascii_punct(uint32_t c)
{
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
           (c >= 123 && c <= 126);
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The word being gathered. */
typedef struct word_buf {
    char bytes[WP_WORD_MAX + 8];
    size_t n, chars;
    bool overflow;
} word_buf;

static void word_end(const wordpiece *w, word_buf *b, ids_out *o)
{
    if (b->chars)
        wordpiece_word(w, b->bytes, b->overflow ? WP_WORD_MAX + 1 : b->n, b->chars, o);
    b->n = b->chars = 0;
    b->overflow = false;
}

static void word_add(word_buf *b, const char *s, size_t n)
{
    if (b->n + n > WP_WORD_MAX)
        b->overflow = true;
    else {
        memcpy(b->bytes + b->n, s, n);
        b->n += n;
    }
    b->chars++;
}

/* Normalize, split and wordpiece `len` bytes of plain text. */
static void encode_plain(const wordpiece *w, const char *text, size_t len, ids_out *o)
{
    word_buf b = {.n = 0};
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    char one[8];
    while (i < len) {
        uint32_t cp = next_cp(s, len, &i);
        if (cp < 0x80) {
            if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') {
                word_end(w, &b, o);
            } else if (cp < 0x20 || cp == 0x7F) {
                continue; /* control: dropped */
            } else if (is_ascii_punct(cp)) {
                word_end(w, &b, o);
                one[0] = (char)cp;
                word_add(&b, one, 1);
                word_end(w, &b, o);
            } else {
                one[0] = (char)(w->lowercase && cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
                word_add(&b, one, 1);
            }
            continue;
        }
        if (is_cjk(cp)) {
            word_end(w, &b, o);
            word_add(&b, one, put_utf8(one, cp));
            word_end(w, &b, o);
            continue;
        }
        const wp_char_rule *r = rule_of(cp);
        if (r && r->rule == WP_DROP)
            continue;
        if (r && r->rule == WP_SPACE) {
            word_end(w, &b, o);
        } else if (r && r->rule == WP_PUNCT) {
            word_end(w, &b, o);
            word_add(&b, one, put_utf8(one, cp));
            word_end(w, &b, o);
        } else if (r && r->rule == WP_MAP && w->lowercase) {
            /* The replacement may be several characters (or none). */
            const unsigned char *m = (const unsigned char *)r->map;
            size_t mn = strlen(r->map), j = 0;
            while (j < mn) {
                size_t at = j;
                next_cp(m, mn, &j);
                word_add(&b, r->map + at, j - at);
            }
        } else {
            word_add(&b, one, put_utf8(one, cp));
        }
    }
    word_end(w, &b, o);
}

static const char *const special_texts[] = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"};

static st_status wp_encode(void *inst, const char *text, size_t len, uint32_t flags,
                           int32_t *ids, size_t cap, size_t *n_ids, st_error *err)
{
    wordpiece *w = inst;
    *n_ids = 0;
    if (!text && len)
        return w->host->error(err, ST_E_INVALID, "wordpiece: NULL text");
    ids_out o = {.host = w->host};
    if ((flags & ST_ENCODE_ADD_BOS) && w->cls >= 0)
        push(&o, w->cls);
    size_t from = 0;
    /* Special tokens written in the text are matched before normalizing,
     * as Hugging Face's added tokens are. */
    for (size_t i = 0; (flags & ST_ENCODE_PARSE_SPECIAL) && i < len; i++) {
        if (text[i] != '[')
            continue;
        for (size_t k = 0; k < sizeof special_texts / sizeof special_texts[0]; k++) {
            size_t n = strlen(special_texts[k]);
            int32_t id;
            if (n <= len - i && memcmp(text + i, special_texts[k], n) == 0 &&
                (id = vocab_find(w, special_texts[k], n)) >= 0) {
                encode_plain(w, text + from, i - from, &o);
                push(&o, id);
                from = i + n;
                i += n - 1;
                break;
            }
        }
    }
    encode_plain(w, text ? text + from : "", len - from, &o);
    st_status st = ST_OK;
    if (o.nomem)
        st = w->host->error(err, ST_E_NOMEM, "wordpiece: out of memory");
    else if (o.n > cap)
        st = ST_E_RANGE;
    else if (o.n)
        memcpy(ids, o.ids, o.n * sizeof *ids);
    *n_ids = o.n;
    w->host->free(w->host->host, o.ids);
    return st;
}

static bool is_continuation(const wordpiece *w, const wp_token *t)
{
    return t->len > w->prefix_len && memcmp(t->text, w->prefix, w->prefix_len) == 0;
}

static st_status wp_decode(void *inst, const int32_t *ids, size_t n_ids, char *out, size_t cap,
                           size_t *n_bytes, st_error *err)
{
    wordpiece *w = inst;
    size_t need = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= w->n_vocab)
            return w->host->error(err, ST_E_INVALID,
                                  "wordpiece: token id %d is outside the vocabulary [0, %d)",
                                  (int)ids[i], (int)w->n_vocab);
        const wp_token *t = &w->vocab[ids[i]];
        bool cont = is_continuation(w, t);
        const char *s = cont ? t->text + w->prefix_len : t->text;
        size_t n = cont ? t->len - w->prefix_len : t->len;
        if (i > 0 && !cont) {
            if (need < cap)
                out[need] = ' ';
            need++;
        }
        if (need < cap)
            memcpy(out + need, s, need + n <= cap ? n : cap - need);
        need += n;
    }
    *n_bytes = need;
    return need > cap ? ST_E_RANGE : ST_OK;
}

static st_status wp_piece(void *inst, int32_t id, const char **bytes, size_t *len, st_error *err)
{
    wordpiece *w = inst;
    if (id < 0 || id >= w->n_vocab)
        return w->host->error(err, ST_E_INVALID,
                              "wordpiece: token id %d is outside the vocabulary [0, %d)", (int)id,
                              (int)w->n_vocab);
    const wp_token *t = &w->vocab[id];
    bool cont = is_continuation(w, t);
    *bytes = cont ? t->text + w->prefix_len : t->text;
    *len = cont ? t->len - w->prefix_len : t->len;
    return ST_OK;
}

static int32_t wp_vocab_size(void *inst)
{
    return ((wordpiece *)inst)->n_vocab;
}

static void wp_special(void *inst, st_special_tokens *out)
{
    wordpiece *w = inst;
    uint32_t size = out->struct_size;
    st_special_tokens s = w->special;
    s.struct_size = size;
    memcpy(out, &s, size < sizeof s ? size : sizeof s);
}

static bool wp_is_special(void *inst, int32_t id)
{
    wordpiece *w = inst;
    return id >= 0 && (id == w->cls || id == w->special.sep || id == w->special.pad ||
                       id == w->special.unk || id == w->mask);
}

/* Decode gives the normalized text, not the input: see the header. */
static const st_tokenizer_normalizes_v1 normalizes = {sizeof normalizes};

static const void *wp_get_extension(void *inst, const char *id)
{
    (void)inst;
    return id && strcmp(id, ST_TOKENIZER_NORMALIZES_V1) == 0 ? &normalizes : NULL;
}

static const st_tokenizer_ops wp_ops = {
    .struct_size = sizeof(st_tokenizer_ops),
    .encode = wp_encode,
    .decode = wp_decode,
    .piece = wp_piece,
    .vocab_size = wp_vocab_size,
    .special = wp_special,
    .is_special = wp_is_special,
};

ST_PLUGIN(ST_KIND_TOKENIZER, "wordpiece", "1.0.0",
          "BERT WordPiece over the model's vocabulary (tokenizer.ggml.model bert), as Hugging "
          "Face's BertNormalizer + WordPiece",
          wp_create, wp_destroy, &wp_ops, wp_get_extension);
