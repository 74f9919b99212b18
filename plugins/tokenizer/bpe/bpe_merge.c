/*
 * bpe_merge.c - byte-pair merging of one pre-tokenized word, the way
 * llama.cpp's llm_tokenizer_bpe_session does it: every adjacent pair with a
 * merge rule is queued; the lowest rank (then the leftmost pair) merges
 * first; pairs made stale by an earlier merge are skipped when popped. With
 * a binary heap this is O(n log n) in the word's length.
 */
#include <string.h>

#include "bpe_internal.h"

static bool bigram_before(const st_bpe_bigram *a, const st_bpe_bigram *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(st_bpe_scratch *s, st_bpe_bigram g)
{
    size_t i = s->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&g, &s->heap[parent]))
            break;
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = g;
}

static st_bpe_bigram heap_pop(st_bpe_scratch *s)
{
    st_bpe_bigram top = s->heap[0];
    st_bpe_bigram last = s->heap[--s->heap_len];
    size_t i = 0, n = s->heap_len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && bigram_before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!bigram_before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0)
        s->heap[i] = last;
    return top;
}

static void queue_pair(const st_bpe *b, st_bpe_scratch *s, const uint8_t *word,
                       int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return;
    const st_bpe_symbol *l = &s->symbols[left], *r = &s->symbols[right];
    int32_t rank = st_bpe_merge_rank(b, word + l->start, l->len, word + r->start, r->len);
    if (rank < 0)
        return;
    heap_push(s, (st_bpe_bigram){rank, left, right, l->len, r->len});
}

static st_status reserve(st_bpe_scratch *s, size_t len, st_error *err)
{
    const st_host_services *h = s->host;
    if (len > s->symbols_cap) {
        size_t cap = s->symbols_cap ? s->symbols_cap : 64;
        while (cap < len)
            cap *= 2;
        st_bpe_symbol *sym = h->realloc(h->host, s->symbols, cap * sizeof *sym);
        if (!sym)
            return h->error(err, ST_E_NOMEM, "bpe: out of memory");
        s->symbols = sym;
        s->symbols_cap = cap;
    }
    /* n-1 initial pairs plus at most two per merge. */
    size_t heap_need = 3 * len + 1;
    if (heap_need > s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap : 192;
        while (cap < heap_need)
            cap *= 2;
        st_bpe_bigram *hp = h->realloc(h->host, s->heap, cap * sizeof *hp);
        if (!hp)
            return h->error(err, ST_E_NOMEM, "bpe: out of memory");
        s->heap = hp;
        s->heap_cap = cap;
    }
    return ST_OK;
}

/* A final symbol that is no token: llama.cpp looks up each byte of its
 * stand-in text as a one-character token and drops what it does not find.
 * (Never happens with a complete byte-level vocabulary.) */
static void push_bytes_fallback(const st_bpe *b, const uint8_t *bytes, size_t len,
                                st_bpe_out *out)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t enc[4];
        size_t n = st_bpe_utf8_encode(b->byte_cp[bytes[i]], enc);
        for (size_t j = 0; j < n; j++)
            if (b->single_byte_token[enc[j]] >= 0)
                st_bpe_out_push(out, b->single_byte_token[enc[j]]);
    }
}

st_status st_bpe_merge_word(const st_bpe *b, st_bpe_scratch *s, const uint8_t *word,
                            size_t len, st_bpe_out *out, st_error *err)
{
    if (len == 0)
        return ST_OK;
    if (len > INT32_MAX / 4)
        return b->host->error(err, ST_E_INVALID, "bpe: a word of %zu bytes is too long", len);
    st_status st = reserve(s, len, err);
    if (st != ST_OK)
        return st;

    /* One symbol per byte: each byte is one stand-in character. */
    int32_t n = (int32_t)len;
    for (int32_t i = 0; i < n; i++)
        s->symbols[i] = (st_bpe_symbol){i - 1, i + 1 < n ? i + 1 : -1, (uint32_t)i, 1};
    s->heap_len = 0;
    for (int32_t i = 1; i < n; i++)
        queue_pair(b, s, word, i - 1, i);

    while (s->heap_len > 0) {
        st_bpe_bigram g = heap_pop(s);
        st_bpe_symbol *l = &s->symbols[g.left], *r = &s->symbols[g.right];
        if (l->len == 0 || r->len == 0 || l->len != g.left_len || r->len != g.right_len ||
            l->next != g.right)
            continue; /* stale: one side has merged since */
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            s->symbols[r->next].prev = g.left;
        queue_pair(b, s, word, l->prev, g.left);
        queue_pair(b, s, word, g.left, l->next);
    }

    for (int32_t i = 0; i >= 0; i = s->symbols[i].next) {
        const st_bpe_symbol *sym = &s->symbols[i];
        int32_t id = st_bpe_key_lookup(b, word + sym->start, sym->len);
        if (id >= 0)
            st_bpe_out_push(out, id);
        else
            push_bytes_fallback(b, word + sym->start, sym->len, out);
    }
    return ST_OK;
}

void st_bpe_scratch_free(st_bpe_scratch *s)
{
    s->host->free(s->host->host, s->symbols);
    s->host->free(s->host->host, s->heap);
    s->symbols = NULL;
    s->heap = NULL;
    s->symbols_cap = s->heap_cap = s->heap_len = 0;
}
