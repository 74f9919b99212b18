/*
 * core/conformance.c - see conformance.h. One section per plugin kind; each
 * check records its verdict with check() and never trusts a size or pointer
 * the plugin hands back without bounds-checking it first.
 */
#include "conformance.h"
#include "abi_sizes.h"
#include "plugin_create.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stretch/reader.h>

/* ---- the report ---- */

static bool check(st_conformance_report *rep, const char *name, bool passed,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool check(st_conformance_report *rep, const char *name, bool passed, const char *fmt,
                  ...)
{
    if (!passed)
        rep->n_failed++;
    if (rep->n_checks == ST_CONFORMANCE_MAX_CHECKS) {
        rep->n_dropped++;
        return passed;
    }
    st_conformance_check *c = &rep->checks[rep->n_checks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->passed = passed;
    c->skipped = false;
    c->message[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->message, sizeof c->message, fmt, ap);
        va_end(ap);
    }
    return passed;
}

static void skip(st_conformance_report *rep, const char *name, const char *why)
{
    if (check(rep, name, true, "skipped: %s", why) && rep->n_checks > 0 &&
        strcmp(rep->checks[rep->n_checks - 1].name, name) == 0)
        rep->checks[rep->n_checks - 1].skipped = true;
}

/* A deterministic generator for test inputs (splitmix64), so a failing
 * check fails the same way every run. */
static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *x)
{
    return (double)(rng_next(x) >> 11) * 0x1.0p-53;
}

/* The shape the posenc and attention checks configure with (SmolLM2-135M,
 * with a context twice its trained length). */
static st_model_shape sample_shape(void)
{
    st_model_shape s = {0};
    s.struct_size = sizeof s;
    s.n_layers = 30;
    s.n_heads = 9;
    s.n_kv_heads = 3;
    s.head_dim = 64;
    s.rope_dims = 64;
    s.rope_base = 100000.0f;
    s.n_ctx_train = 8192;
    s.n_ctx = 16384;
    s.n_embd = 576;
    s.n_vocab = 49152;
    return s;
}

/* ---- tokenizer ---- */

/* For a normalizing tokenizer (ST_TOKENIZER_NORMALIZES_V1): the text it
 * decodes to must encode to the same ids. */
static bool reencodes_same(const st_tokenizer_ops *ops, void *inst, const char *text, size_t len,
                           const int32_t *ids, size_t n_ids)
{
    st_error err = {0};
    size_t cap = n_ids + 16, n2 = 0;
    int32_t *again = calloc(cap, sizeof *again);
    /* Special tokens decode to their text ([UNK]); parsing it gives them back. */
    bool same = again &&
                ops->encode(inst, text, len, ST_ENCODE_PARSE_SPECIAL, again, cap, &n2, &err) ==
                    ST_OK &&
                n2 == n_ids && memcmp(again, ids, n_ids * sizeof *ids) == 0;
    free(again);
    return same;
}

static void check_tokenizer(const st_plugin_entry *entry, const st_tokenizer_ops *ops, void *inst,
                            st_conformance_report *rep)
{
    bool normalizes = entry->get_extension &&
                      entry->get_extension(inst, ST_TOKENIZER_NORMALIZES_V1) != NULL;
    if (!check(rep, "tokenizer.ops", ops->encode && ops->decode && ops->piece &&
                                         ops->vocab_size && ops->special && ops->is_special,
               "encode, decode, piece, vocab_size, special and is_special are all required"))
        return;
    st_error err = {0};
    int32_t vocab = ops->vocab_size(inst);
    if (!check(rep, "tokenizer.vocab_size", vocab > 0, "vocab_size() = %d", (int)vocab))
        return;

    st_special_tokens sp;
    memset(&sp, 0xff, sizeof sp); /* every id -1 unless the plugin fills it */
    sp.struct_size = sizeof sp;
    ops->special(inst, &sp);
    int32_t ids_sp[6] = {sp.bos, sp.eos, sp.eot, sp.pad, sp.unk, sp.sep};
    bool sp_ok = true;
    for (int i = 0; i < 6; i++)
        sp_ok = sp_ok && ids_sp[i] >= -1 && ids_sp[i] < vocab;
    check(rep, "tokenizer.special", sp_ok,
          sp_ok ? NULL : "special ids (bos %d eos %d eot %d pad %d unk %d sep %d) not -1 or < %d",
          sp.bos, sp.eos, sp.eot, sp.pad, sp.unk, sp.sep, vocab);

    static const char text[] =
        "Hello, world! The quick brown fox jumps over 13 lazy dogs.\n"
        "  Indented line\twith a tab; (parentheses) [brackets] {braces} 42 + 7 = 49?";
    size_t len = sizeof text - 1;
    size_t cap = len * 4 + 16, n_ids = 0;
    int32_t *ids = calloc(cap, sizeof *ids);
    char *out = calloc(len * 4 + 16, 1);
    if (!ids || !out) {
        check(rep, "tokenizer.roundtrip_ascii", false, "out of memory in the checker");
        free(ids);
        free(out);
        return;
    }
    st_status st = ops->encode(inst, text, len, 0, ids, cap, &n_ids, &err);
    bool enc_ok = st == ST_OK && n_ids > 0 && n_ids <= cap;
    bool ids_ok = enc_ok;
    for (size_t i = 0; enc_ok && i < n_ids; i++)
        ids_ok = ids_ok && ids[i] >= 0 && ids[i] < vocab;
    bool encode_passed;
    if (st != ST_OK)
        encode_passed = check(rep, "tokenizer.encode", false, "encode failed (%d): %s", (int)st,
                              err.message);
    else
        encode_passed = check(rep, "tokenizer.encode", ids_ok,
                              "encode gave %zu ids (cap %zu), some outside [0, %d)", n_ids, cap,
                              (int)vocab);
    if (encode_passed) {
        size_t n_bytes = 0;
        st = ops->decode(inst, ids, n_ids, out, len * 4 + 16, &n_bytes, &err);
        bool same = st == ST_OK && n_bytes == len && memcmp(out, text, len) == 0;
        if (normalizes) {
            same = st == ST_OK && reencodes_same(ops, inst, out, n_bytes, ids, n_ids);
            check(rep, "tokenizer.roundtrip_ascii", same,
                  same ? NULL : "encode(decode(encode(x))) != encode(x) (status %d): %s",
                  (int)st, st != ST_OK ? err.message : "the ids differ");
        } else
            check(rep, "tokenizer.roundtrip_ascii", same,
                  same ? NULL : "decode(encode(x)) != x (status %d, %zu bytes vs %zu): %s",
                  (int)st, n_bytes, len, st != ST_OK ? err.message : "text differs");

        /* Buffer sizing: one id short must say ST_E_RANGE and the full need. */
        size_t need = 0;
        st = ops->encode(inst, text, len, 0, ids, n_ids - 1, &need, &err);
        check(rep, "tokenizer.encode_range", st == ST_E_RANGE && need == n_ids,
              "encode with cap %zu returned %d with need %zu (expected ST_E_RANGE, %zu)",
              n_ids - 1, (int)st, need, n_ids);
        /* A normalizing tokenizer decodes to its normalized text. */
        size_t full = normalizes ? n_bytes : len;
        need = 0;
        st = ops->decode(inst, ids, n_ids, out, full - 1, &need, &err);
        check(rep, "tokenizer.decode_range", st == ST_E_RANGE && need == full,
              "decode with cap %zu returned %d with need %zu (expected ST_E_RANGE, %zu)",
              full - 1, (int)st, need, full);
    }

    size_t n_empty = 99;
    st = ops->encode(inst, "", 0, 0, ids, cap, &n_empty, &err);
    check(rep, "tokenizer.encode_empty", st == ST_OK && n_empty == 0,
          "encode(\"\") returned %d with %zu ids", (int)st, n_empty);

    if (sp.bos >= 0) {
        size_t nb = 0;
        st = ops->encode(inst, "a", 1, ST_ENCODE_ADD_BOS, ids, cap, &nb, &err);
        check(rep, "tokenizer.add_bos", st == ST_OK && nb >= 1 && nb <= cap && ids[0] == sp.bos,
              "encode with ST_ENCODE_ADD_BOS returned %d, first id %d, bos %d", (int)st,
              nb >= 1 && nb <= cap ? (int)ids[0] : -1, (int)sp.bos);
    }

    int32_t n_piece = vocab < 4096 ? vocab : 4096;
    int32_t bad = -1;
    for (int32_t id = 0; id < n_piece && bad < 0; id++) {
        const char *bytes = NULL;
        size_t pl = 0;
        if (ops->piece(inst, id, &bytes, &pl, &err) != ST_OK || (!bytes && pl))
            bad = id;
    }
    check(rep, "tokenizer.piece_all", bad < 0, "piece(%d) failed: %s", (int)bad, err.message);

    const char *bytes = NULL;
    size_t pl = 0;
    /* An id outside the vocabulary is ST_E_INVALID: ST_E_RANGE would tell
     * a caller sizing its buffer to retry with *n_bytes, which no size
     * fixes (and which a refused id does not set). */
    st_status lo = ops->piece(inst, -1, &bytes, &pl, &err);
    st_status hi = ops->piece(inst, vocab, &bytes, &pl, &err);
    check(rep, "tokenizer.piece_out_of_range", lo == ST_E_INVALID && hi == ST_E_INVALID,
          "piece(-1) returned %d and piece(vocab=%d) returned %d; both must be ST_E_INVALID "
          "(%d)", (int)lo, (int)vocab, (int)hi, (int)ST_E_INVALID);

    int32_t bad_id = vocab;
    size_t nb = 0;
    st = ops->decode(inst, &bad_id, 1, out, len, &nb, &err);
    check(rep, "tokenizer.decode_out_of_range", st == ST_E_INVALID,
          "decode of id %d (= vocab size) returned %d, not ST_E_INVALID (%d)", (int)bad_id,
          (int)st, (int)ST_E_INVALID);
    free(ids);
    free(out);
}

