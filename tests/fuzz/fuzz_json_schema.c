/*
 * tests/fuzz/fuzz_json_schema.c - the JSON Schema compiler of the
 * json-schema sampler (plugins/sampler/constraint/cg_schema.c), strict and
 * lenient. A refused schema has a message and an offset inside it (or
 * -1); an accepted one compiles to GBNF that the GBNF reader parses: the
 * only refusals allowed there are the grammar checks a schema can
 * legitimately fail (recursion without a base case), never a syntax error
 * in what the compiler wrote.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cg_grammar.h"
#include "cg_schema.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16))
        return 0;
    char *text = malloc(size ? size : 1);
    memcpy(text, data, size);
    for (int strict = 0; strict < 2; strict++) {
        cg_schema_options opt = {.strict = strict, .compact = size % 2, .open_objects = size % 3};
        cg_buf gbnf = {0}, warn = {0};
        cg_error err;
        if (!cg_schema_to_gbnf(text, size, &opt, &gbnf, &warn, &err)) {
            if (!err.message[0])
                st_fuzz_fail("refused without a message");
            if (err.offset < -1 || err.offset > (long)size)
                st_fuzz_fail("error offset %ld outside the schema", err.offset);
        } else if (!gbnf.oom) {
            cg_grammar g;
            cg_grammar_init(&g);
            if (!cg_gbnf_parse(&g, gbnf.s, gbnf.n, &err) && !strstr(err.message, "never finish") &&
                !strstr(err.message, "left-recursive") && !strstr(err.message, "repetition"))
                st_fuzz_fail("the compiler wrote GBNF its reader refuses: %s\n%s", err.message,
                             gbnf.s);
            cg_grammar_free(&g);
        }
        cg_buf_free(&gbnf);
        cg_buf_free(&warn);
    }
    free(text);
    return 0;
}
