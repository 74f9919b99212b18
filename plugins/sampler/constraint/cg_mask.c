/*
 * plugins/sampler/constraint/cg_mask.c - see cg_mask.h.
 */
#include "cg_mask.h"

#include <stdlib.h>
#include <string.h>

/* Trie node: children are a linked list of siblings, in byte order. */
typedef struct trie_node {
    int32_t first_child, next_sibling;
    int32_t first_token;   /* tokens ending here, chained through tok_next */
    uint8_t byte;
} trie_node;

struct cg_vocab {
    int32_t n_tokens;
    uint8_t *bytes;        /* every token's bytes, back to back */
    size_t *off;           /* [n_tokens + 1] */
    trie_node *trie;
    size_t n_trie, cap_trie;
    int32_t *tok_next;     /* [n_tokens] */
    /* Per trie node: the bytes below it (its descendants' edges), and the
     * tokens of its subtree as a range of `dfs_tokens` (the tokens in
     * depth-first order), so a subtree the parser cannot leave is taken
     * whole. */
    uint8_t (*below)[32];
    int32_t *sub_begin, *sub_end, *dfs_tokens;
};

/* Depth-first numbering of the trie: subtree token ranges and byte sets. */
static bool trie_index(cg_vocab *v)
{
    size_t n = v->n_trie;
    v->below = calloc(n, sizeof *v->below);
    v->sub_begin = malloc(n * sizeof *v->sub_begin);
    v->sub_end = malloc(n * sizeof *v->sub_end);
    v->dfs_tokens = malloc((size_t)v->n_tokens * sizeof *v->dfs_tokens);
    int32_t *stack = malloc(2 * n * sizeof *stack);
    if (!v->below || !v->sub_begin || !v->sub_end || !v->dfs_tokens || !stack) {
        free(stack);
        return false;
    }
    /* Entries: node (enter) or ~node (leave, after its children). */
    size_t sp = 0;
    int32_t k = 0;
    stack[sp++] = 0;
    while (sp) {
        int32_t e = stack[--sp];
        if (e < 0) {
            int32_t node = ~e;
            v->sub_end[node] = k;
            for (int32_t c = v->trie[node].first_child; c >= 0; c = v->trie[c].next_sibling) {
                cg_set_add(v->below[node], v->trie[c].byte);
                for (int i = 0; i < 32; i++)
                    v->below[node][i] |= v->below[c][i];
            }
            continue;
        }
        v->sub_begin[e] = k;
        for (int32_t id = v->trie[e].first_token; id >= 0; id = v->tok_next[id])
            v->dfs_tokens[k++] = id;
        stack[sp++] = ~e;
        for (int32_t c = v->trie[e].first_child; c >= 0; c = v->trie[c].next_sibling)
            stack[sp++] = c;
    }
    free(stack);
    return true;
}

static int32_t trie_add(cg_vocab *v, uint8_t byte)
{
    if (v->n_trie == v->cap_trie) {
        size_t cap = v->cap_trie ? v->cap_trie * 2 : 1024;
        trie_node *t = realloc(v->trie, cap * sizeof *t);
        if (!t)
            return -1;
        v->trie = t;
        v->cap_trie = cap;
    }
    v->trie[v->n_trie] = (trie_node){-1, -1, -1, byte};
    return (int32_t)v->n_trie++;
}

/* The child of `parent` for `byte`, created in byte order when absent. */
static int32_t trie_child(cg_vocab *v, int32_t parent, uint8_t byte)
{
    int32_t prev = -1, c = v->trie[parent].first_child;
    while (c >= 0 && v->trie[c].byte < byte) {
        prev = c;
        c = v->trie[c].next_sibling;
    }
    if (c >= 0 && v->trie[c].byte == byte)
        return c;
    int32_t n = trie_add(v, byte);
    if (n < 0)
        return -1;
    v->trie[n].next_sibling = c;
    if (prev < 0)
        v->trie[parent].first_child = n;
    else
        v->trie[prev].next_sibling = n;
    return n;
}

