/*
 * tests/loader/test_cli.c - runs the built `stretch` binary: every bad
 * fixture gives a non-zero exit code and one stderr line naming the file;
 * --json output parses (python3 -m json.tool); check reports bad params at
 * their file:line:col.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stretch/common.h>

#include "tiny_bert.h"

#define ST_STR_(x) #x
#define ST_STR(x) ST_STR_(x)
/* "1.2": the host's ABI as its messages print it */
#define HOST_ABI ST_STR(ST_ABI_MAJOR) "." ST_STR(ST_ABI_MINOR)

#define STRETCH ST_TEST_BINARY_DIR "/bin/stretch"

static char out_path[64], err_path[64];
static char out[65536], err[16384];

static void read_all(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Run `stretch <args>`; returns the exit code, fills out/err. */
static int run(const char *args)
{
    snprintf(out_path, sizeof out_path, "/tmp/st_cli_out_%d", (int)getpid());
    snprintf(err_path, sizeof err_path, "/tmp/st_cli_err_%d", (int)getpid());
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "STRETCH_PLUGIN_PATH= %s %s >%s 2>%s", STRETCH, args,
             out_path, err_path);
    int st = system(cmd);
    read_all(out_path, out, sizeof out);
    read_all(err_path, err, sizeof err);
    unlink(out_path);
    unlink(err_path);
    cr_assert(WIFEXITED(st), "stretch died: %s", cmd);
    return WEXITSTATUS(st);
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Whether `json` parses. */
static bool valid_json(const char *json)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/st_cli_json_%d", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "python3 -m json.tool %s >/dev/null 2>&1", path);
    int st = system(cmd);
    unlink(path);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void expect_bad(const char *name, int code, const char *names_file,
                       const char *needle)
{
    char args[1024], file[1024];
    snprintf(args, sizeof args, "inspect %s/%s/plugin.yaml", ST_FIXTURE_DIR, name);
    snprintf(file, sizeof file, "%s/%s/%s", ST_FIXTURE_DIR, name, names_file);
    int rc = run(args);
    cr_assert_eq(rc, code, "%s: exit %d, want %d; stderr: %s", name, rc, code, err);
    cr_assert_eq(lines(err), 1, "%s: one stderr line, got: %s", name, err);
    cr_assert(strstr(err, file) != NULL, "%s: stderr must name %s: %s", name, file, err);
    if (needle)
        cr_assert(strstr(err, needle) != NULL, "%s: '%s' not in %s", name, needle, err);

    /* Same through --json: still a valid document on stdout when the
     * manifest could be read. */
    snprintf(args, sizeof args, "inspect --json %s/%s/plugin.yaml", ST_FIXTURE_DIR, name);
    rc = run(args);
    cr_assert_eq(rc, code);
    if (code == 3)
        cr_assert(valid_json(out), "%s: invalid JSON: %s", name, out);
}

Test(cli, help_and_version)
{
    cr_assert_eq(run("--help"), 0);
    cr_assert(strstr(out, "plugins") && strstr(out, "inspect") && strstr(out, "check"));
    cr_assert(strstr(out, "exit codes") != NULL);
    cr_assert_eq(run("--version"), 0);
    cr_assert(strstr(out, "ABI " HOST_ABI) != NULL, "%s", out);
    cr_assert_eq(run("no-such-command"), 1);
    cr_assert_eq(run("inspect"), 1);
    cr_assert_eq(run("plugins --bogus"), 1);
}

Test(cli, refused_libraries)
{
    const char *so = NULL;
    (void)so;
    expect_bad("bad-missing-file", 3, "bad-missing-file.so", "missing-file");
    expect_bad("bad-text-so", 3, "bad-text-so.so", "not-a-plugin");
    expect_bad("bad-truncated", 3, "bad-truncated.so", "not-a-plugin");
    expect_bad("bad-missing-dep", 3, "bad-missing-dep.so", "libst_fixture_gone.so");
    expect_bad("bad-no-entry", 3, "bad-no-entry.so", "missing-symbol");
    expect_bad("bad-abi-major", 3, "bad-abi-major.so", "plugin ABI 2.0, host ABI " HOST_ABI);
    expect_bad("bad-abi-minor", 3, "bad-abi-minor.so", "plugin ABI 1.99, host ABI " HOST_ABI);
    expect_bad("bad-kind", 3, "bad-kind.so", "manifest-mismatch");
    expect_bad("bad-name", 3, "bad-name.so", "some-other-name");
    expect_bad("bad-null-create", 3, "bad-null-create.so", "bad-entry");
    expect_bad("bad-short-entry", 3, "bad-short-entry.so", "bad-entry");
    expect_bad("bad-create-fails", 3, "bad-create-fails.so", "fixture refuses on purpose");
}

Test(cli, crashing_plugin_is_reported_not_fatal)
{
    expect_bad("bad-create-aborts", 3, "bad-create-aborts.so", "SIGABRT");
    cr_assert(strstr(err, "during create") != NULL, "%s", err);
}

Test(cli, hanging_plugin_is_killed)
{
    char args[1024];
    snprintf(args, sizeof args, "inspect %s/bad-create-hangs/plugin.yaml", ST_SLOW_FIXTURE_DIR);
    setenv("STRETCH_CHECK_TIMEOUT", "1", 1);
    int rc = run(args);
    unsetenv("STRETCH_CHECK_TIMEOUT");
    cr_assert_eq(rc, 3, "%s", err);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert(strstr(err, "bad-create-hangs.so: killed after 1 s") != NULL, "%s", err);
    cr_assert(strstr(err, "(stage: create)") != NULL, "%s", err);
}

Test(cli, forged_reports_are_not_trusted)
{
    /* create() writes into the checker's pipe and exits 0: unterminated
     * junk (once a stack overflow in the printer), then a well-formed
     * "all passed" report without the checker's token. */
    expect_bad("bad-forges-report", 3, "bad-forges-report.so", "cannot be trusted");
    cr_assert(strstr(err, "after stage create"), "%s", err);
    expect_bad("bad-forges-verdict", 3, "bad-forges-verdict.so", "cannot be trusted (not "
               "written by the checker");
}

/* Whether process `pid` is gone (stretch reaps what it killed; a zombie
 * counts as gone all the same). */
static bool process_gone(long pid)
{
    char path[64], stat[256] = "";
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    read_all(path, stat, sizeof stat);
    const char *paren = strrchr(stat, ')');
    return !paren || paren[1] == '\0' || paren[2] == 'Z' || paren[2] == 'X';
}

Test(cli, forked_helpers_neither_outlive_nor_stall_the_check)
{
    /* The plugin's helper holds the report pipe open and never ends: the
     * check must end with the checker, and take the helper with it. */
    char pid_file[64], args[1024];
    snprintf(pid_file, sizeof pid_file, "/tmp/st_cli_forks_%d", (int)getpid());
    unlink(pid_file);
    setenv("ST_FIXTURE_PID_FILE", pid_file, 1);
    setenv("STRETCH_CHECK_TIMEOUT", "30", 1);
    snprintf(args, sizeof args, "inspect %s/fixture-forks/plugin.yaml", ST_SLOW_FIXTURE_DIR);
    int rc = run(args);
    unsetenv("STRETCH_CHECK_TIMEOUT");
    unsetenv("ST_FIXTURE_PID_FILE");
    char pids[4096] = "";
    read_all(pid_file, pids, sizeof pids);
    unlink(pid_file);
    int alive = 0, n = 0;
    for (char *p = pids, *end; *p; p = end) {
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        n++;
        if (!process_gone(pid)) {
            alive++;
            kill((pid_t)pid, SIGKILL); /* leave nothing behind either way */
        }
    }
    cr_assert_eq(rc, 0, "exit %d; stderr: %s; stdout: %s", rc, err, out);
    cr_assert(!strstr(out, "killed after"), "%s", out);
    cr_assert_gt(n, 0, "the fixture recorded no helper");
    cr_assert_eq(alive, 0, "%d of %d helpers outlived `stretch inspect`", alive, n);
}

Test(cli, broken_manifests)
{
    expect_bad("bad-escape", 2, "plugin.yaml", "escape");
    expect_bad("bad-escape-link", 2, "plugin.yaml", "escape");
    expect_bad("bad-yaml", 2, "plugin.yaml", NULL);
    /* file:line:col for a syntax error */
    const char *at = strstr(err, "plugin.yaml:");
    cr_assert(at && at[12] >= '1' && at[12] <= '9', "%s", err);
}

Test(cli, inspect_good_plugin_json)
{
    char args[1024];
    snprintf(args, sizeof args, "inspect --json %s/fixture-good/plugin.yaml", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(valid_json(out), "%s", out);
    cr_assert(strstr(out, "\"name\": \"fixture-good\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"status\": \"ok\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"abi\": \"" HOST_ABI "\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"apply\": true") != NULL, "%s", out);
    cr_assert(strstr(out, "\"unit\": \"logits\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"conformance\": {") != NULL, "the suite ran: %s", out);
    cr_assert(strstr(out, "0 failed") != NULL, "%s", out);

    /* By library path, and by name with --path. */
    snprintf(args, sizeof args, "inspect %s/fixture-good/fixture-good.so", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "margin") && strstr(out, "range [0, 100]"), "%s", out);
    snprintf(args, sizeof args, "inspect --path %s sampler/fixture-good", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "Result:") && strstr(out, "ok"), "%s", out);
    snprintf(args, sizeof args, "inspect --path %s no-such-plugin", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 2);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert(strstr(err, "no-such-plugin") != NULL, "%s", err);

    /* By the plugin's directory; a directory without a plugin.yaml, and a
     * path that is neither a file nor KIND/NAME, are named as such. */
    snprintf(args, sizeof args, "inspect %s/fixture-good", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "margin") && strstr(out, "range [0, 100]"), "%s", out);
    snprintf(args, sizeof args, "inspect %s", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 2, "%s", err);
    cr_assert(strstr(err, ": a directory with no plugin.yaml; give a plugin's name"), "%s", err);
    cr_assert_eq(run("inspect no-such-dir/top-k"), 1, "%s", err);
    cr_assert(strstr(err, "no-such-dir/top-k: no such file or directory, and 'no-such-dir' is "
                          "not a plugin kind"), "%s", err);
}

