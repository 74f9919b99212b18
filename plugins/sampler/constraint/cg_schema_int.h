/*
 * plugins/sampler/constraint/cg_schema_int.h - what the JSON Schema
 * compiler's files share (cg_schema.c writes GBNF; cg_schema_logic.c turns
 * the keywords that relate members or schemas to each other, dependencies,
 * not, if/then/else, into alternatives cg_schema.c can write). Not for
 * the plugins: they use cg_schema.h.
 */
#ifndef ST_CG_SCHEMA_INT_H
#define ST_CG_SCHEMA_INT_H

#include "cg_regex_dfa.h"
#include "cg_schema.h"

enum { T_NULL = 1, T_BOOL = 2, T_OBJECT = 4, T_ARRAY = 8, T_STRING = 16, T_NUMBER = 32,
       T_INTEGER = 64, T_ALL = 127 };

typedef struct sc_ref {
    const cj_value *target;
    char name[24];
} sc_ref;

typedef struct sc {
    cj_value *doc;
    cg_buf *out, *warn;
    cg_error *err;
    cg_schema_options opt;
    int next_id;
    unsigned prims;
    sc_ref *refs;
    size_t n_refs, cap_refs;
    cj_value **owned;          /* merge results: shallow, children not owned */
    size_t n_owned, cap_owned;
    int depth;
    /* The last failure says the schema matches no value at all (an enum
     * none of whose values has the type, false, ...): where the schema is
     * optional (a member not required, one alternative) it is left out
     * instead of failing the whole compile. */
    bool unsat;
    /* The character counts of the counted strings written so far, each
     * once as a rule "string-MIN-MAX" (max -1: "string-MIN-up") that
     * every string of those lengths references: the same parser states
     * for all of them, so their masks are shared (cg_mask.c). */
    struct { long min, max; } *counted;
    size_t n_counted, cap_counted;
    /* What the automata of member-name patterns may still spend. */
    cg_dfa_budget dfa;
} sc;

/* Fill s->err ("at PATH: ...") and return false. */
bool sc_fail(sc *s, const cj_value *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* sc_fail for a schema that matches nothing (sets s->unsat). */
bool sc_fail_unsat(sc *s, const cj_value *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A keyword that cannot be enforced: false under strict, else a warning. */
bool sc_unsupported(sc *s, const cj_value *at, const char *path, const char *keyword,
                    const char *why);

/* Shallow schema nodes owned by the compile (freed at its end). */
cj_value *sc_owned_node(sc *s, cj_type t);
bool sc_node_push(cj_value *v, const char *key, const cj_value *item);
/* a AND b as one schema (allOf); NULL after a failure. */
const cj_value *sc_merge(sc *s, const cj_value *a, const cj_value *b, const char *path);
/* v without the member `skip`. */
const cj_value *sc_without(sc *s, const cj_value *v, const char *skip);
const cj_value *sc_resolve_ref(sc *s, const cj_value *ref, const char *path);

unsigned sc_type_bits(const cj_value *type);
bool sc_in_list(const char *const *list, const char *k);
void sc_child_path(char *out, size_t cap, const char *path, const char *key);

/* One GBNF rule for `schema`, its name in `name`; the expression of a
 * schema appended to `e`. */
bool sc_gen_rule(sc *s, const cj_value *schema, const char *path, char name[24]);
bool sc_gen_schema(sc *s, const cj_value *v, const char *path, cg_buf *e);

/* Where an optional schema turned out to match nothing: the compile's
 * state before it (sc_mark) and the rollback to it (sc_recover: true when
 * the failure was such a schema, which the caller then leaves out). */
typedef struct sc_mark {
    size_t out_n, n_refs;
} sc_mark;
sc_mark sc_mark_now(const sc *s);
bool sc_recover(sc *s, sc_mark m);

/* cg_schema_logic.c: a schema with dependentRequired, dependentSchemas or
 * draft 7's dependencies, written as the alternatives of which trigger
 * members are present. Returns false (not handled) when v has none of
 * them; else *ok says whether the expression was written to e. */
bool sc_gen_dependencies(sc *s, const cj_value *v, const char *path, cg_buf *e, bool *ok);

/* cg_schema_length.c: a JSON string matching `pattern` with minLength
 * min and maxLength max (-1: none), written to e; false with s->err when
 * it cannot be built (reported by keyword) or matches nothing. */
bool sc_pattern_with_length(sc *s, const cj_value *at, const char *path, const char *pattern,
                            size_t len, long min, long max, cg_buf *e);

/* cg_schema_patterns.c: the members patternProperties names, decided
 * name by name by automata (a name in two patterns takes both schemas, a
 * name in a false pattern none, a declared name its property's schema
 * merged with its patterns'), and the names left to other members. */
typedef struct sc_patterns {
    struct sc_pat *P;
    size_t n;
    const cj_value *v;
    char path[600];
    bool named;        /* some pattern names members (its schema is not false) */
    bool other_path;   /* other members may appear */
    bool need;         /* the automata are built */
} sc_patterns;
typedef struct sc_other_names {
    bool named;     /* as sc_patterns's */
    bool decided;   /* names holds them; else they are not known */
    cg_dfa names;
} sc_other_names;
/* Read v's patternProperties; `declared`: v declares members by name. */
bool sc_patterns_open(sc *s, const cj_value *v, const char *path, bool declared,
                      sc_patterns *ps);
/* The schema of the declared member `name` (*schema; NULL: any value)
 * with every pattern it matches merged in (false when no value fits). */
bool sc_patterns_declared(sc *s, sc_patterns *ps, const char *name, const char *path,
                          const cj_value **schema);
/* The pattern-named members appended to `extra` as alternatives ("\""
 * NAME "\"" ws ":" ws VALUE, n_extra counting them), none of them named
 * keys[0..k); in *others the names no pattern matches. */
bool sc_patterns_gen(sc *s, sc_patterns *ps, const char *const *keys, size_t k, cg_buf *extra,
                     size_t *n_extra, sc_other_names *others);
void sc_patterns_close(sc_patterns *ps);
/* A JSON string (with its quotes) naming an other member: in
 * others->names and none of keys[0..k); appended to e, *written false
 * (nothing appended) when no such name is left. False after a failure. */
bool sc_gen_other_name(sc *s, sc_other_names *others, const char *const *keys, size_t k,
                       const char *path, cg_buf *e, bool *written);
/* A fresh rule name. */
void sc_fresh(sc *s, char name[24]);

#endif