/* ---- positional encoding ---- */

static bool desc_ok(const st_posenc_desc *d, const st_model_shape *s, char *why, size_t cap)
{
    const uint32_t known = ST_POSENC_ROTARY | ST_POSENC_BIAS | ST_POSENC_MAP | ST_POSENC_SLOPES;
    if (d->flags & ~known) {
        snprintf(why, cap, "unknown flag bits 0x%x", d->flags & ~known);
        return false;
    }
    if (d->flags & ST_POSENC_SLOPES) {
        if (d->struct_size < offsetof(st_posenc_desc, n_slopes) + sizeof d->n_slopes ||
            !d->slopes || d->n_slopes != s->n_heads) {
            snprintf(why, cap, "SLOPES with %s slopes and n_slopes %u (expected n_heads = %u)",
                     d->slopes ? "set" : "NULL", d->n_slopes, s->n_heads);
            return false;
        }
        for (uint32_t h = 0; h < d->n_slopes; h++)
            if (!isfinite(d->slopes[h])) {
                snprintf(why, cap, "slope %u is not finite", h);
                return false;
            }
    }
    if (d->flags & ST_POSENC_ROTARY) {
        if (!d->inv_freq || d->n_freq != s->rope_dims / 2) {
            snprintf(why, cap, "ROTARY with inv_freq %s and n_freq %u (expected rope_dims/2 = %u)",
                     d->inv_freq ? "set" : "NULL", d->n_freq, s->rope_dims / 2);
            return false;
        }
        for (uint32_t i = 0; i < d->n_freq; i++)
            if (!isfinite(d->inv_freq[i]) || d->inv_freq[i] < 0.0f) {
                snprintf(why, cap, "inv_freq[%u] = %g is not a finite, non-negative number", i,
                         (double)d->inv_freq[i]);
                return false;
            }
    }
    if (!isfinite(d->rotary_scale) || d->rotary_scale <= 0.0f) {
        snprintf(why, cap, "rotary_scale %g is not finite and positive", (double)d->rotary_scale);
        return false;
    }
    if (!isfinite(d->attn_temperature) || d->attn_temperature <= 0.0f) {
        snprintf(why, cap, "attn_temperature %g is not finite and positive",
                 (double)d->attn_temperature);
        return false;
    }
    return true;
}

/* stretch_table on a small random table: the size query (no buffer), then
 * the stretch into exactly that many rows, at least as many as given and
 * all finite. */
static void check_stretch_table(const st_posenc_ops *ops, void *inst,
                                st_conformance_report *rep)
{
    enum { ROWS = 24, DIM = 8 };
    float table[ROWS * DIM];
    uint64_t x = 0x5eedu;
    for (int i = 0; i < ROWS * DIM; i++)
        table[i] = (float)(rng_unit(&x) * 2.0 - 1.0);
    st_error err = {0};
    uint32_t need = 0;
    st_status st = ops->stretch_table(inst, table, ROWS, DIM, NULL, 0, &need, &err);
    if (!check(rep, "posenc.stretch_table", (st == ST_OK || st == ST_E_RANGE) && need >= ROWS &&
                                                need <= ROWS * 4096u,
               "size query for %d rows returned %d with %u rows: %s", ROWS, (int)st, need,
               err.message))
        return;
    float *out = malloc((size_t)need * DIM * sizeof *out);
    if (!out) {
        check(rep, "posenc.stretch_table", false, "out of memory");
        return;
    }
    uint32_t got = 0;
    memset(&err, 0, sizeof err);
    st = ops->stretch_table(inst, table, ROWS, DIM, out, need, &got, &err);
    bool finite = st == ST_OK && got == need;
    for (size_t i = 0; finite && i < (size_t)got * DIM; i++)
        finite = isfinite(out[i]);
    check(rep, "posenc.stretch_table", finite,
          "stretch into %u rows returned %d with %u rows%s: %s", need, (int)st, got,
          st == ST_OK && got == need ? " (not all finite)" : "", err.message);
    free(out);
}

static void check_posenc(const st_posenc_ops *ops, void *inst, st_conformance_report *rep)
{
    if (!check(rep, "posenc.ops", ops->configure != NULL, "configure is required"))
        return;
    st_model_shape shape = sample_shape();
    st_posenc_desc d = {0};
    d.struct_size = sizeof d;
    st_error err = {0};
    st_status st = ops->configure(inst, &shape, &d, &err);
    if (st == ST_E_INVALID) {
        /* A plugin for learned absolute position tables (long-clip) may
         * refuse the RoPE model; it must take a GPT-2-like one. */
        shape.rope_dims = 0;
        shape.n_pos_rows = 1024;
        shape.n_ctx_train = 1024;
        shape.n_ctx = 2048;
        memset(&err, 0, sizeof err);
        st = ops->configure(inst, &shape, &d, &err);
    }
    if (st == ST_E_UNAVAILABLE) {
        skip(rep, "posenc.configure", err.message);
        return;
    }
    if (!check(rep, "posenc.configure", st == ST_OK, "configure failed (%d): %s", (int)st,
               err.message))
        return;
    char why[ST_CONFORMANCE_MESSAGE_MAX] = "";
    check(rep, "posenc.desc", desc_ok(&d, &shape, why, sizeof why), "%s", why);

    enum { NP = 8 };
    int32_t pos[NP] = {0, 1, 2, 100, 4095, 8191, 8192, 16383};
    if (d.flags & ST_POSENC_MAP) {
        int32_t out[NP];
        if (!ops->map_positions) {
            check(rep, "posenc.map_positions", false, "ST_POSENC_MAP set but map_positions is NULL");
        } else {
            st = ops->map_positions(inst, pos, NP, out, &err);
            check(rep, "posenc.map_positions", st == ST_OK, "map_positions failed (%d): %s",
                  (int)st, err.message);
        }
    }
    if (d.flags & ST_POSENC_BIAS) {
        float bias[NP * NP];
        bool ok = ops->bias != NULL;
        if (ok)
            st = ops->bias(inst, 0, pos, NP, pos, NP, bias, &err);
        bool finite = ok && st == ST_OK;
        for (int i = 0; finite && i < NP * NP; i++)
            finite = !isnan(bias[i]);
        check(rep, "posenc.bias", finite,
              !ok ? "ST_POSENC_BIAS set but bias is NULL" : "bias failed or gave NaN: %s",
              err.message);
    }
    if (ops->stretch_table)
        check_stretch_table(ops, inst, rep);
    if (ops->update) {
        bool changed = false;
        st_posenc_desc u = d;
        st = ops->update(inst, shape.n_ctx_train * 2, &u, &changed, &err);
        bool ok = st == ST_OK;
        why[0] = '\0';
        if (ok && changed)
            ok = desc_ok(&u, &shape, why, sizeof why);
        check(rep, "posenc.update", ok, "update(%u) returned %d: %s%s", shape.n_ctx_train * 2,
              (int)st, err.message, why);
    }
}

/* ---- attention ---- */

/* Collects a plan for the checks: visibility counts per (head, query, slot)
 * plus any structural fault found while adding. */
