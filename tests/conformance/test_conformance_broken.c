/*
 * Deliberately broken plugins, defined here, must fail exactly the checks
 * aimed at their fault: proof that the suite can fail.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "conformance.h"
#include "test_host.h"

static int dummy_instance;

static st_status any_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    *inst = &dummy_instance;
    return ST_OK;
}

static void any_destroy(void *inst) {}

static const st_conformance_check *find(const st_conformance_report *rep, const char *name)
{
    for (size_t i = 0; i < rep->n_checks; i++)
        if (strcmp(rep->checks[i].name, name) == 0)
            return &rep->checks[i];
    return NULL;
}

static void expect_failed(const st_conformance_report *rep, const char *name)
{
    const st_conformance_check *c = find(rep, name);
    cr_assert_not_null(c, "check %s did not run", name);
    cr_assert_not(c->passed, "check %s passed on a broken plugin", name);
    cr_assert(c->message[0] != '\0', "check %s failed without a message", name);
}

static void expect_passed(const st_conformance_report *rep, const char *name)
{
    const st_conformance_check *c = find(rep, name);
    cr_assert_not_null(c, "check %s did not run", name);
    cr_assert(c->passed, "check %s failed: %s", name, c->message);
}

static st_conformance_report rep;

static st_status run(const st_plugin_entry *e)
{
    return st_conformance_run(e, st_test_host_services(), NULL, &rep);
}

/* ---- samplers ---- */

static st_status dup_apply(void *inst, st_candidates *c, st_error *err)
{
    if (c->size >= 2)
        c->data[1].id = c->data[0].id; /* the same id twice */
    return ST_OK;
}

static int calls;
static st_status drifting_apply(void *inst, st_candidates *c, st_error *err)
{
    /* Ignores the seed: output depends on how often it was called. */
    if (c->size > 0)
        c->selected = (int64_t)((size_t)calls++ % c->size);
    return ST_OK;
}

static st_status masked_pick_apply(void *inst, st_candidates *c, st_error *err)
{
    for (size_t i = 0; i < c->size; i++)
        if (isinf(c->data[i].logit)) {
            c->selected = (int64_t)i;
            break;
        }
    return ST_OK;
}

static void no_reset(void *inst, uint64_t seed) {}

