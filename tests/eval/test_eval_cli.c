/* `stretch eval passkey` and `stretch eval ppl` end to end on a tiny model:
 * the outputs they promise exist and agree, and an interrupted run resumes
 * without redoing finished points. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tiny_model.h"

#define STRETCH ST_TEST_BINARY_DIR "/bin/stretch"

static char dir[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_eval_test_%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 256;
    st_diag d;
    cr_assert_eq(st_gen_tiny_model(&spec, path, &d), ST_OK, "%s", d.message);
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "format: 1\nmodel: tiny.gguf\ncontext: 512\nthreads: 1\n"
               "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
               "attention: {plugin: dense}\nsamplers: [{plugin: greedy}]\n");
    fclose(f);
    snprintf(path, sizeof path, "%s/text.txt", dir);
    f = fopen(path, "w");
    for (int i = 0; i < 200; i++)
        fprintf(f, "The quick brown fox %d jumps over the lazy dog. ", i);
    fclose(f);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static int run(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && " STRETCH " %s >out.txt 2>err.txt", dir, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count_lines(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static bool file_starts_with(const char *name, const char *prefix, size_t n)
{
    char path[256], buf[64] = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return got == n && memcmp(buf, prefix, n) == 0;
}

TestSuite(eval_cli, .init = setup, .fini = teardown);

Test(eval_cli, passkey_writes_table_csv_and_resumes)
{
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300,400 --depths 0,100 --samples 2 "
                     "--out pk --fresh"), 0);
    cr_assert_eq(count_lines("pk/points.jsonl"), 1 + 8);
    cr_assert_eq(count_lines("pk/passkey.csv"), 1 + 4);
    /* No chart from C: the last line says how tools/plots.py draws one. */
    cr_assert(file_starts_with("pk/passkey.csv", "length,depth", 12));
    cr_assert_eq(count_lines("out.txt"), 2 + 2 + 1);
    char out[4096] = {0}, path[256];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FILE *o = fopen(path, "r");
    cr_assert(o && fread(out, 1, sizeof out - 1, o) > 0);
    fclose(o);
    cr_assert(strstr(out, "tools/plots.py passkey --out pk/passkey.png pk/passkey.csv"), "%s",
              out);

    /* Drop the last point, as an interrupted run would have; the rerun
     * redoes exactly that one and appends it. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && head -n 8 pk/points.jsonl > p && mv p pk/points.jsonl",
             dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300,400 --depths 0,100 --samples 2 "
                     "--out pk"), 0);
    cr_assert_eq(count_lines("pk/points.jsonl"), 1 + 8);
    /* A larger sample count reuses all 8 and adds 4. */
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300,400 --depths 0,100 --samples 3 "
                     "--out pk --json"), 0);
    cr_assert_eq(count_lines("pk/points.jsonl"), 1 + 12);
    cr_assert_eq(count_lines("out.txt"), 1);
}

