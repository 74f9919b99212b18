/*
 * plugins/sampler/constraint/cg_parser.c - see cg_parser.h.
 */
#include "cg_parser.h"

#include <stdlib.h>
#include <string.h>

/* Budgets: beyond them the grammar is too ambiguous to run. */
#define CG_NODES_MAX (1u << 24)
#define CG_STATE_STACKS_MAX 100000u

typedef struct node {
    int32_t pos;
    uint32_t parent;   /* 0 = bottom of the stack */
} node;

typedef struct state {
    uint32_t off, n;   /* stacks in p->stacks[off..off+n) */
    int32_t *next;     /* [256] cached transitions, -1 unknown; NULL none yet */
} state;

struct cg_parser {
    const cg_grammar *g;
    node *nodes;
    size_t n_nodes, cap_nodes;
    uint32_t *node_hash;      /* open addressing, 0 = empty slot */
    size_t node_hash_cap;
    state *states;
    size_t n_states, cap_states;
    uint32_t *state_hash;
    size_t state_hash_cap;
    uint32_t *stacks;         /* pool of every state's sorted node ids */
    size_t n_stacks, cap_stacks;
    uint32_t *scratch;        /* the state being built */
    size_t n_scratch, cap_scratch;
    uint32_t start;
    bool over_budget;
    int32_t *elem_rule;       /* [n_elems] the rule each grammar position is in */
};

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t node_key(int32_t pos, uint32_t parent)
{
    return mix(((uint64_t)(uint32_t)pos << 32) | parent);
}

static bool node_rehash(cg_parser *p, size_t cap)
{
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h)
        return false;
    for (size_t i = 1; i < p->n_nodes; i++) {
        size_t j = node_key(p->nodes[i].pos, p->nodes[i].parent) & (cap - 1);
        while (h[j])
            j = (j + 1) & (cap - 1);
        h[j] = (uint32_t)i;
    }
    free(p->node_hash);
    p->node_hash = h;
    p->node_hash_cap = cap;
    return true;
}

/* The id of stack (pos, parent); 0 only for OOM or the budget. */
static uint32_t intern_node(cg_parser *p, int32_t pos, uint32_t parent)
{
    size_t j = node_key(pos, parent) & (p->node_hash_cap - 1);
    for (uint32_t id; (id = p->node_hash[j]); j = (j + 1) & (p->node_hash_cap - 1))
        if (p->nodes[id].pos == pos && p->nodes[id].parent == parent)
            return id;
    if (p->n_nodes >= CG_NODES_MAX ||
        !grow((void **)&p->nodes, &p->cap_nodes, p->n_nodes + 1, sizeof *p->nodes)) {
        p->over_budget = true;
        return 0;
    }
    uint32_t id = (uint32_t)p->n_nodes++;
    p->nodes[id] = (node){pos, parent};
    p->node_hash[j] = id;
    if (p->n_nodes * 2 > p->node_hash_cap && !node_rehash(p, p->node_hash_cap * 2))
        p->over_budget = true;
    return id;
}

static void add_scratch(cg_parser *p, uint32_t id)
{
    if (p->n_scratch >= CG_STATE_STACKS_MAX ||
        !grow((void **)&p->scratch, &p->cap_scratch, p->n_scratch + 1, sizeof *p->scratch)) {
        p->over_budget = true;
        return;
    }
    p->scratch[p->n_scratch++] = id;
}

/* Every stack reachable from "at grammar position pos, then parent" by
 * expanding rule references and popping finished alternatives, until each
 * stack's top is a byte set (or the stack is empty: the sentence may end). */
static void expand_at(cg_parser *p, int32_t pos, uint32_t parent);

static void expand_node(cg_parser *p, uint32_t id)
{
    if (id == 0)
        add_scratch(p, 0);
    else
        expand_at(p, p->nodes[id].pos, p->nodes[id].parent);
}

