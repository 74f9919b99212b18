/*
 * plugins/sampler/constraint/cg_regex_dfa.c - automata over code points
 * (cg_regex_dfa.h): a Thompson NFA from cg_regex.c's parse tree, the
 * subset construction with range-labelled transitions, products, and the
 * GBNF writer. The tree is the GBNF translator's own, so a pattern means
 * the same here as in the grammar; every bound that is hit is reported as
 * an error, never as a smaller language.
 */
#include "cg_regex_dfa.h"

#include "cg_regex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CP_MAX 0x10FFFFu
/* NFA states one pattern may expand to (its counted repetitions copied). */
#define NFA_STATES_MAX 20000

static bool fail(cg_error *err, const char *msg)
{
    err->offset = -1;
    snprintf(err->message, sizeof err->message, "%s", msg);
    return false;
}

static bool spend(cg_dfa_budget *b, long n, cg_error *err)
{
    b->work -= n;
    return b->work >= 0 ||
           fail(err, "the automata of this schema's patterns take too long to build");
}

void cg_dfa_free(cg_dfa *d)
{
    free(d->accept);
    free(d->first);
    free(d->edges);
    memset(d, 0, sizeof *d);
}

/* ---- an automaton under construction ---- */

typedef struct builder {
    cg_dfa d;
    size_t cap_states, n_edges, cap_edges;
    size_t limit;
} builder;

static bool b_state(builder *b, bool accept, cg_error *err)
{
    if (b->d.n_states >= b->limit) {
        char msg[96];
        snprintf(msg, sizeof msg, "its automaton has more than %zu states", b->limit);
        return fail(err, msg);
    }
    if (b->d.n_states == b->cap_states) {
        size_t cap = b->cap_states ? 2 * b->cap_states : 16;
        bool *acc = realloc(b->d.accept, cap * sizeof *acc);
        if (acc)
            b->d.accept = acc;
        size_t *first = realloc(b->d.first, (cap + 1) * sizeof *first);
        if (first)
            b->d.first = first;
        if (!acc || !first)
            return fail(err, "out of memory");
        b->cap_states = cap;
    }
    b->d.accept[b->d.n_states++] = accept;
    return true;
}

/* Append an edge of the state being filled (edges come state by state). */
static bool b_edge(builder *b, uint32_t lo, uint32_t hi, uint32_t to, cg_error *err)
{
    if (b->n_edges) {
        cg_dfa_edge *last = &b->d.edges[b->n_edges - 1];
        if (last->to == to && last->hi + 1 == lo) {
            last->hi = hi;
            return true;
        }
    }
    if (b->n_edges == b->cap_edges) {
        size_t cap = b->cap_edges ? 2 * b->cap_edges : 32;
        cg_dfa_edge *e = realloc(b->d.edges, cap * sizeof *e);
        if (!e)
            return fail(err, "out of memory");
        b->d.edges = e;
        b->cap_edges = cap;
    }
    b->d.edges[b->n_edges++] = (cg_dfa_edge){lo, hi, to};
    return true;
}

/* Keep the states reachable from 0 that can reach an accepting state,
 * renumbered in order (0 stays the start); none when 0 cannot. */
static bool trim(cg_dfa *d, cg_error *err)
{
    size_t n = d->n_states;
    if (!n)
        return true;
    bool *live = calloc(n, sizeof *live);
    uint32_t *map = malloc(n * sizeof *map);
    if (!live || !map) {
        free(live);
        free(map);
        return fail(err, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        live[i] = d->accept[i];
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = n; i-- > 0;)
            for (size_t e = d->first[i]; !live[i] && e < d->first[i + 1]; e++)
                if (live[d->edges[e].to])
                    live[i] = changed = true;
    }
    if (!live[0]) {
        free(live);
        free(map);
        cg_dfa_free(d);
        return true;
    }
    /* States are numbered in discovery order from 0, so every live one
     * is reachable; drop the edges to dead ones. */
    size_t m = 0, ne = 0;
    for (size_t i = 0; i < n; i++)
        if (live[i])
            map[i] = (uint32_t)m++;
    for (size_t i = 0, j = 0; i < n; i++) {
        if (!live[i])
            continue;
        size_t start = ne;
        for (size_t e = d->first[i]; e < d->first[i + 1]; e++)
            if (live[d->edges[e].to]) {
                d->edges[ne] = d->edges[e];
                d->edges[ne++].to = map[d->edges[e].to];
            }
        d->accept[j] = d->accept[i];
        d->first[j++] = start;
    }
    d->first[m] = ne;
    d->n_states = m;
    free(live);
    free(map);
    return true;
}