typedef struct plan_sink {
    const st_attn_query *q;
    uint32_t n_heads;
    uint32_t h_lo, h_hi;    /* the query heads the plan may reach (a KV head's, per head) */
    uint8_t *seen;          /* [n_heads][n_q][n_slots] */
    bool causal_violation;
    uint32_t group;         /* the plan's ST_POS_GROUPED group size, 0 = none yet */
    char fault[ST_CONFORMANCE_MESSAGE_MAX];
} plan_sink;

static void sink_fault(plan_sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sink_fault(plan_sink *s, const char *fmt, ...)
{
    if (s->fault[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fault, sizeof s->fault, fmt, ap);
    va_end(ap);
}

static bool shape_ok(plan_sink *s, const st_attn_range2 *r)
{
    if (r->head != ST_ALL_HEADS && r->head >= s->n_heads) {
        sink_fault(s, "range for head %u of %u", r->head, s->n_heads);
        return false;
    }
    if (r->head != ST_ALL_HEADS && (r->head < s->h_lo || r->head >= s->h_hi)) {
        sink_fault(s, "range for head %u in the plan of KV head %u (query heads %u..%u)",
                   r->head, s->q->kv_head, s->h_lo, s->h_hi - 1);
        return false;
    }
    if (r->min_dist > r->max_dist) {
        sink_fault(s, "range with min_dist %d > max_dist %d", r->min_dist, r->max_dist);
        return false;
    }
    if ((int)r->pos_mode < ST_POS_TRUE || (int)r->pos_mode > ST_POS_GROUPED) {
        sink_fault(s, "range with unknown pos_mode %d", (int)r->pos_mode);
        return false;
    }
    if (r->pos_mode == ST_POS_GROUPED) {
        if (r->group == 0) {
            sink_fault(s, "ST_POS_GROUPED range with group size 0");
            return false;
        }
        if (s->group && s->group != r->group) {
            sink_fault(s, "ST_POS_GROUPED ranges with group sizes %u and %u in one plan",
                       s->group, r->group);
            return false;
        }
        s->group = r->group;
    }
    return true;
}

/* A 1.0 range as the sized form; GROUPED is refused (it needs the group
 * size, which only add_range2 carries). */
static bool widen(plan_sink *s, const st_attn_range *r, st_attn_range2 *w, const char *op)
{
    if (r->pos_mode == ST_POS_GROUPED) {
        sink_fault(s, "ST_POS_GROUPED through %s (it needs the sized form, %s2)", op, op);
        return false;
    }
    *w = (st_attn_range2){sizeof *w, r->head, r->k_begin, r->k_end, r->min_dist, r->max_dist,
                          r->pos_mode, r->fixed_dist, 0, 0};
    return true;
}

static bool sized_ok(plan_sink *s, const st_attn_range2 *r)
{
    if (r && r->struct_size < sizeof *r) {
        sink_fault(s, "st_attn_range2.struct_size %u < %zu", r->struct_size, sizeof *r);
        return false;
    }
    return true;
}

static void mark(plan_sink *s, const st_attn_range2 *r, uint32_t slot)
{
    const st_attn_query *q = s->q;
    uint32_t n_slots = q->kv->n_slots;
    uint32_t h0 = r->head == ST_ALL_HEADS ? s->h_lo : r->head;
    uint32_t h1 = r->head == ST_ALL_HEADS ? s->h_hi : r->head + 1;
    for (uint32_t i = 0; i < q->n_q; i++) {
        int64_t d = (int64_t)q->q_pos[i] - q->kv->pos[slot];
        if (d < r->min_dist || d > r->max_dist)
            continue;
        if (d < 0)
            s->causal_violation = true;
        if (r->pos_mode == ST_POS_GROUPED && r->group) {
            /* The relative position the model sees must not be negative:
             * RoPE would score the key as one from the future. */
            int64_t gd = (int64_t)q->q_pos[i] / r->group - q->kv->pos[slot] / r->group +
                         r->group_offset;
            if (gd < 0)
                sink_fault(s, "ST_POS_GROUPED range: query pos %d, key pos %d at grouped "
                           "distance %lld < 0 (group %u, offset %d)", q->q_pos[i],
                           q->kv->pos[slot], (long long)gd, r->group, r->group_offset);
        }
        for (uint32_t h = h0; h < h1; h++) {
            uint8_t *c = &s->seen[((size_t)h * q->n_q + i) * n_slots + slot];
            if (*c < 255)
                (*c)++;
        }
    }
}

static st_status sink_range2(plan_sink *s, const st_attn_range2 *r)
{
    if (!r || !shape_ok(s, r))
        return ST_E_INVALID;
    if (r->k_begin > r->k_end || r->k_end > s->q->kv->n_slots) {
        sink_fault(s, "range [%u, %u) outside [0, %u)", r->k_begin, r->k_end,
                   s->q->kv->n_slots);
        return ST_E_RANGE;
    }
    for (uint32_t k = r->k_begin; k < r->k_end; k++)
        mark(s, r, k);
    return ST_OK;
}

static st_status sink_add_range(void *host, const st_attn_range *r)
{
    plan_sink *s = host;
    st_attn_range2 w;
    if (!r || !widen(s, r, &w, "add_range"))
        return ST_E_INVALID;
    return sink_range2(s, &w);
}

static st_status sink_add_range2(void *host, const st_attn_range2 *r)
{
    plan_sink *s = host;
    if (!sized_ok(s, r))
        return ST_E_INVALID;
    return sink_range2(s, r);
}

static st_status sink_indices2(plan_sink *s, const uint32_t *slots, size_t n,
                               const st_attn_range2 *r)
{
    if (!r || !shape_ok(s, r))
        return ST_E_INVALID;
    if (n && !slots) {
        sink_fault(s, "add_indices with NULL slots");
        return ST_E_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (slots[i] >= s->q->kv->n_slots || (i > 0 && slots[i] <= slots[i - 1])) {
            sink_fault(s, "index list not ascending, unique and below %u (slot %u at %zu)",
                       s->q->kv->n_slots, slots[i], i);
            return ST_E_RANGE;
        }
    }
    for (size_t i = 0; i < n; i++)
        mark(s, r, slots[i]);
    return ST_OK;
}

static st_status sink_add_indices(void *host, const uint32_t *slots, size_t n,
                                  const st_attn_range *r)
{
    plan_sink *s = host;
    st_attn_range2 w;
    if (!r || !widen(s, r, &w, "add_indices"))
        return ST_E_INVALID;
    return sink_indices2(s, slots, n, &w);
}

static st_status sink_add_indices2(void *host, const uint32_t *slots, size_t n,
                                   const st_attn_range2 *r)
{
    plan_sink *s = host;
    if (!sized_ok(s, r))
        return ST_E_INVALID;
    return sink_indices2(s, slots, n, r);
}

/* Plan one block and check it; `label` names the scenario in messages. */
static void check_plan(const st_attention_ops *ops, void *inst, const st_model_shape *shape,
                       const st_kv_view *kv, uint32_t q_first, uint32_t n_q, bool needs_qk,
                       uint32_t kv_head, const char *label, st_conformance_report *rep)
{
    char name[ST_CONFORMANCE_NAME_MAX];
    uint32_t *q_slot = calloc(n_q, sizeof *q_slot);
    int32_t *q_pos = calloc(n_q, sizeof *q_pos);
    size_t n_seen = (size_t)shape->n_heads * n_q * kv->n_slots;
    uint8_t *seen = calloc(n_seen ? n_seen : 1, 1);
    float *qv = NULL, *kvals = NULL;
    if (needs_qk) {
        qv = calloc((size_t)n_q * shape->n_heads * shape->head_dim, sizeof *qv);
        kvals = calloc((size_t)kv->n_slots * shape->n_kv_heads * shape->head_dim, sizeof *kvals);
    }
    snprintf(name, sizeof name, "attention.plan.%s", label);
    if (!q_slot || !q_pos || !seen || (needs_qk && (!qv || !kvals))) {
        check(rep, name, false, "out of memory in the checker");
        goto done;
    }
    uint64_t x = 7;
    if (needs_qk) {
        for (size_t i = 0; i < (size_t)n_q * shape->n_heads * shape->head_dim; i++)
            qv[i] = (float)(rng_unit(&x) * 2.0 - 1.0);
        for (size_t i = 0; i < (size_t)kv->n_slots * shape->n_kv_heads * shape->head_dim; i++)
            kvals[i] = (float)(rng_unit(&x) * 2.0 - 1.0);
    }
    for (uint32_t i = 0; i < n_q; i++) {
        q_slot[i] = q_first + i;
        q_pos[i] = kv->pos[q_first + i];
    }
    st_attn_query q = {0};
    q.struct_size = sizeof q;
    q.layer = 0;
    q.n_heads = shape->n_heads;
    q.n_kv_heads = shape->n_kv_heads;
    q.head_dim = shape->head_dim;
    q.n_q = n_q;
    q.q_pos = q_pos;
    q.q_slot = q_slot;
    q.kv = kv;
    q.q = qv;
    q.k = kvals;
    q.kv_head = kv_head;
    uint32_t gs = shape->n_kv_heads ? shape->n_heads / shape->n_kv_heads : 1;
    plan_sink sink = {.q = &q, .n_heads = shape->n_heads, .seen = seen,
                      .h_lo = kv_head == ST_ALL_HEADS ? 0 : kv_head * gs,
                      .h_hi = kv_head == ST_ALL_HEADS ? shape->n_heads : kv_head * gs + gs};
    st_attn_plan_builder b = {
        .struct_size = sizeof b, .host = &sink,
        .add_range = sink_add_range, .add_indices = sink_add_indices,
        .add_range2 = sink_add_range2, .add_indices2 = sink_add_indices2};
    st_error err = {0};
    st_status st = ops->plan(inst, &q, &b, &err);
    if (!check(rep, name, st == ST_OK && !sink.fault[0], "%s",
               st != ST_OK ? err.message : sink.fault))
        goto done;

    size_t twice = 0, own_missing = 0;
    uint32_t tw_h = 0, tw_q = 0, tw_k = 0, om_h = 0, om_q = 0;
    for (uint32_t h = sink.h_lo; h < sink.h_hi; h++)
        for (uint32_t i = 0; i < n_q; i++) {
            const uint8_t *row = &seen[((size_t)h * n_q + i) * kv->n_slots];
            for (uint32_t k = 0; k < kv->n_slots; k++)
                if (row[k] > 1 && twice++ == 0) {
                    tw_h = h;
                    tw_q = i;
                    tw_k = k;
                }
            if (row[q_slot[i]] == 0 && own_missing++ == 0) {
                om_h = h;
                om_q = i;
            }
        }
    snprintf(name, sizeof name, "attention.no_double.%s", label);
    check(rep, name, twice == 0,
          "%zu (head, query, key) pairs visible twice, first head %u query pos %d slot %u", twice,
          tw_h, q_pos[tw_q], tw_k);
    snprintf(name, sizeof name, "attention.own_key.%s", label);
    check(rep, name, own_missing == 0,
          "%zu (head, query) pairs do not see their own key, first head %u query pos %d",
          own_missing, om_h, q_pos[om_q]);
    snprintf(name, sizeof name, "attention.causal.%s", label);
    check(rep, name, !sink.causal_violation, "a query sees a key at a later position");
done:
    free(q_slot);
    free(q_pos);
    free(seen);
    free(qv);
    free(kvals);
}

/* Decode token by token, calling the observers the plugin asked for and
 * retain after each step, and check the cache stays within the budget.
 * Leaves the final cache in *kv (caller frees pos/tokens). */
static void check_retain(const st_attention_ops *ops, void *inst, uint32_t needs,
                         uint32_t budget, uint32_t steps, st_kv_view *kv, int32_t *pos,
                         int32_t *tok, uint8_t *keep, float *weights,
                         st_conformance_report *rep)
{
    st_error err = {0};
    uint32_t n = 0;
    uint32_t worst = 0;
    for (uint32_t step = 0; step < steps; step++) {
        pos[n] = (int32_t)step;
        tok[n] = (int32_t)(step % 1000);
        n++;
        kv->n_slots = n;
        if ((needs & ST_ATTN_NEEDS_ENTROPY) && ops->on_entropy) {
            uint32_t slot = n - 1;
            float e = (float)(1.0 + (step * 37 % 11));
            ops->on_entropy(inst, &slot, &e, 1);
        }
        if ((needs & ST_ATTN_NEEDS_WEIGHTS) && ops->on_attention) {
            for (uint32_t i = 0; i < n; i++)
                weights[i] = 1.0f / (float)n;
            int32_t qp = pos[n - 1];
            ops->on_attention(inst, 0, &qp, 1, weights, kv);
        }
        memset(keep, 1, n);
        st_status st = ops->retain(inst, kv, 1, keep, &err);
        if (st != ST_OK) {
            check(rep, "attention.retain", false, "retain failed at step %u (%d): %s", step,
                  (int)st, err.message);
            return;
        }
        if (!keep[n - 1]) {
            check(rep, "attention.retain", false, "retain dropped the newest slot at step %u",
                  step);
            return;
        }
        uint32_t m = 0;
        for (uint32_t i = 0; i < n; i++)
            if (keep[i]) {
                pos[m] = pos[i];
                tok[m] = tok[i];
                m++;
            }
        n = m;
        kv->n_slots = n;
        if (budget && n > budget) {
            check(rep, "attention.retain", false,
                  "after step %u the cache holds %u slots, over the budget of %u", step, n,
                  budget);
            return;
        }
        if (n > worst)
            worst = n;
    }
    check(rep, "attention.retain", true, "%u steps, at most %u slots kept (budget %u)", steps,
          worst, budget);
}

/* ---- attention, ABI 1.4: configure_kv, statistics, per-head retention ---- */

enum { ST_CONF_MAX_LAYERS = 256 };

/* The plugin's ops read up to its struct_size; later ones NULL. */
static st_attention_ops attn_ops_full(const st_attention_ops *ops)
{
    st_attention_ops o;
    uint32_t size;
    memcpy(&size, ops, sizeof size);
    memset(&o, 0, sizeof o);
    memcpy(&o, ops, size < sizeof o ? size : sizeof o);
    return o;
}

/* configure_kv as the engine calls it; false stops the attention checks. */
static bool check_configure_kv(const st_attention_ops *o, void *inst, const st_model_shape *shape,
                               uint32_t needs, uint32_t budget, st_attn_kv_config *c,
                               uint8_t *stats_layers, uint32_t *layer_budget,
                               st_conformance_report *rep)
{
    memset(stats_layers, 1, ST_CONF_MAX_LAYERS);
    memset(layer_budget, 0, ST_CONF_MAX_LAYERS * sizeof *layer_budget);
    *c = (st_attn_kv_config){ .struct_size = sizeof *c, .stats_layers = stats_layers,
                              .layer_budget = layer_budget };
    if (!o->configure_kv)
        return !o->retain_heads ||
               check(rep, "attention.configure_kv", false,
                     "retain_heads is set but configure_kv is NULL, so per-head slot sets "
                     "can never be asked for");
    st_error err = {0};
    st_status st = o->configure_kv(inst, shape, c, &err);
    if (st != ST_OK)
        return check(rep, "attention.configure_kv", false, "configure_kv failed (%d): %s",
                     (int)st, err.message);
    char why[ST_CONFORMANCE_MESSAGE_MAX] = "";
    if ((unsigned)c->stats > ST_STATS_QUERY_HEADS)
        snprintf(why, sizeof why, "stats %d is not NONE, KV_HEADS or QUERY_HEADS",
                 (int)c->stats);
    else if (c->per_head_slots > 1)
        snprintf(why, sizeof why, "per_head_slots %u, expected 0 or 1", c->per_head_slots);
    else if (c->stats_layers != stats_layers || c->layer_budget != layer_budget)
        snprintf(why, sizeof why, "the host's stats_layers or layer_budget arrays were replaced");
    else if (c->stats && !o->on_attention_stats)
        snprintf(why, sizeof why, "statistics asked for but on_attention_stats is NULL");
    else if (c->per_head_slots && !o->retain_heads)
        snprintf(why, sizeof why, "per-head slot sets asked for but retain_heads is NULL");
    else if (c->per_head_slots && (needs & (ST_ATTN_NEEDS_QK | ST_ATTN_NEEDS_WEIGHTS)))
        snprintf(why, sizeof why, "per-head slot sets with ST_ATTN_NEEDS_QK or "
                 "ST_ATTN_NEEDS_WEIGHTS (the host refuses the mix)");
    for (uint32_t l = 0; !why[0] && l < shape->n_layers && l < ST_CONF_MAX_LAYERS; l++)
        if (budget && layer_budget[l] > budget)
            snprintf(why, sizeof why, "layer_budget[%u] = %u exceeds cache_budget %u", l,
                     layer_budget[l], budget);
    if (why[0])
        return check(rep, "attention.configure_kv", false, "%s", why);
    return check(rep, "attention.configure_kv", true, "stats %d (window %u), per-head slots %u",
                 (int)c->stats, c->stats_window, c->per_head_slots);
}

/* Feed synthetic statistics and run retain_heads past the budget, in
 * blocks of 16 and then token by token, as the engine would. */
static void check_retain_heads(const st_attention_ops *o, void *inst, const st_model_shape *sh,
                               const st_attn_kv_config *c, uint32_t budget,
                               st_conformance_report *rep)
{
    const char *name = "attention.retain_heads";
    enum { BLOCK = 16 };
    uint32_t L = sh->n_layers, G = sh->n_kv_heads, H = sh->n_heads;
    uint32_t rows = c->stats == ST_STATS_QUERY_HEADS ? H : G, gs = H / G;
    uint32_t T = budget ? budget + 64 : 256, cap = (budget ? budget : T) + BLOCK;
    if (T > 20000 || L > ST_CONF_MAX_LAYERS) {
        skip(rep, name, "budget above 20000 slots or more than 256 layers");
        return;
    }
    size_t nh = (size_t)L * G;
    int32_t *pos = calloc(nh * cap, sizeof *pos), *tok = calloc(nh * cap, sizeof *tok);
    uint8_t *keepm = calloc(nh * cap, 1);
    uint8_t **keep = calloc(nh, sizeof *keep);
    st_kv_view *views = calloc(nh, sizeof *views);
    float *srows = calloc((size_t)L * rows * cap, sizeof *srows);
    const float **sums = calloc((size_t)L * rows, sizeof *sums);
    uint32_t *n = calloc(nh, sizeof *n);
    int32_t qpos[BLOCK];
    if (!pos || !tok || !keepm || !keep || !views || !srows || !sums || !n) {
        check(rep, name, false, "out of memory in the checker");
        goto done;
    }
    uint64_t x = 11;
    uint32_t worst = 0;
    for (uint32_t t0 = 0; t0 < T;) {
        uint32_t nb = t0 + BLOCK + 8 <= T ? BLOCK : 1;
        for (size_t i = 0; i < nh; i++) {
            for (uint32_t k = 0; k < nb; k++) {
                pos[i * cap + n[i] + k] = (int32_t)(t0 + k);
                tok[i * cap + n[i] + k] = (int32_t)((t0 + k) % 1000);
            }
            n[i] += nb;
            views[i] = (st_kv_view){ .struct_size = sizeof views[i], .n_slots = n[i],
                                     .capacity = cap, .pos = pos + i * cap,
                                     .tokens = tok + i * cap };
            keep[i] = keepm + i * cap;
            memset(keep[i], 1, n[i]);
        }
        if (c->stats) {
            uint32_t nq = c->stats_window && c->stats_window < nb ? c->stats_window : nb;
            for (uint32_t k = 0; k < nq; k++)
                qpos[k] = (int32_t)(t0 + nb - nq + k);
            for (uint32_t l = 0; l < L; l++)
                for (uint32_t r = 0; r < rows; r++) {
                    size_t i = (size_t)l * rows + r;
                    uint32_t ns = n[(size_t)l * G + (rows == G ? r : r / gs)];
                    float *w = srows + i * cap;
                    for (uint32_t j = 0; j < ns; j++)
                        w[j] = (float)(rng_unit(&x) * nq / ns);
                    sums[i] = c->stats_layers[l] ? w : NULL;
                }
            st_attn_stats st = { .struct_size = sizeof st, .n_layers = L, .n_kv_heads = G,
                                 .n_rows = rows, .n_q = nq, .q_pos = qpos, .kv = views,
                                 .sum = sums };
            st_error err = {0};
            st_status s = o->on_attention_stats(inst, &st, &err);
            if (s != ST_OK) {
                check(rep, "attention.stats", false, "on_attention_stats failed at position "
                      "%u (%d): %s", t0, (int)s, err.message);
                goto done;
            }
        }
        st_kv_heads hs = { .struct_size = sizeof hs, .n_layers = L, .n_kv_heads = G,
                           .n_new = nb, .kv = views, .keep = keep };
        st_error err = {0};
        st_status s = o->retain_heads(inst, &hs, &err);
        if (s != ST_OK) {
            check(rep, name, false, "retain_heads failed at position %u (%d): %s", t0, (int)s,
                  err.message);
            goto done;
        }
        for (size_t i = 0; i < nh; i++) {
            uint32_t l = (uint32_t)(i / G), lb = c->layer_budget[l] ? c->layer_budget[l] : budget;
            if (!keep[i][n[i] - 1]) {
                check(rep, name, false, "layer %u KV head %u dropped its newest slot at "
                      "position %u", l, (uint32_t)(i % G), t0 + nb - 1);
                goto done;
            }
            uint32_t m = 0;
            for (uint32_t j = 0; j < n[i]; j++)
                if (keep[i][j]) {
                    pos[i * cap + m] = pos[i * cap + j];
                    tok[i * cap + m] = tok[i * cap + j];
                    m++;
                }
            n[i] = m;
            if (lb && m > lb) {
                check(rep, name, false, "after position %u layer %u KV head %u holds %u slots, "
                      "over its budget of %u", t0 + nb - 1, l, (uint32_t)(i % G), m, lb);
                goto done;
            }
            worst = m > worst ? m : worst;
        }
        t0 += nb;
    }
    if (c->stats)
        check(rep, "attention.stats", true, "%u positions of statistics accepted", T);
    check(rep, name, true, "%u positions, %zu heads, at most %u slots per head (budget %u)", T,
          nh, worst, budget);
done:
    free(pos); free(tok); free(keepm); free(keep); free(views); free(srows); free(sums); free(n);
}

static void check_attention(const st_attention_ops *ops, void *inst,
                            st_conformance_report *rep)
{
    if (!check(rep, "attention.ops", ops->configure && ops->cache_budget && ops->plan,
               "configure, cache_budget and plan are required"))
        return;
    st_model_shape shape = sample_shape();
    uint32_t needs = 0;
    int32_t wl = -1;
    st_error err = {0};
    st_status st = ops->configure(inst, &shape, &needs, &wl, &err);
    if (st == ST_E_UNAVAILABLE) {
        skip(rep, "attention.configure", err.message);
        return;
    }
    if (!check(rep, "attention.configure", st == ST_OK, "configure failed (%d): %s", (int)st,
               err.message))
        return;
    const uint32_t known = ST_ATTN_NEEDS_QK | ST_ATTN_NEEDS_ENTROPY | ST_ATTN_NEEDS_WEIGHTS |
                           ST_ATTN_PREFIX_REUSE;
    check(rep, "attention.needs", (needs & ~known) == 0, "unknown needs bits 0x%x",
          needs & ~known);
    bool needs_qk = needs & ST_ATTN_NEEDS_QK;

    /* Scenarios on an uncompacted cache: slot i holds position i. */
    enum { N_SLOTS = 200 };
    int32_t pos[N_SLOTS], tok[N_SLOTS];
    for (int i = 0; i < N_SLOTS; i++) {
        pos[i] = i;
        tok[i] = (i * 31) % 1000;
    }
    st_kv_view kv = {.struct_size = sizeof kv, .capacity = N_SLOTS, .pos = pos, .tokens = tok};
    uint32_t budget = ops->cache_budget(inst, shape.n_ctx);
    st_attention_ops full = attn_ops_full(ops);
    uint8_t stats_layers[ST_CONF_MAX_LAYERS];
    uint32_t layer_budget[ST_CONF_MAX_LAYERS];
    st_attn_kv_config kvc;
    if (!check_configure_kv(&full, inst, &shape, needs, budget, &kvc, stats_layers,
                            layer_budget, rep))
        return;
    uint32_t all = ST_ALL_HEADS;
    kv.n_slots = 48;
    check_plan(ops, inst, &shape, &kv, 0, 48, needs_qk, all, "prefill", rep);
    kv.n_slots = N_SLOTS;
    check_plan(ops, inst, &shape, &kv, N_SLOTS - 1, 1, needs_qk, all, "decode", rep);
    check_plan(ops, inst, &shape, &kv, N_SLOTS - 16, 16, needs_qk, all, "block", rep);
    if (kvc.per_head_slots) {
        /* A plan for one KV head's slots reaches only its query heads. */
        check_plan(ops, inst, &shape, &kv, N_SLOTS - 16, 16, needs_qk, shape.n_kv_heads - 1,
                   "per_head", rep);
    }

    check(rep, "attention.cache_budget", budget <= shape.n_ctx,
          "cache_budget(%u) = %u, more than the context", shape.n_ctx, budget);
    if (kvc.per_head_slots) {
        check_retain_heads(&full, inst, &shape, &kvc, budget, rep);
    } else if (!ops->retain) {
        check(rep, "attention.retain", budget == 0,
              "cache_budget is %u but retain is NULL, so nothing bounds the cache", budget);
    } else {
        /* Run past the budget so eviction must happen; cap the cost. */
        uint32_t steps = budget ? budget + 64 : 256;
        if (steps > 20000) {
            skip(rep, "attention.retain", "budget above 20000 slots");
        } else {
            int32_t *p = calloc(steps, sizeof *p), *t = calloc(steps, sizeof *t);
            uint8_t *keep = calloc(steps, 1);
            float *w = calloc(steps, sizeof *w);
            st_kv_view ckv = {.struct_size = sizeof ckv, .capacity = steps, .pos = p, .tokens = t};
            if (!p || !t || !keep || !w) {
                check(rep, "attention.retain", false, "out of memory in the checker");
            } else {
                check_retain(ops, inst, needs, budget, steps, &ckv, p, t, keep, w, rep);
                /* A decode step on the compacted cache (gaps in positions). */
                if (ckv.n_slots > 0 && rep->n_checks > 0 && rep->checks[rep->n_checks - 1].passed)
                    check_plan(ops, inst, &shape, &ckv, ckv.n_slots - 1, 1, needs_qk, all,
                               "compacted", rep);
            }
            free(p);
            free(t);
            free(keep);
            free(w);
        }
    }
    if (ops->reset)
        ops->reset(inst);
}

/* ---- sampler ---- */

enum { N_CANDS = 512 };

static void make_candidates(st_candidate *c, size_t n, uint64_t seed, bool with_masked)
{
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        c[i].id = (int32_t)i;
        /* A roughly normal logit (sum of uniforms), spread like real ones. */
        double s = 0.0;
        for (int j = 0; j < 4; j++)
            s += rng_unit(&x);
        c[i].logit = (float)((s - 2.0) * 6.0);
        c[i].p = 0.0f;
        if (with_masked && i % 7 == 3)
            c[i].logit = -INFINITY;
    }
    /* Shuffle so ids are not in logit or id order. */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rng_next(&x) % (i + 1));
        st_candidate tmp = c[i];
        c[i] = c[j];
        c[j] = tmp;
    }
}

