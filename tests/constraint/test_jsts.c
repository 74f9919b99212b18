/*
 * The JSON Schema Test Suite (draft 2020-12, the keyword files in jsts/):
 * every schema is compiled as the json-schema sampler compiles it (strict,
 * objects open as the specification reads them); a schema refused for an
 * unsupported keyword is counted as refused. For the rest, every valid
 * instance, written compactly, must be a complete sentence of the grammar
 * and every invalid one must not, except the cases listed with a reason in
 * jsts/expected_mismatches.txt (what a grammar cannot decide, and what this
 * compiler chooses not to: member order, merged allOf, pattern complements).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_parser.h"
#include "cg_schema.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static bool accepts(cg_parser *p, const char *s, size_t n)
{
    uint32_t st = cg_parser_start(p);
    for (size_t i = 0; i < n && st && st != UINT32_MAX; i++)
        st = cg_parser_step(p, st, (uint8_t)s[i]);
    return cg_parser_accepting(p, st);
}

static const char *const files[] = {
    "type", "properties", "required", "additionalProperties", "patternProperties", "items",
    "prefixItems", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "ref",
    "defs", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "uniqueItems", "boolean_schema", "format", "minProperties",
    "maxProperties", "dependentRequired", "dependentSchemas", "not", "if-then-else", "multipleOf", "propertyNames"};

Test(jsts, supported_keywords_decide_the_suite, .timeout = 120)
{
    size_t exp_len;
    char *expected = slurp(ST_TEST_JSTS "/expected_mismatches.txt", &exp_len);
    int n_groups = 0, n_refused = 0, n_ok = 0, n_listed = 0, n_unexpected = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.json", ST_TEST_JSTS, files[f]);
        size_t len;
        char *text = slurp(path, &len);
        cg_error err;
        cj_value *doc = cj_parse(text, len, &err);
        cr_assert_not_null(doc, "%s: %s", path, err.message);
        for (size_t g = 0; g < doc->n; g++) {
            const cj_value *group = doc->items[g];
            const char *gdesc = cj_get(group, "description")->str;
            cg_buf schema = {0}, gbnf = {0}, warn = {0};
            cj_write(cj_get(group, "schema"), &schema);
            cg_schema_options opt = {.strict = true, .compact = false, .open_objects = true};
            n_groups++;
            cg_grammar gr;
            cg_grammar_init(&gr);
            cg_parser *p = NULL;
            if (!cg_schema_to_gbnf(schema.s, schema.n, &opt, &gbnf, &warn, &err)) {
                n_refused++;
                cr_log_info("%s | %s: refused: %s", files[f], gdesc, err.message);
            } else {
                cr_assert(cg_gbnf_parse(&gr, gbnf.s, gbnf.n, &err),
                          "%s | %s: generated GBNF does not parse: %s\n%s", files[f], gdesc,
                          err.message, gbnf.s);
                p = cg_parser_new(&gr);
                cr_assert_not_null(p);
            }
            const cj_value *tests = cj_get(group, "tests");
            for (size_t t = 0; p && t < tests->n; t++) {
                const cj_value *tc = tests->items[t];
                cg_buf inst = {0};
                cj_write(cj_get(tc, "data"), &inst);
                bool valid = cj_get(tc, "valid")->boolean;
                bool got = accepts(p, inst.s, inst.n);
                const char *tdesc = cj_get(tc, "description")->str;
                char key[1024];
                snprintf(key, sizeof key, "%s | %s | %s |", files[f], gdesc, tdesc);
                if (got == valid) {
                    n_ok++;
                } else if (strstr(expected, key)) {
                    n_listed++;
                } else {
                    n_unexpected++;
                    cr_expect_fail("%s %s: instance %s is %s but the grammar %s it", key,
                                   valid ? "valid" : "invalid", inst.s,
                                   valid ? "valid" : "invalid", got ? "accepts" : "rejects");
                }
                cg_buf_free(&inst);
            }
            cg_parser_free(p);
            cg_grammar_free(&gr);
            cg_buf_free(&schema);
            cg_buf_free(&gbnf);
            cg_buf_free(&warn);
        }
        cj_free(doc);
        free(text);
    }
    free(expected);
    cr_log_info("JSON Schema Test Suite: %d schemas, %d refused (unsupported keyword); "
                "instances: %d decided right, %d listed mismatches, %d unexpected",
                n_groups, n_refused, n_ok, n_listed, n_unexpected);
    printf("jsts: %d schemas, %d refused; %d instances right, %d listed, %d unexpected\n",
           n_groups, n_refused, n_ok, n_listed, n_unexpected);
    cr_expect_eq(n_unexpected, 0);
}

/* 1 when `instance` is a complete sentence of the schema's grammar. */
static int schema_accepts(const char *schema, const char *instance)
{
    cg_buf gbnf = {0}, warn = {0};
    cg_error err;
    cg_schema_options opt = {.strict = true};
    cr_assert(cg_schema_to_gbnf(schema, strlen(schema), &opt, &gbnf, &warn, &err), "%s: %s",
              schema, err.message);
    cg_grammar g;
    cg_grammar_init(&g);
    cr_assert(cg_gbnf_parse(&g, gbnf.s, gbnf.n, &err), "%s", err.message);
    cg_parser *p = cg_parser_new(&g);
    int r = accepts(p, instance, strlen(instance));
    cg_parser_free(p);
    cg_grammar_free(&g);
    cg_buf_free(&gbnf);
    cg_buf_free(&warn);
    return r;
}

