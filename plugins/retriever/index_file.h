/*
 * plugins/retriever/index_file.h - how the retrievers write their msgpack
 * index files (header-only: plugins never link the host, and bm25,
 * embedding and hybrid each compile it in).
 *
 * The bytes go to a sibling `PATH.tmp` that is renamed over PATH, so a
 * crash or a full disk never leaves a half-written index where a good one
 * was.
 */
#ifndef ST_RETRIEVER_INDEX_FILE_H
#define ST_RETRIEVER_INDEX_FILE_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>
#include <stretch/plugin.h>

/* Write `sb` to `path` atomically; `who` (the plugin's name) heads the
 * out-of-memory message. The caller keeps and frees `sb`. */
static inline st_status st_index_file_write(const st_host_services *h, const char *who,
                                            const char *path, const msgpack_sbuffer *sb,
                                            st_error *err)
{
    size_t plen = strlen(path);
    char *tmp = h->alloc(h->host, plen + 5);
    if (!tmp)
        return h->error(err, ST_E_NOMEM, "%s: out of memory saving the index", who);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    st_status st = ST_OK;
    FILE *f = fopen(tmp, "wb");
    bool ok = f && fwrite(sb->data, 1, sb->size, f) == sb->size;
    int saved = errno;
    if (f && fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        remove(tmp);
        st = h->error(err, ST_E_IO, "%s: cannot write: %s", tmp, strerror(saved));
    } else if (rename(tmp, path) != 0) {
        saved = errno;
        remove(tmp);
        st = h->error(err, ST_E_IO, "%s: cannot replace: %s", path, strerror(saved));
    }
    h->free(h->host, tmp);
    return st;
}

#endif