/* Is `c` (after apply) a valid edit of `orig`? */
static bool cands_valid(const st_candidates *c, const st_candidate *orig, size_t n_orig,
                        char *why, size_t cap)
{
    if (c->size > n_orig) {
        snprintf(why, cap, "size grew from %zu to %zu", n_orig, c->size);
        return false;
    }
    if (c->selected < -1 || c->selected >= (int64_t)c->size) {
        snprintf(why, cap, "selected %lld outside [-1, %zu)", (long long)c->selected, c->size);
        return false;
    }
    uint8_t *seen = calloc(n_orig ? n_orig : 1, 1);
    if (!seen) {
        snprintf(why, cap, "out of memory in the checker");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < c->size; i++) {
        int32_t id = c->data[i].id;
        /* make_candidates uses ids 0..n-1, so an id indexes `seen`. */
        if (id < 0 || (size_t)id >= n_orig) {
            snprintf(why, cap, "id %d at %zu was not a candidate", (int)id, i);
            ok = false;
        } else if (seen[id]++) {
            snprintf(why, cap, "id %d appears twice", (int)id);
            ok = false;
        } else if (isnan(c->data[i].logit)) {
            snprintf(why, cap, "id %d has a NaN logit", (int)id);
            ok = false;
        }
    }
    for (size_t i = 1; ok && c->sorted && i < c->size; i++)
        if (c->data[i].logit > c->data[i - 1].logit) {
            snprintf(why, cap, "sorted is set but logit[%zu] > logit[%zu]", i, i - 1);
            ok = false;
        }
    if (ok && c->selected >= 0 && !isfinite(c->data[c->selected].logit) &&
        c->data[c->selected].logit < 0) {
        snprintf(why, cap, "selected a masked (-inf) candidate");
        ok = false;
    }
    (void)orig;
    free(seen);
    return ok;
}

