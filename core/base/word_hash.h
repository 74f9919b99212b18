/*
 * core/base/word_hash.h - a 64-bit hash of bytes taken as 8-byte
 * little-endian words: FNV's prime over each word, the state rotated
 * before each so that every bit of a word reaches every bit of the hash.
 * Eight times fewer dependent multiplies than byte-wise FNV-1a, for
 * files of hundreds of megabytes (a retriever's index, a prompt cache).
 * Not a cryptographic hash: it tells a changed or truncated file from the
 * one that was written, not a forged one.
 */
#ifndef ST_BASE_WORD_HASH_H
#define ST_BASE_WORD_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ST_WORD_HASH_INIT 14695981039346656037ULL

static inline uint64_t st_word_hash_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t st_word_hash_le64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* x continued over n bytes; a tail shorter than a word is zero-padded, so
 * a stream hashed in pieces gives the whole's hash only when every piece
 * but the last is a multiple of 8 bytes (st_word_hasher4 takes any
 * pieces). */
static inline uint64_t st_word_hash(uint64_t x, const void *data, size_t n)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        x = (st_word_hash_rotl(x, 31) ^ st_word_hash_le64(p + i)) * 1099511628211ULL;
    if (i < n) {
        unsigned char tail[8] = {0};
        memcpy(tail, p + i, n - i);
        x = (st_word_hash_rotl(x, 31) ^ st_word_hash_le64(tail)) * 1099511628211ULL;
    }
    return x;
}

/* Four word hashes side by side: word k of the stream goes to lane k mod
 * 4, and the lanes are folded together at the end. The same mixing with
 * four independent multiply chains instead of one dependent chain, about
 * four times the speed (a prompt cache of tens of megabytes is checked on
 * every load). A stream fed in pieces of any length hashes as the whole. */
typedef struct st_word_hasher4 {
    uint64_t h[4];
    unsigned char part[32];
    size_t n_part;
} st_word_hasher4;

static inline void st_word_hasher4_init(st_word_hasher4 *w)
{
    for (int i = 0; i < 4; i++)
        w->h[i] = ST_WORD_HASH_INIT + (uint64_t)i;
    w->n_part = 0;
}

/* n bytes, a multiple of 32, into the lanes. */
static inline void st_word_hasher4_blocks(st_word_hasher4 *w, const unsigned char *p, size_t n)
{
    uint64_t a = w->h[0], b = w->h[1], c = w->h[2], d = w->h[3];
    for (size_t i = 0; i < n; i += 32) {
        a = (st_word_hash_rotl(a, 31) ^ st_word_hash_le64(p + i)) * 1099511628211ULL;
        b = (st_word_hash_rotl(b, 31) ^ st_word_hash_le64(p + i + 8)) * 1099511628211ULL;
        c = (st_word_hash_rotl(c, 31) ^ st_word_hash_le64(p + i + 16)) * 1099511628211ULL;
        d = (st_word_hash_rotl(d, 31) ^ st_word_hash_le64(p + i + 24)) * 1099511628211ULL;
    }
    w->h[0] = a;
    w->h[1] = b;
    w->h[2] = c;
    w->h[3] = d;
}

static inline void st_word_hasher4_feed(st_word_hasher4 *w, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (w->n_part) {
        size_t take = 32 - w->n_part < n ? 32 - w->n_part : n;
        memcpy(w->part + w->n_part, p, take);
        w->n_part += take;
        p += take;
        n -= take;
        if (w->n_part < 32)
            return;
        st_word_hasher4_blocks(w, w->part, 32);
        w->n_part = 0;
    }
    size_t whole = n - n % 32;
    st_word_hasher4_blocks(w, p, whole);
    memcpy(w->part, p + whole, n - whole);
    w->n_part = n - whole;
}

/* The tail's words (the last zero-padded) to their lanes, then the lanes
 * folded in order. */
static inline uint64_t st_word_hasher4_end(const st_word_hasher4 *w)
{
    uint64_t h[4] = {w->h[0], w->h[1], w->h[2], w->h[3]};
    for (size_t i = 0, k = 0; i < w->n_part; i += 8, k++) {
        unsigned char word[8] = {0};
        memcpy(word, w->part + i, w->n_part - i < 8 ? w->n_part - i : 8);
        h[k] = (st_word_hash_rotl(h[k], 31) ^ st_word_hash_le64(word)) * 1099511628211ULL;
    }
    uint64_t x = h[0];
    for (int i = 1; i < 4; i++)
        x = (st_word_hash_rotl(x, 31) ^ h[i]) * 1099511628211ULL;
    return x;
}

#endif