#define SAMPLER(var, apply)                                                                 \
    static const st_sampler_ops var##_ops = {sizeof(st_sampler_ops), apply, NULL, no_reset}; \
    static const st_plugin_entry var = {ST_ABI_MAJOR, ST_ABI_MINOR, sizeof(st_plugin_entry), \
                                        ST_KIND_SAMPLER, #var, "0.0.1", "broken",             \
                                        any_create, any_destroy, &var##_ops, NULL}

SAMPLER(dup_sampler, dup_apply);
SAMPLER(drifting_sampler, drifting_apply);
SAMPLER(masked_sampler, masked_pick_apply);

Test(broken, sampler_duplicate_ids)
{
    cr_assert_eq(run(&dup_sampler), ST_E_PLUGIN);
    expect_failed(&rep, "sampler.valid");
    expect_passed(&rep, "entry.abi");
    cr_assert_str_eq(rep.plugin, "sampler/dup_sampler");
}

Test(broken, sampler_not_deterministic)
{
    cr_assert_eq(run(&drifting_sampler), ST_E_PLUGIN);
    expect_failed(&rep, "sampler.deterministic");
    expect_passed(&rep, "sampler.valid");
}

Test(broken, sampler_picks_masked)
{
    cr_assert_eq(run(&masked_sampler), ST_E_PLUGIN);
    expect_failed(&rep, "sampler.masked");
}

Test(broken, entry_abi_and_fields)
{
    st_plugin_entry e = dup_sampler;
    e.abi_major = ST_ABI_MAJOR + 1;
    cr_assert_eq(run(&e), ST_E_PLUGIN);
    expect_failed(&rep, "entry.abi");
    e = dup_sampler;
    e.create = NULL;
    cr_assert_eq(run(&e), ST_E_PLUGIN);
    expect_failed(&rep, "entry.fields");
    cr_assert_null(find(&rep, "create"), "nothing is called through a bad entry");
}

/* ---- attention ---- */

static st_status att_configure(void *inst, const st_model_shape *s, uint32_t *needs,
                               int32_t *wl, st_error *err)
{
    *needs = 0;
    *wl = -1;
    return ST_OK;
}

static uint32_t no_budget(void *inst, uint32_t n_ctx)
{
    return 0;
}

static uint32_t small_budget(void *inst, uint32_t n_ctx)
{
    return 16;
}

static st_status causal_twice(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                              st_error *err)
{
    st_attn_range r = {ST_ALL_HEADS, 0, q->kv->n_slots, 0, ST_DIST_MAX, ST_POS_TRUE, 0};
    b->add_range(b->host, &r);
    r.k_begin = q->kv->n_slots / 2; /* the second half again */
    return b->add_range(b->host, &r);
}

static st_status strictly_past(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                               st_error *err)
{
    st_attn_range r = {ST_ALL_HEADS, 0, q->kv->n_slots, 1, ST_DIST_MAX, ST_POS_TRUE, 0};
    return b->add_range(b->host, &r); /* min_dist 1: never its own key */
}

static st_status plain_causal(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                              st_error *err)
{
    st_attn_range r = {ST_ALL_HEADS, 0, q->kv->n_slots, 0, ST_DIST_MAX, ST_POS_TRUE, 0};
    return b->add_range(b->host, &r);
}

static st_status out_of_bounds(void *inst, const st_attn_query *q,
                               const st_attn_plan_builder *b, st_error *err)
{
    st_attn_range r = {ST_ALL_HEADS, 0, q->kv->n_slots + 5, 0, ST_DIST_MAX, ST_POS_TRUE, 0};
    st_status st = b->add_range(b->host, &r);
    return st == ST_OK ? ST_OK : ST_OK; /* ignores the refusal */
}

static st_status keep_all_but_first(void *inst, const st_kv_view *kv, uint32_t n_new,
                                    uint8_t *keep, st_error *err)
{
    keep[0] = kv->n_slots > 100 ? 0 : 1; /* settles at 100 slots, over the budget of 16 */
    return ST_OK;
}

#define ATTENTION(var, plan, budget, retain)                                                \
    static const st_attention_ops var##_ops = {sizeof(st_attention_ops), att_configure,      \
                                               budget, plan, retain, NULL, NULL, NULL,        \
                                               NULL, NULL, NULL};                            \
    static const st_plugin_entry var = {ST_ABI_MAJOR, ST_ABI_MINOR, sizeof(st_plugin_entry), \
                                        ST_KIND_ATTENTION, #var, "0.0.1", "broken",           \
                                        any_create, any_destroy, &var##_ops, NULL}

ATTENTION(double_att, causal_twice, no_budget, NULL);
ATTENTION(blind_att, strictly_past, no_budget, NULL);
ATTENTION(unbounded_att, plain_causal, small_budget, NULL);
ATTENTION(leaky_att, plain_causal, small_budget, keep_all_but_first);
ATTENTION(oob_att, out_of_bounds, no_budget, NULL);
ATTENTION(good_att, plain_causal, no_budget, NULL);

/* ABI 1.4: per-head slot sets and statistics. */
static st_status kv_per_head(void *inst, const st_model_shape *shape, st_attn_kv_config *cfg,
                             st_error *err)
{
    cfg->per_head_slots = 1;
    cfg->stats = ST_STATS_KV_HEADS;
    return ST_OK;
}

static st_status stats_ok(void *inst, const st_attn_stats *st, st_error *err)
{
    return ST_OK;
}

static st_status stats_fail(void *inst, const st_attn_stats *st, st_error *err)
{
    err->status = ST_E_INVALID;
    snprintf(err->message, sizeof err->message, "refuses every statistic");
    return ST_E_INVALID;
}

static st_status heads_keep_all(void *inst, const st_kv_heads *hs, st_error *err)
{
    return ST_OK; /* never evicts: over the budget of 16 */
}

static st_status heads_keep_budget(void *inst, const st_kv_heads *hs, st_error *err)
{
    for (size_t i = 0; i < (size_t)hs->n_layers * hs->n_kv_heads; i++)
        for (uint32_t j = 0; j + 16 < hs->kv[i].n_slots; j++)
            hs->keep[i][j] = 0; /* the 16 newest stay */
    return ST_OK;
}

/* A per-head plan that names a query head of another KV head. */
static st_status foreign_head(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                              st_error *err)
{
    st_attn_range r = {ST_ALL_HEADS, 0, q->kv->n_slots, 0, ST_DIST_MAX, ST_POS_TRUE, 0};
    st_status s = b->add_range(b->host, &r);
    if (s != ST_OK || q->kv_head == ST_ALL_HEADS || q->kv_head == 0)
        return s;
    r.head = 0; /* KV head 0's query head, in another KV head's plan */
    b->add_range(b->host, &r);
    return ST_OK; /* ignores the refusal */
}

#define ATTENTION_KV(var, plan, stats, retain_heads)                                          \
    static const st_attention_ops var##_ops = {sizeof(st_attention_ops), att_configure,      \
                                               small_budget, plan, NULL, NULL, NULL, NULL,    \
                                               kv_per_head, stats, retain_heads};             \
    static const st_plugin_entry var = {ST_ABI_MAJOR, ST_ABI_MINOR, sizeof(st_plugin_entry), \
                                        ST_KIND_ATTENTION, #var, "0.0.1", "broken",           \
                                        any_create, any_destroy, &var##_ops, NULL}

ATTENTION_KV(no_retain_heads_att, plain_causal, stats_ok, NULL);
ATTENTION_KV(no_stats_att, plain_causal, NULL, heads_keep_budget);
ATTENTION_KV(heads_over_budget_att, plain_causal, stats_ok, heads_keep_all);
ATTENTION_KV(stats_refused_att, plain_causal, stats_fail, heads_keep_budget);
ATTENTION_KV(foreign_head_att, foreign_head, stats_ok, heads_keep_budget);
ATTENTION_KV(good_heads_att, plain_causal, stats_ok, heads_keep_budget);

Test(broken, attention_per_head_without_retain_heads)
{
    cr_assert_eq(run(&no_retain_heads_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.configure_kv");
}

Test(broken, attention_stats_without_their_op)
{
    cr_assert_eq(run(&no_stats_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.configure_kv");
}

Test(broken, attention_retain_heads_over_budget)
{
    cr_assert_eq(run(&heads_over_budget_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.retain_heads");
}

Test(broken, attention_stats_refused)
{
    cr_assert_eq(run(&stats_refused_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.stats");
}

Test(broken, attention_per_head_plan_reaches_another_kv_head)
{
    cr_assert_eq(run(&foreign_head_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.plan.per_head");
    expect_passed(&rep, "attention.plan.block");
}

Test(broken, per_head_attention_passes)
{
    cr_assert_eq(run(&good_heads_att), ST_OK);
    expect_passed(&rep, "attention.configure_kv");
    expect_passed(&rep, "attention.plan.per_head");
    expect_passed(&rep, "attention.stats");
    expect_passed(&rep, "attention.retain_heads");
}

Test(broken, attention_pairs_visible_twice)
{
    cr_assert_eq(run(&double_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.no_double.decode");
    expect_failed(&rep, "attention.no_double.prefill");
    expect_passed(&rep, "attention.own_key.prefill");
}

Test(broken, attention_without_own_key)
{
    cr_assert_eq(run(&blind_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.own_key.block");
}

Test(broken, attention_budget_without_retain)
{
    cr_assert_eq(run(&unbounded_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.retain");
}

Test(broken, attention_retain_over_budget)
{
    cr_assert_eq(run(&leaky_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.retain");
}

Test(broken, attention_range_out_of_bounds)
{
    cr_assert_eq(run(&oob_att), ST_E_PLUGIN);
    expect_failed(&rep, "attention.plan.decode");
}

Test(broken, plain_causal_attention_passes)
{
    cr_assert_eq(run(&good_att), ST_OK);
    expect_passed(&rep, "attention.no_double.block");
    expect_passed(&rep, "attention.retain");
}

/* ---- tokenizer: right round trip, wrong sizing contract ---- */

static st_status sloppy_encode(void *inst, const char *text, size_t len, uint32_t flags,
                               int32_t *ids, size_t cap, size_t *n_ids, st_error *err)
{
    size_t n = len < cap ? len : cap; /* silently truncates */
    for (size_t i = 0; i < n; i++)
        ids[i] = (unsigned char)text[i];
    *n_ids = n;
    return ST_OK;
}

static st_status tok_decode(void *inst, const int32_t *ids, size_t n_ids, char *out, size_t cap,
                            size_t *n_bytes, st_error *err)
{
    *n_bytes = n_ids;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] > 255)
            return ST_E_RANGE;
    if (n_ids > cap)
        return ST_E_RANGE;
    for (size_t i = 0; i < n_ids; i++)
        out[i] = (char)ids[i];
    return ST_OK;
}

static char bytes_table[256];
static st_status tok_piece(void *inst, int32_t id, const char **b, size_t *len, st_error *err)
{
    if (id < 0 || id > 255)
        return ST_E_RANGE;
    *b = &bytes_table[id];
    *len = 1;
    return ST_OK;
}

static int32_t tok_vocab(void *inst)
{
    return 256;
}

static void tok_special(void *inst, st_special_tokens *out)
{
    out->bos = out->eos = out->eot = out->pad = out->unk = out->sep = -1;
}

static bool tok_is_special(void *inst, int32_t id)
{
    return false;
}

static const st_tokenizer_ops sloppy_ops = {sizeof(st_tokenizer_ops), sloppy_encode, tok_decode,
                                            tok_piece, tok_vocab, tok_special, tok_is_special};
static const st_plugin_entry sloppy_tok = {ST_ABI_MAJOR, ST_ABI_MINOR, sizeof(st_plugin_entry),
                                           ST_KIND_TOKENIZER, "sloppy", "0.0.1", "broken",
                                           any_create, any_destroy, &sloppy_ops, NULL};

Test(broken, tokenizer_truncates_instead_of_range)
{
    cr_assert_eq(run(&sloppy_tok), ST_E_PLUGIN);
    expect_passed(&rep, "tokenizer.roundtrip_ascii");
    expect_passed(&rep, "tokenizer.decode_range");
    expect_passed(&rep, "tokenizer.piece_all");
    expect_failed(&rep, "tokenizer.encode_range");
}

/* ---- retriever: load pretends to succeed on anything ---- */

typedef struct fake_index {
    uint64_t n;
    char ids[16][16];
} fake_index;
static fake_index fake;

static st_status fake_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    memset(&fake, 0, sizeof fake);
    *inst = &fake;
    return ST_OK;
}

static st_status fake_add(void *inst, const char *id, size_t id_len, const char *text,
                          size_t text_len, st_error *err)
{
    fake_index *f = inst;
    if (f->n == 16)
        return ST_E_RANGE;
    snprintf(f->ids[f->n++], 16, "%.*s", (int)id_len, id);
    return ST_OK;
}

static st_status fake_query(void *inst, const char *text, size_t len, size_t k, st_hit *hits,
                            size_t *n_hits, st_error *err)
{
    fake_index *f = inst;
    size_t n = f->n < k ? (size_t)f->n : k;
    for (size_t i = 0; i < n; i++)
        hits[i] = (st_hit){.doc = i, .score = 1.0f};
    *n_hits = n;
    return ST_OK;
}

static st_status fake_doc_id(void *inst, uint64_t doc, const char **id, size_t *len,
                             st_error *err)
{
    fake_index *f = inst;
    if (doc >= f->n)
        return ST_E_RANGE;
    *id = f->ids[doc];
    *len = strlen(f->ids[doc]);
    return ST_OK;
}

static uint64_t fake_count(void *inst)
{
    return ((fake_index *)inst)->n;
}

static st_status fake_save(void *inst, const char *path, st_error *err)
{
    return ST_OK;
}

static st_status fake_load(void *inst, const char *path, st_error *err)
{
    return ST_OK; /* accepts anything, changes nothing */
}

static void fake_clear(void *inst)
{
    ((fake_index *)inst)->n = 0;
}

static const st_retriever_ops fake_ops = {sizeof(st_retriever_ops), fake_add, fake_query,
                                          fake_doc_id, fake_count, fake_save, fake_load,
                                          fake_clear, NULL};
static const st_plugin_entry credulous = {ST_ABI_MAJOR, ST_ABI_MINOR, sizeof(st_plugin_entry),
                                          ST_KIND_RETRIEVER, "credulous", "0.0.1", "broken",
                                          fake_create, any_destroy, &fake_ops, NULL};

Test(broken, retriever_load_accepts_garbage)
{
    cr_assert_eq(run(&credulous), ST_E_PLUGIN);
    expect_passed(&rep, "retriever.add");
    expect_passed(&rep, "retriever.ranking");
    expect_passed(&rep, "retriever.doc_id");
    expect_failed(&rep, "retriever.load_garbage");
    expect_failed(&rep, "retriever.load_missing");
}

/* ---- parameters: plugin.yaml is the one source of truth ---- */

static st_status drifted_create(const st_host_services *host, const st_params *params,
                                void **inst, st_error *err)
{
    (void)host;
    (void)err;
    /* reads a name its (empty) parameter schema does not declare */
    if (st_param_float(params, "temperature") != 0.0)
        return ST_E_INTERNAL;
    *inst = &dummy_instance;
    return ST_OK;
}

static st_status greedy_apply(void *inst, st_candidates *c, st_error *err)
{
    (void)inst;
    (void)err;
    c->selected = 0;
    for (size_t i = 1; i < c->size; i++)
        if (c->data[i].logit > c->data[c->selected].logit)
            c->selected = (int64_t)i;
    return ST_OK;
}

static const st_sampler_ops drifted_ops = {sizeof(st_sampler_ops), greedy_apply, NULL, no_reset};
static const st_plugin_entry drifted = {ST_ABI_MAJOR, ST_ABI_MINOR, sizeof(st_plugin_entry),
                                        ST_KIND_SAMPLER, "drifted", "0.0.1", "broken",
                                        drifted_create, any_destroy, &drifted_ops, NULL};

Test(broken, reads_an_undeclared_parameter)
{
    cr_assert_eq(run(&drifted), ST_E_PLUGIN);
    expect_failed(&rep, "params.declared");
    const st_conformance_check *c = find(&rep, "params.declared");
    cr_assert(strstr(c->message, "'temperature'") != NULL, "%s", c->message);
    expect_passed(&rep, "sampler.valid");
}

/* A get_extension that answers every id. */
static int any_extension;
static const void *greedy_extension(void *inst, const char *id)
{
    (void)inst;
    (void)id;
    return &any_extension;
}

static const st_plugin_entry eager = {ST_ABI_MAJOR, ST_ABI_MINOR, sizeof(st_plugin_entry),
                                      ST_KIND_SAMPLER, "eager", "0.0.1", "broken",
                                      any_create, any_destroy, &drifted_ops, greedy_extension};

Test(broken, answers_extension_ids_it_does_not_know)
{
    cr_assert_eq(run(&eager), ST_E_PLUGIN);
    expect_failed(&rep, "entry.get_extension");
    expect_passed(&rep, "sampler.valid");
}