Test(cli, plugins_lists_everything)
{
    char args[1024];
    snprintf(args, sizeof args, "plugins --json --path %s", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(valid_json(out), "%s", out);
    cr_assert(strstr(out, "\"status\": \"broken\"") != NULL, "%s", out);
    cr_assert(strstr(out, "bad-yaml") != NULL);
    snprintf(args, sizeof args, "plugins --check --path %s", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "plugin ABI 2.0, host ABI " HOST_ABI) != NULL, "%s", out);
    cr_assert(strstr(out, "SIGABRT") != NULL, "%s", out);
    snprintf(args, sizeof args, "plugins --check --json --path %s", ST_FIXTURE_DIR);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(valid_json(out), "%s", out);
}

static void write_strategy(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    /* The built-in tokenizer, posenc and attention (from <build>/lib, which
     * the binary finds beside itself) complete the mix. */
    fprintf(f, "format: 1\nplugin-dirs: [%s]\ntokenizer: {plugin: bytes}\n"
               "positional-encoding: {plugin: nope}\nattention: {plugin: dense}\n%s",
            ST_FIXTURE_DIR, body);
    fclose(f);
}

Test(cli, check_strategy)
{
    char path[64], args[256];
    snprintf(path, sizeof path, "/tmp/st_cli_strategy_%d.yaml", (int)getpid());
    write_strategy(path, "samplers:\n  - plugin: fixture-good\n    params: {margin: 2}\n");
    snprintf(args, sizeof args, "check %s", path);
    int rc = run(args);
    cr_assert_eq(rc, 0, "exit %d: %s%s", rc, out, err);
    cr_assert(strstr(out, "fixture-good") && strstr(out, "margin=2"), "%s", out);
    snprintf(args, sizeof args, "check --json %s", path);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(valid_json(out), "%s", out);
    cr_assert(strstr(out, "\"margin\": 2") != NULL, "%s", out);

    /* A bad parameter: reported at its line:col, exit 2. */
    write_strategy(path, "samplers:\n  - plugin: fixture-good\n    params: {margin: 1000}\n");
    snprintf(args, sizeof args, "check %s", path);
    cr_assert_eq(run(args), 2, "%s", err);
    char where[128];
    snprintf(where, sizeof where, "%s:8:", path);
    cr_assert(strstr(err, where) != NULL, "want %s in: %s", where, err);
    cr_assert_eq(lines(err), 1, "%s", err);

    /* An unknown plugin and a refused one: both reported, one line each. */
    write_strategy(path, "samplers:\n  - plugin: nope\n  - plugin: bad-abi-major\n");
    cr_assert_eq(run(args), 2, "the first error decides: %s", err);
    cr_assert_eq(lines(err), 2, "%s", err);
    cr_assert(strstr(err, "'nope'") && strstr(err, "plugin ABI 2.0"), "%s", err);
    snprintf(args, sizeof args, "check --json %s", path);
    cr_assert_eq(run(args), 2);
    cr_assert(valid_json(out), "%s", out);

    /* A strategy that does not parse. */
    FILE *f = fopen(path, "w");
    fputs("format: 1\nsamplers: [\n", f);
    fclose(f);
    snprintf(args, sizeof args, "check %s", path);
    cr_assert_eq(run(args), 2);
    cr_assert(strstr(err, path) != NULL, "%s", err);
    unlink(path);
}

