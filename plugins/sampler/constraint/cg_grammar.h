/*
 * plugins/sampler/constraint/cg_grammar.h - the constraint engine's grammar:
 * a context-free grammar over bytes. Every terminal is a set of bytes, so
 * UTF-8 text, JSON and token pieces are all matched one byte at a time and
 * a token that splits a multi-byte character is judged correctly.
 *
 * A rule is a list of alternatives; an alternative a sequence of elements
 * (a byte set or a reference to a rule) ending in CG_END. The grammar is
 * built with the builder below (the GBNF reader is its one front end: the
 * regex and JSON Schema compilers write GBNF text), then checked by
 * cg_grammar_finish: every referenced rule defined, no left recursion
 * (the parser would expand it forever), every rule able to finish.
 */
#ifndef ST_CG_GRAMMAR_H
#define ST_CG_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CG_END = 0, CG_BYTES = 1, CG_REF = 2 };

typedef struct cg_elem {
    uint8_t kind;
    int32_t arg;          /* CG_BYTES: byte-set index; CG_REF: rule id */
} cg_elem;

typedef struct cg_rule {
    char *name;
    int32_t *alts;        /* start positions in cg_grammar.elems */
    size_t n_alts, cap_alts;
    bool defined;
    int32_t first_use;    /* offset in the source of the first reference, -1 none */
    /* A bounded repetition x{m,n} is a chain of rules opt_k ::= x opt_{k-1}
     * | (empty), k = 1..n-m: count_left is k (0 for any other rule) and
     * count_star the id of its unbounded twin star ::= x star | (empty),
     * which the grammar never references: for one token, a count larger
     * than the token is long is no count at all (cg_parser_horizon). */
    int32_t count_left, count_star;
} cg_rule;

typedef struct cg_grammar {
    cg_elem *elems;
    size_t n_elems, cap_elems;
    uint8_t (*sets)[32];  /* byte bitmaps */
    size_t n_sets, cap_sets;
    cg_rule *rules;
    size_t n_rules, cap_rules;
    int32_t *name_index;  /* open addressing over rule names, -1 empty */
    size_t name_cap;
    int32_t root;
} cg_grammar;

/* A sequence under construction (one alternative). */
typedef struct cg_seq {
    cg_elem *e;
    size_t n, cap;
} cg_seq;

/* Error text the builders fill: a message with the source offset it is
 * about (-1 when none); the front end turns the offset into line:col. */
typedef struct cg_error {
    long offset;
    char message[400];
} cg_error;

void cg_grammar_init(cg_grammar *g);
void cg_grammar_free(cg_grammar *g);

/* The rule called `name`, declared (not yet defined) when new; -1 on OOM. */
int32_t cg_rule_get(cg_grammar *g, const char *name, size_t len);
/* A fresh rule named "<base>#<n>" for groups and repetitions. */
int32_t cg_rule_fresh(cg_grammar *g, const char *base);
/* Append `seq` as one alternative of `rule` (copied); false on OOM. */
bool cg_rule_add_alt(cg_grammar *g, int32_t rule, const cg_seq *seq);

/* Index of a byte set equal to `bits` (added when new); -1 on OOM. */
int32_t cg_set_intern(cg_grammar *g, const uint8_t bits[32]);

bool cg_seq_push(cg_seq *s, uint8_t kind, int32_t arg);
void cg_seq_free(cg_seq *s);

static inline bool cg_set_has(const uint8_t *bits, uint8_t b)
{
    return (bits[b >> 3] >> (b & 7)) & 1;
}
static inline void cg_set_add(uint8_t *bits, uint8_t b) { bits[b >> 3] |= (uint8_t)(1u << (b & 7)); }

/* Code point cp (at most U+10FFFF) as UTF-8 in b; its length, 1-4. */
int cg_utf8_encode(uint32_t cp, uint8_t b[4]);
/* Code points: append to `seq` the elements matching any code point in the
 * sorted, disjoint, inclusive ranges (pairs lo,hi), as UTF-8 bytes. One
 * byte set when every range is ASCII, else a fresh rule whose alternatives
 * are the UTF-8 byte-range sequences. False on OOM. */
bool cg_push_codepoint_ranges(cg_grammar *g, cg_seq *seq, const uint32_t *ranges,
                              size_t n_ranges);

/* Check and freeze: root = the rule named `root_name`. False with `err`
 * (offset = the first use of an undefined rule) when the grammar is not
 * usable. */
bool cg_grammar_finish(cg_grammar *g, const char *root_name, cg_error *err);

/* Parse GBNF (llama.cpp's grammar format) into `g` (initialised by the
 * caller) and finish it with root rule "root". False with err->offset the
 * byte offset of the problem. */
bool cg_gbnf_parse(cg_grammar *g, const char *text, size_t len, cg_error *err);

/* 1-based line and column of byte `offset` in text. */
void cg_line_col(const char *text, size_t len, long offset, int *line, int *col);

#endif
