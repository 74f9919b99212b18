/*
 * Reading strategies through the built binary on a tiny model: `stretch
 * run --file DOC --question Q`, `eval passkey` and `eval facts` read
 * chunk by chunk, and the refusals reach the user with exit 5 and the
 * reason.
 */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_dir.h"
#include "tiny_model.h"

#define STRETCH ST_TEST_BINARY_DIR "/bin/stretch"

static char dir[128];
static char out[65536], err[16384];

static void write_file(const char *name, const char *text)
{
    st_test_write(dir, name, text);
}

static void write_strategy(const char *name, const char *attention)
{
    char text[1024];
    snprintf(text, sizeof text,
             "format: 1\nmodel: tiny.gguf\ncontext: 256\nthreads: 1\n"
             "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
             "attention: %s\nsamplers: [{plugin: greedy}]\n", attention);
    write_file(name, text);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_read_cli_%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 256;
    st_diag d;
    cr_assert_eq(st_gen_tiny_model(&spec, path, &d), ST_OK, "%s", d.message);
    write_strategy("ir.yaml", "{plugin: infiniretri, params: {top_k: 16, budget: 48}}");
    write_strategy("xl.yaml", "{plugin: xl3m, params: {segment: 16, budget: 48}}");
    write_strategy("dense.yaml", "{plugin: dense}");
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 120; i++)
        fprintf(f, "The quick brown fox %d jumps over the lazy dog.\n", i);
    fclose(f);
    write_file("empty.txt", "");
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static void read_all(const char *name, char *buf, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Run `stretch <args>` in dir; the exit code, stdout and stderr. */
static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && STRETCH_PLUGIN_PATH= " STRETCH " %s >out.txt 2>err.txt",
             dir, args);
    int rc = system(cmd);
    read_all("out.txt", out, sizeof out);
    read_all("err.txt", err, sizeof err);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TestSuite(read_cli, .init = setup, .fini = teardown);

Test(read_cli, run_reads_a_file_with_a_question)
{
    const char *m[] = {"ir.yaml", "xl.yaml"};
    for (int i = 0; i < 2; i++) {
        char args[512];
        snprintf(args, sizeof args, "run -m %s --file text.txt --question ' Which fox?' "
                                    "--chunk 64 --max-tokens 3 --json", m[i]);
        int rc = run(args);
        cr_assert_eq(rc, 0, "%s: exit %d: %s", m[i], rc, err);
        cr_assert(strstr(out, "\"read\":{\"tokens\":"), "%s", out);
        cr_assert(strstr(err, "chunks, kept"), "%s", err);
    }
    /* `--file -` reads the document from standard input: the same answer. */
    char from_file[sizeof out];
    cr_assert_eq(run("run -m ir.yaml --file text.txt --question ' Which fox?' --chunk 64 "
                     "--max-tokens 3 --json"), 0, "%s", err);
    snprintf(from_file, sizeof from_file, "%s", out);
    cr_assert_eq(run("run -m ir.yaml --file - --question ' Which fox?' --chunk 64 "
                     "--max-tokens 3 --json < text.txt"), 0, "%s", err);
    /* The prompt's ids, the answer's and its text: all before "seed". */
    const char *a = strstr(from_file, "\"prompt_ids\":"), *b = strstr(out, "\"prompt_ids\":");
    cr_assert(a && b && strstr(a, ",\"seed\""), "%s", out);
    size_t n = (size_t)(strstr(a, ",\"seed\"") - a);
    cr_assert(n > 20 && strncmp(a, b, n) == 0, "%s\n%s", out, from_file);
    /* The PROMPT is the document when there is no --file. */
    cr_assert_eq(run("run -m ir.yaml --question ' Which fox?' --chunk 64 --max-tokens 2 "
                     "'The red fox ran. The blue fox sat.'"), 0, "%s", err);
    cr_assert(strstr(err, "read "), "%s", err);
}

