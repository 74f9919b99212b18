/*
 * The gbnf and regex samplers as the engine sees them: the conformance
 * suite, generation that ends with output a separate validator accepts,
 * and every refusal at create time with its reason.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "conformance.h"
#include "gen_check.h"
#include "test_host.h"

static const st_plugin_entry *load(const char *name)
{
    char why[512];
    const st_plugin_entry *e =
        st_test_load_plugin(ST_TEST_PLUGIN_DIR, "sampler", name, why, sizeof why);
    cr_assert_not_null(e, "%s", why);
    return e;
}

static void *create(const st_plugin_entry *e, const st_host_services *host, const char *key,
                    const char *value, st_status want, char *msg, size_t cap)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_str(&p, key, value);
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, host, &p, &inst, &err);
    st_test_params_destroy(&p);
    cr_assert_eq(st, want, "%s=%s: status %d, expected %d: %s", key, value, (int)st, (int)want,
                 err.message);
    if (msg)
        snprintf(msg, cap, "%s", err.message);
    return inst;
}

static void conformance(const char *name, const char *key, const char *value)
{
    const st_plugin_entry *e = load(name);
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_str(&p, key, value);
    st_error err = {0};
    const msgpack_object *params = st_test_params_validated(e, &p, &err);
    cr_assert_not_null(params, "%s", err.message);
    static st_conformance_report rep;
    st_status st = st_conformance_run(e, st_test_host_vocab_services(), params, &rep);
    for (size_t i = 0; i < rep.n_checks; i++)
        cr_expect(rep.checks[i].passed, "%s: %s: %s", name, rep.checks[i].name,
                  rep.checks[i].message);
    cr_expect_eq(st, ST_OK);
    cr_expect_geq(rep.n_checks, 5);
    st_test_params_destroy(&p);
}

Test(constraint_samplers, gbnf_passes_conformance)
{
    conformance("gbnf", "grammar", ST_TEST_GRAMMARS "/json.gbnf");
}

Test(constraint_samplers, regex_passes_conformance)
{
    conformance("regex", "pattern", "[a-z]+(, [a-z]+)*");
}

Test(constraint_samplers, gbnf_json_output_always_parses)
{
    const st_plugin_entry *e = load("gbnf");
    void *inst = create(e, st_test_host_vocab_services(), "grammar",
                        ST_TEST_GRAMMARS "/json.gbnf", ST_OK, NULL, 0);
    static char out[1 << 16];
    int ended = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        if (!gen_run(e, inst, seed, 2000, out, sizeof out, NULL))
            continue;
        ended++;
        cr_expect(json_valid(out), "seed %llu: not JSON: %s", (unsigned long long)seed, out);
        cr_expect_eq(out[0], '{', "seed %llu: root is an object: %s", (unsigned long long)seed,
                     out);
    }
    cr_expect_geq(ended, 20, "only %d of 30 runs ended", ended);
    e->destroy(inst);
}

Test(constraint_samplers, regex_output_matches_posix_regex)
{
    const char *pattern = "[a-z]{2,5}@[a-z]+\\.(com|org)";
    const st_plugin_entry *e = load("regex");
    void *inst = create(e, st_test_host_vocab_services(), "pattern", pattern, ST_OK, NULL, 0);
    regex_t re;
    cr_assert_eq(regcomp(&re, "^[a-z]{2,5}@[a-z]+\\.(com|org)$", REG_EXTENDED | REG_NOSUB), 0);
    static char out[4096];
    int ended = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        if (!gen_run(e, inst, seed, 300, out, sizeof out, NULL))
            continue;
        ended++;
        cr_expect_eq(regexec(&re, out, 0, NULL, 0), 0, "seed %llu: '%s' does not match",
                     (unsigned long long)seed, out);
    }
    cr_expect_geq(ended, 20, "only %d of 30 runs ended", ended);
    regfree(&re);
    e->destroy(inst);
}

Test(constraint_samplers, refusals_name_their_reason)
{
    char msg[ST_ERROR_MESSAGE_MAX];
    const st_plugin_entry *g = load("gbnf"), *r = load("regex");
    create(g, st_test_host_services(), "grammar", "root ::= \"a\"", ST_E_UNAVAILABLE, msg,
           sizeof msg);
    cr_expect(strstr(msg, "stretch.host.vocab/1"), "%s", msg);
    create(g, st_test_host_vocab_services(), "grammar", "root ::= \"a\" )", ST_E_INVALID, msg,
           sizeof msg);
    cr_expect(strstr(msg, "gbnf: grammar:1:14: unexpected ')'"), "%s", msg);
    create(g, st_test_host_vocab_services(), "grammar", "/nonexistent/x.gbnf", ST_E_IO, msg,
           sizeof msg);
    cr_expect(strstr(msg, "/nonexistent/x.gbnf"), "%s", msg);
    create(r, st_test_host_vocab_services(), "pattern", "(a*)*b", ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "column 5") && strstr(msg, "catastrophic"), "%s", msg);
    create(r, st_test_host_vocab_services(), "pattern", "(?=a)b", ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "lookaround"), "%s", msg);
    create(r, st_test_host_vocab_services(), "pattern", "a(b", ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "not closed"), "%s", msg);
}

Test(constraint_samplers, a_grammar_no_token_can_start_is_refused)
{
    static const char *const letters[] = {"a", "b", "ab", "the"};
    static st_test_host th;
    st_test_host_init(&th);
    th.vocab = true;
    th.pieces = letters;
    th.n_pieces = 4;
    char msg[ST_ERROR_MESSAGE_MAX];
    create(load("gbnf"), &th.services, "grammar", "root ::= [0-9]+", ST_E_INVALID, msg,
           sizeof msg);
    cr_expect(strstr(msg, "no token of the vocabulary can start"), "%s", msg);
    void *inst = create(load("gbnf"), &th.services, "grammar", "root ::= \"ab\"+", ST_OK, NULL, 0);
    load("gbnf")->destroy(inst);
}

Test(constraint_samplers, json_schema_passes_conformance)
{
    conformance("json-schema", "schema", ST_TEST_SCHEMAS "/person.json");
}

Test(constraint_samplers, json_schema_output_parses_and_keeps_the_schema)
{
    const st_plugin_entry *e = load("json-schema");
    void *inst = create(e, st_test_host_vocab_services(), "schema",
                        ST_TEST_SCHEMAS "/person.json", ST_OK, NULL, 0);
    static char out[1 << 16];
    int ended = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        if (!gen_run(e, inst, seed, 3000, out, sizeof out, NULL))
            continue;
        ended++;
        cr_expect(json_valid(out), "seed %llu: not JSON: %s", (unsigned long long)seed, out);
        cr_expect(strstr(out, "\"name\"") && strstr(out, "\"age\""),
                  "seed %llu: a required member is missing: %s", (unsigned long long)seed, out);
        const char *age = strstr(out, "\"age\"");
        int v = -1;
        if (age && sscanf(strchr(age, ':') + 1, " %d", &v) == 1)
            cr_expect(v >= 0 && v <= 130, "seed %llu: age %d out of range: %s",
                      (unsigned long long)seed, v, out);
    }
    cr_expect_geq(ended, 15, "only %d of 30 runs ended", ended);
    e->destroy(inst);
}

Test(constraint_samplers, json_schema_refusals_name_file_line_and_keyword)
{
    char msg[ST_ERROR_MESSAGE_MAX];
    const st_plugin_entry *e = load("json-schema");
    const st_host_services *h = st_test_host_vocab_services();
    create(e, h, "schema", ST_TEST_SCHEMAS "/bad_syntax.json", ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "bad_syntax.json:5:3: expected a member name"), "%s", msg);
    create(e, h, "schema", ST_TEST_SCHEMAS "/unsupported.json", ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "unsupported.json:4:37: at /properties/a/not: unsupported keyword "
                          "'not'"), "%s", msg);
    create(e, h, "schema", ST_TEST_SCHEMAS "/no_base_case.json", ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "can never finish"), "%s", msg);
    create(e, h, "schema", "{\"type\": \"strin\"}", ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "schema:1:1: at /: 'type' names no JSON type"), "%s", msg);
    create(e, h, "schema", "{\"type\": \"string\", \"pattern\": \"^(a*)*$\"}", ST_E_INVALID, msg,
           sizeof msg);
    cr_expect(strstr(msg, "catastrophic"), "%s", msg);
}

Test(constraint_samplers, json_schema_lenient_mode_warns_by_keyword)
{
    const st_plugin_entry *e = load("json-schema");
    static st_test_host th;
    st_test_host_init(&th);
    th.vocab = true;
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_str(&p, "schema", ST_TEST_SCHEMAS "/unsupported.json");
    st_test_params_bool(&p, "strict", false);
    void *inst = NULL;
    st_error err = {0};
    cr_assert_eq(st_test_create(e, &th.services, &p, &inst, &err), ST_OK, "%s", err.message);
    bool warned = false;
    for (size_t i = 0; i < th.n_log; i++)
        warned = warned || (th.log_level[i] == ST_LOG_WARN && strstr(th.log[i], "'not'"));
    cr_expect(warned, "no warning naming 'not'");
    e->destroy(inst);
    st_test_params_destroy(&p);
}

/* A 1 MB schema (thousands of properties) compiles, and one nested past
 * the reader's limit is refused by name, neither crashing. */
