/*
 * core/text_escape.h - make text from files and plugins safe to print: a
 * manifest's summary, a plugin's message or a directory name may hold ESC,
 * CR or LF, which would let it colour, rewrite or fake lines of a terminal.
 */
#ifndef ST_CORE_TEXT_ESCAPE_H
#define ST_CORE_TEXT_ESCAPE_H

#include <stddef.h>

/* Copy `s` into `out` (`cap` bytes, always terminated, truncated between
 * whole characters) with C0 controls and DEL written as \n, \r, \t or
 * \xHH, and C1 controls (U+0080..U+009F) and bytes that are not UTF-8 as
 * \xHH per byte. Backslashes are kept, so escaping twice changes nothing.
 * Returns out. */
const char *st_text_escape(const char *s, char *out, size_t cap);

/* The size st_text_escape needs for `s` without truncating (terminator
 * included). */
size_t st_text_escaped_size(const char *s);

#endif