/* apply on a fresh copy of `orig`; the result stays in `work`. */
static st_status apply_copy(const st_sampler_ops *ops, void *inst, const st_candidate *orig,
                            size_t n, st_candidate *work, st_candidates *c, st_error *err)
{
    memcpy(work, orig, n * sizeof *work);
    c->data = work;
    c->size = n;
    c->sorted = false;
    c->selected = -1;
    return ops->apply(inst, c, err);
}

static void check_sampler(const st_sampler_ops *ops, void *inst, st_conformance_report *rep)
{
    if (!check(rep, "sampler.ops", ops->apply && ops->reset, "apply and reset are required"))
        return;
    st_candidate orig[N_CANDS], work[N_CANDS], first[N_CANDS];
    st_candidates c;
    st_error err = {0};
    char why[ST_CONFORMANCE_MESSAGE_MAX];

    make_candidates(orig, N_CANDS, 11, false);
    ops->reset(inst, 42);
    st_status st = apply_copy(ops, inst, orig, N_CANDS, work, &c, &err);
    if (!check(rep, "sampler.apply", st == ST_OK, "apply failed (%d): %s", (int)st, err.message))
        return;
    why[0] = '\0';
    check(rep, "sampler.valid", cands_valid(&c, orig, N_CANDS, why, sizeof why), "%s", why);

    /* Same seed, same input: same output. */
    st_candidates c1 = c;
    memcpy(first, work, sizeof first);
    ops->reset(inst, 42);
    st = apply_copy(ops, inst, orig, N_CANDS, work, &c, &err);
    bool same = st == ST_OK && c.size == c1.size && c.size <= N_CANDS &&
                c.selected == c1.selected && c.sorted == c1.sorted;
    for (size_t i = 0; same && i < c.size; i++)
        same = work[i].id == first[i].id &&
               memcmp(&work[i].logit, &first[i].logit, sizeof(float)) == 0;
    check(rep, "sampler.deterministic", same,
          "reset(42) + apply twice on the same input gave different results");

    /* History: prompt tokens (any), then generated ones. A generated token
     * is one the sampler kept in its own candidates, as the chain would
     * pick: a constraint sampler rightly refuses a token it masked. */
    if (ops->accept) {
        st_status acc = ST_OK;
        ops->reset(inst, 7);
        for (int32_t i = 0; i < 32 && acc == ST_OK; i++) {
            int32_t token = (i * 13) % N_CANDS;
            if (i >= 24 && apply_copy(ops, inst, orig, N_CANDS, work, &c, &err) == ST_OK &&
                c.size > 0 && c.size <= N_CANDS)
                token = work[c.selected >= 0 && (size_t)c.selected < c.size ? c.selected : 0].id;
            acc = ops->accept(inst, token, i < 24, &err);
        }
        check(rep, "sampler.accept", acc == ST_OK, "accept failed (%d): %s", (int)acc,
              err.message);
        st = apply_copy(ops, inst, orig, N_CANDS, work, &c, &err);
        why[0] = '\0';
        check(rep, "sampler.valid_after_accept",
              st == ST_OK && cands_valid(&c, orig, N_CANDS, why, sizeof why),
              "after accept: %s%s", st != ST_OK ? err.message : "", why);
    }

    /* Masked candidates (-inf) must never be picked. */
    make_candidates(orig, N_CANDS, 23, true);
    ops->reset(inst, 5);
    st = apply_copy(ops, inst, orig, N_CANDS, work, &c, &err);
    why[0] = '\0';
    check(rep, "sampler.masked", st == ST_OK && cands_valid(&c, orig, N_CANDS, why, sizeof why),
          "with masked candidates: %s%s", st != ST_OK ? err.message : "", why);

    /* Already sorted input. */
    make_candidates(orig, N_CANDS, 31, false);
    for (size_t i = 1; i < N_CANDS; i++) /* insertion sort, descending */
        for (size_t j = i; j > 0 && orig[j].logit > orig[j - 1].logit; j--) {
            st_candidate t = orig[j];
            orig[j] = orig[j - 1];
            orig[j - 1] = t;
        }
    memcpy(work, orig, sizeof orig);
    c = (st_candidates){.data = work, .size = N_CANDS, .sorted = true, .selected = -1};
    ops->reset(inst, 9);
    st = ops->apply(inst, &c, &err);
    why[0] = '\0';
    check(rep, "sampler.sorted_input",
          st == ST_OK && cands_valid(&c, orig, N_CANDS, why, sizeof why),
          "with sorted input: %s%s", st != ST_OK ? err.message : "", why);

    /* No candidates: an error or a no-op, never a pick or a crash. */
    c = (st_candidates){.data = work, .size = 0, .sorted = false, .selected = -1};
    st = ops->apply(inst, &c, &err);
    check(rep, "sampler.empty", st != ST_OK || (c.size == 0 && c.selected == -1),
          "apply on no candidates returned OK with size %zu, selected %lld", c.size,
          (long long)c.selected);
}