static bool b_finish(builder *b, cg_dfa *out, cg_error *err)
{
    b->d.first[b->d.n_states] = b->n_edges;
    *out = b->d;
    memset(b, 0, sizeof *b);
    return trim(out, err);
}

/* ---- sets of integers (NFA state sets, state pairs) to ids ---- */

typedef struct keymap {
    uint32_t *slots;       /* id + 1, 0 empty */
    size_t cap;
    int32_t *pool;
    size_t pool_n, pool_cap;
    size_t *off, *len;
    size_t n, cap_keys;
} keymap;

static uint64_t key_hash(const int32_t *k, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint32_t)k[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static void keymap_free(keymap *m)
{
    free(m->slots);
    free(m->pool);
    free(m->off);
    free(m->len);
    memset(m, 0, sizeof *m);
}

static bool keymap_rehash(keymap *m)
{
    size_t cap = m->cap ? 2 * m->cap : 64;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t id = 0; id < m->n; id++) {
        size_t h = key_hash(m->pool + m->off[id], m->len[id]) & (cap - 1);
        while (slots[h])
            h = (h + 1) & (cap - 1);
        slots[h] = (uint32_t)id + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return true;
}

/* The id of key k (a new one, n before the call, when *added); -1 on OOM. */
static long keymap_id(keymap *m, const int32_t *k, size_t n, bool *added)
{
    *added = false;
    if (2 * (m->n + 1) > m->cap && !keymap_rehash(m))
        return -1;
    size_t h = key_hash(k, n) & (m->cap - 1);
    for (; m->slots[h]; h = (h + 1) & (m->cap - 1)) {
        size_t id = m->slots[h] - 1;
        if (m->len[id] == n && !memcmp(m->pool + m->off[id], k, n * sizeof *k))
            return (long)id;
    }
    if (m->n == m->cap_keys) {
        size_t cap = m->cap_keys ? 2 * m->cap_keys : 64;
        size_t *off = realloc(m->off, cap * sizeof *off);
        if (off)
            m->off = off;
        size_t *len = realloc(m->len, cap * sizeof *len);
        if (len)
            m->len = len;
        if (!off || !len)
            return -1;
        m->cap_keys = cap;
    }
    if (m->pool_n + n > m->pool_cap) {
        size_t cap = m->pool_cap ? 2 * m->pool_cap : 256;
        while (cap < m->pool_n + n)
            cap *= 2;
        int32_t *pool = realloc(m->pool, cap * sizeof *pool);
        if (!pool)
            return -1;
        m->pool = pool;
        m->pool_cap = cap;
    }
    memcpy(m->pool + m->pool_n, k, n * sizeof *k);
    m->off[m->n] = m->pool_n;
    m->len[m->n] = n;
    m->pool_n += n;
    m->slots[h] = (uint32_t)m->n + 1;
    *added = true;
    return (long)m->n++;
}

/* ---- Thompson NFA from the parse tree ---- */

typedef struct nstate {
    int32_t eps[2];
    int n_eps;
    const uint32_t *ranges;   /* one character of these, to `to` */
    size_t n_ranges;
    int32_t to;
} nstate;

typedef struct nfa {
    nstate *s;
    size_t n, cap;
    cg_dfa_budget *b;
    cg_error *err;
} nfa;

static const uint32_t any_char[2] = {0, CP_MAX};

static int32_t n_new(nfa *a)
{
    if (a->n >= NFA_STATES_MAX) {
        fail(a->err, "the pattern expands to more than 20000 automaton states");
        return -1;
    }
    if (!spend(a->b, 1, a->err))
        return -1;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        nstate *s = realloc(a->s, cap * sizeof *s);
        if (!s) {
            fail(a->err, "out of memory");
            return -1;
        }
        a->s = s;
        a->cap = cap;
    }
    a->s[a->n] = (nstate){{-1, -1}, 0, NULL, 0, -1};
    return (int32_t)a->n++;
}