Test(cli, json_escaping)
{
    /* A manifest path with a quote, a backslash and a tab: JSON must escape. */
    char dir[] = "/tmp/st_cli_json_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[256], cmd[1024];
    snprintf(sub, sizeof sub, "%s/we\"ird\\na\tme", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp %s/fixture-good/plugin.yaml %s/fixture-good/fixture-good.so '%s/'",
             sub, ST_FIXTURE_DIR, ST_FIXTURE_DIR, sub);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "plugins --json --path '%s'", dir);
    cr_assert_eq(run(cmd), 0, "%s", err);
    cr_assert(valid_json(out), "%s", out);
    cr_assert(strstr(out, "we\\\"ird\\\\na\\tme") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Every strategy manifest shipped in manifests/ resolves: its plugins are
 * found, their parameters validate, each library loads and every plugin's
 * configure() accepts the model. The real model is not needed: a tiny
 * generated GGUF stands in for it (with a learned position table for
 * long-clip, which stretches one and refuses a RoPE model). */
Test(cli, shipped_manifests_all_check)
{
    char rope_model[64], pos_model[64], yaml[64], cmd[1024];
    snprintf(rope_model, sizeof rope_model, "/tmp/st_cli_tiny_%d.gguf", (int)getpid());
    snprintf(pos_model, sizeof pos_model, "/tmp/st_cli_tinypos_%d.gguf", (int)getpid());
    snprintf(yaml, sizeof yaml, "/tmp/st_cli_shipped_%d.yaml", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s/bin/st-gen-tiny-model --out %s >/dev/null", ST_TEST_BINARY_DIR,
             rope_model);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd,
             "%s/bin/st-gen-tiny-model --out %s --pos-table 600 --ctx 600 >/dev/null",
             ST_TEST_BINARY_DIR, pos_model);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    /* The embedding retrievers (minilm, minilm-q8, hybrid, hybrid-prerequisites,
     * rerank, prerequisites) open a sentence encoder: a tiny BERT. */
    char bert[64];
    snprintf(bert, sizeof bert, "/tmp/st_cli_tinybert_%d.gguf", (int)getpid());
    cr_assert_eq(tb_write(bert, 1, NULL, NULL), ST_OK);
    /* rag's retriever loads an index: a small one of this project's docs. */
    char index[64];
    snprintf(index, sizeof index, "/tmp/st_cli_rag_%d.bm25", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s retrieve index -m %s/manifests/bm25.yaml --out %s "
             "%s/README.md >/dev/null 2>&1", STRETCH, ST_TEST_SOURCE_DIR, index,
             ST_TEST_SOURCE_DIR);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    DIR *d = opendir(ST_TEST_SOURCE_DIR "/manifests");
    cr_assert_not_null(d);
    int checked = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".yaml") != 0)
            continue;
        FILE *f = fopen(yaml, "w");
        cr_assert_not_null(f);
        const char *model = strcmp(de->d_name, "long-clip.yaml") == 0 ? pos_model : rope_model;
        fprintf(f, "format: 1\nextends: %s/manifests/%s\nmodel: %s\n", ST_TEST_SOURCE_DIR,
                de->d_name, model);
        if (!strcmp(de->d_name, "minilm.yaml") || !strcmp(de->d_name, "hybrid.yaml") ||
            !strcmp(de->d_name, "rerank.yaml") || !strcmp(de->d_name, "prerequisites.yaml") ||
            !strcmp(de->d_name, "minilm-q8.yaml") ||
            !strcmp(de->d_name, "hybrid-prerequisites.yaml"))
            fprintf(f, "retriever: {params: {model: %s}}\n", bert);
        if (strcmp(de->d_name, "rag.yaml") == 0)
            fprintf(f, "retriever: {index: %s}\n", index);
        fclose(f);
        char args[256];
        snprintf(args, sizeof args, "check %s", yaml);
        int rc = run(args);
        cr_assert_eq(rc, 0, "manifests/%s: exit %d: %s", de->d_name, rc, err);
        checked++;
    }
    closedir(d);
    cr_assert_geq(checked, 15, "only %d manifests found", checked);
    unlink(yaml);
    unlink(rope_model);
    unlink(pos_model);
    unlink(bert);
    unlink(index);
    snprintf(cmd, sizeof cmd, "%s.texts", index);
    unlink(cmd);
}

