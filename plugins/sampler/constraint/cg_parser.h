/*
 * plugins/sampler/constraint/cg_parser.h - the incremental parser: a
 * pushdown automaton run on all its stacks at once (llama.cpp's grammar
 * sampler works the same way), advanced one byte at a time.
 *
 * A stack is a chain of interned nodes (position in the grammar, parent
 * node), so equal stacks are one id and a state - the set of live stacks,
 * sorted - is interned too. Transitions (state, byte) -> state are cached:
 * the parser builds, lazily, the part of the grammar's automaton that
 * generation actually visits, and the token trie walks it at hash-lookup
 * speed. State 0 is dead (no stack left).
 */
#ifndef ST_CG_PARSER_H
#define ST_CG_PARSER_H

#include "cg_grammar.h"

typedef struct cg_parser cg_parser;

/* `g` must outlive the parser. NULL on OOM. */
cg_parser *cg_parser_new(const cg_grammar *g);
void cg_parser_free(cg_parser *p);

/* The state before any byte; 0 when the grammar matches nothing. */
uint32_t cg_parser_start(cg_parser *p);
/* The state after `byte`; 0 when it cannot continue. UINT32_MAX when the
 * parser ran out of its memory budget (an ambiguous grammar whose stacks
 * keep multiplying). */
uint32_t cg_parser_step(cg_parser *p, uint32_t state, uint8_t byte);
/* The cached transitions of `state` ([256], -1 where not computed yet),
 * or NULL when none is; valid until the next cg_parser_step. Lets a walk
 * that steps one state over many bytes skip a call per byte. */
const int32_t *cg_parser_row(const cg_parser *p, uint32_t state);
/* Whether the input so far is a complete sentence of the grammar. */
bool cg_parser_accepting(const cg_parser *p, uint32_t state);
/* Whether `state` can take no byte at all (complete and nothing may follow). */
bool cg_parser_finished(cg_parser *p, uint32_t state);

/* Split `state` at the highest node R that every one of its stacks runs
 * through strictly below its top (the continuation after a JSON string's
 * closing quote, for a state inside the string): *inner is the state with
 * R replaced by the empty stack, the same whatever context R continues
 * into, and accepting exactly where `state` would go on with R; *outer is
 * the state R's continuation starts in. Bytes w lead `state` somewhere
 * live exactly when they lead *inner somewhere live, or some prefix of w
 * leads *inner to an accepting state and the rest leads *outer somewhere
 * live. 1 when split, 0 when there is no such R (an empty stack, stacks
 * that share only the bottom, or stacks too many or too deep to search),
 * -1 when the parser ran out of its budget. */
int cg_parser_split(cg_parser *p, uint32_t state, uint32_t *inner, uint32_t *outer);

/* `state` with every position inside a bounded repetition that can still
 * take more than `horizon` + 1 copies moved to the repetition's unbounded
 * twin (each copy is at least one byte): the two accept the same byte
 * strings of up to `horizon` bytes, so with `horizon` the longest token
 * they have the same token mask. The body of a string with a maxLength of
 * 1000 is then one state for masks, a free string's, until its last
 * characters. `state` itself when nothing moves; UINT32_MAX when the
 * parser ran out of its budget. */
uint32_t cg_parser_horizon(cg_parser *p, uint32_t state, uint32_t horizon);

#endif
