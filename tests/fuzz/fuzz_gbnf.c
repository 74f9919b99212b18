/*
 * tests/fuzz/fuzz_gbnf.c - the constraint engine's GBNF reader and parser
 * (plugins/sampler/constraint). The input is a grammar and, after
 * ST_FUZZ_SEPARATOR, text to run through it. A refused grammar has a
 * message and an offset inside the grammar (or -1); an accepted one has a
 * root, and the parser steps through the text without leaving its states:
 * a dead state stays dead, and the same text gives the same state twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cg_parser.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    size_t n = st_fuzz_split(data, size, part, len, 2);
    char *text = malloc(len[0] ? len[0] : 1);
    memcpy(text, part[0], len[0]);
    cg_grammar g;
    cg_grammar_init(&g);
    cg_error err;
    if (!cg_gbnf_parse(&g, text, len[0], &err)) {
        if (!err.message[0])
            st_fuzz_fail("refused without a message");
        if (err.offset < -1 || err.offset > (long)len[0])
            st_fuzz_fail("error offset %ld outside the grammar of %zu bytes", err.offset, len[0]);
    } else {
        if (g.root < 0 || (size_t)g.root >= g.n_rules)
            st_fuzz_fail("accepted without a root rule");
        cg_parser *p = cg_parser_new(&g);
        if (p && n > 1) {
            uint32_t a = cg_parser_start(p), b = a;
            for (size_t i = 0; i < len[1] && i < 4096; i++) {
                uint32_t next = cg_parser_step(p, a, part[1][i]);
                if (a == 0 && next != 0)
                    st_fuzz_fail("a dead state came back to life");
                a = next;
            }
            for (size_t i = 0; i < len[1] && i < 4096; i++)
                b = cg_parser_step(p, b, part[1][i]);
            if (a != b)
                st_fuzz_fail("the same text reached states %u and %u", a, b);
            (void)cg_parser_accepting(p, a);
        }
        cg_parser_free(p);
    }
    cg_grammar_free(&g);
    free(text);
    return 0;
}
