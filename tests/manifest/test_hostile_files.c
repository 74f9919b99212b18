/*
 * tests/manifest/test_hostile_files.c - manifests written to hurt the
 * reader (issue #8): nesting deep enough to overflow a recursive builder,
 * FIFOs where a file is expected, `extends:` aimed at a file that is not a
 * manifest, control characters in what an error quotes. Each must end in
 * one clear error, never a crash, a hang or a quote of a private file.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "manifest.h"

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_hostile_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(hostile, .init = setup, .fini = teardown);

static const char *path_of(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static const char *write_bytes(const char *name, const char *bytes, size_t n)
{
    const char *path = path_of(name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* 100,000 '[' is 100 KB: under the size and node caps, far past any stack
 * a recursive builder could use (ASan overflowed at 40,000). */
Test(hostile, deep_nesting_is_refused_not_a_stack_overflow)
{
    size_t depth = 100000;
    char *text = malloc(depth + 32);
    cr_assert_not_null(text);
    int head = snprintf(text, 32, "format: 1\nx: ");
    memset(text + head, '[', depth);
    text[head + depth] = '\n';
    const char *path = write_bytes("deep.yaml", text, (size_t)head + depth + 1);
    free(text);

    st_diag d;
    st_diag_clear(&d);
    st_strategy *s = NULL;
    cr_assert_neq(st_strategy_load(path, &s, &d), ST_OK);
    cr_assert_null(s);
    cr_assert_str_eq(d.file, path);
    cr_assert_eq(d.line, 2);
    cr_assert(strstr(d.message, "nested at most 64 deep") != NULL, "%s", d.message);

    /* A few levels are fine: the cap is not a cap on real use. */
    st_plugin_manifest *m = NULL;
    cr_assert_neq(st_plugin_manifest_load(write_text("p.yaml", "format: 1\nx: [[[[1]]]]\n"),
                                          &m, &d), ST_OK);
    cr_assert(strstr(d.message, "unknown key 'x'") != NULL, "%s", d.message);
}

static const char *make_fifo(const char *name)
{
    const char *path = path_of(name);
    cr_assert_eq(mkfifo(path, 0600), 0, "%s", path);
    return path;
}

/* .timeout turns the old behaviour (open() waiting for a writer forever)
 * into a failure instead of a stuck test run. */
Test(hostile, fifo_manifest_is_refused_without_blocking, .timeout = 30)
{
    const char *fifo = make_fifo("pipe.yaml");
    st_diag d;
    st_diag_clear(&d);
    st_strategy *s = NULL;
    cr_assert_eq(st_strategy_load(fifo, &s, &d), ST_E_IO);
    cr_assert_str_eq(d.file, fifo);
    cr_assert(strstr(d.message, "expected a regular file, found a FIFO") != NULL, "%s",
              d.message);

    st_plugin_manifest *m = NULL;
    cr_assert_eq(st_plugin_manifest_load(fifo, &m, &d), ST_E_IO);
    cr_assert(strstr(d.message, "FIFO") != NULL, "%s", d.message);

    const char *child = write_text("child.yaml", "format: 1\nextends: pipe.yaml\n");
    cr_assert_eq(st_strategy_load(child, &s, &d), ST_E_IO);
    cr_assert_str_eq(d.file, fifo);
    cr_assert(strstr(d.message, "FIFO") != NULL, "%s", d.message);
    char from[600];
    snprintf(from, sizeof from, "extended from %s:2:10", child);
    cr_assert(strstr(d.message, from) != NULL, "%s", d.message);
}

Test(hostile, fifo_model_is_refused_without_blocking, .timeout = 30)
{
    const char *fifo = make_fifo("model.gguf");
    st_diag d;
    st_diag_clear(&d);
    st_gguf *g = NULL;
    cr_assert_eq(st_gguf_open(fifo, &g, &d), ST_E_IO);
    cr_assert_null(g);
    cr_assert(strstr(d.message, "found a FIFO") != NULL, "%s", d.message);
}

/* `extends:` may name any file the user can read; if it is not a strategy
 * manifest, the error says so and where it was named, quoting nothing. */
Test(hostile, extends_of_a_private_file_quotes_none_of_it)
{
    static const char *const secrets[] = {
        "root:$6$SECRET-HASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        "password: SECRET-HASH\n",
        "format: SECRET-HASH\n",
        "- SECRET-HASH\n",
        "key: [SECRET-HASH\n",
        "n: 99999999999999999999999999 # SECRET-HASH\n",
    };
    for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++) {
        const char *secret = write_text("shadow", secrets[k]);
        const char *mid = write_text("mid.yaml", "format: 1\n\nextends: shadow\n");
        const char *top = write_text("top.yaml", "format: 1\nextends: mid.yaml\n");
        st_diag d;
        st_diag_clear(&d);
        st_strategy *s = NULL;
        cr_assert_neq(st_strategy_load(top, &s, &d), ST_OK, "case %zu", k);
        cr_assert_null(s);
        char line[2400];
        st_diag_format(&d, line, sizeof line);
        cr_assert(strstr(line, "SECRET") == NULL && strstr(line, "daemon") == NULL,
                  "case %zu quotes the file: %s", k, line);
        cr_assert_str_eq(d.file, secret, "case %zu: %s", k, line);
        cr_assert(strstr(d.message, "expected a strategy manifest") != NULL, "case %zu: %s", k,
                  line);
        /* The chain that led there, nearest first. */
        char chain[1200];
        snprintf(chain, sizeof chain, "extended from %s:3:10; extended from %s:2:10", mid, top);
        cr_assert(strstr(d.message, chain) != NULL, "case %zu: %s", k, line);
    }
}

/* A real parent manifest keeps its precise errors, with the chain added. */
Test(hostile, a_parent_manifest_error_names_the_chain)
{
    write_text("parent.yaml", "format: 1\ncontxt: 64\n");
    const char *child = write_text("child.yaml", "format: 1\nextends: parent.yaml\n");
    st_diag d;
    st_diag_clear(&d);
    st_strategy *s = NULL;
    cr_assert_neq(st_strategy_load(child, &s, &d), ST_OK);
    cr_assert_str_eq(d.file, path_of("parent.yaml"));
    cr_assert_eq(d.line, 2);
    cr_assert(strstr(d.message, "unknown key 'contxt'") != NULL, "%s", d.message);
    char from[600];
    snprintf(from, sizeof from, "; extended from %s:2:10", child);
    cr_assert(strstr(d.message, from) != NULL, "%s", d.message);
}

/* What an error quotes from a file reaches a terminal: ESC and C1
 * controls come out escaped (CR, LF and tab as spaces: one line). */
Test(hostile, quoted_text_in_errors_has_no_control_characters)
{
    const char *path = write_text("ctl.yaml", "format: 1\n\"\\e[2J\\rOK\\u009b\": 1\n");
    st_diag d;
    st_diag_clear(&d);
    st_strategy *s = NULL;
    cr_assert_neq(st_strategy_load(path, &s, &d), ST_OK);
    cr_assert(!has_control(d.message), "%s", d.message);
    cr_assert(strstr(d.message, "'\\x1b[2J OK\\xc2\\x9b'") != NULL, "%s", d.message);
}
