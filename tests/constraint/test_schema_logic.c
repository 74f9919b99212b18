/*
 * JSON Schema keywords compiled as alternatives (cg_schema_logic.c):
 * dependentRequired, dependentSchemas, draft 7's dependencies, and
 * schemas that match nothing where they are optional (a member not
 * required, one alternative of anyOf, the items of an array that may be
 * empty). Each schema's grammar is checked on instances whose validity is
 * worked out by hand from the specification.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cg_parser.h"
#include "cg_schema.h"

static bool compiles_with(const char *schema, int max_digits, cg_buf *gbnf, cg_error *err)
{
    cg_buf warn = {0};
    cg_schema_options opt = {.strict = true, .compact = true, .max_digits = max_digits};
    bool ok = cg_schema_to_gbnf(schema, strlen(schema), &opt, gbnf, &warn, err);
    cg_buf_free(&warn);
    return ok;
}

static bool compiles(const char *schema, cg_buf *gbnf, cg_error *err)
{
    return compiles_with(schema, 0, gbnf, err);
}

/* 1 when `instance` is a complete sentence of the schema's grammar, with
 * numbers capped at max_digits digits a run (0: none). */
static int accepts_capped(const char *schema, int max_digits, const char *instance)
{
    cg_buf gbnf = {0};
    cg_error err;
    cr_assert(compiles_with(schema, max_digits, &gbnf, &err), "%s: %s", schema, err.message);
    cg_grammar g;
    cg_grammar_init(&g);
    cr_assert(cg_gbnf_parse(&g, gbnf.s, gbnf.n, &err), "%s\n%s", err.message, gbnf.s);
    cg_parser *p = cg_parser_new(&g);
    uint32_t st = cg_parser_start(p);
    for (size_t i = 0; instance[i] && st && st != UINT32_MAX; i++)
        st = cg_parser_step(p, st, (uint8_t)instance[i]);
    int r = cg_parser_accepting(p, st);
    cg_parser_free(p);
    cg_grammar_free(&g);
    cg_buf_free(&gbnf);
    return r;
}

static int accepts(const char *schema, const char *instance)
{
    return accepts_capped(schema, 0, instance);
}

static void expect_refused(const char *schema, const char *what)
{
    cg_buf gbnf = {0};
    cg_error err;
    cr_expect_not(compiles(schema, &gbnf, &err), "%s compiled", schema);
    cr_expect(strstr(err.message, what), "%s: '%s' not in: %s", schema, what, err.message);
    cg_buf_free(&gbnf);
}

#define AB "\"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"}}"

Test(schema_logic, dependent_required)
{
    const char *s = "{\"type\": \"object\", " AB ", \"dependentRequired\": {\"a\": [\"b\"]}}";
    cr_expect(accepts(s, "{}"));
    cr_expect(accepts(s, "{\"b\":2}"));
    cr_expect(accepts(s, "{\"a\":1,\"b\":2}"));
    cr_expect(!accepts(s, "{\"a\":1}"));
    /* Draft 7 spells it dependencies; a required trigger makes its
     * dependents required too. */
    s = "{\"type\": \"object\", " AB ", \"required\": [\"a\"], "
        "\"dependencies\": {\"a\": [\"b\"]}}";
    cr_expect(accepts(s, "{\"a\":1,\"b\":2}"));
    cr_expect(!accepts(s, "{\"a\":1}"));
    cr_expect(!accepts(s, "{\"b\":2}"));
}

Test(schema_logic, dependent_schemas)
{
    const char *s = "{\"type\": \"object\", " AB ", \"dependentSchemas\": "
                    "{\"a\": {\"properties\": {\"b\": {\"minimum\": 10}}, \"required\": [\"b\"]}}}";
    cr_expect(accepts(s, "{\"a\":1,\"b\":10}"));
    cr_expect(!accepts(s, "{\"a\":1,\"b\":9}"));
    cr_expect(!accepts(s, "{\"a\":1}"));
    cr_expect(accepts(s, "{\"b\":9}"));
    /* Two triggers, four cases; the dependencies form with a schema. */
    s = "{\"type\": \"object\", " AB ", \"dependencies\": {\"a\": {\"required\": [\"b\"]}, "
        "\"b\": {\"properties\": {\"a\": {\"maximum\": 5}}}}}";
    cr_expect(accepts(s, "{\"a\":5,\"b\":0}"));
    cr_expect(!accepts(s, "{\"a\":6,\"b\":0}"));
    cr_expect(!accepts(s, "{\"a\":6}"));
    cr_expect(accepts(s, "{\"b\":0}"));
    cr_expect(accepts(s, "{}"));
    /* A trigger the object does not declare: any member may still appear
     * when it is absent (the object was open), and it is present only
     * with what it requires. */
    s = "{\"dependentRequired\": {\"x\": [\"y\"]}}";
    cr_expect(accepts(s, "{\"z\":1}"));
    cr_expect(accepts(s, "{\"x\":1,\"y\":2}"));
    cr_expect(!accepts(s, "{\"x\":1}"));
    cr_expect(accepts(s, "7"));
}

