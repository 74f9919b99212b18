/*
 * core/utf8_stream.h - turn a stream of token byte pieces into valid UTF-8
 * text: bytes are held back until they complete a character; a byte that
 * can never start or continue a valid sequence becomes U+FFFD. Tokens of a
 * byte-level BPE often split one character across two tokens, and a
 * streaming callback must never see half a character.
 */
#ifndef ST_CORE_UTF8_STREAM_H
#define ST_CORE_UTF8_STREAM_H

#include <stddef.h>

typedef struct st_utf8_stream {
    unsigned char pending[4];
    size_t n_pending;
} st_utf8_stream;

void st_utf8_stream_init(st_utf8_stream *s);

/* Feed `n` bytes; writes the complete text to out (needs room for
 * 3 * (n + 4) bytes) and returns its length. */
size_t st_utf8_stream_feed(st_utf8_stream *s, const char *bytes, size_t n, char *out);

/* Flush what is pending at the end of the stream (each held byte becomes
 * U+FFFD). Returns the length written (out needs 12 bytes). */
size_t st_utf8_stream_flush(st_utf8_stream *s, char *out);

#endif
