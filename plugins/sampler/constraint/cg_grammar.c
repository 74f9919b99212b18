/*
 * plugins/sampler/constraint/cg_grammar.c - building and checking the
 * byte grammar (see cg_grammar.h).
 */
#include "cg_grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

void cg_grammar_init(cg_grammar *g)
{
    memset(g, 0, sizeof *g);
    g->root = -1;
}

void cg_grammar_free(cg_grammar *g)
{
    for (size_t i = 0; i < g->n_rules; i++) {
        free(g->rules[i].name);
        free(g->rules[i].alts);
    }
    free(g->rules);
    free(g->name_index);
    free(g->elems);
    free(g->sets);
    memset(g, 0, sizeof *g);
    g->root = -1;
}

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static bool index_rebuild(cg_grammar *g, size_t cap)
{
    int32_t *t = malloc(cap * sizeof *t);
    if (!t)
        return false;
    memset(t, 0xff, cap * sizeof *t);
    for (size_t r = 0; r < g->n_rules; r++) {
        size_t j = name_hash(g->rules[r].name, strlen(g->rules[r].name)) & (cap - 1);
        while (t[j] >= 0)
            j = (j + 1) & (cap - 1);
        t[j] = (int32_t)r;
    }
    free(g->name_index);
    g->name_index = t;
    g->name_cap = cap;
    return true;
}

static int32_t rule_new(cg_grammar *g, char *name)
{
    if (!grow((void **)&g->rules, &g->cap_rules, g->n_rules + 1, sizeof *g->rules) ||
        ((g->n_rules + 1) * 2 > g->name_cap &&
         !index_rebuild(g, g->name_cap ? g->name_cap * 2 : 256))) {
        free(name);
        return -1;
    }
    cg_rule *r = &g->rules[g->n_rules];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->first_use = -1;
    size_t j = name_hash(name, strlen(name)) & (g->name_cap - 1);
    while (g->name_index[j] >= 0)
        j = (j + 1) & (g->name_cap - 1);
    g->name_index[j] = (int32_t)g->n_rules;
    return (int32_t)g->n_rules++;
}

int32_t cg_rule_get(cg_grammar *g, const char *name, size_t len)
{
    for (size_t j = g->name_cap ? name_hash(name, len) & (g->name_cap - 1) : 0;
         g->name_cap && g->name_index[j] >= 0; j = (j + 1) & (g->name_cap - 1)) {
        const char *n = g->rules[g->name_index[j]].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return g->name_index[j];
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, name, len);
    copy[len] = '\0';
    return rule_new(g, copy);
}

int32_t cg_rule_fresh(cg_grammar *g, const char *base)
{
    char buf[128];
    /* "#" cannot appear in a GBNF name, so a generated rule never meets a
     * user's. */
    snprintf(buf, sizeof buf, "%.100s#%zu", base, g->n_rules);
    char *copy = strdup(buf);
    if (!copy)
        return -1;
    int32_t id = rule_new(g, copy);
    if (id >= 0)
        g->rules[id].defined = true;
    return id;
}

bool cg_seq_push(cg_seq *s, uint8_t kind, int32_t arg)
{
    if (!grow((void **)&s->e, &s->cap, s->n + 1, sizeof *s->e))
        return false;
    s->e[s->n++] = (cg_elem){kind, arg};
    return true;
}

void cg_seq_free(cg_seq *s)
{
    free(s->e);
    memset(s, 0, sizeof *s);
}

bool cg_rule_add_alt(cg_grammar *g, int32_t rule, const cg_seq *seq)
{
    cg_rule *r = &g->rules[rule];
    if (!grow((void **)&g->elems, &g->cap_elems, g->n_elems + seq->n + 1, sizeof *g->elems) ||
        !grow((void **)&r->alts, &r->cap_alts, r->n_alts + 1, sizeof *r->alts))
        return false;
    r->alts[r->n_alts++] = (int32_t)g->n_elems;
    if (seq->n)
        memcpy(g->elems + g->n_elems, seq->e, seq->n * sizeof *seq->e);
    g->n_elems += seq->n;
    g->elems[g->n_elems++] = (cg_elem){CG_END, 0};
    return true;
}