/* A scratch directory for one test; removed by the caller with rm_dir. */
static void make_dir(char *dir)
{
    cr_assert_not_null(mkdtemp(dir), "%s", dir);
}

static void rm_dir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_at(const char *dir, const char *rel, const char *text)
{
    char path[512], cmd[700];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    cr_assert_eq(system(cmd), 0);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

/* The listing must never fail on a bad plugin: an anchored key aliased
 * later crashed the YAML reader (use-after-free, SIGSEGV in release). */
Test(cli, plugins_survives_an_anchored_key)
{
    char dir[] = "/tmp/st_cli_anchor_XXXXXX";
    make_dir(dir);
    write_at(dir, "x/plugin.yaml", "format: 1\n&k model: x\nbackend: *k\n");
    char args[256];
    snprintf(args, sizeof args, "plugins --path %s", dir);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "broken") && strstr(out, "x/plugin.yaml"), "%s", out);
    rm_dir(dir);
}

static bool has_byte(const char *s, char c)
{
    return strchr(s, c) != NULL;
}

/* inspect printed plugin.yaml text raw: ESC, CR and LF let a summary clear
 * the screen or fake a "Result: ok" line. */
Test(cli, inspect_escapes_control_characters)
{
    char dir[] = "/tmp/st_cli_ctl_XXXXXX";
    make_dir(dir);
    write_at(dir, "p/plugin.yaml",
             "format: 1\nname: ctl\nkind: sampler\nversion: 1.0.0\nlibrary: ctl.so\n"
             "summary: \"fine\\e[2J\\rFAKE\\nResult:      ok\\u009b\"\n"
             "params:\n  k: {type: int, default: 1, doc: \"a\\e]0;title\\u0007b\", "
             "unit: \"\\r\\n\"}\n");
    char args[256];
    snprintf(args, sizeof args, "inspect --no-check %s/p/plugin.yaml", dir);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(!has_byte(out, '\x1b') && !has_byte(out, '\r') && !has_byte(out, '\a'), "%s", out);
    cr_assert(strstr(out, "\xc2\x9b") == NULL, "C1 CSI passed through: %s", out);
    cr_assert(strstr(out, "fine\\x1b[2J\\rFAKE\\nResult:      ok\\xc2\\x9b") != NULL, "%s",
              out);
    cr_assert(strstr(out, "a\\x1b]0;title\\x07b") != NULL, "%s", out);
    cr_assert(strstr(out, "unit: \\r\\n") != NULL, "%s", out);
    for (const char *line = out; (line = strstr(line, "Result:")) != NULL; line++)
        cr_assert(line > out && line[-1] == 'n' && line[-2] == '\\', "a faked line: %s", out);
    rm_dir(dir);
}

