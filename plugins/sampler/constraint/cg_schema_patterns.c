/*
 * plugins/sampler/constraint/cg_schema_patterns.c - the members an object's
 * patternProperties name, and the names left to its other members,
 * decided by automata over the names' characters (cg_regex_dfa.h):
 *
 *   a name matching one pattern takes that pattern's schema;
 *   a name matching two takes both (their allOf, via sc_merge), a name
 *   matching three or more is not generated (sound, and rare);
 *   a name matching a false pattern is not generated at all;
 *   an other member's name matches no pattern and is no declared name.
 *
 * Where no pattern meets another, a pattern's names are written with
 * cg_regex_to_gbnf's text as before (the same grammar, the same masks);
 * the automata only decide and, where patterns meet, write the names.
 */
#include "cg_schema_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sc_pat {
    const char *re;
    size_t len;
    const cj_value *schema;
    bool parsed, is_false, built;
    bool has_declared;   /* some declared name matches it */
    cg_buf text;   /* the names as cg_regex_to_gbnf writes them */
    cg_dfa d;
    char path[600];
};
typedef struct sc_pat pat;

static bool pat_unsupported(sc *s, const pat *a, const char *why, const cg_error *err)
{
    char msg[400];
    snprintf(msg, sizeof msg, "the names /%.80s/ matches cannot be told from other "
                              "members' names (%s: %.200s)", a->re, why, err->message);
    return sc_unsupported(s, a->schema, a->path, "patternProperties", msg);
}

/* "\"" NAMES "\"" ws ":" ws RULE as one more alternative. */
static void add_alt(cg_buf *extra, size_t *n_extra, const char *names, const char *rule)
{
    cg_buf_printf(extra, "%s\"\\\"\" %s \"\\\"\" ws \":\" ws %s", (*n_extra)++ ? " | " : "",
                  names, rule);
}

/* The automaton's names as GBNF (rules to s->out), its start into e. */
static void dfa_names(sc *s, const cg_dfa *d, cg_buf *e)
{
    char name[24];
    sc_fresh(s, name);
    cg_dfa_emit_gbnf(d, name, s->out, e);
}

/* *acc op= d. */
static bool combine(sc *s, cg_dfa *acc, const cg_dfa *d, cg_dfa_op op, cg_error *err)
{
    cg_dfa r;
    if (!cg_dfa_product(acc, d, op, &r, &s->dfa, err))
        return false;
    cg_dfa_free(acc);
    *acc = r;
    return true;
}

/* Whether a and b share a name (*meet); false when that could not be decided. */
static bool meets(sc *s, const cg_dfa *a, const cg_dfa *b, bool *meet, cg_error *err)
{
    cg_dfa both;
    if (!cg_dfa_product(a, b, CG_DFA_AND, &both, &s->dfa, err))
        return false;
    *meet = !cg_dfa_is_empty(&both);
    cg_dfa_free(&both);
    return true;
}

/* The names of pattern i and of no other pattern: appended as an
 * alternative with `rule` (nothing when none is left). */
static bool only_names(sc *s, pat *P, size_t n, size_t i, const cg_dfa *declared,
                       const char *rule, cg_buf *extra, size_t *n_extra)
{
    cg_error err;
    if (!P[i].built) {
        add_alt(extra, n_extra, P[i].text.s, rule);
        return true;
    }
    cg_dfa rest = {0};
    bool any = false, ok = true;
    for (size_t j = 0; ok && j < n; j++) {
        bool meet = false;
        if (j == i || !P[j].built)
            continue;
        ok = meets(s, &P[i].d, &P[j].d, &meet, &err) &&
             (!meet || combine(s, &rest, &P[j].d, CG_DFA_OR, &err));
        any = any || meet;
    }
    /* Its own text where nothing is taken from its names. */
    bool own_text = !any && !P[i].has_declared;
    cg_dfa only = {0};
    if (ok && !own_text)
        ok = cg_dfa_product(&P[i].d, &rest, CG_DFA_MINUS, &only, &s->dfa, &err);
    /* A declared name is its property's, patterns merged into it. */
    if (ok && P[i].has_declared)
        ok = combine(s, &only, declared, CG_DFA_MINUS, &err);
    cg_dfa_free(&rest);
    if (!ok) {
        cg_dfa_free(&only);
        add_alt(extra, n_extra, P[i].text.s, rule);
        return pat_unsupported(s, &P[i], "against the other patterns", &err);
    }
    if (own_text) {
        add_alt(extra, n_extra, P[i].text.s, rule);
    } else if (!cg_dfa_is_empty(&only)) {
        cg_buf names = {0};
        dfa_names(s, &only, &names);
        add_alt(extra, n_extra, names.s, rule);
        cg_buf_free(&names);
    }
    cg_dfa_free(&only);
    return true;
}

