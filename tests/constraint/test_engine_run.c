/*
 * Constraint samplers in a real engine (tiny generated model, its GPT-2
 * byte-level BPE vocabulary): the host's ST_HOST_VOCAB_V1, then greedy
 * constrained runs that stop by end of generation with output that a
 * separate validator accepts.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/stretch.h>

#include "gen_check.h"
#include "host_services.h"
#include "test_engine_open.h"
#include "tiny_model.h"

/* ---- the host side of the vocabulary extension ---- */

static const char *const pieces[] = {"a", "bc", "<eos>"};

static int32_t src_n(void *ctx) { return 3; }

static st_status src_bytes(void *ctx, int32_t id, const char **b, size_t *len, bool *special,
                           st_error *err)
{
    *b = pieces[id];
    *len = strlen(pieces[id]);
    *special = id == 2;
    return ST_OK;
}

static size_t src_eog(void *ctx, int32_t *ids, size_t cap)
{
    if (cap)
        ids[0] = 2;
    return 1;
}

Test(vocab_extension, offered_only_with_a_source_and_checked)
{
    st_host *h = st_host_new();
    const st_host_services *s = st_host_services_of(h);
    cr_assert_null(s->get_extension(s->host, ST_HOST_VOCAB_V1));
    static const st_vocab_source src = {src_n, src_bytes, src_eog};
    st_host_set_vocab(h, &src, NULL);
    const st_host_vocab_v1 *v = s->get_extension(s->host, ST_HOST_VOCAB_V1);
    cr_assert_not_null(v);
    cr_assert_eq(v->struct_size, sizeof *v);
    cr_assert_eq(v->n_tokens(s->host), 3);
    const char *b;
    size_t len;
    bool special;
    st_error err = {0};
    cr_assert_eq(v->token_bytes(s->host, 1, &b, &len, &special, &err), ST_OK);
    cr_assert(len == 2 && memcmp(b, "bc", 2) == 0 && !special);
    cr_assert_eq(v->token_bytes(s->host, 3, &b, &len, &special, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "outside the vocabulary"), "%s", err.message);
    cr_assert_eq(v->token_bytes(s->host, -1, &b, &len, &special, &err), ST_E_RANGE);
    int32_t eog[4];
    cr_assert_eq(v->eog_tokens(s->host, eog, 4), 1);
    cr_assert_eq(eog[0], 2);
    st_host_set_vocab(h, NULL, NULL);
    cr_assert_null(s->get_extension(s->host, ST_HOST_VOCAB_V1));
    st_host_free(h);
}

/* ---- in the engine ---- */

static char dir[256], model_path[300];

static void make_model(void)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 256;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_constraint_engine", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
}

static void cleanup(void) { cr_assert_eq(st_tiny_model_tmp_remove(dir), 0); }

typedef struct text_out {
    char s[8192];
    size_t n;
} text_out;

static int on_token(void *user, int32_t token, const char *text, size_t len)
{
    text_out *o = user;
    if (o->n + len < sizeof o->s) {
        memcpy(o->s + o->n, text, len);
        o->n += len;
        o->s[o->n] = '\0';
    }
    return 0;
}

/* Run `sampler_yaml` (the constraint's entry) then greedy; true when
 * generation stopped by end of generation. */
static bool run(const char *sampler_yaml, text_out *out, char *why, size_t cap)
{
    char manifest[400];
    snprintf(manifest, sizeof manifest, "%s/s.yaml", dir);
    FILE *f = fopen(manifest, "w");
    cr_assert(f);
    fprintf(f, "format: 1\nmodel: %s\ncontext: 256\nthreads: 2\n"
               "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
               "attention: {plugin: dense}\nsamplers:\n%s  - plugin: greedy\n",
            model_path, sampler_yaml);
    fclose(f);
    st_engine *e = NULL;
    st_error err = {0};
    st_status st = st_engine_open(manifest, NULL, &e, &err);
    if (st != ST_OK) {
        snprintf(why, cap, "%s", err.message);
        return false;
    }
    int32_t *ids;
    size_t n;
    cr_assert_eq(st_engine_tokenize(e, "Answer in JSON:", 15, 0, &ids, &n, &err), ST_OK);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 200};
    st_generate_stats stats = {.struct_size = sizeof stats};
    memset(out, 0, sizeof *out);
    st = st_engine_generate(e, ids, n, &gp, on_token, out, &stats, &err);
    cr_assert_eq(st, ST_OK, "%s", err.message);
    st_free(ids);
    st_engine_close(e);
    return stats.stopped_by_eos;
}

TestSuite(constraint_engine, .init = make_model, .fini = cleanup);

Test(constraint_engine, json_schema_greedy_run_ends_and_parses)
{
    text_out out;
    char why[ST_ERROR_MESSAGE_MAX] = "";
    bool eos = run("  - plugin: json-schema\n    params: {schema: " ST_TEST_SCHEMAS
                   "/closed.json, whitespace: compact}\n", &out, why, sizeof why);
    cr_assert(eos, "did not end by EOS (%s): %s", why, out.s);
    cr_expect(json_valid(out.s), "not JSON: %s", out.s);
    cr_expect(strncmp(out.s, "{\"ok\":", 6) == 0, "members in order: %s", out.s);
    cr_expect(strstr(out.s, "\"tag\":\"red\"") || strstr(out.s, "\"tag\":\"green\""), "%s", out.s);
}

