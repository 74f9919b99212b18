/*
 * plugins/sampler/constraint/cg_mask.c - see cg_mask.h.
 */
#include "cg_mask.h"

#include <stdlib.h>
#include <string.h>

/* Masks are written a 64-bit word at a time and read a byte at a time
 * (bit id & 7 of byte id >> 3): the same bits on a little-endian machine. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cg_mask.c writes token masks as little-endian words"
#endif

/* Trie node while building: children are a linked list of siblings, in
 * byte order. */
typedef struct trie_node {
    int32_t first_child, next_sibling;
    int32_t first_token;   /* tokens ending here, chained through tok_next */
    uint8_t byte;
} trie_node;

/* The trie as the mask walk reads it: nodes in depth-first preorder, so a
 * node's first child is the next node, its subtree is [node, end) and the
 * walk goes through memory mostly forwards (the linked build order costs a
 * cache miss per node on a walk of 200,000 nodes). */
typedef struct walk_node {
    int32_t end;           /* one past the last node of the subtree */
    int32_t first_token;   /* tokens ending here, chained through tok_next */
    uint8_t byte;
} walk_node;

struct cg_vocab {
    int32_t n_tokens;
    uint8_t *bytes;        /* every token's bytes, back to back */
    size_t *off;           /* [n_tokens + 1] */
    trie_node *trie;       /* the build; freed once `walk` is laid out */
    size_t n_trie, cap_trie;
    int32_t *tok_next;     /* [n_tokens] */
    walk_node *walk;       /* [n_trie], node 0 the root */
    /* Per walk node, read only where a subtree may be taken whole: the
     * bytes below it (its descendants' edges) and its tokens as a range
     * of dfs_tokens. Kept apart from `walk` so the walk's nodes stay
     * small. */
    uint8_t (*below)[32];
    int32_t *sub_begin, *sub_end;
    uint8_t *height;       /* the subtree's depth below the node (at most 255) */
    uint16_t *depth;       /* the node's depth (its tokens' length) */
    /* The tokens of the largest subtrees as ready bitmaps (big[node] words
     * into big_bits, -1 none), so taking one whole is a few hundred word
     * ORs instead of thousands of scattered bit writes (the body of a
     * JSON string takes most of the vocabulary that way). */
    int64_t *big;
    uint64_t *big_bits;
    size_t mask_words;
    int32_t *dfs_tokens;   /* the tokens in preorder */
    size_t max_len;        /* the longest token's bytes */
    /* The string slice (llguidance's "slices" do the same): the tokens
     * made only of the bytes of `slice_set` (printable ASCII but the quote
     * and the backslash: the ordinary characters of a JSON string) as a
     * ready bitmap, and the trie nodes where a path leaves the set for
     * the first time (a quote, an escape, a UTF-8 byte after ordinary
     * characters), in preorder. A state that every byte of the set leads
     * back to itself allows the whole slice; its walk only goes on from
     * those nodes. */
    uint8_t slice_set[32];
    int32_t *slice_exits;
    size_t n_slice_exits;
    /* slice_upto + (l - 1) * mask_words: the slice's tokens of at most l
     * bytes, l = 1..slice_len (the longest token, at most
     * CG_SLICE_LEN_MAX), for a string whose count runs out in fewer
     * characters than a token may have. */
    uint64_t *slice_upto;
    size_t slice_len;
};

#define CG_SLICE_LEN_MAX 512

/* Lay the trie out in preorder with subtree ends, token ranges and the
 * byte sets below each node. */