static void n_eps(nfa *a, int32_t from, int32_t to)
{
    a->s[from].eps[a->s[from].n_eps++] = to;
}

/* A fragment: from *start to *end, *end without outgoing edges. */
static bool n_build(nfa *a, const cg_rx_node *x, int32_t *start, int32_t *end)
{
    switch (x->kind) {
    case CG_RX_SET:
        if ((*start = n_new(a)) < 0 || (*end = n_new(a)) < 0)
            return false;
        a->s[*start].ranges = x->ranges;
        a->s[*start].n_ranges = x->n_ranges;
        a->s[*start].to = *end;
        return true;
    case CG_RX_CAT:
        if ((*start = *end = n_new(a)) < 0)
            return false;
        for (size_t i = 0; i < x->n_kids; i++) {
            int32_t s, e;
            if (!n_build(a, x->kids[i], &s, &e))
                return false;
            n_eps(a, *end, s);
            *end = e;
        }
        return true;
    case CG_RX_ALT: {
        /* A chain of two-way splits: each to one alternative and to the
         * next split, the last split to the last two alternatives. */
        if ((*start = n_new(a)) < 0 || (*end = n_new(a)) < 0)
            return false;
        int32_t split = *start;
        for (size_t i = 0; i < x->n_kids; i++) {
            int32_t s, e;
            if (!n_build(a, x->kids[i], &s, &e))
                return false;
            n_eps(a, split, s);
            n_eps(a, e, *end);
            if (i + 2 < x->n_kids) {
                int32_t next = n_new(a);
                if (next < 0)
                    return false;
                n_eps(a, split, next);
                split = next;
            }
        }
        return true;
    }
    case CG_RX_REP: {
        if ((*start = *end = n_new(a)) < 0)
            return false;
        for (long i = 0; i < x->min; i++) {
            int32_t s, e;
            if (!n_build(a, x->kids[0], &s, &e))
                return false;
            n_eps(a, *end, s);
            *end = e;
        }
        if (x->max < 0) {
            int32_t loop = n_new(a), out = n_new(a), s, e;
            if (loop < 0 || out < 0 || !n_build(a, x->kids[0], &s, &e))
                return false;
            n_eps(a, *end, loop);
            n_eps(a, loop, s);
            n_eps(a, loop, out);
            n_eps(a, e, loop);
            *end = out;
        } else if (x->max > x->min) {
            int32_t out = n_new(a);
            if (out < 0)
                return false;
            for (long i = x->min; i < x->max; i++) {
                int32_t s, e;
                if (!n_build(a, x->kids[0], &s, &e))
                    return false;
                n_eps(a, *end, s);
                n_eps(a, *end, out);
                *end = e;
            }
            n_eps(a, *end, out);
            *end = out;
        }
        return true;
    }
    }
    return fail(a->err, "unknown pattern node");
}

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

typedef struct subset {
    nfa *a;
    uint32_t *stamp, gen;
    int32_t *stack;
} subset;

/* The epsilon closure of set[0..*n) in place (set has room for all NFA
 * states), sorted. */