Test(constraint_samplers, json_schema_of_a_megabyte, .timeout = 120)
{
    char path[] = "/tmp/st_big_schema_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "{\"type\": \"object\", \"properties\": {");
    for (int i = 0; i < 27000; i++)
        fprintf(f, "%s\"property_%05d\": {\"type\": \"string\"}", i ? ", " : "", i);
    fprintf(f, "}, \"required\": [\"property_00000\"]}");
    long size = ftell(f);
    fclose(f);
    cr_assert_geq(size, 1000000);
    const st_plugin_entry *e = load("json-schema");
    void *inst = create(e, st_test_host_vocab_services(), "schema", path, ST_OK, NULL, 0);
    e->destroy(inst);
    f = fopen(path, "w");
    for (int i = 0; i < 600; i++)
        fprintf(f, "{\"items\": ");
    fprintf(f, "true");
    for (int i = 0; i < 600; i++)
        fprintf(f, "}");
    fclose(f);
    char msg[ST_ERROR_MESSAGE_MAX];
    create(e, st_test_host_vocab_services(), "schema", path, ST_E_INVALID, msg, sizeof msg);
    cr_expect(strstr(msg, "deeper than"), "%s", msg);
    remove(path);
}

Test(constraint_samplers, awrs_passes_conformance)
{
    const st_plugin_entry *e = load("awrs");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_str(&p, "constraint", "regex");
    st_test_params_str(&p, "spec", "[a-z]+(, [a-z]+)*");
    st_error err = {0};
    const msgpack_object *params = st_test_params_validated(e, &p, &err);
    cr_assert_not_null(params, "%s", err.message);
    static st_conformance_report rep;
    st_status st = st_conformance_run(e, st_test_host_vocab_services(), params, &rep);
    for (size_t i = 0; i < rep.n_checks; i++)
        cr_expect(rep.checks[i].passed, "awrs: %s: %s", rep.checks[i].name,
                  rep.checks[i].message);
    cr_expect_eq(st, ST_OK);
    st_test_params_destroy(&p);
}