static bool trie_index(cg_vocab *v)
{
    size_t n = v->n_trie;
    v->below = calloc(n, sizeof *v->below);
    v->walk = malloc(n * sizeof *v->walk);
    v->sub_begin = malloc(n * sizeof *v->sub_begin);
    v->sub_end = malloc(n * sizeof *v->sub_end);
    v->height = calloc(n, 1);
    v->depth = calloc(n, sizeof *v->depth);
    v->dfs_tokens = malloc((size_t)v->n_tokens * sizeof *v->dfs_tokens);
    /* Entries: build node (enter) or ~walk index (leave). */
    int32_t *stack = malloc(2 * n * sizeof *stack);
    if (!v->below || !v->walk || !v->sub_begin || !v->sub_end || !v->height || !v->depth || !v->dfs_tokens ||
        !stack) {
        free(stack);
        return false;
    }
    size_t sp = 0;
    int32_t k = 0, next = 0;
    stack[sp++] = 0;
    while (sp) {
        int32_t e = stack[--sp];
        if (e < 0) {
            int32_t w = ~e;
            walk_node *wn = &v->walk[w];
            wn->end = next;
            v->sub_end[w] = k;
            for (int32_t c = w + 1; c < wn->end; c = v->walk[c].end) {
                cg_set_add(v->below[w], v->walk[c].byte);
                for (int i = 0; i < 32; i++)
                    v->below[w][i] |= v->below[c][i];
                if (v->height[c] + 1 > v->height[w] && v->height[c] < 255)
                    v->height[w] = (uint8_t)(v->height[c] + 1);
            }
            continue;
        }
        int32_t w = next++;
        const trie_node *t = &v->trie[e];
        v->walk[w] = (walk_node){0, t->first_token, t->byte};
        v->sub_begin[w] = k;
        for (int32_t id = t->first_token; id >= 0; id = v->tok_next[id])
            v->dfs_tokens[k++] = id;
        stack[sp++] = ~w;
        /* Children pushed last-first so they are entered in byte order. */
        size_t mark = sp;
        for (int32_t c = t->first_child; c >= 0; c = v->trie[c].next_sibling)
            stack[sp++] = c;
        for (size_t i = mark, j = sp - 1; i < j; i++, j--) {
            int32_t x = stack[i];
            stack[i] = stack[j];
            stack[j] = x;
        }
    }
    free(stack);
    for (size_t w = 0; w < n; w++)
        for (int32_t c = (int32_t)w + 1; c < v->walk[w].end; c = v->walk[c].end)
            v->depth[c] = (uint16_t)(v->depth[w] + 1);
    free(v->trie);
    v->trie = NULL;
    return true;
}

/* Subtrees with at least this many tokens get a ready bitmap, within a
 * memory budget (the largest first: they are the shallowest). */
#define CG_BIG_SUBTREE 128
#define CG_BIG_BYTES (16u << 20)

static bool big_subtrees(cg_vocab *v)
{
    size_t n = v->n_trie;
    v->mask_words = ((size_t)v->n_tokens + 63) / 64;
    v->big = malloc(n * sizeof *v->big);
    if (!v->big)
        return false;
    size_t count = 0, max = CG_BIG_BYTES / (v->mask_words * 8);
    /* Preorder visits parents before children: a budget cut keeps the
     * shallow (largest) subtrees. */
    for (size_t w = 0; w < n; w++) {
        bool want = w > 0 && v->sub_end[w] - v->sub_begin[w] >= CG_BIG_SUBTREE && count < max;
        v->big[w] = want ? (int64_t)(count++ * v->mask_words) : -1;
    }
    v->big_bits = calloc(count ? count * v->mask_words : 1, sizeof *v->big_bits);
    if (!v->big_bits)
        return false;
    for (size_t w = 0; w < n; w++) {
        if (v->big[w] < 0)
            continue;
        uint64_t *bits = v->big_bits + v->big[w];
        for (int32_t k = v->sub_begin[w]; k < v->sub_end[w]; k++)
            bits[v->dfs_tokens[k] >> 6] |= 1ull << (v->dfs_tokens[k] & 63);
    }
    return true;
}