static bool closure(subset *c, int32_t *set, size_t *n)
{
    c->gen++;
    size_t top = 0, m = 0;
    for (size_t i = 0; i < *n; i++)
        if (c->stamp[set[i]] != c->gen) {
            c->stamp[set[i]] = c->gen;
            c->stack[top++] = set[i];
        }
    while (top) {
        int32_t q = c->stack[--top];
        set[m++] = q;
        const nstate *s = &c->a->s[q];
        for (int i = 0; i < s->n_eps; i++)
            if (c->stamp[s->eps[i]] != c->gen) {
                c->stamp[s->eps[i]] = c->gen;
                c->stack[top++] = s->eps[i];
            }
    }
    *n = m;
    qsort(set, m, sizeof *set, cmp_i32);
    return spend(c->a->b, (long)m + 1, c->a->err);
}

static bool subset_construct(nfa *a, int32_t start, int32_t final, cg_dfa *out)
{
    cg_error *err = a->err;
    size_t n = a->n;
    subset c = {a, calloc(n, sizeof *c.stamp), 0, malloc(n * sizeof *c.stack)};
    int32_t *set = malloc(n * sizeof *set);
    uint32_t *points = NULL;
    size_t cap_points = 0;
    keymap map = {0};
    builder b = {.limit = CG_DFA_STATES_MAX};
    bool ok = c.stamp && c.stack && set;
    if (!ok)
        fail(err, "out of memory");
    size_t m = 1;
    if (ok) {
        set[0] = start;
        ok = closure(&c, set, &m);
    }
    bool added;
    if (ok && (keymap_id(&map, set, m, &added) < 0 ||
               !b_state(&b, bsearch(&final, set, m, sizeof *set, cmp_i32) != NULL, err)))
        ok = false;
    for (size_t id = 0; ok && id < map.n; id++) {
        b.d.first[id] = b.n_edges;
        /* The boundaries of every range leaving the set split the code
         * points into intervals each of which goes to one set. */
        size_t off = map.off[id], len = map.len[id], n_points = 0;
        for (size_t i = 0; ok && i < len; i++) {
            const nstate *s = &a->s[map.pool[off + i]];
            if (n_points + 2 * s->n_ranges > cap_points) {
                size_t cap = 2 * (n_points + 2 * s->n_ranges) + 16;
                uint32_t *p = realloc(points, cap * sizeof *p);
                if (!p) {
                    ok = fail(err, "out of memory");
                    break;
                }
                points = p;
                cap_points = cap;
            }
            for (size_t r = 0; r < s->n_ranges; r++) {
                points[n_points++] = s->ranges[2 * r];
                if (s->ranges[2 * r + 1] < CP_MAX)
                    points[n_points++] = s->ranges[2 * r + 1] + 1;
            }
        }
        if (!ok)
            break;
        if (n_points)
            qsort(points, n_points, sizeof *points, cmp_u32);
        size_t u = 0;
        for (size_t i = 0; i < n_points; i++)
            if (!u || points[u - 1] != points[i])
                points[u++] = points[i];
        for (size_t k = 0; ok && k < u; k++) {
            uint32_t lo = points[k], hi = k + 1 < u ? points[k + 1] - 1 : CP_MAX;
            size_t t = 0;
            /* map.pool may move as sets are added: index it afresh. */
            for (size_t i = 0; i < len; i++) {
                const nstate *s = &a->s[map.pool[map.off[id] + i]];
                for (size_t r = 0; r < s->n_ranges; r++)
                    if (s->ranges[2 * r] <= lo && lo <= s->ranges[2 * r + 1]) {
                        set[t++] = s->to;
                        break;
                    }
            }
            ok = spend(a->b, (long)len, err);
            if (!ok || !t)
                continue;
            ok = closure(&c, set, &t);
            long to = ok ? keymap_id(&map, set, t, &added) : 0;
            if (to < 0)
                ok = fail(err, "out of memory");
            else if (ok && added)
                ok = b_state(&b, bsearch(&final, set, t, sizeof *set, cmp_i32) != NULL, err);
            if (ok)
                ok = b_edge(&b, lo, hi, (uint32_t)to, err);
        }
    }
    free(c.stamp);
    free(c.stack);
    free(set);
    free(points);
    keymap_free(&map);
    if (ok)
        return b_finish(&b, out, err);
    cg_dfa_free(&b.d);
    return false;
}

