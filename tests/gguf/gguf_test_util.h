/*
 * tests/gguf/gguf_test_util.h - per-process temporary file names (Criterion
 * forks one process per test) and a helper that opens a file expecting a
 * given failure.
 */
#ifndef ST_TEST_GGUF_UTIL_H
#define ST_TEST_GGUF_UTIL_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_writer.h"

static inline void tmp_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "%s/gguf_test_%ld_%s.gguf", ST_TEST_BINARY_DIR, (long)getpid(), tag);
}

/* Write `buf` to a temp file, open it, and expect `want` with a message
 * containing `needle` (parts separated by '|', in order) and naming the file. Returns nothing; asserts. */
static inline void expect_open_fails(const uint8_t *buf, size_t len, st_status want,
                                     const char *needle, const char *tag)
{
    char path[512];
    tmp_path(path, sizeof path, tag);
    cr_assert_eq(st_gw_write_bytes(path, buf, len), ST_OK);
    st_gguf *g = (st_gguf *)0x1;
    st_diag d;
    st_diag_clear(&d);
    st_status s = st_gguf_open(path, &g, &d);
    char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 32];
    st_diag_format(&d, line, sizeof line);
    unlink(path);
    cr_assert_eq(s, want, "[%s] expected status %d, got %d: %s", tag, want, s, line);
    cr_assert_null(g, "[%s] *out must be NULL on failure", tag);
    cr_assert_eq(d.status, want, "[%s] diag status", tag);
    cr_assert_str_eq(d.file, path, "[%s] message must name the file: %s", tag, line);
    cr_assert(strstr(line, path) != NULL, "[%s] formatted line names the file: %s", tag, line);
    /* `needle` is one or more '|'-separated parts that must appear in order */
    const char *from = d.message;
    for (const char *part = needle; part;) {
        const char *bar = strchr(part, '|');
        size_t n = bar ? (size_t)(bar - part) : strlen(part);
        const char *hit = memmem(from, strlen(from), part, n);
        cr_assert(hit != NULL, "[%s] message '%s' should contain '%.*s' (of '%s')", tag,
                  d.message, (int)n, part, needle);
        from = hit + n;
        part = bar ? bar + 1 : NULL;
    }
    if (want == ST_E_FORMAT)
        cr_assert(strstr(d.message, "at byte offset ") != NULL, "[%s] message gives the offset: %s",
                  tag, d.message);
}

static inline void put_u64_at(uint8_t *buf, uint64_t at, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        buf[at + i] = (uint8_t)(v >> (8 * i));
}

static inline void put_u32_at(uint8_t *buf, uint64_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        buf[at + i] = (uint8_t)(v >> (8 * i));
}

#endif
