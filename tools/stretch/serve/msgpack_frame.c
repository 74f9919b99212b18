/*
 * tools/stretch/serve/msgpack_frame.c - the msgpack framing scan: read
 * each value's header (stretch/msgpack_bounds.h says what it declares),
 * skip its payload, and keep per open container the number of values
 * still to come.
 */
#include "msgpack_frame.h"

#include <stdbool.h>
#include <stretch/msgpack_bounds.h>

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
        st_msgpack_head h;
        if (!st_msgpack_head_of(p[at], &h))
            return ST_FRAME_INVALID;
        size_t head = 1 + h.width;
        if (n - at < head)
            return at + head > limit ? ST_FRAME_INVALID : ST_FRAME_INCOMPLETE;
        for (unsigned k = 0; k < h.width; k++)
            h.n = h.n << 8 | p[at + 1 + k];
        at += head;
        /* Every value takes at least one byte, so a count or a length past
         * what is left of `limit` cannot be honest. */
        uint64_t room = limit > at ? limit - at : 0;
        uint64_t payload = h.elems_per ? 0 : h.n + h.skip;
        uint64_t values = h.elems_per ? h.n * (uint64_t)h.elems_per : 0;
        if (payload > room || values > room)
            return ST_FRAME_INVALID;
        if (payload > n - at) /* not all here yet (nothing inside it is a header) */
            return ST_FRAME_INCOMPLETE;
        /* msgpack-c refuses any array or map, even an empty one, once
         * its stack of open containers is full. */
        if (h.elems_per && depth == ST_MSGPACK_FRAME_MAX_DEPTH)
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