/* A NUL in a --file prompt cut the prompt silently at that byte. */
Test(cli, run_refuses_a_nul_in_a_prompt_file)
{
    char dir[] = "/tmp/st_cli_nul_XXXXXX";
    make_dir(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/prompt.txt", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite("first line\nsec\0ret", 1, 18, f);
    fclose(f);
    char args[512];
    snprintf(args, sizeof args, "run -m %s/manifests/greedy.yaml --file %s", ST_TEST_SOURCE_DIR,
             path);
    cr_assert_eq(run(args), 4, "%s", err);
    cr_assert_eq(lines(err), 1, "%s", err);
    char where[400];
    snprintf(where, sizeof where, "%s:2:4: expected a text prompt, found a NUL byte", path);
    cr_assert(strstr(err, where) != NULL, "%s", err);
    rm_dir(dir);
}

/* A world-writable search directory is skipped with a warning, so a
 * plugin planted there cannot replace a built-in one in check or run. */
Test(cli, world_writable_plugin_dir_is_skipped_with_a_warning)
{
    char dir[] = "/tmp/st_cli_ww_XXXXXX";
    make_dir(dir);
    write_at(dir, "greedy/plugin.yaml",
             "format: 1\nname: greedy\nkind: sampler\nversion: 9.9.9\nlibrary: greedy.so\n"
             "summary: planted\n");
    cr_assert_eq(chmod(dir, 0777), 0);
    char path[300], model[300], args[700];
    snprintf(path, sizeof path, "%s.yaml", dir);
    snprintf(model, sizeof model, "%s.gguf", dir);
    snprintf(args, sizeof args, "%s/bin/st-gen-tiny-model --out %s >/dev/null",
             ST_TEST_BINARY_DIR, model);
    cr_assert_eq(system(args), 0, "%s", args);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "format: 1\nextends: %s/manifests/greedy.yaml\nmodel: %s\nplugin-dirs: [%s]\n",
            ST_TEST_SOURCE_DIR, model, dir);
    fclose(f);
    snprintf(args, sizeof args, "check --no-check %s", path);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "9.9.9") == NULL, "the planted plugin was chosen: %s", out);
    cr_assert(strstr(err, "warning") && strstr(err, "world-writable"), "%s", err);
    snprintf(args, sizeof args, "plugins --path %s", dir);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "planted") == NULL && strstr(out, "9.9.9") == NULL, "%s", out);
    cr_assert(strstr(err, "world-writable") != NULL, "%s", err);
    unlink(path);
    unlink(model);
    rm_dir(dir);
}

/* A tiny model and a strategy file in /tmp, removed by the caller. */
static void tiny_strategy(char *model, size_t mcap, char *yaml, size_t ycap, const char *body)
{
    snprintf(model, mcap, "/tmp/st_cli_t_%d.gguf", (int)getpid());
    snprintf(yaml, ycap, "/tmp/st_cli_t_%d.yaml", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/bin/st-gen-tiny-model --out %s >/dev/null", ST_TEST_BINARY_DIR,
             model);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    FILE *f = fopen(yaml, "w");
    cr_assert_not_null(f);
    fprintf(f, "format: 1\nextends: %s/manifests/greedy.yaml\nmodel: %s\n%s", ST_TEST_SOURCE_DIR,
            model, body);
    fclose(f);
}

