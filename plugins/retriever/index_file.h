/*
 * plugins/retriever/index_file.h - how the retrievers write their msgpack
 * index files (header-only: plugins never link the host, and bm25,
 * embedding and hybrid each compile it in).
 *
 * The bytes go to a sibling `PATH.tmp` that is renamed over PATH, so a
 * crash or a full disk never leaves a half-written index where a good one
 * was. That also makes mapping an index to read it safe: a save replaces
 * the file, it never rewrites the mapped one in place.
 */
#ifndef ST_RETRIEVER_INDEX_FILE_H
#define ST_RETRIEVER_INDEX_FILE_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>
#include <stretch/msgpack_bounds.h>
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

/* A whole index file's bytes, read only. */
typedef struct st_index_bytes {
    const char *data;
    size_t size;
    void *map;  /* the mapping, when there is one */
    char *heap; /* the copy, when the file could not be mapped */
} st_index_bytes;

/* Map a regular file (the msgpack reader then parses the page cache in
 * place: a 155 MB index of 100k vectors is not copied into the heap
 * first); read anything else (an empty file, a pipe) into memory. */
static inline st_status st_index_file_read(const st_host_services *h, const char *path,
                                           st_index_bytes *b, st_error *err)
{
    memset(b, 0, sizeof *b);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return h->error(err, ST_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
        (unsigned long long)sb.st_size <= (size_t)-1) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            close(fd);
            b->map = m;
            b->data = m;
            b->size = (size_t)sb.st_size;
            return ST_OK;
        }
    }
    size_t cap = 0;
    st_status st = ST_OK;
    for (;;) {
        if (b->size == cap) {
            size_t nc = cap ? cap * 2 : 65536;
            char *grown = h->realloc(h->host, b->heap, nc);
            if (!grown) {
                st = h->error(err, ST_E_NOMEM, "%s: out of memory reading", path);
                break;
            }
            b->heap = grown;
            cap = nc;
        }
        ssize_t got = read(fd, b->heap + b->size, cap - b->size);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            st = h->error(err, ST_E_IO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (got == 0)
            break;
        b->size += (size_t)got;
    }
    close(fd);
    if (st != ST_OK) {
        h->free(h->host, b->heap);
        memset(b, 0, sizeof *b);
        return st;
    }
    b->data = b->heap ? b->heap : "";
    return ST_OK;
}

static inline void st_index_file_release(const st_host_services *h, st_index_bytes *b)
{
    if (b->map)
        munmap(b->map, b->size);
    if (b->heap)
        h->free(h->host, b->heap);
    memset(b, 0, sizeof *b);
}

/* Read `path` (above) and unpack it as exactly one msgpack object into
 * *up, which the caller has initialised and destroys; `what` ("bm25
 * index") names the file in errors. On failure nothing stays held. */
static inline st_status st_index_file_unpack(const st_host_services *h, const char *path,
                                             const char *what, st_index_bytes *file,
                                             msgpack_unpacked *up, st_error *err)
{
    st_status st = st_index_file_read(h, path, file, err);
    if (st != ST_OK)
        return st;
    size_t off = 0;
    bool fits = st_msgpack_counts_fit(file->data, file->size);
    msgpack_unpack_return ret = fits ? msgpack_unpack_next(up, file->data, file->size, &off)
                                     : MSGPACK_UNPACK_PARSE_ERROR;
    if (!fits)
        st = h->error(err, ST_E_FORMAT, "%s: truncated or corrupt %s (a list or map declares more "
                      "elements than the file holds)", path, what);
    else if (ret == MSGPACK_UNPACK_CONTINUE)
        st = h->error(err, ST_E_FORMAT, "%s: truncated %s (%zu bytes)", path, what, file->size);
    else if (ret != MSGPACK_UNPACK_SUCCESS && ret != MSGPACK_UNPACK_EXTRA_BYTES)
        st = h->error(err, ST_E_FORMAT, "%s: not a msgpack file (%s)", path, what);
    else if (off != file->size)
        st = h->error(err, ST_E_FORMAT, "%s: %zu unexpected bytes after the %s", path,
                      file->size - off, what);
    if (st != ST_OK)
        st_index_file_release(h, file);
    return st;
}

#endif
