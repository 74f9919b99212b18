/*
 * tools/stretch/serve/utf8_text.h - client text made fit for a reply.
 * Refusals quote what the client sent (a URL path, a model name), cut to
 * a length; JSON (jansson) and the RPC clients' msgpack decoders take only
 * UTF-8, and a cut can split a character, so a quote is cleaned first.
 */
#ifndef ST_CLI_SERVE_UTF8_TEXT_H
#define ST_CLI_SERVE_UTF8_TEXT_H

#include <stddef.h>

/* Copy `in` into out[cap] (always terminated), each byte that does not
 * start a whole, valid UTF-8 character replaced by '?'; a character that
 * does not fit is left out whole. Returns out. */
char *st_utf8_clean(const char *in, char *out, size_t cap);

/* The len bytes at `in` as a new NUL-terminated string (free it), whole:
 * each byte that does not start a valid UTF-8 character, or that is NUL,
 * becomes '?'. For stored text (a retrieved document) put into a reply.
 * NULL when out of memory. */
char *st_utf8_clean_dup(const char *in, size_t len);

#endif