int32_t cg_set_intern(cg_grammar *g, const uint8_t bits[32])
{
    for (size_t i = 0; i < g->n_sets; i++)
        if (memcmp(g->sets[i], bits, 32) == 0)
            return (int32_t)i;
    if (!grow((void **)&g->sets, &g->cap_sets, g->n_sets + 1, sizeof *g->sets))
        return -1;
    memcpy(g->sets[g->n_sets], bits, 32);
    return (int32_t)g->n_sets++;
}

/* ---- code points as UTF-8 byte sequences ---- */

static int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

int cg_utf8_encode(uint32_t cp, uint8_t b[4])
{
    int n = utf8_len(cp);
    switch (n) {
    case 1: b[0] = (uint8_t)cp; break;
    case 2: b[0] = (uint8_t)(0xC0 | cp >> 6); b[1] = (uint8_t)(0x80 | (cp & 0x3F)); break;
    case 3:
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        break;
    default:
        b[0] = (uint8_t)(0xF0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    }
    return n;
}

static bool range_seq(cg_grammar *g, int32_t rule, uint32_t lo, uint32_t hi)
{
    uint8_t a[4], b[4];
    int n = cg_utf8_encode(lo, a);
    cg_utf8_encode(hi, b);
    cg_seq s = {0};
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        uint8_t bits[32] = {0};
        for (unsigned x = a[i]; x <= b[i]; x++)
            cg_set_add(bits, (uint8_t)x);
        int32_t set = cg_set_intern(g, bits);
        ok = set >= 0 && cg_seq_push(&s, CG_BYTES, set);
    }
    ok = ok && cg_rule_add_alt(g, rule, &s);
    cg_seq_free(&s);
    return ok;
}

/* Split [lo, hi] until each piece is a product of byte ranges (the UTF-8
 * range split of RE2 and Go's regexp/syntax). */
static bool split_range(cg_grammar *g, int32_t rule, uint32_t lo, uint32_t hi)
{
    static const uint32_t edges[] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= edges[i] && hi > edges[i])
            return split_range(g, rule, lo, edges[i]) && split_range(g, rule, edges[i] + 1, hi);
    for (int i = 1; i < utf8_len(lo); i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m)
                return split_range(g, rule, lo, lo | m) && split_range(g, rule, (lo | m) + 1, hi);
            if ((hi & m) != m)
                return split_range(g, rule, lo, (hi & ~m) - 1) && split_range(g, rule, hi & ~m, hi);
        }
    }
    return range_seq(g, rule, lo, hi);
}

bool cg_push_codepoint_ranges(cg_grammar *g, cg_seq *seq, const uint32_t *ranges,
                              size_t n_ranges)
{
    bool ascii = true;
    for (size_t i = 0; i < n_ranges; i++)
        ascii = ascii && ranges[2 * i + 1] < 0x80;
    if (ascii) {
        uint8_t bits[32] = {0};
        for (size_t i = 0; i < n_ranges; i++)
            for (uint32_t c = ranges[2 * i]; c <= ranges[2 * i + 1]; c++)
                cg_set_add(bits, (uint8_t)c);
        int32_t set = cg_set_intern(g, bits);
        return set >= 0 && cg_seq_push(seq, CG_BYTES, set);
    }
    int32_t rule = cg_rule_fresh(g, "char");
    if (rule < 0)
        return false;
    for (size_t i = 0; i < n_ranges; i++) {
        uint32_t lo = ranges[2 * i], hi = ranges[2 * i + 1];
        /* Surrogates are not characters: UTF-8 never encodes them. */
        if (lo < 0xD800 && hi >= 0xD800) {
            if (!split_range(g, rule, lo, 0xD7FF))
                return false;
            lo = 0xE000;
        }
        if (lo >= 0xD800 && lo <= 0xDFFF)
            lo = 0xE000;
        if (lo <= hi && !split_range(g, rule, lo, hi))
            return false;
    }
    return cg_seq_push(seq, CG_REF, rule);
}

/* ---- checks ---- */

static void fail(cg_error *err, long offset, const char *fmt, const char *a, const char *b)
{
    err->offset = offset;
    snprintf(err->message, sizeof err->message, fmt, a, b);
}