/* The string slice: its bitmap and the nodes where paths leave it. */
static bool string_slice(cg_vocab *v)
{
    for (int b = 0x20; b < 0x7f; b++)
        if (b != '"' && b != '\\')
            cg_set_add(v->slice_set, (uint8_t)b);
    v->slice_len = v->max_len < CG_SLICE_LEN_MAX ? v->max_len : CG_SLICE_LEN_MAX;
    v->slice_upto = calloc((v->slice_len ? v->slice_len : 1) * v->mask_words, sizeof *v->slice_upto);
    int32_t *stack = malloc(v->n_trie * sizeof *stack);
    v->slice_exits = malloc(v->n_trie * sizeof *v->slice_exits);
    if (!v->slice_upto || !stack || !v->slice_exits) {
        free(stack);
        return false;
    }
    /* Depth first from the root through the nodes inside the set. */
    size_t sp = 0;
    stack[sp++] = 0;
    while (sp) {
        int32_t w = stack[--sp];
        for (int32_t c = w + 1; c < v->walk[w].end; c = v->walk[c].end) {
            if (!cg_set_has(v->slice_set, v->walk[c].byte)) {
                v->slice_exits[v->n_slice_exits++] = c;
                continue;
            }
            /* Tokens longer than slice_len are in no slice bitmap: the
             * walk goes on from their node like from an exit. */
            if (v->depth[c] > v->slice_len) {
                v->slice_exits[v->n_slice_exits++] = c;
                continue;
            }
            uint64_t *upto = v->slice_upto + (size_t)(v->depth[c] - 1) * v->mask_words;
            for (int32_t id = v->walk[c].first_token; id >= 0; id = v->tok_next[id])
                upto[id >> 6] |= 1ull << (id & 63);
            if (v->walk[c].end > c + 1)
                stack[sp++] = c;
        }
    }
    free(stack);
    /* Tokens of exactly l bytes so far; make each bitmap cumulative. */
    for (size_t l = 1; l < v->slice_len; l++)
        for (size_t w = 0; w < v->mask_words; w++)
            v->slice_upto[l * v->mask_words + w] |= v->slice_upto[(l - 1) * v->mask_words + w];
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
        if (len > v->max_len)
            v->max_len = len;
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
    if (!trie_index(v) || !big_subtrees(v) || !string_slice(v))
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
    free(v->walk);
    free(v->below);
    free(v->sub_begin);
    free(v->sub_end);
    free(v->height);
    free(v->depth);
    free(v->big);
    free(v->big_bits);
    free(v->dfs_tokens);
    free(v->slice_upto);
    free(v->slice_exits);
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

/* The bytes of a parser state tried so far (known), grouped by the live
 * state they lead to: up to CG_CLASSES targets (a JSON string's body has
 * few: ordinary characters, the quote, the backslash, UTF-8 lead bytes).
 * A known byte in no class leads nowhere or to a target past the limit. */
#define CG_CLASSES 4
struct byte_classes {
    uint8_t known[32];
    uint8_t dead[32];              /* known to lead nowhere */
    uint8_t in[CG_CLASSES][32];
    uint32_t target[CG_CLASSES];   /* 0: class unused */
};

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
     * none), and its bytes grouped by the state they lead to, as far as
     * they were tried (byte_classes). */
    uint32_t *slot_of;
    struct byte_classes *classes;
    size_t cap_states;
    struct { int32_t node; uint32_t state; } *todo;  /* the walk's stack */
    size_t cap_todo;
    /* States split for their context-free part (cg_parser_split): per
     * inner state, the trie nodes with children where its walk reaches an
     * accepting state (the closing quote of a string), as a range of
     * exit_pool: exits_at + 1 (0: not recorded yet) and exits_n
     * (CG_EXITS_MANY: too many to be worth it). */
    bool split;
    uint32_t *exits_at, *exits_n;
    uint32_t *canon_of;             /* cg_parser_horizon of a state + 1, 0 unknown */
    uint8_t *inner_seen;            /* the state was some split state's inner one */
    int32_t *exit_pool;
    size_t n_exit_pool, cap_exit_pool;
    bool recording;                 /* the walk in progress records exits */
    uint64_t *inner_bits;           /* [mask_words] the inner mask being copied */
    uint32_t *chain;                /* [slice_len + 1] slice_chain's states */
};

