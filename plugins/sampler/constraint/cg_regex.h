/*
 * plugins/sampler/constraint/cg_regex.h - a regular expression parsed
 * once into a tree that two back ends read: the GBNF translator
 * (cg_regex.c, cg_regex_to_gbnf in cg_text.h) and the automaton builder
 * (cg_regex_dfa.c). One parser, so the language the grammar matches and
 * the one the automaton decides are the same by construction.
 */
#ifndef ST_CG_REGEX_H
#define ST_CG_REGEX_H

#include "cg_text.h"

typedef enum { CG_RX_SET, CG_RX_CAT, CG_RX_ALT, CG_RX_REP } cg_rx_kind;

typedef struct cg_rx_node {
    cg_rx_kind kind;
    /* SET: one code point out of [lo, hi] pairs, sorted and disjoint,
     * never empty. */
    uint32_t *ranges;
    size_t n_ranges;
    /* CAT (empty: the empty string), ALT (alternatives); REP: kids[0]. */
    struct cg_rx_node **kids;
    size_t n_kids, cap_kids;
    long min, max;   /* REP: max -1 when unbounded */
    char q;          /* REP: the quantifier as written: * + ? or { */
} cg_rx_node;

typedef struct cg_rx {
    cg_rx_node *root;   /* an ALT */
    bool anchored_start, anchored_end;
    cg_rx_node **all;   /* every node, for cg_rx_free */
    size_t n_all, cap_all;
} cg_rx;

/* Parse `re` (the subset cg_text.h's cg_regex_to_gbnf describes); false
 * with err->offset the column (0-based) and a message. *out is freed with
 * cg_rx_free either way. */
bool cg_rx_parse(const char *re, size_t len, cg_rx *out, cg_error *err);
void cg_rx_free(cg_rx *rx);

/* One character out of `ranges` ([lo, hi] pairs, sorted, disjoint, n > 0)
 * as one parenthesised GBNF symbol; `json`: as the body of a JSON string
 * writes it ('"', '\' and control characters as their escapes, in Python
 * json.dumps's spelling). */
void cg_rx_emit_set(cg_buf *o, const uint32_t *ranges, size_t n, bool json);

/* The GBNF expression of a JSON string body with any content (every
 * character, every escape): what an unanchored side may hold. */
#define CG_RX_ANY_JSON_CHARS "([^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}))*"

#endif