/* ---- retriever ---- */

static const char *const docs[][2] = {
    {"fox", "The quick brown fox jumps over the lazy dog. The fox is quick."},
    {"cooking", "Simmer the tomatoes with garlic and olive oil, then add basil."},
    {"rope", "Rotary position embeddings rotate query and key vectors by position."},
    {"dogs", "Lazy dogs sleep all day; a dog barks at the brown fox."},
    {"unicode", "Café crème brûlée — naïve façade, 日本語のテキスト."},
    {"empty", ""},
};
enum { N_DOCS = sizeof docs / sizeof docs[0] };

static const char *const queries[] = {
    "quick brown fox", "lazy dog", "rotary position", "garlic basil tomatoes",
    "café naïve", "nothing matches zzqx",
};
enum { N_QUERIES = sizeof queries / sizeof queries[0] };

typedef struct query_result {
    size_t n;
    st_hit hits[N_DOCS];
} query_result;

static st_status run_queries(const st_retriever_ops *ops, void *inst, query_result *res,
                             st_error *err)
{
    for (int i = 0; i < N_QUERIES; i++) {
        res[i].n = 0;
        st_status st = ops->query(inst, queries[i], strlen(queries[i]), 3, res[i].hits,
                                  &res[i].n, err);
        if (st != ST_OK)
            return st;
    }
    return ST_OK;
}