Test(schema_logic, dependencies_refused_by_name_when_malformed_or_too_many)
{
    expect_refused("{\"dependentRequired\": {\"a\": [1]}}", "must list member names");
    expect_refused("{\"dependentRequired\": {\"a\": {}}}", "an array of member names");
    expect_refused("{\"dependentSchemas\": {\"a\": [\"b\"]}}", "a schema");
    expect_refused("{\"dependencies\": 3}", "must be an object");
    expect_refused("{\"dependentRequired\": {\"a\": [\"b\"], \"b\": [\"c\"], \"c\": [\"d\"], "
                   "\"d\": [\"e\"], \"e\": [\"a\"]}}",
                   "unsupported keyword 'dependentRequired': more than 4 trigger members");
    /* A required trigger whose dependent the closed object cannot have. */
    expect_refused("{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": [\"a\"], "
                   "\"additionalProperties\": false, \"dependentRequired\": {\"a\": [\"z\"]}}",
                   "no object satisfies the dependencies");
}

Test(schema_logic, optional_schemas_that_match_nothing_are_left_out)
{
    /* "enum" of strings under "type": "object" matches nothing: the
     * member may not appear, the rest of the object still compiles. */
    const char *s = "{\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"object\", "
                    "\"enum\": [\"A\"]}, \"y\": {\"type\": \"integer\"}}}";
    cr_expect(accepts(s, "{\"y\":1}"));
    cr_expect(accepts(s, "{}"));
    cr_expect(!accepts(s, "{\"x\":\"A\",\"y\":1}"));
    cr_expect(!accepts(s, "{\"x\":{},\"y\":1}"));
    /* Required, it makes the whole schema match nothing: refused. */
    expect_refused("{\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"object\", "
                   "\"enum\": [\"A\"]}}, \"required\": [\"x\"]}",
                   "no value of 'enum' has the schema's type");
    /* One alternative of anyOf. */
    s = "{\"anyOf\": [{\"type\": \"string\", \"enum\": [1]}, {\"type\": \"integer\"}]}";
    cr_expect(accepts(s, "3"));
    cr_expect(!accepts(s, "\"1\""));
    /* Array items: only the empty array is left. */
    s = "{\"type\": \"array\", \"items\": {\"type\": \"integer\", \"minimum\": 5, "
        "\"maximum\": 4}}";
    cr_expect(accepts(s, "[]"));
    cr_expect(!accepts(s, "[4]"));
    /* A reference to a schema that matches nothing, used twice: the first
     * use is dropped with the rules it wrote, the second names no rule
     * that was never written. */
    s = "{\"$defs\": {\"no\": {\"type\": \"null\", \"enum\": [1]}}, \"type\": \"object\", "
        "\"properties\": {\"p\": {\"$ref\": \"#/$defs/no\"}, \"q\": {\"$ref\": \"#/$defs/no\"}, "
        "\"r\": {\"type\": \"boolean\"}}}";
    cr_expect(accepts(s, "{\"r\":true}"));
    cr_expect(!accepts(s, "{\"p\":null}"));
}

/* Numbers between integer bounds of any sign (cg_schema.c gen_number),
 * and multipleOf as a number of fraction digits. */
Test(schema_logic, number_bounds_of_any_sign)
{
    const char *s = "{\"type\": \"number\", \"minimum\": -90, \"maximum\": 90}";
    const char *in[] = {"-90", "-89.999", "0", "-0.5", "90", "90.00", "45.25", "-90.0"};
    const char *out[] = {"-90.01", "90.5", "91", "-91", "100"};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++)
        cr_expect(accepts(s, in[i]), "%s rejected", in[i]);
    for (size_t i = 0; i < sizeof out / sizeof *out; i++)
        cr_expect(!accepts(s, out[i]), "%s accepted", out[i]);
    s = "{\"type\": \"number\", \"exclusiveMinimum\": -2, \"exclusiveMaximum\": -1}";
    cr_expect(accepts(s, "-1.5"));
    cr_expect(accepts(s, "-1.0001"));
    cr_expect(!accepts(s, "-1"));
    cr_expect(!accepts(s, "-2"));
    cr_expect(!accepts(s, "-2.0"));
    cr_expect(!accepts(s, "0"));
    s = "{\"type\": \"number\", \"exclusiveMinimum\": 3}";
    cr_expect(accepts(s, "3.01"));
    cr_expect(accepts(s, "400"));
    cr_expect(!accepts(s, "3"));
    cr_expect(!accepts(s, "3.000"));
    cr_expect(!accepts(s, "-4"));
    expect_refused("{\"type\": \"number\", \"minimum\": 0.5}",
                   "bounds on numbers are enforced when they are integers");
    expect_refused("{\"type\": \"number\", \"minimum\": 2, \"exclusiveMaximum\": 2}",
                   "no number lies between");
}

