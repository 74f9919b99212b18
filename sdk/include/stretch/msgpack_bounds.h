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

/* False when some array or map in `data` declares more elements than the
 * bytes after it could hold. True otherwise, including for bytes that are
 * truncated or not msgpack at all: the unpacker reports those. */
static inline bool st_msgpack_counts_fit(const void *data, size_t size)
{
    const uint8_t *p = (const uint8_t *)data;
    size_t pos = 0;
    while (pos < size) {
        uint8_t b = p[pos++];
        unsigned width = 0;   /* bytes of the big-endian length or count */
        size_t skip = 0;      /* payload bytes after the length */
        int elems_per = 0;    /* 1 array, 2 map, 0 neither */
        uint64_t n = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            continue;
        if (b >= 0x80 && b <= 0x9f) {
            n = b & 0x0f;
            elems_per = b <= 0x8f ? 2 : 1;
        } else if (b >= 0xa0 && b <= 0xbf) {
            n = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: width = 1; break;            /* bin8, str8 */
            case 0xc5: case 0xda: width = 2; break;            /* bin16, str16 */
            case 0xc6: case 0xdb: width = 4; break;            /* bin32, str32 */
            case 0xc7: width = 1; skip = 1; break;             /* ext8: + type */
            case 0xc8: width = 2; skip = 1; break;
            case 0xc9: width = 4; skip = 1; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;  /* 32-bit numbers */
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;  /* 64-bit numbers */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xd4: skip = 2; break;                        /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: width = 2; elems_per = 1; break;        /* array16 */
            case 0xdd: width = 4; elems_per = 1; break;        /* array32 */
            case 0xde: width = 2; elems_per = 2; break;        /* map16 */
            case 0xdf: width = 4; elems_per = 2; break;        /* map32 */
            default: return true;                              /* 0xc1: never used */
            }
        }
        if (width > size - pos)
            return true;
        for (unsigned k = 0; k < width; k++)
            n = n << 8 | p[pos++];
        if (elems_per) {
            if (n * (uint64_t)elems_per > size - pos)
                return false;
            continue; /* the elements follow */
        }
        uint64_t payload = n + skip;
        if (payload > size - pos)
            return true;
        pos += (size_t)payload;
    }
    return true;
}

#endif