static void expand_at(cg_parser *p, int32_t pos, uint32_t parent)
{
    if (p->over_budget)
        return;
    const cg_elem *e = &p->g->elems[pos];
    if (e->kind == CG_END) {
        expand_node(p, parent);
    } else if (e->kind == CG_BYTES) {
        uint32_t id = intern_node(p, pos, parent);
        if (id)
            add_scratch(p, id);
    } else {
        /* The continuation after the reference; a reference that ends its
         * alternative continues straight at the parent (tail call), so
         * right recursion does not deepen the stack. */
        uint32_t cont = parent;
        if (p->g->elems[pos + 1].kind != CG_END && !(cont = intern_node(p, pos + 1, parent)))
            return;
        const cg_rule *r = &p->g->rules[e->arg];
        for (size_t a = 0; a < r->n_alts; a++)
            expand_at(p, r->alts[a], cont);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint64_t stacks_key(const uint32_t *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    for (size_t i = 0; i < n; i++)
        h = mix(h ^ s[i]) + i;
    return h;
}

static bool state_rehash(cg_parser *p, size_t cap)
{
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h)
        return false;
    for (size_t i = 1; i < p->n_states; i++) {
        size_t j = stacks_key(p->stacks + p->states[i].off, p->states[i].n) & (cap - 1);
        while (h[j])
            j = (j + 1) & (cap - 1);
        h[j] = (uint32_t)i;
    }
    free(p->state_hash);
    p->state_hash = h;
    p->state_hash_cap = cap;
    return true;
}

/* The scratch set, sorted and deduplicated, as a state id (0 if empty). */
static uint32_t intern_scratch(cg_parser *p)
{
    if (p->over_budget)
        return UINT32_MAX;
    if (p->n_scratch == 0)
        return 0;
    qsort(p->scratch, p->n_scratch, sizeof *p->scratch, cmp_u32);
    size_t n = 1;
    for (size_t i = 1; i < p->n_scratch; i++)
        if (p->scratch[i] != p->scratch[n - 1])
            p->scratch[n++] = p->scratch[i];
    size_t j = stacks_key(p->scratch, n) & (p->state_hash_cap - 1);
    for (uint32_t id; (id = p->state_hash[j]); j = (j + 1) & (p->state_hash_cap - 1))
        if (p->states[id].n == n &&
            memcmp(p->stacks + p->states[id].off, p->scratch, n * sizeof *p->scratch) == 0)
            return id;
    if (!grow((void **)&p->states, &p->cap_states, p->n_states + 1, sizeof *p->states) ||
        !grow((void **)&p->stacks, &p->cap_stacks, p->n_stacks + n, sizeof *p->stacks))
        return UINT32_MAX;
    uint32_t id = (uint32_t)p->n_states++;
    p->states[id] = (state){(uint32_t)p->n_stacks, (uint32_t)n, NULL};
    memcpy(p->stacks + p->n_stacks, p->scratch, n * sizeof *p->scratch);
    p->n_stacks += n;
    p->state_hash[j] = id;
    if (p->n_states * 2 > p->state_hash_cap && !state_rehash(p, p->state_hash_cap * 2))
        return UINT32_MAX;
    return id;
}

cg_parser *cg_parser_new(const cg_grammar *g)
{
    cg_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->g = g;
    p->n_nodes = 1;   /* id 0: the empty stack */
    p->n_states = 1;  /* id 0: dead */
    if (!grow((void **)&p->nodes, &p->cap_nodes, 1, sizeof *p->nodes) ||
        !grow((void **)&p->states, &p->cap_states, 1, sizeof *p->states) ||
        !node_rehash(p, 1024) || !state_rehash(p, 256)) {
        cg_parser_free(p);
        return NULL;
    }
    p->states[0] = (state){0, 0, NULL};
    if (!(p->elem_rule = malloc((g->n_elems ? g->n_elems : 1) * sizeof *p->elem_rule))) {
        cg_parser_free(p);
        return NULL;
    }
    for (size_t r = 0; r < g->n_rules; r++)
        for (size_t a = 0; a < g->rules[r].n_alts; a++)
            for (int32_t pos = g->rules[r].alts[a];; pos++) {
                p->elem_rule[pos] = (int32_t)r;
                if (g->elems[pos].kind == CG_END)
                    break;
            }
    const cg_rule *root = &g->rules[g->root];
    p->n_scratch = 0;
    for (size_t a = 0; a < root->n_alts; a++)
        expand_at(p, root->alts[a], 0);
    p->start = intern_scratch(p);
    if (p->start == UINT32_MAX) {
        cg_parser_free(p);
        return NULL;
    }
    return p;
}

void cg_parser_free(cg_parser *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_states; i++)
        free(p->states[i].next);
    free(p->states);
    free(p->state_hash);
    free(p->nodes);
    free(p->node_hash);
    free(p->stacks);
    free(p->scratch);
    free(p->elem_rule);
    free(p);
}

