/*
 * stretch/msgpack_bounds.h - a check to run on msgpack bytes from a file
 * before msgpack_unpack_next(). msgpack-c allocates every array and map at
 * its declared size before reading a single element, so a 10-byte file
 * declaring 2^32 elements asks for 64 GiB (found by tests/fuzz). Every
 * element takes at least one byte, so no honest container declares more
 * elements than the bytes left after its header.
 */
#ifndef STRETCH_MSGPACK_BOUNDS_H
#define STRETCH_MSGPACK_BOUNDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a msgpack header says, from its type byte: `width` bytes of
 * big-endian length or count follow it (0 for fix types, whose count or
 * length is `n` already), then `skip` fixed payload bytes (numbers, an
 * ext's type byte, fixext data). An array (elems_per 1) or map (2) holds
 * n elements (pairs for a map) after its header; anything else is followed
 * by n + skip payload bytes (n: a str, bin or ext length, 0 for numbers). */
typedef struct st_msgpack_head {
    unsigned width;
    size_t skip;
    int elems_per;
    uint64_t n;
} st_msgpack_head;

/* Fill *h for the type byte b; false for 0xc1, which msgpack never uses. */
static inline bool st_msgpack_head_of(uint8_t b, st_msgpack_head *h)
{
    h->width = 0;
    h->skip = 0;
    h->elems_per = 0;
    h->n = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return true;
    if (b >= 0x80 && b <= 0x9f) {
        h->n = b & 0x0f;
        h->elems_per = b <= 0x8f ? 2 : 1;
        return true;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        h->n = b & 0x1f;
        return true;
    }
    switch (b) {
    case 0xc4: case 0xd9: h->width = 1; break;               /* bin8, str8 */
    case 0xc5: case 0xda: h->width = 2; break;               /* bin16, str16 */
    case 0xc6: case 0xdb: h->width = 4; break;               /* bin32, str32 */
    case 0xc7: h->width = 1; h->skip = 1; break;             /* ext8: + type */
    case 0xc8: h->width = 2; h->skip = 1; break;
    case 0xc9: h->width = 4; h->skip = 1; break;
    case 0xca: case 0xce: case 0xd2: h->skip = 4; break;     /* 32-bit numbers */
    case 0xcb: case 0xcf: case 0xd3: h->skip = 8; break;     /* 64-bit numbers */
    case 0xcc: case 0xd0: h->skip = 1; break;
    case 0xcd: case 0xd1: h->skip = 2; break;
    case 0xd4: h->skip = 2; break;                           /* fixext: type + data */
    case 0xd5: h->skip = 3; break;
    case 0xd6: h->skip = 5; break;
    case 0xd7: h->skip = 9; break;
    case 0xd8: h->skip = 17; break;
    case 0xdc: h->width = 2; h->elems_per = 1; break;        /* array16 */
    case 0xdd: h->width = 4; h->elems_per = 1; break;        /* array32 */
    case 0xde: h->width = 2; h->elems_per = 2; break;        /* map16 */
    case 0xdf: h->width = 4; h->elems_per = 2; break;        /* map32 */
    default: return false;                                   /* 0xc1 */
    }
    return true;
}

/* False when some array or map in `data` declares more elements than the
 * bytes after it could hold. True otherwise, including for bytes that are
 * truncated or not msgpack at all: the unpacker reports those. */
static inline bool st_msgpack_counts_fit(const void *data, size_t size)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t pos = 0;
    while (pos < size) {
        st_msgpack_head h;
        if (!st_msgpack_head_of(p[pos++], &h))
            return true;
        if (h.width > size - pos)
            return true;
        for (unsigned k = 0; k < h.width; k++)
            h.n = h.n << 8 | p[pos++];
        if (h.elems_per) {
            if (h.n * (uint64_t)h.elems_per > size - pos)
                return false;
            continue; /* the elements follow */
        }
        uint64_t payload = h.n + h.skip;
        if (payload > size - pos)
            return true;
        pos += (size_t)payload;
    }
    return true;
}

#endif