Test(eval_cli, ppl_resume_gives_the_same_numbers)
{
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 3 --buckets 4 --out a --fresh "
                     "--json text.txt"), 0);
    char full[4096] = {0}, resumed[4096] = {0};
    char path[256];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FILE *f = fopen(path, "r");
    cr_assert(fread(full, 1, sizeof full - 1, f) > 0);
    fclose(f);
    cr_assert(strstr(full, "\"windows\":3"), "%s", full);
    cr_assert_eq(count_lines("a/points.jsonl"), 1 + 3);
    cr_assert_eq(count_lines("a/ppl.csv"), 5);

    /* Keep one finished window, rerun: the totals must be identical. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && head -n 2 a/points.jsonl > p && mv p a/points.jsonl",
             dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 3 --buckets 4 --out a --json "
                     "text.txt"), 0);
    f = fopen(path, "r");
    cr_assert(fread(resumed, 1, sizeof resumed - 1, f) > 0);
    fclose(f);
    cr_assert_str_eq(full, resumed);
    cr_assert_eq(count_lines("a/points.jsonl"), 1 + 3);
}

static bool err_has(const char *needle)
{
    char path[256], buf[4096] = {0};
    snprintf(path, sizeof path, "%s/err.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (!strstr(buf, needle))
        cr_log_error("'%s' not in: %s", needle, buf);
    return strstr(buf, needle) != NULL;
}

static void shell(const char *script)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s", dir, script);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(eval_cli, ppl_resume_refuses_other_inputs_and_bad_values)
{
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 2 --buckets 4 --out a "
                     "text.txt"), 0);
    /* Another text, manifest or model into the same --out: the old windows
     * must not be reported as this run's. */
    shell("sed 's/fox/cat/g' text.txt > other.txt && sed 's/threads: 1/threads: 2/' s.yaml "
          "> s2.yaml && cp tiny.gguf tiny2.gguf && printf '\\0' >> tiny2.gguf && "
          "sed 's/tiny.gguf/tiny2.gguf/' s.yaml > s3.yaml");
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 2 --buckets 4 --out a "
                     "other.txt"), 5);
    cr_assert(err_has("a/points.jsonl:1: cannot resume: it was computed with another text"));
    cr_assert_eq(run("eval ppl -m s2.yaml --length 100 --windows 2 --buckets 4 --out a "
                     "text.txt"), 5);
    cr_assert(err_has("another manifest"));
    cr_assert_eq(run("eval ppl -m s3.yaml --length 100 --windows 2 --buckets 4 --out a "
                     "text.txt"), 5);
    cr_assert(err_has("another model"));
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 2 --buckets 4 --chunk 7 "
                     "--out a text.txt"), 5);
    cr_assert(err_has("another settings"));
    cr_assert_eq(count_lines("a/points.jsonl"), 1 + 2, "a refused run must not touch the file");

    /* Values read back are checked: a negative nll, then a wrong count. */
    shell("cp a/points.jsonl keep && sed -i '3s/\"nll\":\\[[0-9.e+-]*/\"nll\":[-1/' "
          "a/points.jsonl");
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 2 --buckets 4 --out a "
                     "text.txt"), 5);
    cr_assert(err_has("a/points.jsonl:3: window 1: bad \"nll\""));
    shell("cp keep a/points.jsonl && sed -i '2s/\"n\":\\[[0-9]*/\"n\":[99/' a/points.jsonl");
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 2 --buckets 4 --out a "
                     "text.txt"), 5);
    cr_assert(err_has("a/points.jsonl:2: window 0: bad \"n\""));
    /* --fresh starts over. */
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 2 --buckets 4 --out a --fresh "
                     "other.txt"), 0);
}

Test(eval_cli, passkey_resume_refuses_other_inputs_and_edited_verdicts)
{
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300 --depths 0,100 --samples 1 "
                     "--out pk"), 0);
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300 --depths 0,100 --samples 1 "
                     "--seed 2 --out pk"), 5);
    cr_assert(err_has("pk/points.jsonl:1: cannot resume: it was computed with another "
                      "settings"));
    shell("sed 's/threads: 1/threads: 2/' s.yaml > s2.yaml");
    cr_assert_eq(run("eval passkey -m s2.yaml --lengths 300 --depths 0,100 --samples 1 "
                     "--out pk"), 5);
    cr_assert(err_has("another manifest"));
    /* Points of the first template (the question joined to the document)
     * are not mixed with the current one's (the question on its own line). */
    shell("cp pk/points.jsonl pk1.jsonl && sed -i '1s/template 2/template 1/' pk/points.jsonl");
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300 --depths 0,100 --samples 1 "
                     "--out pk"), 5);
    cr_assert(err_has("pk/points.jsonl:1: cannot resume: it was computed with another "
                      "settings"));
    shell("cp pk1.jsonl pk/points.jsonl");
    /* Flip line 2's verdict: it no longer follows from its answer and key. */
    shell("sed -i '2s/\"correct\":false/\"correct\":X/;2s/\"correct\":true/\"correct\":"
          "false/;2s/\"correct\":X/\"correct\":true/' pk/points.jsonl");
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300 --depths 0,100 --samples 1 "
                     "--out pk"), 5);
    cr_assert(err_has("pk/points.jsonl:2: bad \"correct\" (it does not follow"));
    /* An answer cut out of line 2: "correct" right after "answer" (read
     * as a string of length -1, whose decoding wrote past a 0-byte copy). */
    shell("cp pk1.jsonl pk/points.jsonl && "
          "sed -i '2s/\"answer\":.*,\"correct\":/\"answer\":\"correct\":/' pk/points.jsonl");
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300 --depths 0,100 --samples 1 "
                     "--out pk"), 5);
    cr_assert(err_has("pk/points.jsonl:2: bad \"answer\" and \"correct\""));
}

Test(eval_cli, csv_write_failure_is_an_error)
{
    /* ppl.csv cannot be written (a directory stands there): no "wrote". */
    shell("mkdir -p c/ppl.csv pk2/passkey.csv");
    cr_assert_eq(run("eval ppl -m s.yaml --length 100 --windows 1 --out c text.txt"), 5);
    cr_assert(err_has("c/ppl.csv: cannot write"));
    char path[256], buf[4096] = {0};
    snprintf(path, sizeof path, "%s/out.txt", dir);
    FILE *f = fopen(path, "r");
    cr_assert(fread(buf, 1, sizeof buf - 1, f) > 0);
    fclose(f);
    cr_assert(!strstr(buf, "wrote"), "%s", buf);
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 300 --depths 0 --samples 1 --out pk2"),
                 5);
    cr_assert(err_has("pk2/passkey.csv: cannot write"));
}