/* Rules that can match the empty string; rules that can finish at all. */
static void fixpoint(const cg_grammar *g, bool *nullable, bool *productive)
{
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < g->n_rules; r++)
            for (size_t a = 0; a < g->rules[r].n_alts; a++) {
                bool all_null = true, all_prod = true;
                for (int32_t p = g->rules[r].alts[a]; g->elems[p].kind != CG_END; p++) {
                    const cg_elem *e = &g->elems[p];
                    all_null = all_null && e->kind == CG_REF && nullable[e->arg];
                    all_prod = all_prod && (e->kind == CG_BYTES || productive[e->arg]);
                }
                if (all_null && !nullable[r])
                    nullable[r] = changed = true;
                if (all_prod && !productive[r])
                    productive[r] = changed = true;
            }
    }
}

/* Depth-first search over "r can start with r2" edges; a back edge is left
 * recursion. state: 0 new, 1 on the path, 2 done. */
static int32_t left_cycle(const cg_grammar *g, const bool *nullable, uint8_t *state, int32_t r)
{
    state[r] = 1;
    for (size_t a = 0; a < g->rules[r].n_alts; a++)
        for (int32_t p = g->rules[r].alts[a]; g->elems[p].kind == CG_REF; p++) {
            int32_t s = g->elems[p].arg;
            if (state[s] == 1)
                return s;
            if (state[s] == 0) {
                int32_t c = left_cycle(g, nullable, state, s);
                if (c >= 0)
                    return c;
            }
            if (!nullable[s])
                break;
        }
    state[r] = 2;
    return -1;
}

/* A bounded repetition of something that can match the empty string,
 * ("a"*){0,3}, is no left recursion, but its chain's unbounded twin
 * (star ::= x star | (empty)) would be: such a chain counts without one,
 * and the twin, which nothing references, is left matching the empty
 * string only. */
static void drop_nullable_twins(cg_grammar *g, const bool *nullable)
{
    for (size_t r = 0; r < g->n_rules; r++) {
        cg_rule *c = &g->rules[r];
        if (c->count_left <= 0)
            continue;
        cg_rule *t = &g->rules[c->count_star];
        bool x_nullable = t->n_alts > 0;
        for (int32_t p = t->n_alts ? t->alts[0] : 0;
             x_nullable && g->elems[p].kind != CG_END && g->elems[p + 1].kind != CG_END; p++)
            x_nullable = g->elems[p].kind == CG_REF && nullable[g->elems[p].arg];
        if (!x_nullable)
            continue;
        c->count_left = 0;
        if (t->n_alts == 2) {   /* (x star, then the empty alternative) */
            t->alts[0] = t->alts[1];
            t->n_alts = 1;
        }
    }
}

bool cg_grammar_finish(cg_grammar *g, const char *root_name, cg_error *err)
{
    for (size_t r = 0; r < g->n_rules; r++)
        if (!g->rules[r].defined) {
            fail(err, g->rules[r].first_use, "rule '%s' is used but never defined%s",
                 g->rules[r].name, "");
            return false;
        }
    g->root = -1;
    for (size_t r = 0; r < g->n_rules; r++)
        if (strcmp(g->rules[r].name, root_name) == 0)
            g->root = (int32_t)r;
    if (g->root < 0) {
        fail(err, -1, "the grammar has no rule named '%s' (the start rule)%s", root_name, "");
        return false;
    }
    bool *nullable = calloc(g->n_rules, 1), *productive = calloc(g->n_rules, 1);
    uint8_t *state = calloc(g->n_rules, 1);
    bool ok = nullable && productive && state;
    if (!ok)
        fail(err, -1, "out of memory checking the grammar%s%s", "", "");
    if (ok) {
        fixpoint(g, nullable, productive);
        drop_nullable_twins(g, nullable);
        for (size_t r = 0; ok && r < g->n_rules; r++)
            if (!productive[r]) {
                fail(err, g->rules[r].first_use,
                     "rule '%s' can never finish: every alternative recurses without a "
                     "base case%s", g->rules[r].name, "");
                ok = false;
            }
        for (size_t r = 0; ok && r < g->n_rules; r++) {
            int32_t c = state[r] ? -1 : left_cycle(g, nullable, state, (int32_t)r);
            if (c >= 0) {
                fail(err, g->rules[c].first_use,
                     "rule '%s' is left-recursive (it can reach itself before matching any "
                     "byte, e.g. a repetition of something that matches the empty "
                     "string); rewrite it right-recursively%s", g->rules[c].name, "");
                ok = false;
            }
        }
    }
    free(nullable);
    free(productive);
    free(state);
    return ok;
}

void cg_line_col(const char *text, size_t len, long offset, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (long i = 0; i < offset && (size_t)i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}
