/*
 * core/engine/sentence_reader.h - a document read from a stream one
 * sentence at a time, for st_engine_read: never more than a bounded buffer
 * of it in memory.
 *
 * A sentence ends after '.', '!' or '?' followed by white space (after the
 * newline when that is the white space), or after a newline; other white
 * space that follows belongs to the next sentence (a
 * byte-level BPE tokenizes " The" as one token). A stretch of `max_bytes`
 * without a boundary (a 100k-character line) is cut before its last space,
 * or, without one, at the last UTF-8 character boundary, so no sentence is
 * ever longer than max_bytes.
 */
#ifndef ST_ENGINE_SENTENCE_READER_H
#define ST_ENGINE_SENTENCE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stretch/stretch.h>

typedef struct st_sentence_reader {
    st_read_fn read;
    void *user;
    size_t max_bytes;
    char *buf;
    size_t cap, start, len;   /* pending bytes are buf[start .. start+len) */
    bool eof;
    unsigned long long n_bytes;
} st_sentence_reader;

/* max_bytes >= 4 (one UTF-8 character). */
st_status st_sentence_reader_init(st_sentence_reader *r, st_read_fn read, void *user,
                                  size_t max_bytes, st_error *err);
void st_sentence_reader_free(st_sentence_reader *r);

/* The next sentence as (*s, *n), valid until the next call; *n == 0 at the
 * end of the document. ST_E_IO when `read` reports an error. */
st_status st_sentence_next(st_sentence_reader *r, const char **s, size_t *n, st_error *err);

#endif