Test(schema_logic, multiple_of_a_power_of_ten)
{
    const char *s = "{\"type\": \"number\", \"multipleOf\": 0.01, \"minimum\": 0, "
                    "\"maximum\": 10}";
    cr_expect(accepts(s, "9.99"));
    cr_expect(accepts(s, "1.5"));
    cr_expect(accepts(s, "1.500"));
    cr_expect(accepts(s, "10.00"));
    cr_expect(!accepts(s, "1.005"));
    cr_expect(!accepts(s, "10.01"));
    s = "{\"type\": \"number\", \"multipleOf\": 1}";
    cr_expect(accepts(s, "-7"));
    cr_expect(accepts(s, "7.0"));
    cr_expect(!accepts(s, "7.5"));
    /* Every integer is a multiple of 0.1; 3 is not a power of ten. */
    cr_expect(accepts("{\"type\": \"integer\", \"multipleOf\": 0.1}", "12"));
    expect_refused("{\"type\": \"number\", \"multipleOf\": 3}",
                   "unsupported keyword 'multipleOf'");
    expect_refused("{\"type\": \"number\", \"multipleOf\": 0}", "must be a number above 0");
}

/* minLength beside a pattern whose every match is long enough: the
 * pattern alone enforces it (characters, not bytes, counted). Other
 * lengths: the product of the pattern with a count (cg_schema_length.c). */
Test(schema_logic, lengths_beside_a_pattern)
{
    const char *s = "{\"type\": \"string\", \"pattern\": \"^[a-z]+-[0-9]{2}$\", \"minLength\": 4}";
    cr_expect(accepts(s, "\"a-12\""));
    cr_expect(!accepts(s, "\"a-1\""));
    /* Two two-byte characters are two characters. */
    cr_expect(accepts("{\"type\": \"string\", \"pattern\": \"^\xc3\xa9{2}x*$\", \"minLength\": 2}",
                      "\"\xc3\xa9\xc3\xa9\""));
    s = "{\"type\": \"string\", \"pattern\": \"^[a-z]+-[0-9]{2}$\", \"minLength\": 5}";
    cr_expect(accepts(s, "\"ab-12\""));
    cr_expect(!accepts(s, "\"a-12\""));
    s = "{\"type\": \"string\", \"pattern\": \"^[a-z]+-[0-9]{2}$\", \"maxLength\": 6}";
    cr_expect(accepts(s, "\"abc-12\""));
    cr_expect(accepts(s, "\"a-12\""));
    cr_expect(!accepts(s, "\"abcd-12\""));
    /* Searched (unanchored) patterns and both limits. */
    s = "{\"type\": \"string\", \"pattern\": \"^(\\\\d+\\\\.\\\\d+\\\\.\\\\d+.*)$\", "
        "\"minLength\": 6, \"maxLength\": 8}";
    cr_expect(accepts(s, "\"1.2.3-rc\""));
    cr_expect(accepts(s, "\"10.2.3\""));
    cr_expect(!accepts(s, "\"1.2.3\""));
    cr_expect(!accepts(s, "\"1.2.3-rc1\""));
    cr_expect(!accepts(s, "\"a.2.3-rc\""));
    s = "{\"type\": \"string\", \"pattern\": \"ab\", \"maxLength\": 4}";
    cr_expect(accepts(s, "\"xaby\""));
    cr_expect(!accepts(s, "\"xay\""));
    cr_expect(!accepts(s, "\"xxaby\""));
    /* The product runs over printable ASCII: a pattern that needs other
     * characters is refused by name rather than taken as matching
     * nothing. */
    expect_refused("{\"type\": \"string\", \"pattern\": \"^\xc3\xa9{2}x*$\", \"minLength\": 3}",
                   "unsupported keyword 'minLength': no string of printable ASCII");
    expect_refused("{\"type\": \"string\", \"pattern\": \"^[a-z]+$|^x{3}-\", \"maxLength\": 3, "
                   "\"minLength\": 4}", "minLength is above maxLength");
}