cg_vocab *cg_vocab_new(int32_t n_tokens, cg_token_bytes_fn token_bytes, void *ctx)
{
    cg_vocab *v = calloc(1, sizeof *v);
    if (!v || n_tokens <= 0)
        goto fail;
    v->n_tokens = n_tokens;
    v->off = calloc((size_t)n_tokens + 1, sizeof *v->off);
    v->tok_next = malloc((size_t)n_tokens * sizeof *v->tok_next);
    if (!v->off || !v->tok_next || trie_add(v, 0) < 0)
        goto fail;
    size_t total = 0, cap = 0;
    for (int32_t id = 0; id < n_tokens; id++) {
        const char *b = NULL;
        size_t len = 0;
        bool special = false;
        if (!token_bytes(ctx, id, &b, &len, &special))
            goto fail;
        if (special)
            len = 0;
        if (total + len > cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            while (ncap < total + len)
                ncap *= 2;
            uint8_t *nb = realloc(v->bytes, ncap);
            if (!nb)
                goto fail;
            v->bytes = nb;
            cap = ncap;
        }
        if (len)
            memcpy(v->bytes + total, b, len);
        v->off[id] = total;
        total += len;
        v->off[id + 1] = total;
        v->tok_next[id] = -1;
        if (!len)
            continue;
        int32_t at = 0;
        for (size_t i = 0; i < len && at >= 0; i++)
            at = trie_child(v, at, v->bytes[v->off[id] + i]);
        if (at < 0)
            goto fail;
        v->tok_next[id] = v->trie[at].first_token;
        v->trie[at].first_token = id;
    }
    if (!trie_index(v))
        goto fail;
    return v;
fail:
    cg_vocab_free(v);
    return NULL;
}

void cg_vocab_free(cg_vocab *v)
{
    if (!v)
        return;
    free(v->bytes);
    free(v->off);
    free(v->trie);
    free(v->tok_next);
    free(v->below);
    free(v->sub_begin);
    free(v->sub_end);
    free(v->dfs_tokens);
    free(v);
}

int32_t cg_vocab_size(const cg_vocab *v) { return v->n_tokens; }

const uint8_t *cg_vocab_bytes(const cg_vocab *v, int32_t id, size_t *len)
{
    *len = v->off[id + 1] - v->off[id];
    return v->bytes + v->off[id];
}

uint32_t cg_advance_token(cg_parser *p, const cg_vocab *v, uint32_t state, int32_t id)
{
    size_t len;
    const uint8_t *b = cg_vocab_bytes(v, id, &len);
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len && state != 0 && state != UINT32_MAX; i++)
        state = cg_parser_step(p, state, b[i]);
    return state;
}

/* ---- masks ---- */

/* Masks are cached per parser state up to this many bytes in all; past
 * it the oldest cached mask makes room (round robin). */
#define CG_MASK_CACHE_BYTES (64u << 20)

struct cg_masker {
    const cg_vocab *v;
    cg_parser *p;
    size_t mask_bytes;
    uint8_t *masks;                 /* [n_slots][mask_bytes] */
    size_t n_slots, cap_slots, max_slots, next_slot;
    uint32_t *slot_state;           /* [cap_slots] the state a slot holds */
    /* Per parser state (by id, grown on demand): its mask's slot + 1 (0:
     * none), and which bytes are known to lead back to the state (loop_in)
     * among those tried so far (loop_known). */
    uint32_t *slot_of;
    uint8_t (*loop_known)[32];
    uint8_t (*loop_in)[32];
    size_t cap_states;
    struct { int32_t node; uint32_t state; } *todo;  /* the walk's stack */
    size_t cap_todo;
};

/* Room for per-state data of `state`; false on OOM. */
static bool cover_state(cg_masker *m, uint32_t state)
{
    if (state < m->cap_states)
        return true;
    size_t cap = m->cap_states ? m->cap_states : 256;
    while (cap <= state)
        cap *= 2;
    uint32_t *so = realloc(m->slot_of, cap * sizeof *so);
    if (!so)
        return false;
    m->slot_of = so;
    uint8_t (*k)[32] = realloc(m->loop_known, cap * sizeof *k);
    if (!k)
        return false;
    m->loop_known = k;
    uint8_t (*in)[32] = realloc(m->loop_in, cap * sizeof *in);
    if (!in)
        return false;
    m->loop_in = in;
    size_t old = m->cap_states;
    memset(so + old, 0, (cap - old) * sizeof *so);
    memset(k + old, 0, (cap - old) * sizeof *k);
    memset(in + old, 0, (cap - old) * sizeof *in);
    m->cap_states = cap;
    return true;
}

/* Whether every byte of `bytes` leads `state` back to itself: a subtree
 * below such bytes keeps the parser where it is. The bytes are tried
 * lazily and the first one that leaves settles it, so a state that is no
 * loop costs a step or two, not 256. -1 on OOM or budget. */