Test(constraint_engine, gbnf_and_regex_greedy_runs_end_in_their_language)
{
    text_out out;
    char why[ST_ERROR_MESSAGE_MAX] = "";
    bool eos = run("  - plugin: regex\n    params: {pattern: '(yes|no), [0-9]{1,3}'}\n", &out,
                   why, sizeof why);
    cr_assert(eos, "did not end (%s): %s", why, out.s);
    cr_expect((strncmp(out.s, "yes, ", 5) == 0 || strncmp(out.s, "no, ", 4) == 0) &&
                  strlen(out.s) <= 8, "%s", out.s);
    eos = run("  - plugin: gbnf\n    params: {grammar: " ST_TEST_GRAMMARS "/chess.gbnf}\n", &out,
              why, sizeof why);
    /* chess allows ever more moves: greedy may use the whole budget. */
    cr_expect(strncmp(out.s, "1. ", 3) == 0, "%s (%s)", out.s, why);
}

Test(constraint_engine, a_constraint_without_a_model_is_refused_early)
{
    char manifest[400];
    snprintf(manifest, sizeof manifest, "%s/nomodel.yaml", dir);
    FILE *f = fopen(manifest, "w");
    fprintf(f, "format: 1\ncontext: 256\ntokenizer: {plugin: bpe}\n"
               "positional-encoding: {plugin: rope}\nattention: {plugin: dense}\n"
               "samplers:\n  - plugin: regex\n    params: {pattern: 'a'}\n  - plugin: greedy\n");
    fclose(f);
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_neq(st_engine_open(manifest, NULL, &e, &err), ST_OK);
    cr_expect(strstr(err.message, "model"), "%s", err.message);
}

/* ---- a constraint for one request (st_generate_params.constraint, 1.6) ---- */

static st_engine *open_plain(void)
{
    char text[1024];
    snprintf(text, sizeof text,
             "format: 1\nmodel: %s\ncontext: 256\nthreads: 2\n"
             "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
             "attention: {plugin: dense}\nsamplers:\n  - plugin: greedy\n", model_path);
    return st_test_open_engine(dir, "plain.yaml", text);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* A request on the plain engine with `plugin` and its text parameters. */
static st_status request(st_engine *e, const char *plugin, const st_param_text *p, size_t n_p,
                         text_out *out, bool *eos, st_error *err)
{
    int32_t *ids;
    size_t n;
    cr_assert_eq(st_engine_tokenize(e, "Answer in JSON:", 15, 0, &ids, &n, err), ST_OK);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 200, .constraint = plugin,
                             .constraint_params = p, .n_constraint_params = n_p};
    st_generate_stats stats = {.struct_size = sizeof stats};
    memset(out, 0, sizeof *out);
    st_status st = st_engine_generate(e, ids, n, &gp, on_token, out, &stats, err);
    st_free(ids);
    *eos = stats.stopped_by_eos;
    return st;
}