/* An inner state with more exits than this is not used: a string's body
 * has a few dozen (`",`, `"}`, `abc":` ...), while an inner state that
 * ends after every character (one character of a fixed-length run) has
 * one per first byte, and the walks below them cost more than the whole
 * walk from the state itself. */
#define CG_EXITS_MAX 64u
#define CG_EXITS_MANY UINT32_MAX

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
    struct byte_classes *bc = realloc(m->classes, cap * sizeof *bc);
    if (!bc)
        return false;
    m->classes = bc;
    uint32_t *ea = realloc(m->exits_at, cap * sizeof *ea);
    if (!ea)
        return false;
    m->exits_at = ea;
    uint32_t *en = realloc(m->exits_n, cap * sizeof *en);
    if (!en)
        return false;
    m->exits_n = en;
    uint32_t *co = realloc(m->canon_of, cap * sizeof *co);
    if (!co)
        return false;
    m->canon_of = co;
    uint8_t *seen = realloc(m->inner_seen, cap);
    if (!seen)
        return false;
    m->inner_seen = seen;
    memset(seen + m->cap_states, 0, cap - m->cap_states);
    size_t old = m->cap_states;
    memset(so + old, 0, (cap - old) * sizeof *so);
    memset(bc + old, 0, (cap - old) * sizeof *bc);
    memset(ea + old, 0, (cap - old) * sizeof *ea);
    memset(en + old, 0, (cap - old) * sizeof *en);
    memset(co + old, 0, (cap - old) * sizeof *co);
    m->cap_states = cap;
    return true;
}

/* Try byte b in `state` and file it under its target's class: the class
 * index, or -1 when it leads nowhere or no class is left; -2 on OOM or
 * budget. */
static int classify(cg_masker *m, uint32_t state, uint8_t b)
{
    uint32_t next = cg_parser_step(m->p, state, b);
    if (next == UINT32_MAX)
        return -2;
    /* The parser's arrays may have moved; ours are by state id. */
    struct byte_classes *bc = &m->classes[state];
    cg_set_add(bc->known, b);
    if (next == 0) {
        cg_set_add(bc->dead, b);
        return -1;
    }
    for (int i = 0; i < CG_CLASSES; i++) {
        if (bc->target[i] == 0)
            bc->target[i] = next;
        if (bc->target[i] == next) {
            cg_set_add(bc->in[i], b);
            return i;
        }
    }
    return -1;
}

/* uniform_step's answers besides a live state. */
#define CG_MIXED 0u               /* the bytes lead to different places */
#define CG_ALL_DEAD (UINT32_MAX - 1) /* none of them leads anywhere */

/* The one live state that every byte of `bytes` (not empty) leads `state`
 * to; CG_ALL_DEAD when none leads anywhere, CG_MIXED otherwise. The bytes
 * are tried lazily and remembered per state; the first one that goes
 * elsewhere settles it, so a state that has no such class costs a step or
 * two, not 256. UINT32_MAX on OOM or budget. */