/* Issue #12: a name under the wrong kind's key says which kind has it. */
Test(cli, a_plugin_under_the_wrong_key_names_its_kind)
{
    char model[64], yaml[64], args[160];
    tiny_strategy(model, sizeof model, yaml, sizeof yaml, "attention: {plugin: top-p}\n");
    snprintf(args, sizeof args, "check --no-check %s", yaml);
    cr_assert_eq(run(args), 2, "%s", err);
    cr_assert(strstr(err, "no attention plugin named 'top-p'") &&
              strstr(err, "a sampler plugin named 'top-p' exists"), "%s", err);
    unlink(yaml);
    unlink(model);
}

/* Issue #12: a configure() that refuses the model's shape shows at check,
 * not first at run. */
Test(cli, check_calls_configure_with_the_models_shape)
{
    char model[64], yaml[64], args[160];
    tiny_strategy(model, sizeof model, yaml, sizeof yaml,
                  "positional-encoding: {plugin: rope, params: {dims: 1000}}\n");
    snprintf(args, sizeof args, "check %s", yaml);
    cr_assert_eq(run(args), 2, "%s", err);
    cr_assert(strstr(err, "configure failed") && strstr(err, "head_dim"), "%s", err);
    cr_assert(strstr(out, "ok:") == NULL, "a refused configure read as ok: %s", out);
    tiny_strategy(model, sizeof model, yaml, sizeof yaml, "");
    snprintf(args, sizeof args, "check --json --conformance %s", yaml);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(valid_json(out), "%s", out);
    cr_assert(strstr(out, "\"configure\": {") && strstr(out, "every plugin configured"), "%s", out);
    cr_assert(strstr(out, "\"prompt_cache\": true"), "dense keeps prompts: %s", out);
    cr_assert(strstr(out, "\"bounded\": false"), "dense is bounded by its context: %s", out);
    cr_assert(strstr(out, "checks, 0 failed"), "the suite did not run: %s", out);
    unlink(yaml);
    unlink(model);
}

/* Issue #12: the same plugin in two directories is legal, but run says
 * which copy it uses. */
Test(cli, run_warns_about_a_shadowed_plugin)
{
    char dir[] = "/tmp/st_cli_dup_XXXXXX";
    make_dir(dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp -r %s/lib/stretch/plugins/sampler/greedy %s/",
             ST_TEST_BINARY_DIR, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char model[64], yaml[64], body[200], args[300];
    snprintf(body, sizeof body, "plugin-dirs: [%s]\n", dir);
    tiny_strategy(model, sizeof model, yaml, sizeof yaml, body);
    snprintf(args, sizeof args, "run -m %s --max-tokens 2 hello", yaml);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(err, "sampler plugin 'greedy' is in two plugin directories: using") &&
              strstr(err, dir), "%s", err);
    unlink(yaml);
    unlink(model);
    rm_dir(dir);
}

/* Issue #12: a plugin crashing mid-run is named with its op, not left as a
 * bare "Segmentation fault". */
Test(cli, run_names_a_plugin_that_crashes)
{
    char model[64], yaml[64], body[300];
    snprintf(body, sizeof body, "plugin-dirs: [%s]\nsamplers: [{plugin: bad-apply-crashes}]\n",
             ST_CRASH_FIXTURE_DIR);
    tiny_strategy(model, sizeof model, yaml, sizeof yaml, body);
    snprintf(out_path, sizeof out_path, "/tmp/st_cli_out_%d", (int)getpid());
    snprintf(err_path, sizeof err_path, "/tmp/st_cli_err_%d", (int)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "STRETCH_PLUGIN_PATH= %s run -m %s --max-tokens 2 hello >%s 2>%s",
             STRETCH, yaml, out_path, err_path);
    int st = system(cmd);
    read_all(err_path, err, sizeof err);
    unlink(out_path);
    unlink(err_path);
    /* system() runs sh, which reports the signal as 128 + SIGABRT. */
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGABRT, "status %d: %s", st, err);
    cr_assert(strstr(err, "the sampler plugin 'bad-apply-crashes' aborted in its apply call "
                          "(SIGABRT)"), "%s", err);
    unlink(yaml);
    unlink(model);
}

/* Issue #12: a crash after create() (in destroy, in the conformance suite)
 * does not read as a failed create. */