uint32_t cg_parser_start(cg_parser *p) { return p->start; }

uint32_t cg_parser_step(cg_parser *p, uint32_t st, uint8_t byte)
{
    if (st == 0 || st == UINT32_MAX)
        return st;
    state *s = &p->states[st];
    if (s->next && s->next[byte] >= 0)
        return (uint32_t)s->next[byte];
    if (!s->next) {
        if (!(s->next = malloc(256 * sizeof *s->next)))
            return UINT32_MAX;
        memset(s->next, 0xff, 256 * sizeof *s->next);
    }
    /* The bytes that every stack top treats as it treats `byte` (in the
     * same top sets, out of the same others) lead to the same state: one
     * expansion settles them all (ordinary characters of a JSON string,
     * digits, the bytes no top takes). */
    uint64_t same[4] = {~0ull, ~0ull, ~0ull, ~0ull};
    p->n_scratch = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t id = p->stacks[s->off + i];
        if (id == 0)
            continue;
        node nd = p->nodes[id];
        const uint8_t *set = p->g->sets[p->g->elems[nd.pos].arg];
        bool in = cg_set_has(set, byte);
        for (int w = 0; w < 4; w++) {
            uint64_t bits;
            memcpy(&bits, set + 8 * w, 8);
            same[w] &= in ? bits : ~bits;
        }
        if (in)
            expand_at(p, nd.pos + 1, nd.parent);
    }
    uint32_t next = intern_scratch(p);
    if (next == UINT32_MAX)
        return next;
    /* `s` may have moved when the states array grew. */
    int32_t *row = p->states[st].next;
    for (int w = 0; w < 4; w++)
        for (uint64_t b = same[w]; b; b &= b - 1)
            row[64 * w + __builtin_ctzll(b)] = (int32_t)next;
    row[byte] = (int32_t)next;
    return next;
}

const int32_t *cg_parser_row(const cg_parser *p, uint32_t st)
{
    return st == 0 || st == UINT32_MAX ? NULL : p->states[st].next;
}

bool cg_parser_accepting(const cg_parser *p, uint32_t st)
{
    if (st == 0 || st == UINT32_MAX)
        return false;
    /* Node ids are sorted, so the empty stack (0) comes first. */
    return p->stacks[p->states[st].off] == 0;
}

bool cg_parser_finished(cg_parser *p, uint32_t st)
{
    return cg_parser_accepting(p, st) && p->states[st].n == 1;
}

/* Beyond these a state is not split (the search is quadratic in depth). */
#define CG_SPLIT_STACKS 512u
#define CG_SPLIT_DEPTH 64u