static uint32_t uniform_step(cg_masker *m, uint32_t state, const uint8_t *bytes)
{
    if (!cover_state(m, state))
        return UINT32_MAX;
    uint64_t want[4];
    memcpy(want, bytes, 32);
    int lowest = 0;
    for (int w = 0; w < 4; w++)
        if (want[w]) {
            lowest = 64 * w + __builtin_ctzll(want[w]);
            break;
        }
    /* The class of the lowest byte: 0..CG_CLASSES-1, -1 dead, -3 a target
     * past the class limit. */
    int cls;
    if (cg_set_has(m->classes[state].known, (uint8_t)lowest)) {
        const struct byte_classes *bc = &m->classes[state];
        cls = cg_set_has(bc->dead, (uint8_t)lowest) ? -1 : -3;
        for (int i = 0; i < CG_CLASSES && cls == -3; i++)
            if (cg_set_has(bc->in[i], (uint8_t)lowest))
                cls = i;
    } else {
        cls = classify(m, state, (uint8_t)lowest);
        if (cls == -2)
            return UINT32_MAX;
        if (cls == -1 && !cg_set_has(m->classes[state].dead, (uint8_t)lowest))
            cls = -3;
    }
    if (cls == -3)
        return CG_MIXED;
    for (int w = 0; w < 4; w++) {
        uint64_t k, in;
        memcpy(&k, m->classes[state].known + 8 * w, 8);
        memcpy(&in, (cls < 0 ? m->classes[state].dead : m->classes[state].in[cls]) + 8 * w, 8);
        if (want[w] & k & ~in)
            return CG_MIXED;   /* a byte known to go elsewhere */
        for (uint64_t todo = want[w] & ~k; todo; todo &= todo - 1) {
            int b = 64 * w + __builtin_ctzll(todo);
            int got = classify(m, state, (uint8_t)b);
            if (got == -2)
                return UINT32_MAX;
            if (cls < 0 ? !cg_set_has(m->classes[state].dead, (uint8_t)b) : got != cls)
                return CG_MIXED;
        }
    }
    return cls < 0 ? CG_ALL_DEAD : m->classes[state].target[cls];
}

/* How deep below trie node c (the parser in `state` after c's byte) every
 * token is allowed: the bytes below c lead, depth after depth, from one
 * live state to the next (a state that leads back to itself ends the
 * chain: the body of a JSON string; a chain of counting states is the
 * body of a string with a maxLength), until they all lead nowhere or the
 * subtree ends. Tokens down to that depth are allowed, deeper ones not.
 * -1 when the bytes part ways (the subtree must be walked), -2 on OOM or
 * budget. */
static int subtree_depth(cg_masker *m, int32_t c, uint32_t state)
{
    const uint8_t *below = m->v->below[c];
    int h = m->v->height[c];
    if (h >= 255)
        return -1;   /* heights are capped there: walk it */
    for (int d = 0; d < h; d++) {
        uint32_t next = uniform_step(m, state, below);
        if (next == UINT32_MAX)
            return -2;
        if (next == CG_MIXED)
            return -1;
        if (next == CG_ALL_DEAD)
            return d;
        /* A walk that records exits must see every accepting state. */
        if (m->recording && cg_parser_accepting(m->p, next))
            return -1;
        if (next == state)
            return h;
        state = next;
    }
    return h;
}