Test(cli, inspect_does_not_blame_create_for_a_later_crash)
{
    char args[512];
    snprintf(args, sizeof args, "inspect %s/bad-destroy-crashes/plugin.yaml", ST_CRASH_FIXTURE_DIR);
    cr_assert_eq(run(args), 3, "%s", err);
    cr_assert(strstr(out, "Create:      ok, then destroy failed"), "%s", out);
    snprintf(args, sizeof args, "inspect --check %s/bad-apply-crashes/plugin.yaml",
             ST_CRASH_FIXTURE_DIR);
    cr_assert_eq(run(args), 3, "%s", err);
    cr_assert(strstr(out, "Create:      ok (default parameters)"), "%s", out);
    cr_assert(strstr(out, "during conformance"), "%s", out);
}

/* Issue #12: a requires: that skipped create leaves the plugin untested,
 * which must not read as ok with exit 0. */
Test(cli, inspect_reports_untested_when_requires_skipped_create)
{
    cr_assert_eq(run("inspect bpe"), 6, "%s%s", out, err);
    cr_assert(strstr(out, "Result:      untested") && strstr(out, "--model"), "%s", out);
    cr_assert_eq(run("inspect --json bpe"), 6, "%s", err);
    cr_assert(strstr(out, "\"status\": \"untested\""), "%s", out);
}

/* Issue #12: bounds print as the manifest wrote them. */
Test(cli, bounds_print_as_written)
{
    char dir[] = "/tmp/st_cli_bound_XXXXXX";
    make_dir(dir);
    write_at(dir, "p/plugin.yaml",
             "format: 1\nname: p\nkind: sampler\nversion: 1.0.0\nlibrary: p.so\nsummary: s\n"
             "params:\n  eps: {type: float, default: 0.5, min: 1e-06, max: 0.1}\n");
    char args[300];
    snprintf(args, sizeof args, "inspect --no-check %s/p/plugin.yaml", dir);
    run(args);
    cr_assert(strstr(err, "in 1e-06..0.1") && !strstr(err, "9.99"), "%s", err);
    rm_dir(dir);
}

/* Issue #12: `extends:` names a stock manifest from anywhere: a bare name
 * with no such file beside the manifest, or "stretch:NAME" always;
 * STRETCH_MANIFEST_PATH comes first. */
Test(cli, extends_finds_stock_manifests_by_name)
{
    char dir[] = "/tmp/st_cli_stock_XXXXXX";
    make_dir(dir);
    char model[300], args[700], cmd[400];
    snprintf(model, sizeof model, "%s/tiny.gguf", dir);
    snprintf(cmd, sizeof cmd, "%s/bin/st-gen-tiny-model --out %s >/dev/null", ST_TEST_BINARY_DIR,
             model);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char body[600];
    snprintf(body, sizeof body, "format: 1\nextends: greedy\nmodel: %s\n", model);
    write_at(dir, "a.yaml", body);
    snprintf(args, sizeof args, "check --no-check %s/a.yaml", dir);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "share/stretch/manifests/greedy.yaml"), "%s", out);

    write_at(dir, "b.yaml", "format: 1\nextends: stretch:no-such-strategy\n");
    snprintf(args, sizeof args, "check --no-check %s/b.yaml", dir);
    cr_assert_eq(run(args), 2, "%s", err);
    cr_assert(strstr(err, "b.yaml:2:10: extends: expected a stock strategy manifest named "
                          "'no-such-strategy'"), "%s", err);

    snprintf(body, sizeof body, "format: 1\nextends: stretch:mine\nmodel: %s\n", model);
    write_at(dir, "c.yaml", body);
    write_at(dir, "lib/mine.yaml", "format: 1\nextends: stretch:greedy\n");
    snprintf(args, sizeof args, "check --no-check %s/c.yaml", dir);
    snprintf(cmd, sizeof cmd, "%s/lib", dir);
    setenv("STRETCH_MANIFEST_PATH", cmd, 1);
    cr_assert_eq(run(args), 0, "%s", err);
    unsetenv("STRETCH_MANIFEST_PATH");
    cr_assert(strstr(out, "/lib/mine.yaml") && strstr(out, "greedy.yaml"), "%s", out);

    /* The stock manifests' model (../models/NAME beside them) is, in the
     * build tree, the checkout's models/, where tools/fetch_model.sh puts
     * it: so a strategy anywhere that extends a stock one finds it. */
    write_at(dir, "d.yaml", "format: 1\nextends: greedy\n");
    snprintf(args, sizeof args, "check --no-check %s/d.yaml", dir);
    run(args);
    cr_assert(strstr(out, "/share/stretch/models/SmolLM2-135M-Instruct.Q4_1.gguf"), "%s", out);
    char link[400];
    ssize_t n = readlink(ST_TEST_BINARY_DIR "/share/stretch/models", link, sizeof link - 1);
    cr_assert_gt(n, 0, "share/stretch/models is not a link");
    link[n] = '\0';
    cr_assert_str_eq(link, ST_TEST_SOURCE_DIR "/models");
    rm_dir(dir);
}

