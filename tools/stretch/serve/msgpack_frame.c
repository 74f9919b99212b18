/*
 * tools/stretch/serve/msgpack_frame.c - the msgpack framing scan: read
 * each value's header, skip its payload, and keep per open container the
 * number of values still to come.
 */
#include "msgpack_frame.h"

#include <stdbool.h>

static uint64_t read_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* What the header at p says: its size (type byte + length bytes), the
 * payload bytes that follow it, and the values it contains (a map's
 * count twice: keys and values). False for the unused byte 0xc1. */
typedef struct header {
    int size;          /* header bytes, the type byte included */
    int len_bytes;     /* big-endian length or count after the type byte */
    uint64_t payload;  /* fixed payload bytes (numbers, fixext's data + type) */
    bool is_len;       /* the length counts payload bytes (str, bin, ext) */
    int per_count;     /* 1 array, 2 map, 0 neither */
    uint64_t count;    /* a fix-type's count or length, from the type byte */
} header;

static bool classify(uint8_t b, header *h)
{
    *h = (header){.size = 1};
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return true;
    if (b <= 0x8f) { h->per_count = 2; h->count = b & 0x0f; return true; }
    if (b <= 0x9f) { h->per_count = 1; h->count = b & 0x0f; return true; }
    if (b <= 0xbf) { h->is_len = true; h->count = b & 0x1f; return true; }
    switch (b) {
    case 0xc4: case 0xd9: h->len_bytes = 1; h->is_len = true; break; /* bin8, str8 */
    case 0xc5: case 0xda: h->len_bytes = 2; h->is_len = true; break;
    case 0xc6: case 0xdb: h->len_bytes = 4; h->is_len = true; break;
    case 0xc7: h->len_bytes = 1; h->is_len = true; h->payload = 1; break; /* ext8: + type */
    case 0xc8: h->len_bytes = 2; h->is_len = true; h->payload = 1; break;
    case 0xc9: h->len_bytes = 4; h->is_len = true; h->payload = 1; break;
    case 0xca: h->payload = 4; break; /* float32 */
    case 0xcb: h->payload = 8; break;
    case 0xcc: case 0xd0: h->payload = 1; break; /* (u)int8 */
    case 0xcd: case 0xd1: h->payload = 2; break;
    case 0xce: case 0xd2: h->payload = 4; break;
    case 0xcf: case 0xd3: h->payload = 8; break;
    case 0xd4: h->payload = 2; break; /* fixext1: type + 1 */
    case 0xd5: h->payload = 3; break;
    case 0xd6: h->payload = 5; break;
    case 0xd7: h->payload = 9; break;
    case 0xd8: h->payload = 17; break;
    case 0xdc: h->len_bytes = 2; h->per_count = 1; break; /* array16 */
    case 0xdd: h->len_bytes = 4; h->per_count = 1; break;
    case 0xde: h->len_bytes = 2; h->per_count = 2; break; /* map16 */
    case 0xdf: h->len_bytes = 4; h->per_count = 2; break;
    default: return false; /* 0xc1: never used */
    }
    h->size += h->len_bytes;
    return true;
}

st_msgpack_frame st_msgpack_frame_scan(const uint8_t *p, size_t n, size_t limit, size_t *len)
{
    /* left[d]: values still to read in the d-th open container; the
     * message itself is one value at the bottom. */
    uint64_t left[ST_MSGPACK_FRAME_MAX_DEPTH + 1];
    int depth = 0;
    left[0] = 1;
    size_t at = 0;
    for (;;) {
        if (at >= n)
            return at >= limit ? ST_FRAME_INVALID : ST_FRAME_INCOMPLETE;
        header h;
        if (!classify(p[at], &h))
            return ST_FRAME_INVALID;
        if (n - at < (size_t)h.size)
            return at + (size_t)h.size > limit ? ST_FRAME_INVALID : ST_FRAME_INCOMPLETE;
        uint64_t count = h.len_bytes ? read_be(p + at + 1, h.len_bytes) : h.count;
        at += (size_t)h.size;
        /* Every value takes at least one byte, so a count or a length past
         * what is left of `limit` cannot be honest. */
        uint64_t room = limit > at ? limit - at : 0;
        uint64_t payload = h.payload + (h.is_len ? count : 0);
        uint64_t values = h.per_count ? count * (uint64_t)h.per_count : 0;
        if (payload > room || values > room)
            return ST_FRAME_INVALID;
        if (payload > n - at) {
            /* The payload is not all here yet (nothing inside it is a header). */
            return ST_FRAME_INCOMPLETE;
        }
        /* msgpack-c refuses any array or map, even an empty one, once
         * its stack of open containers is full. */
        if (h.per_count && depth == ST_MSGPACK_FRAME_MAX_DEPTH)
            return ST_FRAME_INVALID;
        at += (size_t)payload;
        left[depth]--;
        if (values > 0)
            left[++depth] = values;
        while (depth > 0 && left[depth] == 0)
            depth--;
        if (depth == 0 && left[0] == 0) {
            *len = at;
            return ST_FRAME_COMPLETE;
        }
    }
}