/* A new state that reads any character and stays; -1 past the budget. */
static int32_t n_any_loop(nfa *a)
{
    int32_t loop = n_new(a);
    if (loop >= 0) {
        a->s[loop].ranges = any_char;
        a->s[loop].n_ranges = 1;
        a->s[loop].to = loop;
    }
    return loop;
}

bool cg_dfa_from_regex(const char *re, size_t len, bool search, cg_dfa *out,
                       cg_dfa_budget *b, cg_error *err)
{
    memset(out, 0, sizeof *out);
    cg_rx t;
    if (!cg_rx_parse(re, len, &t, err)) {
        cg_rx_free(&t);
        return false;
    }
    nfa a = {NULL, 0, 0, b, err};
    int32_t start, end;
    bool ok = n_build(&a, t.root, &start, &end);
    /* An unanchored side may hold anything: a loop over every character. */
    if (ok && search && !t.anchored_start) {
        int32_t loop = n_any_loop(&a);
        if ((ok = loop >= 0)) {
            n_eps(&a, loop, start);
            start = loop;
        }
    }
    if (ok && search && !t.anchored_end) {
        int32_t loop = n_any_loop(&a);
        if ((ok = loop >= 0)) {
            n_eps(&a, end, loop);
            end = loop;
        }
    }
    if (ok)
        ok = subset_construct(&a, start, end, out);
    free(a.s);
    cg_rx_free(&t);
    return ok;
}

bool cg_dfa_universe(cg_dfa *out)
{
    cg_error err;
    builder b = {.limit = 1};
    if (!b_state(&b, true, &err) || !b_edge(&b, 0, CP_MAX, 0, &err)) {
        cg_dfa_free(&b.d);
        return false;
    }
    b.d.first[0] = 0;
    return b_finish(&b, out, &err);
}

/* ---- a finite set of names: a trie ---- */

static int cmp_trie_edge(const void *x, const void *y)
{
    const uint32_t *a = x, *b = y;   /* {parent, cp, child} */
    if (a[0] != b[0])
        return (a[0] > b[0]) - (a[0] < b[0]);
    return (a[1] > b[1]) - (a[1] < b[1]);
}

bool cg_dfa_names(const char *const *names, size_t n, cg_dfa *out, cg_error *err)
{
    memset(out, 0, sizeof *out);
    /* Trie edges {parent, cp, child}, found by (parent, cp) in a map. */
    size_t n_nodes = 1, cap_e = 0;
    uint32_t *e = NULL;
    bool *acc = calloc(1, sizeof *acc);
    keymap map = {0};
    bool ok = acc != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        size_t len = strlen(names[i]);
        bool valid = true;
        for (size_t at = 0; valid && at < len;) {
            uint32_t cp;
            int w = cg_utf8_decode(names[i] + at, len - at, &cp);
            valid = w > 0;
            at += w > 0 ? (size_t)w : 0;
        }
        if (!valid)
            continue;
        size_t node = 0;
        for (size_t at = 0; ok && at < len;) {
            uint32_t cp;
            at += (size_t)cg_utf8_decode(names[i] + at, len - at, &cp);
            int32_t key[2] = {(int32_t)node, (int32_t)cp};
            bool added;
            long id = keymap_id(&map, key, 2, &added);
            if (id < 0) {
                ok = false;
                break;
            }
            if (!added) {
                node = e[3 * id + 2];
                continue;
            }
            if ((size_t)id >= cap_e) {
                cap_e = cap_e ? 2 * cap_e : 64;
                uint32_t *ne = realloc(e, 3 * cap_e * sizeof *ne);
                bool *na = realloc(acc, (cap_e + 1) * sizeof *na);
                if (ne)
                    e = ne;
                if (na)
                    acc = na;
                if (!ne || !na) {
                    ok = false;
                    break;
                }
            }
            e[3 * id] = (uint32_t)node;
            e[3 * id + 1] = cp;
            e[3 * id + 2] = (uint32_t)n_nodes;
            acc[n_nodes] = false;
            node = n_nodes++;
        }
        if (ok)
            acc[node] = true;
    }
    size_t n_e = map.n;
    keymap_free(&map);
    builder b = {.limit = n_nodes};
    if (ok && n_e)
        qsort(e, n_e, 3 * sizeof *e, cmp_trie_edge);
    for (size_t s = 0, j = 0; ok && s < n_nodes; s++) {
        ok = b_state(&b, acc[s], err);
        b.d.first[s] = b.n_edges;
        for (; ok && j < n_e && e[3 * j] == s; j++)
            ok = b_edge(&b, e[3 * j + 1], e[3 * j + 1], e[3 * j + 2], err);
    }
    free(e);
    free(acc);
    if (ok)
        return b_finish(&b, out, err);
    cg_dfa_free(&b.d);
    return fail(err, "out of memory");
}