static int loops_over(cg_masker *m, uint32_t state, const uint8_t *bytes)
{
    if (!cover_state(m, state))
        return -1;
    uint8_t *known = m->loop_known[state], *in = m->loop_in[state];
    for (int w = 0; w < 4; w++) {
        uint64_t want, k, i;
        memcpy(&want, bytes + 8 * w, 8);
        memcpy(&k, known + 8 * w, 8);
        memcpy(&i, in + 8 * w, 8);
        if (want & k & ~i)
            return 0;   /* a byte known to leave */
        for (uint64_t todo = want & ~k; todo; todo &= todo - 1) {
            int b = 64 * w + __builtin_ctzll(todo);
            uint32_t next = cg_parser_step(m->p, state, (uint8_t)b);
            if (next == UINT32_MAX)
                return -1;
            /* The parser's arrays may have grown; ours are by state id. */
            cg_set_add(known, (uint8_t)b);
            if (next != state)
                return 0;
            cg_set_add(in, (uint8_t)b);
        }
    }
    return 1;
}

cg_masker *cg_masker_new(const cg_vocab *v, cg_parser *p)
{
    cg_masker *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->v = v;
    m->p = p;
    m->mask_bytes = ((size_t)v->n_tokens + 7) / 8;
    m->max_slots = CG_MASK_CACHE_BYTES / m->mask_bytes;
    if (m->max_slots < 2)
        m->max_slots = 2;
    m->cap_todo = v->n_trie + 1;
    m->todo = malloc(m->cap_todo * sizeof *m->todo);
    if (!m->todo) {
        cg_masker_free(m);
        return NULL;
    }
    return m;
}

void cg_masker_free(cg_masker *m)
{
    if (!m)
        return;
    free(m->masks);
    free(m->slot_state);
    free(m->slot_of);
    free(m->loop_known);
    free(m->loop_in);
    free(m->todo);
    free(m);
}

/* A slot for `state`'s mask: a new one while the cache may grow, else the
 * oldest. NULL on OOM. */
static uint8_t *take_slot(cg_masker *m, uint32_t state)
{
    size_t slot;
    if (m->n_slots < m->max_slots) {
        if (m->n_slots == m->cap_slots) {
            size_t cap = m->cap_slots ? m->cap_slots * 2 : 64;
            if (cap > m->max_slots)
                cap = m->max_slots;
            uint8_t *masks = realloc(m->masks, cap * m->mask_bytes);
            if (!masks)
                return NULL;
            m->masks = masks;
            uint32_t *ss = realloc(m->slot_state, cap * sizeof *ss);
            if (!ss)
                return NULL;
            m->slot_state = ss;
            m->cap_slots = cap;
        }
        slot = m->n_slots++;
    } else {
        slot = m->next_slot;
        m->next_slot = (m->next_slot + 1) % m->n_slots;
        m->slot_of[m->slot_state[slot]] = 0;
    }
    m->slot_state[slot] = state;
    m->slot_of[state] = (uint32_t)slot + 1;
    return m->masks + slot * m->mask_bytes;
}

const uint8_t *cg_masker_get(cg_masker *m, uint32_t state)
{
    if (!cover_state(m, state))
        return NULL;
    if (m->slot_of[state])
        return m->masks + (size_t)(m->slot_of[state] - 1) * m->mask_bytes;
    uint8_t *mask = take_slot(m, state);
    if (!mask)
        return NULL;
    /* Until the walk finishes the slot holds no valid mask. */
    m->slot_of[state] = 0;
    memset(mask, 0, m->mask_bytes);
    const trie_node *t = m->v->trie;
    /* Each trie node is pushed at most once, so the stack never exceeds
     * the trie's size. */
    size_t n = 0;
    m->todo[n].node = 0;
    m->todo[n++].state = state;
    while (n) {
        n--;
        int32_t node = m->todo[n].node;
        uint32_t st = m->todo[n].state;
        for (int32_t c = t[node].first_child; c >= 0; c = t[c].next_sibling) {
            uint32_t next = cg_parser_step(m->p, st, t[c].byte);
            if (next == UINT32_MAX)
                return NULL;
            if (next == 0)
                continue;
            if (t[c].first_child >= 0) {
                /* A subtree whose bytes all lead back to `next` keeps the
                 * parser there: every token in it is allowed, unwalked. */
                int whole = loops_over(m, next, m->v->below[c]);
                if (whole < 0)
                    return NULL;
                if (whole) {
                    for (int32_t k = m->v->sub_begin[c]; k < m->v->sub_end[c]; k++) {
                        int32_t id = m->v->dfs_tokens[k];
                        mask[id >> 3] |= (uint8_t)(1u << (id & 7));
                    }
                    continue;
                }
            }
            for (int32_t id = t[c].first_token; id >= 0; id = m->v->tok_next[id])
                mask[id >> 3] |= (uint8_t)(1u << (id & 7));
            if (t[c].first_child >= 0) {
                m->todo[n].node = c;
                m->todo[n++].state = next;
            }
        }
    }
    m->slot_of[state] = (uint32_t)((size_t)(mask - m->masks) / m->mask_bytes) + 1;
    return mask;
}
