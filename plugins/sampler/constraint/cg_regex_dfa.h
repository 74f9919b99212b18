/*
 * plugins/sampler/constraint/cg_regex_dfa.h - deterministic automata over
 * Unicode code points, with range-labelled transitions: built from a
 * regular expression (the parse cg_regex.h gives the GBNF translator),
 * combined (union, intersection, difference, complement, minus a finite
 * set of names), and written as GBNF over the characters of a JSON string.
 * The JSON Schema compiler uses them where a member name must be decided
 * against patterns: a name that matches no pattern, or that matches one
 * pattern and not another.
 *
 * Every automaton is trimmed: state 0 is the start, and every state can
 * reach an accepting one (no state at all: the empty language). A
 * transition missing for a character leads nowhere.
 */
#ifndef ST_CG_REGEX_DFA_H
#define ST_CG_REGEX_DFA_H

#include "cg_text.h"

/* The most states an automaton may have; a larger one is refused. */
#define CG_DFA_STATES_MAX 4096
/* The most elementary steps (NFA states visited, transitions built) the
 * builders may take in one budget: a schema's automata together take
 * about 50 ms at most (optimised; about half a second under ASan+UBSan,
 * so the fuzzer stays fast). */
#define CG_DFA_WORK_MAX 1000000L

typedef struct cg_dfa_edge {
    uint32_t lo, hi;   /* code points, inclusive */
    uint32_t to;
} cg_dfa_edge;

typedef struct cg_dfa {
    size_t n_states;
    bool *accept;         /* [n_states] */
    size_t *first;        /* [n_states + 1]: state i's edges, sorted by lo, disjoint */
    cg_dfa_edge *edges;
} cg_dfa;

typedef enum { CG_DFA_OR, CG_DFA_AND, CG_DFA_MINUS } cg_dfa_op;

/* What the builders may still spend (start it at CG_DFA_WORK_MAX). */
typedef struct cg_dfa_budget {
    long work;
} cg_dfa_budget;

void cg_dfa_free(cg_dfa *d);

/* The automaton of `re`. `search`: as JSON Schema's `pattern`, a side
 * without its anchor (^ or $) may have anything before or after the
 * match. False with err filled ("pattern column N: ..." or the bound that
 * was hit). */
bool cg_dfa_from_regex(const char *re, size_t len, bool search, cg_dfa *out,
                       cg_dfa_budget *b, cg_error *err);
/* Every string. */
bool cg_dfa_universe(cg_dfa *out);
/* Exactly the names (UTF-8; a name that is not UTF-8 is skipped: no
 * string of characters spells it). */
bool cg_dfa_names(const char *const *names, size_t n, cg_dfa *out, cg_error *err);
/* a OR b, a AND b, a AND NOT b. */
bool cg_dfa_product(const cg_dfa *a, const cg_dfa *b, cg_dfa_op op, cg_dfa *out,
                    cg_dfa_budget *budget, cg_error *err);
/* NOT a. */
bool cg_dfa_complement(const cg_dfa *a, cg_dfa *out, cg_dfa_budget *b, cg_error *err);

static inline bool cg_dfa_is_empty(const cg_dfa *d) { return d->n_states == 0; }
/* Whether the code points cps[0..n) are in the language. */
bool cg_dfa_match(const cg_dfa *d, const uint32_t *cps, size_t n);

/* Write the automaton as GBNF rules "PREFIX-dI ::= ..." to `rules`, one
 * per state, matching the body of a JSON string whose decoded characters
 * are in the language, each character written as cg_regex_to_gbnf writes
 * it in a JSON string (cg_rx_emit_set); the start rule's name is appended
 * to `expr`. Nothing is written for the empty language. */
void cg_dfa_emit_gbnf(const cg_dfa *d, const char *prefix, cg_buf *rules, cg_buf *expr);

#endif