Test(schema_logic, max_properties_zero_or_implied_and_hostname)
{
    const char *s = "{\"type\": \"object\", \"maxProperties\": 0}";
    cr_expect(accepts(s, "{}"));
    cr_expect(!accepts(s, "{\"a\":1}"));
    /* A closed object with two possible members meets maxProperties 2. */
    s = "{\"type\": \"object\", " AB ", \"additionalProperties\": false, \"maxProperties\": 2}";
    cr_expect(accepts(s, "{\"a\":1,\"b\":2}"));
    expect_refused("{\"type\": \"object\", " AB ", \"additionalProperties\": false, "
                   "\"maxProperties\": 1}", "unsupported keyword 'maxProperties'");
    expect_refused("{\"type\": \"object\", " AB ", \"maxProperties\": 2}",
                   "unsupported keyword 'maxProperties'");
    expect_refused("{\"type\": \"object\", " AB ", \"required\": [\"a\"], \"maxProperties\": 0}",
                   "maxProperties 0 but the object must have members");
    s = "{\"type\": \"string\", \"format\": \"hostname\"}";
    cr_expect(accepts(s, "\"api.example-1.org\""));
    cr_expect(!accepts(s, "\"-bad.org\""));
    cr_expect(!accepts(s, "\"a..b\""));
    cr_expect(!accepts(s, "\"a b\""));
}

Test(schema_logic, property_names_pattern_and_decimal_bounds)
{
    const char *s = "{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}, "
                    "\"propertyNames\": {\"pattern\": \"^[a-z_]+$\"}}";
    cr_expect(accepts(s, "{\"ab_c\":1,\"d\":2}"));
    cr_expect(!accepts(s, "{\"Ab\":1}"));
    cr_expect(accepts(s, "{}"));
    expect_refused("{\"type\": \"object\", " AB ", \"propertyNames\": {\"pattern\": \"^a$\"}}",
                   "unsupported keyword 'propertyNames'");
    /* 99.99 with two decimals is "below 100". */
    s = "{\"type\": \"number\", \"minimum\": -0.99, \"maximum\": 99.99, \"multipleOf\": 0.01}";
    cr_expect(accepts(s, "99.99"));
    cr_expect(accepts(s, "-0.99"));
    cr_expect(accepts(s, "0"));
    cr_expect(!accepts(s, "100"));
    cr_expect(!accepts(s, "-1"));
    cr_expect(!accepts(s, "99.995"));
}

/* Declared names with characters outside ASCII are excluded from the
 * additional members character by character, not byte by byte: the fuzz
 * run found the byte trie writing half a character into the grammar. */
Test(schema_logic, additional_members_exclude_non_ascii_names)
{
    const char *s = "{\"type\": \"object\", \"properties\": {\"\xc3\xa9t\xc3\xa9\": {\"type\": \"integer\"}, "
                    "\"\xc3\xa9\": {\"type\": \"integer\"}}, "
                    "\"additionalProperties\": {\"type\": \"string\"}}";
    cr_expect(accepts(s, "{\"\xc3\xa9t\xc3\xa9\":1}"));
    cr_expect(!accepts(s, "{\"\xc3\xa9t\xc3\xa9\":\"x\"}"));
    cr_expect(!accepts(s, "{\"\xc3\xa9\":\"x\"}"));
    cr_expect(accepts(s, "{\"\xc3\xa9t\":\"x\"}"));
    cr_expect(accepts(s, "{\"\xc3\xaa\":\"x\"}"));
    cr_expect(accepts(s, "{\"\xc3\xa9t\xc3\xa9s\":\"x\"}"));
}

/* patternProperties decided name by name (cg_schema_patterns.c): other
 * members' names match no pattern, a name in two patterns satisfies both
 * schemas, a false pattern's names never appear, a declared name takes
 * its patterns' schemas too; names are matched on their decoded
 * characters. */