/* The names of patterns i and j and of no third: their members satisfy
 * both schemas (sc_merge); none when no value does. */
static bool pair_names(sc *s, const char *path, pat *P, size_t n, size_t i, size_t j,
                       const cg_dfa *declared, cg_buf *extra, size_t *n_extra)
{
    cg_error err;
    cg_dfa both;
    if (!cg_dfa_product(&P[i].d, &P[j].d, CG_DFA_AND, &both, &s->dfa, &err))
        return pat_unsupported(s, &P[i], "against another pattern", &err);
    bool ok = true;
    for (size_t q = 0; ok && q < n && !cg_dfa_is_empty(&both); q++) {
        bool meet = false;
        if (q == i || q == j || !P[q].built)
            continue;
        ok = meets(s, &both, &P[q].d, &meet, &err) &&
             (!meet || combine(s, &both, &P[q].d, CG_DFA_MINUS, &err));
    }
    if (ok && (P[i].has_declared || P[j].has_declared))
        ok = combine(s, &both, declared, CG_DFA_MINUS, &err);
    if (!ok) {
        cg_dfa_free(&both);
        return pat_unsupported(s, &P[i], "against a third pattern", &err);
    }
    if (cg_dfa_is_empty(&both)) {
        cg_dfa_free(&both);
        return true;
    }
    char pp[600], key[300];
    snprintf(key, sizeof key, "%.140s and %.140s", P[i].re, P[j].re);
    sc_child_path(pp, sizeof pp, path, "patternProperties");
    sc_child_path(pp, sizeof pp, pp, key);
    sc_mark mark = sc_mark_now(s);
    const cj_value *m = sc_merge(s, P[i].schema, P[j].schema, pp);
    char rule[24];
    if (m && sc_gen_rule(s, m, pp, rule)) {
        cg_buf names = {0};
        dfa_names(s, &both, &names);
        add_alt(extra, n_extra, names.s, rule);
        cg_buf_free(&names);
    } else if (!sc_recover(s, mark)) {
        ok = false;   /* the merge was refused (strict) or failed */
    }
    /* else: no value satisfies both schemas, so no such member may appear. */
    cg_dfa_free(&both);
    return ok;
}

bool sc_patterns_open(sc *s, const cj_value *v, const char *path, bool declared,
                      sc_patterns *ps)
{
    const cj_value *pprops = cj_get(v, "patternProperties"), *add = cj_get(v, "additionalProperties");
    memset(ps, 0, sizeof *ps);
    if (!pprops || pprops->type != CJ_OBJECT || !pprops->n)
        return true;
    size_t n = pprops->n, n_true = 0, n_parsed = 0;
    pat *P = ps->P = calloc(n, sizeof *P);
    if (!P)
        return sc_fail(s, pprops, path, "out of memory");
    ps->n = n;
    ps->v = v;
    snprintf(ps->path, sizeof ps->path, "%s", path);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        pat *a = &P[i];
        a->re = pprops->keys[i];
        a->len = strlen(a->re);
        a->schema = pprops->items[i];
        sc_child_path(a->path, sizeof a->path, path, "patternProperties");
        sc_child_path(a->path, sizeof a->path, a->path, a->re);
        cg_error rerr;
        if (!cg_regex_to_gbnf(a->re, a->len, true, &a->text, &rerr)) {
            ok = sc_unsupported(s, a->schema, a->path, "patternProperties", rerr.message);
            continue;
        }
        if (a->text.oom)
            ok = sc_fail(s, pprops, path, "out of memory");
        a->parsed = true;
        a->is_false = a->schema->type == CJ_BOOL && !a->schema->boolean;
        n_parsed++;
        n_true += !a->is_false;
    }
    /* Whether other members may appear (gen_object's `open`). */
    bool add_false = add && add->type == CJ_BOOL && !add->boolean;
    ps->other_path = !add_false && (add || (!declared && n_true == 0) || s->opt.open_objects);
    ps->named = n_true > 0;
    ps->need = n_parsed > 1 || (n_parsed > 0 && (ps->other_path || declared));
    for (size_t i = 0; ok && ps->need && i < n; i++) {
        cg_error derr;
        if (!P[i].parsed)
            continue;
        P[i].built = cg_dfa_from_regex(P[i].re, P[i].len, true, &P[i].d, &s->dfa, &derr);
        if (!P[i].built)
            ok = pat_unsupported(s, &P[i], "its automaton", &derr);
    }
    return ok;
}