Test(eval_cli, bad_arguments_fail_with_a_message)
{
    cr_assert_eq(run("eval passkey -m s.yaml --lengths 10,x"), 1);
    cr_assert_eq(run("eval ppl -m s.yaml --length 100000 text.txt"), 2);
    cr_assert_eq(run("eval ppl -m s.yaml missing.txt"), 4);
    cr_assert_eq(run("eval nonsense"), 1);
}

/* llama.cpp-compatible numerics on a model whose head size (16) is not a
 * multiple of ggml's 64-wide f16 step: it runs (ASan-clean) and a wrong
 * mode is refused. */
Test(eval_cli, run_with_ggml_numerics)
{
    cr_assert_eq(run("run -m s.yaml --numerics ggml --max-tokens 6 --ignore-eos 'The quick brown fox'"),
                 0);
    cr_assert_eq(run("eval ppl -m s.yaml --length 64 --windows 1 --out p1 text.txt"), 0);
    cr_assert_eq(run("run -m s.yaml --numerics fastest hi"), 1);
}

static bool file_contains(const char *name, const char *needle)
{
    char path[256], buf[8192] = {0};
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = 0;
    return strstr(buf, needle) != NULL;
}

/* The KV cache's type: `check` prints the manifest's, bench and run --json
 * report it with the bytes a token takes (the tiny model: 2 layers x 2 kv
 * heads x 16 dims, keys and values: 256 bytes in f16, 512 in f32) and the
 * cache's allocated bytes, and a
 * type the model's head size cannot hold (q8_0 needs 32) is refused. */