static bool results_equal(const query_result *a, const query_result *b)
{
    for (int i = 0; i < N_QUERIES; i++) {
        if (a[i].n != b[i].n)
            return false;
        for (size_t j = 0; j < a[i].n && j < N_DOCS; j++)
            if (a[i].hits[j].doc != b[i].hits[j].doc ||
                memcmp(&a[i].hits[j].score, &b[i].hits[j].score, sizeof(float)) != 0)
                return false;
    }
    return true;
}

static bool make_temp(char *path, size_t cap, const char *contents, size_t len)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/st-conformance-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    bool ok = write(fd, contents, len) == (ssize_t)len;
    close(fd);
    return ok;
}

static void check_retriever(const st_plugin_entry *entry, const st_host_services *host,
                            const msgpack_object *params, const st_retriever_ops *ops,
                            void *inst, st_conformance_report *rep)
{
    if (!check(rep, "retriever.ops",
               ops->add && ops->query && ops->doc_id && ops->count && ops->save && ops->load &&
                   ops->clear,
               "add, query, doc_id, count, save, load and clear are all required"))
        return;
    st_error err = {0};
    for (int i = 0; i < N_DOCS; i++) {
        st_status st = ops->add(inst, docs[i][0], strlen(docs[i][0]), docs[i][1],
                                strlen(docs[i][1]), &err);
        if (st == ST_E_UNAVAILABLE) {
            skip(rep, "retriever.add", err.message);
            return;
        }
        if (st != ST_OK) {
            check(rep, "retriever.add", false, "add(\"%s\") failed (%d): %s", docs[i][0],
                  (int)st, err.message);
            return;
        }
    }
    check(rep, "retriever.add", true, NULL);
    uint64_t count = ops->count(inst);
    check(rep, "retriever.count", count == N_DOCS, "count() = %llu after %d adds",
          (unsigned long long)count, N_DOCS);

    query_result before[N_QUERIES];
    st_status st = run_queries(ops, inst, before, &err);
    if (st == ST_E_UNAVAILABLE) {
        skip(rep, "retriever.query", err.message);
        return;
    }
    if (!check(rep, "retriever.query", st == ST_OK, "query failed (%d): %s", (int)st,
               err.message))
        return;
    char why[ST_CONFORMANCE_MESSAGE_MAX] = "";
    bool ranked = true;
    for (int i = 0; ranked && i < N_QUERIES; i++) {
        const query_result *r = &before[i];
        if (r->n > 3) {
            snprintf(why, sizeof why, "query \"%s\" with k=3 gave %zu hits", queries[i], r->n);
            ranked = false;
            break;
        }
        for (size_t j = 0; ranked && j < r->n; j++) {
            const st_hit *h = &r->hits[j];
            if (h->doc >= count || !isfinite(h->score)) {
                snprintf(why, sizeof why, "query \"%s\" hit %zu: doc %llu score %g", queries[i],
                         j, (unsigned long long)h->doc, (double)h->score);
                ranked = false;
            } else if (j > 0 && (h->score > r->hits[j - 1].score ||
                                 (h->score == r->hits[j - 1].score &&
                                  h->doc <= r->hits[j - 1].doc))) {
                snprintf(why, sizeof why,
                         "query \"%s\": hits not best first with ties by ascending doc",
                         queries[i]);
                ranked = false;
            }
        }
    }
    check(rep, "retriever.ranking", ranked, "%s", why);
    check(rep, "retriever.finds_something", before[0].n > 0,
          "query \"%s\" found nothing in a corpus that contains it", queries[0]);

    bool ids_ok = true;
    for (uint64_t d = 0; ids_ok && d < count && d < N_DOCS; d++) {
        const char *id = NULL;
        size_t len = 0;
        ids_ok = ops->doc_id(inst, d, &id, &len, &err) == ST_OK && id &&
                 len == strlen(docs[d][0]) && memcmp(id, docs[d][0], len) == 0;
    }
    const char *id = NULL;
    size_t len = 0;
    bool refuses = ops->doc_id(inst, count, &id, &len, &err) != ST_OK;
    check(rep, "retriever.doc_id", ids_ok && refuses,
          ids_ok ? "doc_id(count) did not fail" : "doc_id does not return the ids in insertion order");

    size_t n0 = 99;
    st_hit h0[1];
    st = ops->query(inst, "fox", 3, 0, h0, &n0, &err);
    check(rep, "retriever.query_k0", st == ST_OK && n0 == 0, "query with k=0 returned %d, %zu hits",
          (int)st, n0);

    /* Persistence: save, load into a fresh instance, compare. */
    char path[512];
    if (!make_temp(path, sizeof path, "", 0)) {
        check(rep, "retriever.save", false, "cannot make a temporary file in $TMPDIR or /tmp");
        return;
    }
    st = ops->save(inst, path, &err);
    if (check(rep, "retriever.save", st == ST_OK, "save failed (%d): %s", (int)st, err.message)) {
        void *other = NULL;
        st_error cerr = {0};
        st = st_plugin_create(entry, host, params, &other, &cerr, NULL);
        if (st == ST_OK && other) {
            query_result after[N_QUERIES];
            st = ops->load(other, path, &err);
            bool ok = st == ST_OK && ops->count(other) == count &&
                      run_queries(ops, other, after, &err) == ST_OK &&
                      results_equal(before, after);
            check(rep, "retriever.roundtrip", ok,
                  st != ST_OK ? "load of a saved index failed: %s"
                              : "a loaded index answers differently from the saved one%s",
                  st != ST_OK ? err.message : "");
            entry->destroy(other);
        } else {
            check(rep, "retriever.roundtrip", false, "second create failed: %s", cerr.message);
        }

        /* A truncated copy must be refused, keeping the index. */
        FILE *f = fopen(path, "rb");
        long size = -1;
        if (f && fseek(f, 0, SEEK_END) == 0)
            size = ftell(f);
        if (f)
            fclose(f);
        if (size > 1 && truncate(path, size / 2) == 0) {
            st = ops->load(inst, path, &err);
            query_result now[N_QUERIES];
            bool kept = ops->count(inst) == count && run_queries(ops, inst, now, &err) == ST_OK &&
                        results_equal(before, now);
            check(rep, "retriever.load_truncated", st != ST_OK && kept,
                  st == ST_OK ? "a truncated index file loaded without error"
                              : "a failed load did not keep the old index");
        }
    }
    remove(path);

    static const char garbage[] = "this is not an index\n\x01\x02\xff";
    if (make_temp(path, sizeof path, garbage, sizeof garbage - 1)) {
        st = ops->load(inst, path, &err);
        query_result now[N_QUERIES];
        bool kept = ops->count(inst) == count && run_queries(ops, inst, now, &err) == ST_OK &&
                    results_equal(before, now);
        check(rep, "retriever.load_garbage", st != ST_OK && kept,
              st == ST_OK ? "a garbage file loaded without error"
                          : "a failed load did not keep the old index");
        check(rep, "retriever.load_message", st == ST_OK || err.message[0] != '\0',
              "a failed load left no message");
        remove(path);
    }
    snprintf(path, sizeof path, "/nonexistent-dir-st/conformance.idx");
    st = ops->load(inst, path, &err);
    check(rep, "retriever.load_missing", st != ST_OK && ops->count(inst) == count,
          "loading a missing file returned %d", (int)st);

    ops->clear(inst);
    size_t n1 = 99;
    st_hit h1[3];
    st = ops->query(inst, queries[0], strlen(queries[0]), 3, h1, &n1, &err);
    check(rep, "retriever.clear", ops->count(inst) == 0 && st == ST_OK && n1 == 0,
          "after clear: count %llu, query returned %d with %zu hits",
          (unsigned long long)ops->count(inst), (int)st, n1);
}

