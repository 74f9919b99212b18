/*
 * tests/fuzz/fuzz_util.h - what every libFuzzer target here shares: the
 * readers under test take paths, not buffers, so each input is written to a
 * file in a private temporary directory (one per fuzzing process, removed at
 * exit), and multi-file inputs are cut into parts at a separator line.
 */
#ifndef ST_FUZZ_UTIL_H
#define ST_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The parts of a multi-file input are separated by this line. */
#define ST_FUZZ_SEPARATOR "\n#---8<---\n"

/* The process's temporary directory (created on first use; aborts when it
 * cannot be, since no input could be tried). */
const char *st_fuzz_dir(void);

/* Write `size` bytes to `name` (may contain one level of subdirectory,
 * created as needed) under st_fuzz_dir(); returns the full path in a static
 * buffer per slot (0..7), so up to eight paths stay valid at once. */
const char *st_fuzz_write(int slot, const char *name, const void *data, size_t size);

/* Remove `name` under st_fuzz_dir() if it exists. */
void st_fuzz_remove(const char *name);

/* Cut data at ST_FUZZ_SEPARATOR into at most max_parts parts (the last
 * part keeps any further separators). Returns the number of parts. */
size_t st_fuzz_split(const uint8_t *data, size_t size, const uint8_t **part, size_t *part_len,
                     size_t max_parts);

/* Stop the run with a message: an oracle (not a sanitizer) saw a wrong
 * result, and libFuzzer saves the input as a crash. */
void st_fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