/* bench --warmup runs the prompt once untimed on each rep's engine, as
 * llama-bench does, and the timed request still computes every prompt
 * token: the warm-up's identical prompt is not taken from the cache. */
Test(cli, bench_warmup_times_a_prefill_of_every_token)
{
    char model[64], yaml[64], args[300];
    tiny_strategy(model, sizeof model, yaml, sizeof yaml, "");
    snprintf(args, sizeof args,
             "bench -m %s --reps 2 --prompt-tokens 32 --gen-tokens 4 --threads 1 --warmup --json",
             yaml);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "\"warmup\":true"), "%s", out);
    cr_assert(strstr(out, "\"prompt_cached_tokens\":[0,0]"), "%s", out);
    snprintf(args, sizeof args, "bench -m %s --reps 1 --prompt-tokens 32 --gen-tokens 4 "
             "--threads 1", yaml);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(!strstr(out, "warm-up"), "%s", out);
    snprintf(args, sizeof args, "bench -m %s --reps 1 --prompt-tokens 32 --gen-tokens 4 "
             "--threads 1 --warmup", yaml);
    cr_assert_eq(run(args), 0, "%s", err);
    cr_assert(strstr(out, "1 reps, each after a warm-up"), "%s", out);
    unlink(yaml);
    unlink(model);
}

/* Issue #11: bench --roofline measures the ceilings after every rep and
 * reports fractions that follow from them and from the model's costs
 * (checked in Python: the ceilings are positive, each rep's fraction is
 * its decode rate over its own probe's ceiling, the fraction reported is
 * the median of the reps', the ceiling that of the median probe; the
 * probe's median pass is no faster than its best, and decode's fraction
 * of it follows the same way). */
Test(cli, bench_roofline_reports_consistent_ceilings)
{
    char model[64], yaml[64], args[300];
    tiny_strategy(model, sizeof model, yaml, sizeof yaml, "");
    snprintf(args, sizeof args,
             "bench -m %s --reps 3 --prompt-tokens 32 --gen-tokens 8 --threads 1 --roofline --json",
             yaml);
    cr_assert_eq(run(args), 0, "%s", err);
    char path[64], cmd[4096];
    snprintf(path, sizeof path, "/tmp/st_cli_roof_%d.json", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys,math; d=json.load(open(\"%s\")); r=d[\"roofline\"];"
             "assert r[\"read_bytes_per_s\"]>1e8 and r[\"dot_ops_per_s\"]>1e8, r;"
             "assert r[\"weight_bytes\"]>0 and r[\"ops_per_token\"]>0, r;"
             "assert r[\"kv_bytes_per_token\"]==d[\"kv_bytes_per_token\"], r;"
             "b=r[\"weight_bytes\"]+r[\"decode_context\"]*r[\"kv_bytes_per_token\"];"
             "bw=r[\"read_bytes_per_s_reps\"]; assert len(bw)==3 and min(bw)>1e8, r;"
             "assert r[\"read_bytes_per_s\"]==sorted(bw)[1], r;"
             "c=r[\"read_bytes_per_s\"]/b;"
             "assert math.isclose(c, r[\"decode_ceiling_tok_s\"], rel_tol=1e-9), (c, r);"
             "assert r[\"decode_context\"]==32+8/2, r;"
             "f=[t*b/w for t,w in zip(d[\"decode_tok_s\"], bw)];"
             "assert all(math.isclose(x, y, rel_tol=1e-9) for x,y in zip(f, r[\"decode_fraction_reps\"])), r;"
             "assert math.isclose(r[\"decode_fraction\"], sorted(f)[1], rel_tol=1e-9), r;"
             "m=r[\"read_median_bytes_per_s_reps\"];"
             "assert len(m)==3 and all(1e8<x<=y for x,y in zip(m, bw)), r;"
             "assert r[\"read_median_bytes_per_s\"]==sorted(m)[1], r;"
             "g=[t*b/w for t,w in zip(d[\"decode_tok_s\"], m)];"
             "assert all(math.isclose(x, y, rel_tol=1e-9) for x,y in zip(g, r[\"decode_fraction_of_median_reps\"])), r;"
             "assert math.isclose(r[\"decode_fraction_of_median\"], sorted(g)[1], rel_tol=1e-9), r;"
             "p=[t*r[\"ops_per_token\"]/o for t,o in zip(d[\"prefill_tok_s\"], r[\"dot_ops_per_s_reps\"])];"
             "assert math.isclose(r[\"prefill_fraction\"], sorted(p)[1], rel_tol=1e-9), r'",
             path);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
    unlink(path);
    unlink(yaml);
    unlink(model);
}