/* Pearson's chi-square of `count` against n * p, cells with an expected
 * count below 5 pooled; *df gets the degrees of freedom. */
static double chi_square(const int *count, const double *p, size_t k, int n, int *df)
{
    double stat = 0, pool_o = 0, pool_e = 0;
    *df = -1;
    for (size_t i = 0; i < k; i++) {
        double e = n * p[i];
        if (e < 5) {
            pool_o += count[i];
            pool_e += e;
            continue;
        }
        stat += (count[i] - e) * (count[i] - e) / e;
        (*df)++;
    }
    if (pool_e > 0) {
        stat += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        (*df)++;
    }
    return stat;
}

/* AWRS and full masking (awrs forced to its fallback after one rejection)
 * both draw the first token from softmax(logits) restricted to what the
 * constraint allows: a chi-square test over seeded samples, at the 0.1%
 * level (Wilson-Hilferty's approximation of the critical value). */
Test(constraint_samplers, awrs_and_full_masking_sample_the_constrained_distribution,
     .timeout = 120)
{
    const st_plugin_entry *e = load("awrs");
    static st_candidate logits[ST_TEST_VOCAB_N], work[ST_TEST_VOCAB_N];
    uint64_t x = 12345;
    for (int32_t i = 0; i < ST_TEST_VOCAB_N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (st_candidate){i, (float)((x >> 40) % 600) / 100.0f, 0};
    }
    /* The exact constrained distribution, from the regex plugin's mask. */
    const char *pattern = "[a-h]x|[a-c][a-z]";
    const st_plugin_entry *r = load("regex");
    void *ri = create(r, st_test_host_vocab_services(), "pattern", pattern, ST_OK, NULL, 0);
    memcpy(work, logits, sizeof work);
    st_candidates c = {work, ST_TEST_VOCAB_N, false, -1};
    st_error err = {0};
    cr_assert_eq(((const st_sampler_ops *)r->ops)->apply(ri, &c, &err), ST_OK, "%s", err.message);
    size_t k = c.size;
    int32_t ids[ST_TEST_VOCAB_N];
    double p[ST_TEST_VOCAB_N], z = 0;
    for (size_t i = 0; i < k; i++) {
        ids[i] = c.data[i].id;
        z += exp(c.data[i].logit);
    }
    for (size_t i = 0; i < k; i++)
        p[i] = exp(c.data[i].logit) / z;
    r->destroy(ri);
    cr_assert_geq(k, 10, "the pattern should allow several first tokens");

    for (int fallback = 0; fallback < 2; fallback++) {
        st_test_params tp;
        st_test_params_init(&tp);
        st_test_params_str(&tp, "constraint", "regex");
        st_test_params_str(&tp, "spec", pattern);
        st_test_params_int(&tp, "max-rejections", fallback ? 1 : 1000000);
        void *inst = NULL;
        cr_assert_eq(st_test_create(e, st_test_host_vocab_services(), &tp, &inst, &err), ST_OK,
                     "%s", err.message);
        enum { N = 4000 };
        int count[ST_TEST_VOCAB_N] = {0};
        const st_sampler_ops *ops = e->ops;
        for (int s = 0; s < N; s++) {
            ops->reset(inst, (uint64_t)s + 1);
            memcpy(work, logits, sizeof work);
            c = (st_candidates){work, ST_TEST_VOCAB_N, false, -1};
            cr_assert_eq(ops->apply(inst, &c, &err), ST_OK, "%s", err.message);
            cr_assert_geq(c.selected, 0);
            int32_t id = c.data[c.selected].id;
            size_t j = 0;
            while (j < k && ids[j] != id)
                j++;
            cr_assert_lt(j, k, "picked token %d, which the constraint does not allow", id);
            count[j]++;
        }
        int df;
        double stat = chi_square(count, p, k, N, &df);
        double h = 2.0 / (9.0 * df), crit = df * pow(1 - h + 3.09 * sqrt(h), 3);
        cr_log_info("%s: chi-square %.1f, %d df, critical %.1f", fallback ? "full masking" : "awrs", stat, df, crit);
        cr_expect_lt(stat, crit, "%s: chi-square %.1f with %d df (critical %.1f at 0.1%%)",
                     fallback ? "full masking" : "awrs", stat, df, crit);
        e->destroy(inst);
        st_test_params_destroy(&tp);
    }
}