int cg_parser_split(cg_parser *p, uint32_t st, uint32_t *inner, uint32_t *outer)
{
    if (st == 0 || st == UINT32_MAX || p->over_budget)
        return 0;
    const state s = p->states[st];
    if (s.n > CG_SPLIT_STACKS || p->stacks[s.off] == 0)
        return 0;
    /* The first stack's nodes, top first: R is one of them. */
    uint32_t chain[CG_SPLIT_DEPTH];
    size_t depth = 0;
    for (uint32_t id = p->stacks[s.off]; id; id = p->nodes[id].parent) {
        if (depth == CG_SPLIT_DEPTH)
            return 0;
        chain[depth++] = id;
    }
    /* Below the first node another stack shares, the chains are one; R
     * must be at or below every such node, and strictly below a stack
     * that is itself in the chain (R replaced by the empty stack must
     * leave no stack empty: inner is not accepting). */
    size_t r = 1;
    for (uint32_t i = 1; i < s.n && r < depth; i++) {
        size_t hit = depth, steps = 0;
        bool self = true;
        for (uint32_t id = p->stacks[s.off + i]; id && hit == depth; id = p->nodes[id].parent) {
            if (steps++ == CG_SPLIT_DEPTH)
                return 0;
            for (size_t k = 0; k < depth; k++)
                if (chain[k] == id) {
                    hit = k + (self ? 1 : 0);
                    break;
                }
            self = false;
        }
        if (hit > r)
            r = hit;
    }
    if (r >= depth)
        return 0;
    uint32_t root = chain[r];
    /* Inner: every stack rebuilt above R on the empty stack. */
    p->n_scratch = 0;
    for (uint32_t i = 0; i < s.n; i++) {
        uint32_t above[2 * CG_SPLIT_DEPTH];
        size_t n = 0;
        for (uint32_t id = p->stacks[s.off + i]; id != root; id = p->nodes[id].parent)
            above[n++] = id;   /* R is within CG_SPLIT_DEPTH of the shared node, itself as near */
        uint32_t id = 0;
        while (n) {
            const node nd = p->nodes[above[--n]];
            if (!(id = intern_node(p, nd.pos, id)))
                return -1;
        }
        add_scratch(p, id);
    }
    uint32_t in = intern_scratch(p);
    if (in == UINT32_MAX)
        return -1;
    p->n_scratch = 0;
    expand_node(p, root);
    uint32_t out = intern_scratch(p);
    if (out == UINT32_MAX)
        return -1;
    *inner = in;
    *outer = out;
    return 1;
}

/* Position `pos` moved to its repetition's unbounded twin when its own
 * copy can take more than `keep` copies; else pos. */
static int32_t horizon_pos(const cg_parser *p, int32_t pos, int32_t keep)
{
    const cg_grammar *g = p->g;
    const cg_rule *r = &g->rules[p->elem_rule[pos]];
    if (r->count_left <= keep || r->n_alts == 0)
        return pos;
    const cg_rule *t = &g->rules[r->count_star];
    /* Only the first alternative (x opt_{k-1}) holds stack nodes; the
     * twin's (x star) is the same sequence up to the reference. */
    int32_t off = pos - r->alts[0];
    int32_t len = r->n_alts > 1 ? r->alts[1] - r->alts[0] : off + 1;
    if (off < 0 || off >= len || t->n_alts == 0)
        return pos;
    return t->alts[0] + off;
}

uint32_t cg_parser_horizon(cg_parser *p, uint32_t st, uint32_t horizon)
{
    if (st == 0 || st == UINT32_MAX || p->over_budget || horizon >= INT32_MAX - 1)
        return st;
    const state s = p->states[st];
    if (s.n > CG_SPLIT_STACKS)
        return st;
    int32_t keep = (int32_t)horizon + 1;
    bool moved = false;
    p->n_scratch = 0;
    for (uint32_t i = 0; i < s.n; i++) {
        uint32_t chain[CG_SPLIT_DEPTH];
        size_t n = 0;
        bool any = false;
        for (uint32_t id = p->stacks[s.off + i]; id; id = p->nodes[id].parent) {
            if (n == CG_SPLIT_DEPTH)
                return st;   /* too deep to rebuild here: unchanged */
            chain[n++] = id;
            any = any || horizon_pos(p, p->nodes[id].pos, keep) != p->nodes[id].pos;
        }
        if (!any) {
            add_scratch(p, p->stacks[s.off + i]);
            continue;
        }
        moved = true;
        uint32_t id = 0;
        while (n) {
            const node nd = p->nodes[chain[--n]];
            if (!(id = intern_node(p, horizon_pos(p, nd.pos, keep), id)))
                return UINT32_MAX;
        }
        add_scratch(p, id);
    }
    return moved ? intern_scratch(p) : st;
}