Test(schema_logic, pattern_members_decided_by_automata)
{
    const char *s = "{\"type\": \"object\", \"patternProperties\": {\"^a\": {\"type\": \"integer\"}, "
                    "\"b$\": {\"minimum\": 5}, \"x\": false}, "
                    "\"additionalProperties\": {\"type\": \"string\"}}";
    cr_expect(accepts(s, "{\"a1\":1,\"zb\":7,\"q\":\"s\"}"));
    cr_expect(!accepts(s, "{\"a1\":\"s\"}"));       /* a pattern's name, not an other member's */
    cr_expect(!accepts(s, "{\"zb\":3}"));
    cr_expect(accepts(s, "{\"ab\":6}"));            /* both patterns: integer and >= 5 */
    cr_expect(!accepts(s, "{\"ab\":4}"));
    cr_expect(!accepts(s, "{\"ab\":6.5}"));
    cr_expect(!accepts(s, "{\"x\":1}"));            /* a false pattern: never */
    cr_expect(!accepts(s, "{\"ax\":1}"));
    cr_expect(!accepts(s, "{\"yxy\":\"s\"}"));
    cr_expect(accepts(s, "{\"y\\\"y\":\"s\"}"));   /* an escaped name no pattern matches */
    cr_expect(!accepts(s, "{\"\\\"x\":\"s\"}"));   /* decoded, it contains x */
    /* Schemas no value satisfies together: such names cannot appear. */
    s = "{\"type\": \"object\", \"patternProperties\": {\"^a\": {\"type\": \"integer\"}, "
        "\"b$\": {\"type\": \"string\"}}}";
    cr_expect(accepts(s, "{\"a\":1,\"b\":\"s\"}"));
    cr_expect(!accepts(s, "{\"ab\":1}"));
    cr_expect(!accepts(s, "{\"ab\":\"s\"}"));
    /* A declared name matching a pattern satisfies both schemas, and the
     * pattern's path does not take it. */
    s = "{\"type\": \"object\", \"properties\": {\"foo\": {\"type\": \"array\", \"maxItems\": 2}}, "
        "\"patternProperties\": {\"^f\": {\"minItems\": 1}}, \"additionalProperties\": false}";
    cr_expect(accepts(s, "{\"foo\":[1]}"));
    cr_expect(!accepts(s, "{\"foo\":[]}"));
    cr_expect(!accepts(s, "{\"foo\":[1,2,3]}"));
    cr_expect(accepts(s, "{\"fa\":[1]}"));
    cr_expect(!accepts(s, "{\"fa\":[]}"));
    cr_expect(!accepts(s, "{\"g\":[]}"));
}

/* An automaton above its bound is refused by the pattern's name. */
Test(schema_logic, pattern_automaton_bound_refused_by_name)
{
    expect_refused("{\"type\": \"object\", \"patternProperties\": {\"a[ab]{12}$\": true, \"b\": true}}",
                   "a[ab]{12}$");
    expect_refused("{\"type\": \"object\", \"patternProperties\": {\"a[ab]{12}$\": true, \"b\": true}}",
                   "more than 4096 states");
}

/* max-digits: a number the schema leaves unbounded has at most D digits
 * in its integer part, fraction and exponent; bounds the schema gives
 * still decide, and 0 caps nothing. */
Test(schema_logic, max_digits_caps_each_digit_run_of_an_unbounded_number)
{
    const char *i = "{\"type\": \"integer\"}", *n = "{\"type\": \"number\"}";
    cr_expect(accepts_capped(i, 3, "999"));
    cr_expect(accepts_capped(i, 3, "-120"));
    cr_expect(accepts_capped(i, 3, "0"));
    cr_expect(!accepts_capped(i, 3, "1000"));
    cr_expect(accepts_capped(i, 0, "12345678901234567890123"));
    cr_expect(accepts_capped(i, 1, "7"));
    cr_expect(!accepts_capped(i, 1, "10"));
    cr_expect(accepts_capped(n, 3, "123.456e789"));
    cr_expect(!accepts_capped(n, 3, "1234.5"));
    cr_expect(!accepts_capped(n, 3, "1.2345"));
    cr_expect(!accepts_capped(n, 3, "1e1234"));
    /* A lower bound alone: the integers from it, up to the cap. */
    const char *lo = "{\"type\": \"integer\", \"minimum\": 5}";
    cr_expect(accepts_capped(lo, 2, "99"));
    cr_expect(!accepts_capped(lo, 2, "100"));
    cr_expect(!accepts_capped(lo, 2, "4"));
    cr_expect(accepts_capped(lo, 0, "123456789012345678901"));
    /* Past 18 digits (where ranges stop being spelt out). */
    cr_expect(accepts_capped(lo, 20, "12345678901234567890"));
    cr_expect(!accepts_capped(lo, 20, "123456789012345678901"));
    /* Bounds decide where the schema gives them. */
    const char *both = "{\"type\": \"integer\", \"minimum\": 0, \"maximum\": 100000}";
    cr_expect(accepts_capped(both, 2, "100000"));
    const char *x = "{\"type\": \"number\", \"minimum\": 0}";
    cr_expect(accepts_capped(x, 2, "99.25"));
    cr_expect(!accepts_capped(x, 2, "99.125"));
    cr_expect(!accepts_capped(x, 2, "123.5"));
}