/* ---- reader (stretch/reader.h, ABI 1.3) ---- */

/* A plugin that offers ST_READER_V1: a complete table, a positive
 * kept_max, and a select that on a small step either keeps at most
 * kept_max tokens, marked 0 or 1, with finite scores, or says why it
 * cannot (a host that cannot score answers ST_E_UNAVAILABLE: skipped). */
static void check_reader(const st_plugin_entry *entry, void *inst, st_conformance_report *rep)
{
    const st_reader_v1 *r = entry->get_extension(inst, ST_READER_V1);
    if (!r)
        return;
    /* Only struct_size is known to be there: a plugin may answer an id
     * with something smaller than the table (reading past it is the bug
     * this check exists to catch, not to commit). */
    bool whole = r->struct_size >= ST_READER_V1_SIZE_1_3;
    if (!check(rep, "reader.ops", whole && r->kept_max && r->select,
               "struct_size %u (expected at least %zu), kept_max %s, select %s",
               r->struct_size, (size_t)ST_READER_V1_SIZE_1_3,
               !whole ? "unread" : r->kept_max ? "set" : "NULL",
               !whole ? "unread" : r->select ? "set" : "NULL"))
        return;
    uint32_t kept_max = r->kept_max(inst);
    check(rep, "reader.kept_max", kept_max > 0, "kept_max() = %u", kept_max);
    enum { N = 48, NQ = 6 };
    int32_t tokens[N], question[NQ];
    uint32_t sentence[N];
    uint8_t keep[N];
    float score[N];
    for (uint32_t i = 0; i < N; i++) {
        tokens[i] = (int32_t)(10 + (i * 7) % 50);
        sentence[i] = i / 8;
    }
    for (uint32_t i = 0; i < NQ; i++)
        question[i] = (int32_t)(20 + i);
    st_read_step step = {.struct_size = sizeof step, .tokens = tokens, .n_tokens = N,
                         .n_kept = 0, .sentence = sentence, .question = question,
                         .n_question = NQ, .bos = -1, .chunk = 0, .last = true};
    memset(keep, 0, sizeof keep);
    for (uint32_t i = 0; i < N; i++)
        score[i] = NAN;
    st_error err = {0};
    st_status st = r->select(inst, &step, keep, score, &err);
    if (st == ST_E_UNAVAILABLE) {
        skip(rep, "reader.select", err.message[0] ? err.message : "the host cannot score");
        return;
    }
    uint32_t kept = 0, bad_mark = 0, bad_score = 0;
    for (uint32_t i = 0; i < N; i++) {
        kept += keep[i] != 0;
        bad_mark += keep[i] > 1;
        bad_score += !isfinite(score[i]);
    }
    check(rep, "reader.select",
          st == ST_OK && kept <= kept_max && !bad_mark && !bad_score,
          "select returned %d (%s), kept %u of %u (kept_max %u), %u marks not 0/1, %u "
          "scores not finite", (int)st, err.message, kept, (uint32_t)N, kept_max, bad_mark,
          bad_score);
}

/* ---- entry and lifecycle ---- */

static bool ops_size_ok(st_kind kind, const void *ops, uint32_t *got, size_t *want)
{
    *got = *(const uint32_t *)ops; /* every ops table starts with struct_size */
    switch (kind) {
    case ST_KIND_TOKENIZER: *want = ST_TOKENIZER_OPS_SIZE_1_0; break;
    case ST_KIND_POSENC: *want = ST_POSENC_OPS_SIZE_1_0; break;
    case ST_KIND_ATTENTION: *want = ST_ATTENTION_OPS_SIZE_1_0; break;
    case ST_KIND_SAMPLER: *want = ST_SAMPLER_OPS_SIZE_1_0; break;
    case ST_KIND_RETRIEVER: *want = ST_RETRIEVER_OPS_SIZE_1_0; break;
    default: *want = 0; return false;
    }
    return *got >= *want;
}

st_status st_conformance_run(const st_plugin_entry *entry, const st_host_services *host,
                             const msgpack_object *params, st_conformance_report *rep)
{
    if (!rep)
        return ST_E_INVALID;
    memset(rep, 0, sizeof *rep);
    if (!entry || !host) {
        check(rep, "entry", false, "no entry or no host services given");
        return ST_E_INVALID;
    }
    rep->kind = entry->kind;
    snprintf(rep->plugin, sizeof rep->plugin, "%s/%s", st_kind_name(entry->kind),
             entry->name ? entry->name : "?");

    check(rep, "entry.abi", entry->abi_major == ST_ABI_MAJOR && entry->abi_minor <= ST_ABI_MINOR,
          "plugin ABI %u.%u, host ABI %d.%d", entry->abi_major, entry->abi_minor, ST_ABI_MAJOR,
          ST_ABI_MINOR);
    bool size_ok = entry->struct_size >= ST_ENTRY_SIZE_1_0;
    check(rep, "entry.struct_size", size_ok, "struct_size %u, expected at least %zu",
          entry->struct_size, (size_t)ST_ENTRY_SIZE_1_0);
    bool kind_ok = entry->kind >= ST_KIND_TOKENIZER && entry->kind <= ST_KIND_RETRIEVER;
    bool fields = kind_ok && entry->name && entry->name[0] && entry->version &&
                  entry->version[0] && entry->create && entry->destroy && entry->ops;
    if (!check(rep, "entry.fields", fields,
               "kind %d, name %s, version %s, create %s, destroy %s, ops %s", (int)entry->kind,
               entry->name ? entry->name : "NULL", entry->version ? entry->version : "NULL",
               entry->create ? "set" : "NULL", entry->destroy ? "set" : "NULL",
               entry->ops ? "set" : "NULL") ||
        !size_ok)
        return ST_E_PLUGIN;
    uint32_t got = 0;
    size_t want = 0;
    if (!check(rep, "entry.ops_size", ops_size_ok(entry->kind, entry->ops, &got, &want),
               "ops struct_size %u, expected at least %zu", got, want))
        return ST_E_PLUGIN;

    void *inst = NULL;
    st_error err = {0};
    st_param_reads reads;
    st_status st = st_plugin_create(entry, host, params, &inst, &err, &reads);
    if (st == ST_E_UNAVAILABLE) {
        skip(rep, "create", err.message[0] ? err.message : "a host service is unavailable");
        return ST_OK;
    }
    if (!check(rep, "create", st == ST_OK && inst, "create failed (%d): %s", (int)st,
               err.message))
        return ST_E_PLUGIN;
    /* plugin.yaml is the one source of truth for parameters: reading a
     * name it does not declare means the two have drifted. */
    check(rep, "params.declared", reads.n_undeclared == 0,
          "create() read %u parameter name(s) plugin.yaml does not declare, first '%s'",
          reads.n_undeclared, reads.first_undeclared);

    switch (entry->kind) {
    case ST_KIND_TOKENIZER: check_tokenizer(entry, entry->ops, inst, rep); break;
    case ST_KIND_POSENC: check_posenc(entry->ops, inst, rep); break;
    case ST_KIND_ATTENTION: check_attention(entry->ops, inst, rep); break;
    case ST_KIND_SAMPLER: check_sampler(entry->ops, inst, rep); break;
    case ST_KIND_RETRIEVER: check_retriever(entry, host, params, entry->ops, inst, rep); break;
    }
    if (entry->get_extension)
        check_reader(entry, inst, rep);
    /* Optional capabilities are asked for by id; an id no host defines
     * must get NULL, or a host could take garbage for a capability. */
    if (entry->get_extension)
        check(rep, "entry.get_extension",
              entry->get_extension(inst, "stretch.conformance.unknown/0") == NULL,
              "get_extension answered an id no host defines (\"stretch.conformance.unknown/0\"): "
              "answer NULL for ids you do not implement");
    entry->destroy(inst);
    check(rep, "destroy", true, NULL);
    return rep->n_failed ? ST_E_PLUGIN : ST_OK;
}