Test(constraint_engine, a_request_constraint_answers_as_the_manifests_does)
{
    text_out want, got, plain_before, plain_after;
    char why[ST_ERROR_MESSAGE_MAX] = "";
    bool want_eos = run("  - plugin: json-schema\n    params: {schema: " ST_TEST_SCHEMAS
                        "/closed.json, whitespace: compact}\n", &want, why, sizeof why);
    cr_assert(want_eos, "%s", why);
    st_engine *e = open_plain();
    st_error err = {0};
    bool eos;
    cr_assert_eq(request(e, NULL, NULL, 0, &plain_before, &eos, &err), ST_OK, "%s", err.message);
    st_param_text p[2] = {{"schema", read_text(ST_TEST_SCHEMAS "/closed.json")},
                          {"whitespace", "compact"}};
    cr_assert_eq(request(e, "json-schema", p, 2, &got, &eos, &err), ST_OK, "%s", err.message);
    cr_expect(eos && strcmp(got.s, want.s) == 0, "request: %s\nmanifest: %s", got.s, want.s);
    cr_expect(json_valid(got.s), "%s", got.s);
    /* Parameters of other types come as text too: "true" is a bool and
     * "0" an int, as in a manifest (the defaults: the same answer). */
    text_out typed;
    st_param_text p4[4] = {p[0], p[1], {"strict", "true"}, {"max-digits", "0"}};
    cr_assert_eq(request(e, "json-schema", p4, 4, &typed, &eos, &err), ST_OK, "%s",
                 err.message);
    cr_expect(strcmp(typed.s, got.s) == 0, "%s / %s", typed.s, got.s);
    /* A string parameter stays text, digits and all. */
    st_param_text digits[1] = {{"pattern", "42"}};
    cr_assert_eq(request(e, "regex", digits, 1, &typed, &eos, &err), ST_OK, "%s",
                 err.message);
    cr_expect(eos && strcmp(typed.s, "42") == 0, "%s", typed.s);
    /* The engine keeps a request's constraint for the next request with
     * the same one, reset, and never hands it to another: the same
     * pattern again answers the same, a new one its own. */
    cr_assert_eq(request(e, "regex", digits, 1, &typed, &eos, &err), ST_OK, "%s",
                 err.message);
    cr_expect(eos && strcmp(typed.s, "42") == 0, "again: %s", typed.s);
    st_param_text sevens[1] = {{"pattern", "7{3}"}};
    cr_assert_eq(request(e, "regex", sevens, 1, &typed, &eos, &err), ST_OK, "%s",
                 err.message);
    cr_expect(eos && strcmp(typed.s, "777") == 0, "another pattern: %s", typed.s);
    /* The engine's own chain is back for the next request. */
    cr_assert_eq(request(e, NULL, NULL, 0, &plain_after, &eos, &err), ST_OK, "%s", err.message);
    cr_expect(strcmp(plain_before.s, plain_after.s) == 0 && strcmp(plain_before.s, got.s) != 0,
              "%s / %s", plain_before.s, plain_after.s);

    /* On a sequence, the same answer. */
    st_sequence *s = NULL;
    cr_assert_eq(st_sequence_open(e, &s, &err), ST_OK, "%s", err.message);
    int32_t *ids;
    size_t n;
    cr_assert_eq(st_engine_tokenize(e, "Answer in JSON:", 15, 0, &ids, &n, &err), ST_OK);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 200,
                             .constraint = "json-schema", .constraint_params = p,
                             .n_constraint_params = 2};
    text_out seq = {0};
    cr_assert_eq(st_sequence_start(s, ids, n, &gp, on_token, &seq, &err), ST_OK, "%s",
                 err.message);
    uint32_t active = 1;
    while (active)
        cr_assert_eq(st_engine_step(e, &active, &err), ST_OK, "%s", err.message);
    cr_expect(strcmp(seq.s, want.s) == 0, "sequence: %s\nmanifest: %s", seq.s, want.s);
    st_free(ids);
    st_sequence_close(s);
    st_engine_close(e);

    /* A manifest that has a constraint of the same plugin: the request's
     * replaces it; a regex one answers as a manifest's regex. */
    st_param_text re[1] = {{"pattern", "(yes|no), [0-9]{1,3}"}};
    want_eos = run("  - plugin: regex\n    params: {pattern: '(yes|no), [0-9]{1,3}'}\n", &want,
                   why, sizeof why);
    char manifest[400];
    snprintf(manifest, sizeof manifest, "%s/other.yaml", dir);
    FILE *f = fopen(manifest, "w");
    fprintf(f, "format: 1\nmodel: %s\ncontext: 256\nthreads: 2\n"
               "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
               "attention: {plugin: dense}\nsamplers:\n  - plugin: regex\n"
               "    params: {pattern: 'z+'}\n  - plugin: greedy\n", model_path);
    fclose(f);
    cr_assert_eq(st_engine_open(manifest, NULL, &e, &err), ST_OK, "%s", err.message);
    cr_assert_eq(request(e, "regex", re, 1, &got, &eos, &err), ST_OK, "%s", err.message);
    cr_expect(want_eos && eos && strcmp(got.s, want.s) == 0, "%s / %s", got.s, want.s);
    st_engine_close(e);
}

Test(constraint_engine, a_bad_request_constraint_is_refused_by_name)
{
    st_engine *e = open_plain();
    st_error err = {0};
    text_out out;
    bool eos;
    st_param_text bad_schema[1] = {{"schema", "{\"type\": \"object\", \"maxProperties\": -1"}};
    st_param_text no_such_param[1] = {{"grammar", "root ::= \"a\""}};
    /* Text reads as a manifest's scalar: "16" is an int, not an enum's. */
    st_param_text not_a_string[1] = {{"whitespace", "16"}};
    st_param_text unset[1] = {{"schema", NULL}};
    struct {
        const char *plugin;
        const st_param_text *p;
        size_t n;
        const char *says;
    } cases[] = {
        {"no-such-sampler", NULL, 0, "no sampler plugin named 'no-such-sampler'"},
        {"json-schema", bad_schema, 1, "constraint 'json-schema': refused"},
        {"json-schema", no_such_param, 1, "grammar"},
        {"json-schema", not_a_string, 1, "whitespace"},
        {"json-schema", unset, 1, "name and value must both be set"},
        {"json-schema", NULL, 1, "1 parameters announced, none given"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&err, 0, sizeof err);
        st_status st = request(e, cases[i].plugin, cases[i].p, cases[i].n, &out, &eos, &err);
        cr_expect_eq(st, ST_E_INVALID, "case %zu: %s", i, err.message);
        cr_expect(strstr(err.message, cases[i].says), "case %zu: %s", i, err.message);
    }
    /* The engine still answers. */
    cr_assert_eq(request(e, NULL, NULL, 0, &out, &eos, &err), ST_OK, "%s", err.message);
    st_engine_close(e);
}
