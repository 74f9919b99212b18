/*
 * tools/stretch/serve/msgpack_frame.h - where the next msgpack message in
 * a byte stream ends, found without allocating. msgpack-c allocates an
 * array's or a map's elements as soon as it reads their count, so five
 * bytes (0xdd ff ff ff ff) would make it ask for ~100 GB: the RPC listener
 * scans each message first and hands msgpack-c only complete messages
 * whose every count fits in the bytes they came in.
 */
#ifndef ST_CLI_SERVE_MSGPACK_FRAME_H
#define ST_CLI_SERVE_MSGPACK_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Open non-empty arrays and maps at once: msgpack-c's own limit
 * (MSGPACK_EMBED_STACK_SIZE), so that a message this accepts it parses. */
#define ST_MSGPACK_FRAME_MAX_DEPTH 32

typedef enum st_msgpack_frame {
    ST_FRAME_COMPLETE,   /* *len bytes hold one whole message */
    ST_FRAME_INCOMPLETE, /* a prefix of a message that may still fit in `limit` */
    ST_FRAME_INVALID,    /* not msgpack (0xc1), nested too deep, or declares more
                            elements or bytes than `limit` bytes can hold */
} st_msgpack_frame;

/* Scan the message at p[0..n). `limit` bounds the whole message's size. */
st_msgpack_frame st_msgpack_frame_scan(const uint8_t *p, size_t n, size_t limit, size_t *len);

#endif