Test(eval_cli, kv_type_is_reported)
{
    cr_assert_eq(run("check s.yaml"), 0);
    cr_assert(file_contains("out.txt", "kv-type: f16"));
    cr_assert_eq(run("run -m s.yaml --json --max-tokens 2 hi"), 0);
    cr_assert(file_contains("out.txt", "\"kv_type\":\"f16\""));
    cr_assert(file_contains("out.txt", "\"kv_bytes_per_token\":256"));
    /* The cache allocated: 512 slots (the context) x 256 bytes. */
    cr_assert(file_contains("out.txt", "\"kv_cache_bytes\":131072"));
    char path[256];
    snprintf(path, sizeof path, "%s/f32.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "format: 1\nextends: s.yaml\nkv-type: f32\n");
    fclose(f);
    cr_assert_eq(run("bench -m f32.yaml --prompt-tokens 8 --gen-tokens 2 --reps 1 --json"), 0);
    cr_assert(file_contains("out.txt", "\"kv_type\":\"f32\""));
    cr_assert(file_contains("out.txt", "\"kv_bytes_per_token\":512"));
    snprintf(path, sizeof path, "%s/q8.yaml", dir);
    f = fopen(path, "w");
    fprintf(f, "format: 1\nextends: s.yaml\nkv-type: q8_0\n");
    fclose(f);
    cr_assert_neq(run("run -m q8.yaml --max-tokens 2 hi"), 0);
    cr_assert(file_contains("err.txt", "multiple of 32"));
}

/* `stretch eval jsonschema`: a compiled schema gets a constrained output,
 * a refused one its reason; a rerun resumes without redoing either. */
Test(eval_cli, jsonschema_records_compiled_and_refused_and_resumes)
{
    shell("mkdir -p bench/Tiny && "
          "echo '{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, "
          "\"required\": [\"ok\"], \"additionalProperties\": false}' > bench/Tiny/a.json && "
          "echo '{\"type\": \"array\", \"uniqueItems\": true}' > bench/Tiny/b.json");
    cr_assert_eq(run("eval jsonschema -m s.yaml --max-tokens 24 --out js bench"), 0);
    cr_expect_eq(count_lines("js/points.jsonl"), 3);
    cr_expect(file_contains("js/points.jsonl", "\"file\":\"Tiny/a.json\",\"subset\":\"Tiny\","
                                               "\"status\":\"ok\""));
    cr_expect(file_contains("js/points.jsonl", "\"output\":\"{\\\"ok\\\":"));
    cr_expect(file_contains("js/points.jsonl", "\"mask_us\":["));
    cr_expect(file_contains("js/points.jsonl", "\"status\":\"refused\""));
    cr_expect(file_contains("js/points.jsonl", "unsupported keyword 'uniqueItems'"));
    cr_assert_eq(run("eval jsonschema -m s.yaml --max-tokens 24 --out js bench"), 0);
    cr_expect_eq(count_lines("js/points.jsonl"), 3, "a rerun redid finished schemas");
    cr_expect(err_has("2 resumed"));
    /* A last line a kill tore is no finished schema: cut, and run again. */
    shell("truncate -s -2 js/points.jsonl");
    cr_assert_eq(run("eval jsonschema -m s.yaml --max-tokens 24 --out js bench"), 0);
    cr_expect(err_has("1 resumed"));
    cr_expect_eq(count_lines("js/points.jsonl"), 3);
    shell("test $(grep -o '{\"file\"' js/points.jsonl | wc -l) -eq 2");
    cr_expect_eq(run("eval jsonschema -m s.yaml --out js"), 2);
}

/* Sampled runs beside the greedy one: seeded, each recorded with its
 * seed, output and mask times; a point that ended in an error is run
 * again on resume; a bad temperature is refused before anything runs. */
Test(eval_cli, jsonschema_sampled_runs_and_error_points_rerun)
{
    shell("mkdir -p bench/Tiny && "
          "echo '{\"type\": \"object\", \"properties\": {\"ok\": {\"type\": \"boolean\"}}, "
          "\"required\": [\"ok\"], \"additionalProperties\": false}' > bench/Tiny/a.json");
    const char *cmd = "eval jsonschema -m s.yaml --max-tokens 16 --samples 2 --temperature 0.9 "
                      "--seed 7 --out jss bench";
    cr_assert_eq(run(cmd), 0);
    cr_expect(file_contains("jss/points.jsonl", "\"temperature\":0.9,\"samples\":[{\"seed\":7,"));
    cr_expect(file_contains("jss/points.jsonl", "{\"seed\":8,"));
    cr_expect(file_contains("jss/points.jsonl", "\"output\":\"{\\\"ok\\\":"));
    /* Turn the finished point into an error one: the rerun redoes it. */
    shell("sed -i 's/\"status\":\"ok\".*/\"status\":\"error\"}/' jss/points.jsonl");
    cr_assert_eq(run(cmd), 0);
    cr_expect(err_has("1 compiled"), "an error point was taken as finished");
    cr_expect_eq(run("eval jsonschema -m s.yaml --temperature 0 --out jst bench"), 2);
    cr_expect(err_has("--temperature expects a number in (0, 100]"));
}

/* `stretch eval length`: the table has each target and the overall row,
 * and the length sampler's answers land in the precise interval. */
Test(eval_cli, length_table_and_intervals)
{
    cr_assert_eq(run("eval length -m s.yaml --targets 10,30 --prompts 1 --out len"), 0);
    cr_expect(file_contains("out.txt", "| 10 | (0,20] |"));
    cr_expect(file_contains("out.txt", "| 30 | (20,40] |"));
    cr_expect(file_contains("out.txt", "| all |"));
    cr_expect_eq(count_lines("len/points.jsonl"), 5);
    /* With the sampler no answer runs past its interval's end (the tiny
     * random model may write no word at all, so the start is not checked). */
    char path[256], line[8192];
    snprintf(path, sizeof path, "%s/len/points.jsonl", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        long target, words;
        int prompt;
        if (sscanf(line, "{\"target\":%ld,\"prompt\":%d,\"length\":true,\"words\":%ld", &target,
                   &prompt, &words) == 3) {
            cr_expect_leq(words, target == 10 ? 20 : 40, "target %ld: %ld words", target, words);
            checked++;
        }
    }
    fclose(f);
    cr_expect_eq(checked, 2);
    /* A last line a kill tore is cut and its point answered again, on a
     * line of its own (it was taken as finished, its count cut short). */
    shell("truncate -s -3 len/points.jsonl");
    cr_assert_eq(run("eval length -m s.yaml --targets 10,30 --prompts 1 --out len"), 0);
    cr_expect_eq(count_lines("len/points.jsonl"), 5);
    shell("test $(grep -o '{\"target\"' len/points.jsonl | wc -l) -eq 4");
    /* A word count that is not one is refused by its line. */
    shell("sed -i '2s/\"words\":[0-9]*/\"words\":-3/' len/points.jsonl");
    cr_expect_eq(run("eval length -m s.yaml --targets 10,30 --prompts 1 --out len"), 5);
    cr_expect(err_has("len/points.jsonl:2: bad \"words\""));
    cr_expect_eq(run("eval length -m s.yaml --targets 12"), 2);
    cr_expect(err_has("not a TLG level"));
}