Test(jsts, lengths_narrow_a_repeated_class_pattern)
{
    const char *s = "{\"type\": \"string\", \"pattern\": \"^[a-z]+$\", \"maxLength\": 3}";
    cr_expect(schema_accepts(s, "\"abc\""));
    cr_expect(!schema_accepts(s, "\"abcd\""));
    cr_expect(!schema_accepts(s, "\"\""));
    cr_expect(!schema_accepts(s, "\"aB\""));
    s = "{\"type\": \"string\", \"pattern\": \"^\\\\d{2,}$\", \"minLength\": 4}";
    cr_expect(schema_accepts(s, "\"1234\""));
    cr_expect(!schema_accepts(s, "\"123\""));
}

Test(jsts, min_properties_one_means_not_empty)
{
    const char *s = "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, "
                    "\"b\": {\"type\": \"integer\"}}, \"minProperties\": 1, "
                    "\"additionalProperties\": false}";
    cr_expect(schema_accepts(s, "{\"a\":1}"));
    cr_expect(schema_accepts(s, "{\"b\":2}"));
    cr_expect(schema_accepts(s, "{\"a\":1,\"b\":2}"));
    cr_expect(!schema_accepts(s, "{}"));
}

/* Found by fuzz_json_schema: a property name with malformed UTF-8 went
 * into the GBNF as bytes its reader refuses. The JSON reader refuses it. */
Test(jsts, malformed_utf8_in_a_schema_is_refused_with_its_position)
{
    const char s[] = "{\"type\": \"object\", \"properties\": {\"ne\x93\x9aq\": {}}}";
    cg_buf gbnf = {0}, warn = {0};
    cg_error err;
    cg_schema_options opt = {.strict = true};
    cr_assert_not(cg_schema_to_gbnf(s, strlen(s), &opt, &gbnf, &warn, &err));
    cr_expect(strstr(err.message, "malformed UTF-8"), "%s", err.message);
    cr_expect_eq(err.offset, 37, "offset %ld", err.offset);
    cg_buf_free(&gbnf);
    cg_buf_free(&warn);
    /* The regex and the schema's patterns: the same bytes are refused. */
    const char p[] = "{\"type\": \"string\", \"pattern\": \"a\xff\"}";
    cr_assert_not(cg_schema_to_gbnf(p, strlen(p), &opt, &gbnf, &warn, &err));
    cr_expect(strstr(err.message, "malformed UTF-8"), "%s", err.message);
    cg_buf_free(&gbnf);
    cg_buf_free(&warn);
}
