/*
 * bpe_pretok.c - what happens before merging: special tokens are cut out
 * of the text, then the rest is split into words by the pre-tokenizer regex.
 * Both follow llama.cpp (src/llama-vocab.cpp tokenizer_st_partition and
 * src/unicode.cpp unicode_regex_split_custom_gpt2) so ids match it.
 */
#include <string.h>

#include "bpe_internal.h"

typedef struct frag_list {
    const st_host_services *host;
    st_bpe_fragment *v;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, size_t off, size_t len, int32_t token)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        st_bpe_fragment *v = l->host->realloc(l->host->host, l->v, cap * sizeof *v);
        if (!v)
            return false;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (st_bpe_fragment){off, len, token};
    return true;
}

st_status st_bpe_split_specials(const st_bpe *b, const char *text, size_t len,
                                bool parse_special, st_bpe_fragment **out,
                                size_t *n_out, st_error *err)
{
    const st_host_services *h = b->host;
    frag_list cur = {h, NULL, 0, 0}, next = {h, NULL, 0, 0};
    if (len > 0 && !frag_push(&cur, 0, len, -1))
        goto nomem;

    /* One special token at a time, longest first, over every raw fragment
     * left; each occurrence (leftmost first, non-overlapping) is cut out. */
    for (size_t s = 0; s < b->n_specials; s++) {
        const st_bpe_token *t = &b->tokens[b->specials[s]];
        /* Without parse_special only user-defined tokens are cut out. */
        if (!parse_special && t->type != ST_BPE_TYPE_USER_DEFINED)
            continue;
        next.n = 0;
        for (size_t f = 0; f < cur.n; f++) {
            st_bpe_fragment fr = cur.v[f];
            if (fr.token >= 0 || fr.len < t->text_len) {
                if (!frag_push(&next, fr.off, fr.len, fr.token))
                    goto nomem;
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            for (;;) {
                const char *m = memmem(text + pos, end - pos, t->text, t->text_len);
                if (!m)
                    break;
                size_t at = (size_t)(m - text);
                if (at > pos && !frag_push(&next, pos, at - pos, -1))
                    goto nomem;
                if (!frag_push(&next, at, t->text_len, b->specials[s]))
                    goto nomem;
                pos = at + t->text_len;
            }
            if (pos < end && !frag_push(&next, pos, end - pos, -1))
                goto nomem;
        }
        frag_list tmp = cur;
        cur = next;
        next = tmp;
    }
    h->free(h->host, next.v);
    *out = cur.v;
    *n_out = cur.n;
    return ST_OK;
nomem:
    h->free(h->host, cur.v);
    h->free(h->host, next.v);
    return h->error(err, ST_E_NOMEM, "bpe: out of memory splitting special tokens");
}

/* The GPT-2 regex over cpts[begin, end), written as llama.cpp's hand-made
 * matcher: class() of a position outside the run is ST_BPE_NONE, which is
 * how "(?!\S)" sees the end of the run. */
static size_t split_gpt2(const uint32_t *cpts, const uint8_t *cls, size_t begin, size_t end,
                         uint32_t *ends, size_t n_words)
{
#define CPT(p) ((p) < end ? cpts[p] : UINT32_MAX)
#define CLS(p) ((p) < end ? cls[p] : (uint8_t)ST_BPE_NONE)
#define EMIT(p) (ends[n_words++] = (uint32_t)(p))
    size_t pos = begin;
    while (pos < end) {
        uint32_t c = cpts[pos];
        uint8_t k = cls[pos];

        /* 's|'t|'re|'ve|'m|'ll|'d */
        if (c == '\'' && pos + 1 < end) {
            uint32_t c1 = CPT(pos + 1);
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
                pos += 2;
                EMIT(pos);
                continue;
            }
            if (pos + 2 < end) {
                uint32_t c2 = CPT(pos + 2);
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
                    (c1 == 'l' && c2 == 'l')) {
                    pos += 3;
                    EMIT(pos);
                    continue;
                }
            }
        }

        /* An optional leading space joins the run after it. */
        uint8_t k2 = c == ' ' ? CLS(pos + 1) : k;
        if (k2 == ST_BPE_LETTER || k2 == ST_BPE_NUMBER) { /*  ?\p{L}+ |  ?\p{N}+ */
            pos += c == ' ';
            while (CLS(pos) == k2)
                pos++;
            EMIT(pos);
            continue;
        }
        if (k2 == ST_BPE_OTHER) { /*  ?[^\s\p{L}\p{N}]+ */
            pos += c == ' ';
            while (CLS(pos) == ST_BPE_OTHER)
                pos++;
            EMIT(pos);
            continue;
        }

        size_t n_space = 0;
        while (CLS(pos + n_space) == ST_BPE_SPACE)
            n_space++;
        if (n_space > 1 && pos + n_space < end) {
            /* \s+(?!\S): leave the last space to start the next word */
            pos += n_space - 1;
            EMIT(pos);
            continue;
        }
        if (n_space > 0) { /* \s+ */
            pos += n_space;
            EMIT(pos);
            continue;
        }
        EMIT(++pos); /* unreachable with the classes above; kept as in llama.cpp */
    }
    return n_words;
#undef CPT
#undef CLS
#undef EMIT
}

size_t st_bpe_pretokenize(const uint32_t *cpts, const uint8_t *cls, size_t n,
                          bool split_digits, uint32_t *ends)
{
    if (!split_digits)
        return split_gpt2(cpts, cls, 0, n, ends, 0);
    /* "\p{N}" first: every number code point is a word of its own, and the
     * GPT-2 regex runs on what lies between them. */
    size_t n_words = 0, pos = 0;
    while (pos < n) {
        if (cls[pos] == ST_BPE_NUMBER) {
            ends[n_words++] = (uint32_t)++pos;
            continue;
        }
        size_t run_end = pos;
        while (run_end < n && cls[run_end] != ST_BPE_NUMBER)
            run_end++;
        n_words = split_gpt2(cpts, cls, pos, run_end, ends, n_words);
        pos = run_end;
    }
    return n_words;
}