bool sc_patterns_declared(sc *s, sc_patterns *ps, const char *name, const char *path,
                          const cj_value **schema)
{
    size_t len = strlen(name), n_cp = 0;
    uint32_t *cps = malloc((len + 1) * sizeof *cps);
    if (!cps)
        return sc_fail(s, NULL, path, "out of memory");
    for (size_t at = 0; at < len; n_cp++) {
        int w = cg_utf8_decode(name + at, len - at, &cps[n_cp]);
        if (!w) {
            free(cps);
            return true;   /* not UTF-8: no pattern's characters spell it */
        }
        at += (size_t)w;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < ps->n; i++) {
        pat *a = &ps->P[i];
        if (!a->built || !cg_dfa_match(&a->d, cps, n_cp))
            continue;
        a->has_declared = true;
        if (*schema && (*schema)->type == CJ_BOOL && !(*schema)->boolean)
            continue;
        if (a->is_false || !*schema) {
            *schema = a->schema;
            continue;
        }
        sc_mark mark = sc_mark_now(s);
        const cj_value *m = sc_merge(s, *schema, a->schema, path);
        if (m) {
            *schema = m;
        } else if (sc_recover(s, mark)) {
            cj_value *no = sc_owned_node(s, CJ_BOOL);   /* no value satisfies both */
            if (!no)
                ok = sc_fail(s, NULL, path, "out of memory");
            else
                *schema = no;
        } else {
            ok = false;
        }
    }
    free(cps);
    return ok;
}

bool sc_patterns_gen(sc *s, sc_patterns *ps, const char *const *keys, size_t k, cg_buf *extra,
                     size_t *n_extra, sc_other_names *others)
{
    memset(others, 0, sizeof *others);
    others->named = ps->named;
    pat *P = ps->P;
    size_t n = ps->n;
    const cj_value *pprops = cj_get(ps->v, "patternProperties");
    const char *path = ps->path;
    bool ok = true;
    cg_dfa declared = {0};
    cg_error err;
    if (k && !(ok = cg_dfa_names(keys, k, &declared, &err)))
        return sc_fail(s, NULL, path, "%s", err.message);
    for (size_t i = 0; ok && i < n; i++) {
        char rule[24];
        if (!P[i].parsed || P[i].is_false)
            continue;
        ok = sc_gen_rule(s, P[i].schema, P[i].path, rule) &&
             only_names(s, P, n, i, &declared, rule, extra, n_extra);
    }
    for (size_t i = 0; ok && i < n; i++)
        for (size_t j = i + 1; ok && j < n; j++) {
            bool meet = false;
            if (!P[i].built || !P[j].built || P[i].is_false || P[j].is_false)
                continue;
            if (!meets(s, &P[i].d, &P[j].d, &meet, &err))
                ok = pat_unsupported(s, &P[i], "against another pattern", &err);
            else if (meet)
                ok = pair_names(s, path, P, n, i, j, &declared, extra, n_extra);
        }
    if (ok && ps->other_path && ps->need) {
        /* Other names: no pattern's (those not built were reported). */
        cg_dfa any = {0};
        bool built = true;
        for (size_t i = 0; built && i < n; i++)
            if (P[i].built)
                built = combine(s, &any, &P[i].d, CG_DFA_OR, &err);
        if (built)
            built = cg_dfa_complement(&any, &others->names, &s->dfa, &err);
        cg_dfa_free(&any);
        others->decided = built;
        if (!built) {
            char msg[400];
            snprintf(msg, sizeof msg, "the names no pattern matches (%.200s)", err.message);
            ok = sc_unsupported(s, pprops, path, "patternProperties", msg);
        }
    }
    cg_dfa_free(&declared);
    return ok;
}

void sc_patterns_close(sc_patterns *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        cg_buf_free(&ps->P[i].text);
        cg_dfa_free(&ps->P[i].d);
    }
    free(ps->P);
    memset(ps, 0, sizeof *ps);
}

bool sc_gen_other_name(sc *s, sc_other_names *others, const char *const *keys, size_t k,
                       const char *path, cg_buf *e, bool *written)
{
    *written = false;
    cg_dfa declared, left;
    cg_error err;
    if (!cg_dfa_names(keys, k, &declared, &err))
        return sc_fail(s, NULL, path, "%s", err.message);
    bool ok = cg_dfa_product(&others->names, &declared, CG_DFA_MINUS, &left, &s->dfa, &err);
    cg_dfa_free(&declared);
    if (!ok)
        return sc_fail(s, NULL, path, "%s", err.message);
    *written = !cg_dfa_is_empty(&left);
    if (*written) {
        cg_buf_puts(e, "\"\\\"\" ");
        dfa_names(s, &left, e);
        cg_buf_puts(e, " \"\\\"\"");
    }
    cg_dfa_free(&left);
    return ok;
}
