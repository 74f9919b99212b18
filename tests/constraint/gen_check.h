/*
 * tests/constraint/gen_check.h - drive a constraint sampler the way the
 * engine's chain does (random logits over the test vocabulary, the
 * sampler, then the best kept candidate, accept) until it ends, and check
 * what it produced with a validator that is not the grammar engine.
 */
#ifndef ST_TEST_GEN_CHECK_H
#define ST_TEST_GEN_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stretch/plugin.h>

/* Generate at most max_tokens with `seed`; the text goes to out (cap
 * bytes, NUL-terminated, but it may hold NUL bytes: its length goes to
 * *out_len when that is not NULL). Returns true when the sampler chose end
 * of generation; fails the test on any sampler error. */
bool gen_run(const st_plugin_entry *e, void *inst, uint64_t seed, size_t max_tokens,
             char *out, size_t cap, size_t *out_len);

/* A strict JSON (RFC 8259) syntax check, written for the tests. */
bool json_valid(const char *s);

#endif