/* ---- products ---- */

static int32_t step_edge(const cg_dfa *d, int32_t s, uint32_t x, size_t *at)
{
    if (s < 0)
        return -1;
    size_t end = d->first[s + 1];
    while (*at < end && d->edges[*at].hi < x)
        (*at)++;
    return *at < end && d->edges[*at].lo <= x ? (int32_t)d->edges[*at].to : -1;
}

static bool pair_live(cg_dfa_op op, int32_t a, int32_t b)
{
    return op == CG_DFA_OR ? (a >= 0 || b >= 0) : op == CG_DFA_AND ? (a >= 0 && b >= 0) : a >= 0;
}

static bool pair_accept(const cg_dfa *da, const cg_dfa *db, cg_dfa_op op, int32_t a, int32_t b)
{
    bool x = a >= 0 && da->accept[a], y = b >= 0 && db->accept[b];
    return op == CG_DFA_OR ? x || y : op == CG_DFA_AND ? x && y : x && !y;
}

bool cg_dfa_product(const cg_dfa *da, const cg_dfa *db, cg_dfa_op op, cg_dfa *out,
                    cg_dfa_budget *budget, cg_error *err)
{
    memset(out, 0, sizeof *out);
    int32_t a0 = da->n_states ? 0 : -1, b0 = db->n_states ? 0 : -1;
    builder b = {.limit = CG_DFA_STATES_MAX};
    /* Minus a finite set: at most one state per trie node beside a's own. */
    if (op == CG_DFA_MINUS && da->n_states + db->n_states + 1 > b.limit)
        b.limit = da->n_states + db->n_states + 1;
    if (!pair_live(op, a0, b0)) {
        memset(out, 0, sizeof *out);
        return true;
    }
    keymap map = {0};
    uint32_t *points = NULL;
    bool added, ok = true;
    int32_t key[2] = {a0, b0};
    if (keymap_id(&map, key, 2, &added) < 0)
        ok = fail(err, "out of memory");
    ok = ok && b_state(&b, pair_accept(da, db, op, a0, b0), err);
    for (size_t id = 0; ok && id < map.n; id++) {
        b.d.first[id] = b.n_edges;
        int32_t sa = map.pool[map.off[id]], sb = map.pool[map.off[id] + 1];
        size_t ea = sa >= 0 ? da->first[sa + 1] - da->first[sa] : 0;
        size_t eb = sb >= 0 ? db->first[sb + 1] - db->first[sb] : 0;
        uint32_t *p = realloc(points, (2 * (ea + eb) + 1) * sizeof *p);
        if (!p) {
            ok = fail(err, "out of memory");
            break;
        }
        points = p;
        size_t n_points = 0;
        points[n_points++] = 0;
        for (size_t i = 0; i < ea; i++) {
            const cg_dfa_edge *x = &da->edges[da->first[sa] + i];
            points[n_points++] = x->lo;
            if (x->hi < CP_MAX)
                points[n_points++] = x->hi + 1;
        }
        for (size_t i = 0; i < eb; i++) {
            const cg_dfa_edge *x = &db->edges[db->first[sb] + i];
            points[n_points++] = x->lo;
            if (x->hi < CP_MAX)
                points[n_points++] = x->hi + 1;
        }
        qsort(points, n_points, sizeof *points, cmp_u32);
        size_t u = 0;
        for (size_t i = 0; i < n_points; i++)
            if (!u || points[u - 1] != points[i])
                points[u++] = points[i];
        ok = spend(budget, (long)(u + ea + eb + 1), err);
        size_t at_a = sa >= 0 ? da->first[sa] : 0, at_b = sb >= 0 ? db->first[sb] : 0;
        for (size_t k = 0; ok && k < u; k++) {
            uint32_t lo = points[k], hi = k + 1 < u ? points[k + 1] - 1 : CP_MAX;
            int32_t ta = step_edge(da, sa, lo, &at_a), tb = step_edge(db, sb, lo, &at_b);
            if (!pair_live(op, ta, tb))
                continue;
            key[0] = ta;
            key[1] = tb;
            long to = keymap_id(&map, key, 2, &added);
            if (to < 0)
                ok = fail(err, "out of memory");
            else if (added)
                ok = b_state(&b, pair_accept(da, db, op, ta, tb), err);
            if (ok)
                ok = b_edge(&b, lo, hi, (uint32_t)to, err);
        }
    }
    free(points);
    keymap_free(&map);
    if (ok)
        return b_finish(&b, out, err);
    cg_dfa_free(&b.d);
    return false;
}

