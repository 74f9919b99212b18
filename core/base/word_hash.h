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
 * but the last is a multiple of 8 bytes. */
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

/* The same hash over a stream fed in pieces of any length: equal to
 * st_word_hash over the pieces joined. */
typedef struct st_word_hasher {
    uint64_t h;
    unsigned char part[8];
    size_t n_part;
} st_word_hasher;

static inline void st_word_hasher_init(st_word_hasher *w)
{
    w->h = ST_WORD_HASH_INIT;
    w->n_part = 0;
}

static inline void st_word_hasher_feed(st_word_hasher *w, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (w->n_part) {
        size_t take = 8 - w->n_part < n ? 8 - w->n_part : n;
        memcpy(w->part + w->n_part, p, take);
        w->n_part += take;
        p += take;
        n -= take;
        if (w->n_part < 8)
            return;
        w->h = st_word_hash(w->h, w->part, 8);
        w->n_part = 0;
    }
    size_t whole = n - n % 8;
    w->h = st_word_hash(w->h, p, whole);
    memcpy(w->part, p + whole, n - whole);
    w->n_part = n - whole;
}

static inline uint64_t st_word_hasher_end(const st_word_hasher *w)
{
    return w->n_part ? st_word_hash(w->h, w->part, w->n_part) : w->h;
}

#endif