Test(constraint_samplers, length_passes_conformance)
{
    const st_plugin_entry *e = load("length");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "target_words", 30);
    st_error err = {0};
    const msgpack_object *params = st_test_params_validated(e, &p, &err);
    cr_assert_not_null(params, "%s", err.message);
    static st_conformance_report rep;
    st_status st = st_conformance_run(e, st_test_host_vocab_services(), params, &rep);
    for (size_t i = 0; i < rep.n_checks; i++)
        cr_expect(rep.checks[i].passed, "length: %s: %s", rep.checks[i].name,
                  rep.checks[i].message);
    cr_expect_eq(st, ST_OK);
    st_test_params_destroy(&p);
}

static long count_words(const char *s, size_t len)
{
    long n = 0;
    bool in = false;
    for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)s + len;
         p++) {
        bool w = (*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= 'a' && *p <= 'z') || *p == '_' || *p >= 0x80;
        n += w && !in;
        in = w;
    }
    return n;
}

/* Whatever the logits say, a run that ends lands in Ruler's interval:
 * 80 words precise is (70, 90], flexible (60, 100]. */
Test(constraint_samplers, length_lands_in_the_interval)
{
    const st_plugin_entry *e = load("length");
    static const struct { const char *interval; long lo, hi; } cases[] = {
        {"precise", 70, 90}, {"flexible", 60, 100}};
    for (int k = 0; k < 2; k++) {
        st_test_params tp;
        st_test_params_init(&tp);
        st_test_params_int(&tp, "target_words", 80);
        st_test_params_str(&tp, "interval", cases[k].interval);
        void *inst = NULL;
        st_error err = {0};
        cr_assert_eq(st_test_create(e, st_test_host_vocab_services(), &tp, &inst, &err), ST_OK,
                     "%s", err.message);
        static char out[1 << 16];
        for (uint64_t seed = 1; seed <= 10; seed++) {
            size_t len = 0;
            cr_assert(gen_run(e, inst, seed, 5000, out, sizeof out, &len),
                      "seed %llu never ended", (unsigned long long)seed);
            long w = count_words(out, len);
            cr_expect(w > cases[k].lo && w <= cases[k].hi, "%s seed %llu: %ld words",
                      cases[k].interval, (unsigned long long)seed, w);
        }
        e->destroy(inst);
        st_test_params_destroy(&tp);
    }
}