cg_masker *cg_masker_new(const cg_vocab *v, cg_parser *p)
{
    cg_masker *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->v = v;
    m->p = p;
    /* Whole words, so ready subtree bitmaps are ORed in word by word. */
    m->mask_bytes = v->mask_words * 8;
    m->max_slots = CG_MASK_CACHE_BYTES / m->mask_bytes;
    if (m->max_slots < 2)
        m->max_slots = 2;
    m->cap_todo = v->n_trie + 1;
    m->todo = malloc(m->cap_todo * sizeof *m->todo);
    m->inner_bits = malloc(m->mask_bytes);
    m->chain = malloc((v->slice_len + 1) * sizeof *m->chain);
    m->split = true;
    if (!m->todo || !m->inner_bits || !m->chain) {
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
    free(m->classes);
    free(m->todo);
    free(m->exits_at);
    free(m->exits_n);
    free(m->canon_of);
    free(m->inner_seen);
    free(m->exit_pool);
    free(m->inner_bits);
    free(m->chain);
    free(m);
}

void cg_masker_set_shared(cg_masker *m, bool on) { m->split = on; }

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

/* Note trie node c (it has children; its bytes led the walk to an
 * accepting state) as an exit of the state being recorded; past
 * CG_EXITS_MAX the recording stops and the state is marked as having too
 * many. False on OOM. */
static bool record_exit(cg_masker *m, uint32_t state, int32_t c)
{
    if (m->exits_n[state] == CG_EXITS_MANY)
        return true;
    if (m->exits_n[state] == CG_EXITS_MAX) {
        m->n_exit_pool -= CG_EXITS_MAX;
        m->exits_n[state] = CG_EXITS_MANY;
        return true;
    }
    if (m->n_exit_pool == m->cap_exit_pool) {
        size_t cap = m->cap_exit_pool ? m->cap_exit_pool * 2 : 1024;
        int32_t *pool = realloc(m->exit_pool, cap * sizeof *pool);
        if (!pool)
            return false;
        m->exit_pool = pool;
        m->cap_exit_pool = cap;
    }
    m->exit_pool[m->n_exit_pool++] = c;
    m->exits_n[state]++;
    return true;
}

/* The walk's step to trie node c from `st` (the state at c's parent),
 * `row` st's cached transitions (may be NULL or move): c's tokens into
 * `words` when c's bytes lead somewhere, its subtree taken whole or
 * pushed onto the walk's stack (*n entries). False on OOM or budget. */
static inline bool visit(cg_masker *m, uint64_t *words, int32_t c, uint32_t st,
                         const int32_t **row, size_t *n, uint32_t rec)
{
    const cg_vocab *v = m->v;
    const walk_node *t = v->walk;
    uint32_t next;
    if (*row && (*row)[t[c].byte] >= 0) {
        next = (uint32_t)(*row)[t[c].byte];
    } else {
        next = cg_parser_step(m->p, st, t[c].byte);
        *row = cg_parser_row(m->p, st);   /* it may have moved */
    }
    if (next == UINT32_MAX)
        return false;
    if (next == 0)
        return true;
    bool inner = t[c].end > c + 1;
    if (inner && m->recording && cg_parser_accepting(m->p, next) && !record_exit(m, rec, c))
        return false;
    /* A subtree whose bytes lead, depth after depth, from one live state
     * to the next has every token allowed: taken whole, unwalked. Its
     * first child's byte must lead somewhere for that, which rules many
     * nodes out at the price of a step the walk takes anyway. */
    if (inner && cg_parser_step(m->p, next, t[c + 1].byte) != 0) {
        int depth = subtree_depth(m, c, next);
        if (depth == -2)
            return false;
        if (depth == v->height[c] && v->big[c] >= 0) {
            const uint64_t *bits = v->big_bits + v->big[c];
            for (size_t w = 0; w < v->mask_words; w++)
                words[w] |= bits[w];
            return true;
        }
        if (depth >= 0) {
            /* Token lengths: c's depth in the trie plus `depth`. */
            size_t max_len = (size_t)v->depth[c] + (size_t)depth;
            bool all = depth == v->height[c];
            for (int32_t k = v->sub_begin[c], end = v->sub_end[c]; k < end; k++) {
                int32_t id = v->dfs_tokens[k];
                if (all || v->off[id + 1] - v->off[id] <= max_len)
                    words[id >> 6] |= 1ull << (id & 63);
            }
            return true;
        }
    }
    for (int32_t id = t[c].first_token; id >= 0; id = v->tok_next[id])
        words[id >> 6] |= 1ull << (id & 63);
    if (inner) {
        m->todo[*n].node = c;
        m->todo[(*n)++].state = next;
    }
    return true;
}

/* The states the string slice's bytes lead `state` through, depth after
 * depth (the ordinary characters of a string all go the same way):
 * m->chain[d] after d of them, d = 0..slice_len. The depth up to which
 * they stay live (slice_len when they never die: a state they lead back
 * to itself is the body of a free string, a chain of counting states a
 * string with a count), or -1 when they part ways somewhere (no slice
 * here), or when recording and one is accepting. -2 on OOM or budget. */
static int slice_chain(cg_masker *m, uint32_t state)
{
    const cg_vocab *v = m->v;
    uint32_t *chain = m->chain;
    chain[0] = state;
    for (size_t d = 1; d <= v->slice_len; d++) {
        uint32_t next = uniform_step(m, chain[d - 1], v->slice_set);
        if (next == UINT32_MAX)
            return -2;
        if (next == CG_MIXED)
            return -1;
        if (next == CG_ALL_DEAD)
            return (int)d - 1;
        if (m->recording && cg_parser_accepting(m->p, next))
            return -1;
        chain[d] = next;
        if (next == chain[d - 1]) {
            for (size_t k = d + 1; k <= v->slice_len; k++)
                chain[k] = next;
            break;
        }
    }
    return (int)v->slice_len;
}

/* OR into `words` the tokens below trie node `from` (not its own) whose
 * bytes, after from's, lead `state` somewhere live. With m->recording,
 * the exits met are recorded for `rec`. False on OOM or budget. */
static bool walk(cg_masker *m, uint64_t *words, int32_t from, uint32_t state, uint32_t rec)
{
    const walk_node *t = m->v->walk;
    /* Each trie node is pushed at most once, so the stack never exceeds
     * the trie's size. */
    size_t n = 0;
    /* From the root, a state inside a string (its ordinary characters
     * lead, depth after depth, from one live state to the next) takes the
     * string slice's tokens as long as the chain stays live, and walks on
     * only where paths leave the slice. Not while recording exits of an
     * accepting state: the slice's paths would hold exits. */
    int live = -1;
    const cg_vocab *v = m->v;
    if (from == 0 && v->slice_len && !(m->recording && cg_parser_accepting(m->p, state)) &&
        (live = slice_chain(m, state)) == -2)
        return false;
    if (live >= 0) {
        if (live > 0) {
            const uint64_t *upto = v->slice_upto + (size_t)(live - 1) * v->mask_words;
            for (size_t w = 0; w < v->mask_words; w++)
                words[w] |= upto[w];
        }
        for (size_t k = 0; k < v->n_slice_exits; k++) {
            int32_t c = v->slice_exits[k];
            /* Its parent's path is in the slice: live when short enough. */
            size_t parent_len = (size_t)v->depth[c] - 1;
            if (parent_len > (size_t)live)
                continue;
            const int32_t *row = cg_parser_row(m->p, m->chain[parent_len]);
            if (!visit(m, words, c, m->chain[parent_len], &row, &n, rec))
                return false;
        }
    } else {
        m->todo[n].node = from;
        m->todo[n++].state = state;
    }
    while (n) {
        n--;
        int32_t node = m->todo[n].node;
        uint32_t st = m->todo[n].state;
        const int32_t *row = cg_parser_row(m->p, st);
        for (int32_t c = node + 1; c < t[node].end; c = t[c].end)
            if (!visit(m, words, c, st, &row, &n, rec))
                return false;
    }
    return true;
}

/* `state`'s mask walked from the trie's root into a cache slot; with
 * `record`, its exits are recorded on the way. NULL on OOM or budget. */
static const uint8_t *walked_mask(cg_masker *m, uint32_t state, bool record)
{
    /* A cached mask walked again to record its exits keeps its slot. */
    uint8_t *mask = m->slot_of[state] ? m->masks + (size_t)(m->slot_of[state] - 1) * m->mask_bytes
                                      : take_slot(m, state);
    if (!mask)
        return NULL;
    /* Until the walk finishes the slot holds no valid mask. */
    m->slot_of[state] = 0;
    memset(mask, 0, m->mask_bytes);
    size_t slot = (size_t)(mask - m->masks) / m->mask_bytes;
    if (record) {
        m->exits_at[state] = (uint32_t)m->n_exit_pool + 1;
        m->exits_n[state] = 0;
    }
    m->recording = record;
    bool ok = walk(m, (uint64_t *)(void *)mask, 0, state, state);
    m->recording = false;
    if (!ok) {
        if (record)
            m->exits_at[state] = 0;
        return NULL;
    }
    m->slot_of[state] = (uint32_t)slot + 1;
    return mask;
}

/* The mask of a split state: its inner state's mask (cached, exits
 * recorded the first time), then for each exit the walk of the tokens
 * below it from the outer state. NULL when the inner state has too many
 * exits (the caller walks instead), or on OOM or budget (*failed). */
static const uint8_t *split_mask(cg_masker *m, uint32_t state, uint32_t in, uint32_t out,
                                 bool *failed)
{
    *failed = true;
    if (!cover_state(m, in) || !cover_state(m, out))
        return NULL;
    const uint8_t *inner = NULL;
    if (m->exits_at[in] && m->slot_of[in])
        inner = m->masks + (size_t)(m->slot_of[in] - 1) * m->mask_bytes;
    else
        inner = walked_mask(m, in, m->exits_at[in] == 0);
    if (!inner)
        return NULL;
    *failed = false;
    if (m->exits_n[in] == CG_EXITS_MANY)
        return NULL;
    /* The slot for `state` may be the inner mask's own: copy it first. */
    memcpy(m->inner_bits, inner, m->mask_bytes);
    *failed = true;
    uint8_t *mask = take_slot(m, state);
    if (!mask)
        return NULL;
    m->slot_of[state] = 0;
    size_t slot = (size_t)(mask - m->masks) / m->mask_bytes;
    memcpy(mask, m->inner_bits, m->mask_bytes);
    uint64_t *words = (uint64_t *)(void *)mask;
    for (uint32_t i = 0, at = m->exits_at[in] - 1; i < m->exits_n[in]; i++)
        if (!walk(m, words, m->exit_pool[at + i], out, 0))
            return NULL;
    m->slot_of[state] = (uint32_t)slot + 1;
    *failed = false;
    return mask;
}

const uint8_t *cg_masker_get(cg_masker *m, uint32_t state)
{
    if (!cover_state(m, state))
        return NULL;
    if (m->slot_of[state])
        return m->masks + (size_t)(m->slot_of[state] - 1) * m->mask_bytes;
    /* Counts that no token can use up do not change the mask: the body of
     * a string with a large maxLength shares one state's mask (and its
     * split below) until its last characters. */
    if (m->split && m->v->max_len > 0) {
        if (!m->canon_of[state]) {
            uint32_t c = cg_parser_horizon(m->p, state, (uint32_t)m->v->max_len);
            if (c == UINT32_MAX || !cover_state(m, c))
                return NULL;
            m->canon_of[state] = c + 1;
        }
        uint32_t c = m->canon_of[state] - 1;
        if (c != state)
            return cg_masker_get(m, c);
    }
    /* A state inside a free string (or number, or any rule) in a new
     * context shares its inner state with every other such context: the
     * inner mask is walked once, and each context adds only the tokens
     * that run past the inner part's end. */
    if (m->split) {
        uint32_t in = 0, out = 0;
        int r = cg_parser_split(m->p, state, &in, &out);
        if (r < 0)
            return NULL;
        /* An inner state met for the first time is only noted: its mask
         * pays off from the second context on (a string's body), and most
         * states' inner ones never recur (a key's letters, a number). */
        if (r == 1 && (!cover_state(m, in) || !cover_state(m, state)))
            return NULL;
        if (r == 1 && !m->inner_seen[in]) {
            m->inner_seen[in] = 1;
            r = 0;
        }
        if (r == 1) {
            bool failed;
            const uint8_t *mask = split_mask(m, state, in, out, &failed);
            if (mask || failed)
                return mask;
        }
    }
    return walked_mask(m, state, false);
}
