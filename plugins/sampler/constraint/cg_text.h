/*
 * plugins/sampler/constraint/cg_text.h - the GBNF text the regex and JSON
 * Schema compilers write: a growable buffer, GBNF literal and class
 * writers, and the regex translator.
 */
#ifndef ST_CG_TEXT_H
#define ST_CG_TEXT_H

#include <stdarg.h>

#include "cg_grammar.h"

typedef struct cg_buf {
    char *s;
    size_t n, cap;
    bool oom;
} cg_buf;

void cg_buf_free(cg_buf *b);
void cg_buf_put(cg_buf *b, const char *s, size_t n);
void cg_buf_puts(cg_buf *b, const char *s);
void cg_buf_printf(cg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The length (1-4) of the UTF-8 sequence at s[0..left), its code point in
 * *cp; 0 when the bytes are not well-formed UTF-8: a broken sequence, an
 * overlong form, a surrogate or a value past U+10FFFF. (Patterns and
 * names come checked from JSON and manifests, but a GBNF file or a
 * pattern handed over as bytes does not.) */
int cg_utf8_decode(const char *s, size_t left, uint32_t *cp);
/* One code point (at most U+10FFFF) appended as UTF-8. */
void cg_buf_put_utf8(cg_buf *b, uint32_t cp);

/* One code point as GBNF inside "..." or [...] (escaped as needed). */
void cg_buf_gbnf_char(cg_buf *b, uint32_t cp, bool in_class);
/* Bytes as one GBNF literal "...". */
void cg_buf_gbnf_literal(cg_buf *b, const char *s, size_t n);

/* Translate a regular expression into one parenthesised GBNF expression
 * appended to `out`. `json_string`: the expression matches the body of a
 * JSON string whose decoded value matches the pattern (quotes, backslashes
 * and line breaks written as JSON escapes), and an unanchored pattern may
 * have anything before and after it (JSON Schema's `pattern` searches);
 * otherwise the whole text must match. False with err->offset the column
 * (0-based) in the pattern. */
bool cg_regex_to_gbnf(const char *re, size_t len, bool json_string, cg_buf *out, cg_error *err);

#endif