bool cg_dfa_complement(const cg_dfa *a, cg_dfa *out, cg_dfa_budget *b, cg_error *err)
{
    cg_dfa all;
    if (!cg_dfa_universe(&all))
        return fail(err, "out of memory");
    bool ok = cg_dfa_product(&all, a, CG_DFA_MINUS, out, b, err);
    cg_dfa_free(&all);
    return ok;
}

bool cg_dfa_match(const cg_dfa *d, const uint32_t *cps, size_t n)
{
    if (!d->n_states)
        return false;
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        size_t e = d->first[s];
        while (e < d->first[s + 1] && d->edges[e].hi < cps[i])
            e++;
        if (e == d->first[s + 1] || d->edges[e].lo > cps[i])
            return false;
        s = d->edges[e].to;
    }
    return d->accept[s];
}

void cg_dfa_emit_gbnf(const cg_dfa *d, const char *prefix, cg_buf *rules, cg_buf *expr)
{
    if (!d->n_states)
        return;
    cg_buf_printf(expr, "%s-d0", prefix);
    uint32_t *r = NULL;
    bool *done = NULL;
    for (size_t s = 0; s < d->n_states; s++) {
        size_t first = d->first[s], n = d->first[s + 1] - first;
        cg_buf_printf(rules, "%s-d%zu ::= ", prefix, s);
        size_t alts = 0;
        if (d->accept[s]) {
            cg_buf_puts(rules, "\"\"");
            alts++;
        }
        /* One alternative per target: its characters as one set. */
        uint32_t *nr = realloc(r, (2 * n + 1) * sizeof *nr);
        bool *nd = realloc(done, (n + 1) * sizeof *nd);
        if (nr)
            r = nr;
        if (nd)
            done = nd;
        if (!nr || !nd) {
            rules->oom = true;
            break;
        }
        memset(done, 0, (n + 1) * sizeof *done);
        for (size_t i = 0; i < n; i++) {
            if (done[i])
                continue;
            uint32_t to = d->edges[first + i].to;
            size_t m = 0;
            for (size_t j = i; j < n; j++)
                if (!done[j] && d->edges[first + j].to == to) {
                    done[j] = true;
                    r[2 * m] = d->edges[first + j].lo;
                    r[2 * m + 1] = d->edges[first + j].hi;
                    m++;
                }
            cg_buf_puts(rules, alts++ ? " | " : "");
            cg_rx_emit_set(rules, r, m, true);
            cg_buf_printf(rules, " %s-d%u", prefix, (unsigned)to);
        }
        cg_buf_puts(rules, "\n");
    }
    free(r);
    free(done);
}
