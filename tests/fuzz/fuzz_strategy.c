/*
 * tests/fuzz/fuzz_strategy.c - the strategy manifest reader, `extends:`
 * included. An input is up to four files cut at ST_FUZZ_SEPARATOR, written
 * as a small tree (main.yaml, base.yaml, sub/mid.yaml, other.yaml) so
 * chains, relative paths and cycles between real files are reachable.
 */
#include <stdio.h>
#include <string.h>

#include <stretch/stretch.h>

#include "fuzz_util.h"
#include "manifest.h"

static const char *const k_files[] = {"main.yaml", "base.yaml", "sub/mid.yaml", "other.yaml"};
#define N_FILES (sizeof k_files / sizeof k_files[0])

static void touch_ref(const st_plugin_ref *r)
{
    if (r->plugin && !r->plugin[0])
        st_fuzz_fail("a chosen plugin has an empty name");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[N_FILES];
    size_t len[N_FILES];
    size_t n = st_fuzz_split(data, size, part, len, N_FILES);
    const char *main_path = NULL;
    for (size_t k = 0; k < N_FILES; k++) {
        if (k < n) {
            const char *p = st_fuzz_write((int)k, k_files[k], part[k], len[k]);
            if (k == 0)
                main_path = p;
        } else {
            st_fuzz_remove(k_files[k]);
        }
    }

    st_strategy *s = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    st_status st = st_strategy_load(main_path, &s, &diag);
    if (st == ST_OK) {
        if (!s || s->n_files == 0)
            st_fuzz_fail("st_strategy_load succeeded without a strategy");
        touch_ref(&s->tokenizer);
        touch_ref(&s->posenc);
        touch_ref(&s->attention);
        touch_ref(&s->retriever);
        for (size_t k = 0; k < s->n_samplers; k++)
            touch_ref(&s->samplers[k]);
        st_strategy_free(s);
    } else {
        if (s)
            st_fuzz_fail("st_strategy_load failed but returned a strategy");
        if (!diag.message[0])
            st_fuzz_fail("st_strategy_load failed (%s) without a message", st_strerror(st));
        char buf[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 32];
        st_diag_format(&diag, buf, sizeof buf);
    }
    return 0;
}
