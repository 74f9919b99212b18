/*
 * plugins/sampler/constraint/cg_constraint.h - what the constraint
 * samplers (gbnf, regex, json-schema) share: a compiled grammar, the
 * vocabulary trie from the host's ST_HOST_VOCAB_V1, the parser state of
 * the sequence, and the sampler calls built on them. Each plugin only
 * turns its parameter into GBNF text.
 *
 * apply keeps the candidates whose bytes continue a valid prefix (and the
 * end-of-generation tokens when the output is complete), so the chain's
 * picker can only choose those; accept advances the state; once the
 * grammar can take nothing more, only end-of-generation is left and the
 * engine stops.
 */
#ifndef ST_CG_CONSTRAINT_H
#define ST_CG_CONSTRAINT_H

#include <stretch/plugin.h>

#include "cg_mask.h"

#define CG_EOG_MAX 8

typedef struct cg_constraint {
    const st_host_services *host;
    const char *plugin;          /* name for messages */
    cg_grammar grammar;
    cg_parser *parser;
    cg_vocab *vocab;
    cg_masker *masker;
    int32_t eog[CG_EOG_MAX];
    size_t n_eog;
    uint32_t state;
    bool ended;                  /* an end-of-generation token was accepted */
    /* Per apply of the current sequence, in microseconds: the token mask
     * alone, and the whole call (the mask plus filtering the candidate
     * array). Reported at debug level when the sequence ends (reset or
     * destroy) so evaluations can read them from the log. */
    float *mask_us, *apply_us;
    size_t n_mask, cap_mask;
    double last_mask_s;
} cg_constraint;

/* Compile GBNF `text` (named `source` in messages: a file path, or
 * "grammar"/"schema" for inline text) and build the token trie. Refuses,
 * with source:line:col, a grammar that does not parse, and one that no
 * token of the vocabulary can start. `text_is_generated`: the GBNF was
 * written by a compiler (regex, JSON Schema), so positions in it mean
 * nothing to the user and are left out. */
st_status cg_constraint_open(cg_constraint *c, const st_host_services *host, const char *plugin,
                             const char *text, size_t len, const char *source,
                             bool text_is_generated, st_error *err);
void cg_constraint_close(cg_constraint *c);

/* Seconds on a monotonic clock. */
double cg_now_s(void);

st_status cg_constraint_apply(cg_constraint *c, st_candidates *cands, st_error *err);
st_status cg_constraint_accept(cg_constraint *c, int32_t token, bool is_prompt, st_error *err);
void cg_constraint_reset(cg_constraint *c);

/* Read a whole file into a NUL-terminated malloc'd buffer; NULL with
 * err filled (naming the path) on failure. At most `max_bytes`. */
char *cg_read_file(const st_host_services *host, const char *plugin, const char *path,
                   size_t max_bytes, size_t *len, st_error *err);

#endif