Test(read_cli, refusals_exit_5_with_the_reason)
{
    cr_assert_eq(run("run -m ir.yaml --file empty.txt --question ' Which fox?' --chunk 64"), 5);
    cr_assert(strstr(err, "the document is empty"), "%s", err);
    cr_assert_eq(run("run -m dense.yaml --file text.txt --question ' Which fox?' --chunk 64"), 5);
    cr_assert(strstr(err, "offers stretch.reader/1"), "%s", err);
    cr_assert_eq(run("run -m ir.yaml --file text.txt --question ' Which fox?' --chunk 4096"), 5);
    cr_assert(strstr(err, "does not fit the context"), "%s", err);
    cr_assert_eq(run("run -m ir.yaml --file missing.txt --question ' Which fox?' --chunk 64"),
                 5);
    cr_assert(strstr(err, "missing.txt: cannot open"), "%s", err);
}

Test(read_cli, passkey_and_facts_read_chunk_by_chunk)
{
    int rc = run("eval passkey -m ir.yaml --lengths 600 --depths 0,100 --samples 1 --chunk 64 "
                 "--out pk");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    char points[4096];
    read_all("pk/points.jsonl", points, sizeof points);
    cr_assert(strstr(points, "read by infiniretri in chunks of 64"), "%s", points);
    cr_assert(strstr(points, "\"depth\":100,\"sample\":0"), "%s", points);

    rc = run("eval facts -m xl.yaml --lengths 300 --facts 1,3 --samples 1 --chunk 64 "
             "--out f text.txt");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    char csv[1024];
    read_all("f/facts.csv", csv, sizeof csv);
    cr_assert(strstr(csv, "length,facts,samples,accuracy\n300,1,1,"), "%s", csv);
    cr_assert(strstr(csv, "\n300,3,1,"), "%s", csv);
    read_all("f/points.jsonl", points, sizeof points);
    cr_assert(strstr(points, "\"key\":\"the "), "%s", points);

    /* A strategy without a reader: the whole text is the prompt. */
    rc = run("eval facts -m dense.yaml --lengths 150 --facts 2 --samples 1 --out g text.txt");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    cr_assert_eq(run("eval facts -m dense.yaml --facts 99 text.txt"), 1, "%s", err);
    cr_assert(strstr(err, "--facts"), "%s", err);
}

/* The first progress line of `label` with done/total strictly inside the
 * run (its first chunk), and whether one reached the total. */
static void progress_seen(const char *label, bool *partial, bool *full)
{
    *partial = *full = false;
    char want[64];
    snprintf(want, sizeof want, "] %s ", label);
    for (const char *at = strstr(err, want); at; at = strstr(at + 1, want)) {
        double done = 0, total = 0;
        if (sscanf(at + strlen(want), "%lf/%lf", &done, &total) != 2 || total <= 0)
            continue;
        *partial |= done > 0 && done < total;
        *full |= done == total;
    }
}

Test(read_cli, progress_lines_while_reading)
{
    /* Not a terminal here: --progress prints lines, the first after the
     * first chunk of the one sample, the last at the end. */
    int rc = run("eval passkey -m xl.yaml --lengths 2000 --depths 50 --samples 1 --chunk 64 "
                 "--progress --out pkp");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    bool partial, full;
    progress_seen("passkey", &partial, &full);
    cr_assert(partial && full, "%s", err);
    cr_assert_null(strchr(err, '\r'), "a bar was drawn off a terminal: %s", err);

    rc = run("run -m xl.yaml --file text.txt --question ' Which fox?' --chunk 64 "
             "--max-tokens 2 --progress");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    progress_seen("read", &partial, &full);
    cr_assert(partial && full, "%s", err);
    cr_assert(strstr(err, " kB/s"), "%s", err); /* text.txt is 5.6 kB */

    /* Without --progress nothing of the kind is printed off a terminal. */
    rc = run("run -m xl.yaml --file text.txt --question ' Which fox?' --chunk 64 --max-tokens 2");
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    cr_assert_null(strstr(err, "] read "), "%s", err);
}
