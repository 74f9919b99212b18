/*
 * tools/stretch/reading.h - the answer prompt of a reading strategy
 * (infiniretri, xl3m: any whose plugin offers stretch.reader/1): the
 * document is read chunk by chunk with st_engine_read, streamed from a file
 * or taken from memory, and the prompt is BOS + what was kept + the
 * question. Shared by `stretch run --question` and `stretch eval passkey`.
 */
#ifndef ST_CLI_READING_H
#define ST_CLI_READING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stretch/stretch.h>

typedef struct st_cli_document {
    const char *path;   /* streamed from this file when set, */
    const char *text;   /* else read from memory: text[0..len) when set, */
    size_t len;
    st_read_fn read;    /* else from this stream */
    void *read_user;
    st_progress_fn progress; /* optional: after each chunk, bytes read so far */
    void *progress_user;
} st_cli_document;

/* Read `doc` with `question` in chunks of `chunk` tokens (0 = default) and
 * build the answer prompt into *ids (st_free it). With `chat` the kept text
 * and the question form one user message of the model's chat template;
 * otherwise the prompt is raw: BOS when the model wants it, the kept
 * tokens, the question's tokens. */
st_status st_cli_reading_prompt(st_engine *e, const st_cli_document *doc, const char *question,
                                uint32_t chunk, bool chat, int32_t **ids, size_t *n_ids,
                                st_read_stats *stats, st_error *err);

#endif
