/*
 * `stretch retrieve index|query` and retrieval-augmented `stretch run`
 * through the real binary: files and JSONL in, hits out (text and JSON),
 * bad input refused with its file and line, bad index files refused with
 * the model/file exit code, and the hits reaching the prompt of a run.
 */
#include <criterion/criterion.h>
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

static void write_file(const char *name, const char *text)
{
    st_test_write(dir, name, text);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_retrieve_cli_%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 512;
    st_diag d;
    cr_assert_eq(st_gen_tiny_model(&spec, path, &d), ST_OK, "%s", d.message);
    write_file("s.yaml", "format: 1\nmodel: tiny.gguf\ncontext: 512\nthreads: 1\n"
                         "plugin-dirs: [" ST_TEST_PLUGIN_DIR "]\n"
                         "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
                         "attention: {plugin: dense}\nsamplers: [{plugin: greedy}]\n"
                         "retriever: {plugin: bm25}\n");
    write_file("rag.yaml", "format: 1\nextends: s.yaml\n"
                           "retriever: {index: docs.idx, top_k: 2}\n");
    write_file("a.txt", "Paris is the capital of France.");
    write_file("b.txt", "Berlin is the capital of Germany.");
    write_file("c.txt", "Bananas are yellow fruit.");
    write_file("docs.jsonl", "{\"id\": \"paris\", \"text\": \"Paris is the capital of France.\"}\n"
                             "\n"
                             "{\"id\": 7, \"text\": \"Bananas are yellow.\", \"x\": [1]}\n");
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(retrieve_cli, .init = setup, .fini = teardown);

static int run(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && " STRETCH " %s >out.txt 2>err.txt", dir, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *slurp(const char *name)
{
    static char buf[16384];
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "%s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

Test(retrieve_cli, index_files_then_query_text_and_json)
{
    cr_assert_eq(run("retrieve index -m s.yaml --out docs.idx a.txt b.txt c.txt"), 0, "%s",
                 slurp("err.txt"));
    cr_assert(strstr(slurp("err.txt"), "indexed 3 documents with bm25 into docs.idx"), "%s",
              slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml --index docs.idx -k 2 'capital of Germany'"), 0);
    const char *out = slurp("out.txt");
    cr_assert_eq(strncmp(out, "1\t", 2), 0, "%s", out);
    cr_assert(strstr(out, "b.txt\tBerlin is the capital of Germany."), "%s", out);
    cr_assert(strstr(out, "\n2\t"), "two hits: %s", out);
    cr_assert_eq(run("retrieve query -m s.yaml --index docs.idx --json bananas"), 0);
    out = slurp("out.txt");
    cr_assert(strstr(out, "\"retriever\":\"bm25\",\"documents\":3,\"hits\":[{\"rank\":1,"
                          "\"doc\":2,\"id\":\"c.txt\",\"score\":"), "%s", out);
    cr_assert(strstr(out, "\"text\":\"Bananas are yellow fruit.\"}]}"), "%s", out);
    /* The manifest's index and top_k serve when --index and -k are absent. */
    cr_assert_eq(run("retrieve query -m rag.yaml capital"), 0, "%s", slurp("err.txt"));
    out = slurp("out.txt");
    cr_assert(strstr(out, "a.txt") && strstr(out, "b.txt") && !strstr(out, "c.txt"), "%s", out);
}

Test(retrieve_cli, index_files_in_passages)
{
    write_file("long.txt", "one two three four five\n\nsix seven  eight nine ten eleven");
    cr_assert_eq(run("retrieve index -m s.yaml --out sub/p.idx --chunk 4 long.txt"), 0, "%s",
                 slurp("err.txt"));
    cr_assert(strstr(slurp("err.txt"), "indexed 3 documents"), "%s", slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml --index sub/p.idx --json five"), 0);
    cr_assert(strstr(slurp("out.txt"), "\"id\":\"long.txt#2\",\"score\":"), "%s",
              slurp("out.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"text\":\"five\\n\\nsix seven  eight\"}"), "%s",
              slurp("out.txt"));
    cr_assert_eq(run("retrieve index -m s.yaml --out p.idx --chunk 0 long.txt"), 1);
}

Test(retrieve_cli, index_jsonl_with_fields)
{
    cr_assert_eq(run("retrieve index -m s.yaml --out j.idx --jsonl docs.jsonl"), 0, "%s",
                 slurp("err.txt"));
    cr_assert(strstr(slurp("err.txt"), "indexed 2 documents"), "%s", slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml --index j.idx --json yellow"), 0);
    cr_assert(strstr(slurp("out.txt"), "\"id\":\"7\""), "a numeric id as text: %s",
              slurp("out.txt"));
    write_file("other.jsonl", "{\"name\": \"n1\", \"body\": \"alpha beta\"}\n");
    cr_assert_eq(run("retrieve index -m s.yaml --out o.idx --jsonl other.jsonl "
                     "--id-field name --text-field body"), 0, "%s", slurp("err.txt"));
}

Test(retrieve_cli, bad_jsonl_names_file_and_line)
{
    write_file("bad1.jsonl", "{\"id\": \"a\", \"text\": \"ok\"}\n{\"id\": \"b\", \"text\": }\n");
    cr_assert_eq(run("retrieve index -m s.yaml --out x.idx --jsonl bad1.jsonl"), 4);
    cr_assert(strstr(slurp("err.txt"), "bad1.jsonl:2:"), "%s", slurp("err.txt"));
    write_file("bad2.jsonl", "{\"id\": \"a\", \"body\": \"ok\"}\n");
    cr_assert_eq(run("retrieve index -m s.yaml --out x.idx --jsonl bad2.jsonl"), 4);
    cr_assert(strstr(slurp("err.txt"), "bad2.jsonl:1: field \"text\" is missing"), "%s",
              slurp("err.txt"));
    write_file("bad3.jsonl", "[1, 2]\n");
    cr_assert_eq(run("retrieve index -m s.yaml --out x.idx --jsonl bad3.jsonl"), 4);
    cr_assert(strstr(slurp("err.txt"), "bad3.jsonl:1: expected a JSON object"), "%s",
              slurp("err.txt"));
    write_file("bad4.jsonl", "{\"id\": \"a\", \"text\": 5}\n");
    cr_assert_eq(run("retrieve index -m s.yaml --out x.idx --jsonl bad4.jsonl"), 4);
    cr_assert(strstr(slurp("err.txt"), "field \"text\" is not a string"), "%s",
              slurp("err.txt"));
    /* Columns count from 1, also where jansson has read nothing of the
     * line (it says column 0 there). */
    write_file("bad5.jsonl", "{\"id\": \"a\", \"text\": \"ok\"}\n\xff\n");
    cr_assert_eq(run("retrieve index -m s.yaml --out x.idx --jsonl bad5.jsonl"), 4);
    cr_assert(strstr(slurp("err.txt"), "bad5.jsonl:2:1: "), "%s", slurp("err.txt"));
    struct stat sb;
    char path[256];
    snprintf(path, sizeof path, "%s/x.idx", dir);
    cr_assert_neq(stat(path, &sb), 0, "nothing is saved after a bad line");
    cr_assert_eq(run("retrieve index -m s.yaml --out x.idx missing.txt"), 4);
}

Test(retrieve_cli, bad_index_files_and_usage)
{
    cr_assert_eq(run("retrieve index -m s.yaml --out docs.idx a.txt b.txt"), 0);
    cr_assert_eq(system("true"), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && head -c 30 docs.idx > cut.idx && cp a.txt plain.idx",
             dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run("retrieve query -m s.yaml --index cut.idx capital"), 4);
    cr_assert(strstr(slurp("err.txt"), "cut.idx: "), "%s", slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml --index plain.idx capital"), 4);
    cr_assert(strstr(slurp("err.txt"), "plain.idx"), "%s", slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml --index docs.idx.texts capital"), 4);
    cr_assert(strstr(slurp("err.txt"), "not a bm25 index"), "%s", slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml --index nope.idx capital"), 4);
    /* The manifest's own index, broken: its file:line:col. */
    snprintf(cmd, sizeof cmd, "cd %s && cp cut.idx docs.idx", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(run("retrieve query -m rag.yaml capital"), 4);
    cr_assert(strstr(slurp("err.txt"), "rag.yaml:3:"), "%s", slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml capital"), 2, "no index anywhere");
    cr_assert(strstr(slurp("err.txt"), "no index to search"), "%s", slurp("err.txt"));
    cr_assert_eq(run("retrieve query -m s.yaml --index docs.idx -k 0 capital"), 1);
    cr_assert_eq(run("retrieve index -m s.yaml a.txt"), 1, "--out is required");
    cr_assert_eq(run("retrieve"), 1);
    write_file("noret.yaml", "format: 1\nextends: s.yaml\nretriever: null\n");
    cr_assert_eq(run("retrieve index -m noret.yaml --out z.idx a.txt"), 2);
    cr_assert(strstr(slurp("err.txt"), "no `retriever:` block"), "%s", slurp("err.txt"));
}

Test(retrieve_cli, run_puts_hits_into_the_prompt)
{
    cr_assert_eq(run("retrieve index -m s.yaml --out docs.idx a.txt b.txt c.txt"), 0);
    cr_assert_eq(run("run -m rag.yaml --max-tokens 2 --json 'capital of France'"), 0, "%s",
                 slurp("err.txt"));
    const char *out = slurp("out.txt");
    cr_assert(strstr(out, "\"retrieved\":[{\"rank\":1,\"doc\":0,\"id\":\"a.txt\""), "%s", out);
    const char *r2 = strstr(out, "\"rank\":2");
    cr_assert(r2 && !strstr(out, "\"rank\":3"), "top_k 2: %s", out);
    /* The prompt grew by the template and the two documents. */
    int with = 0, without = 0;
    const char *p = strstr(out, "\"prompt_ids\":[");
    for (; p && *p != ']'; p++)
        with += *p == ',';
    cr_assert_eq(run("run -m rag.yaml --no-retrieval --max-tokens 2 --json "
                     "'capital of France'"), 0);
    out = slurp("out.txt");
    cr_assert_null(strstr(out, "\"retrieved\""), "%s", out);
    for (p = strstr(out, "\"prompt_ids\":["); p && *p != ']'; p++)
        without += *p == ',';
    cr_assert_gt(with, without + 10, "prompt ids with %d, without %d", with, without);
    cr_assert_eq(run("run -m s.yaml --max-tokens 2 --json 'capital of France'"), 0);
    cr_assert_null(strstr(slurp("out.txt"), "\"retrieved\""), "no index: plain run");
}

/* stretch chat looks each turn up as run does (the template and the hits
 * in the turn's prompt), and not with --no-retrieval. */
Test(retrieve_cli, chat_looks_each_turn_up)
{
    cr_assert_eq(run("retrieve index -m s.yaml --out docs.idx a.txt b.txt c.txt"), 0);
    write_file("turns.txt", "capital of France\nyellow fruit\n");
    unsigned first[2];
    for (int r = 0; r < 2; r++) {
        cr_assert_eq(run(r ? "chat -m rag.yaml --no-retrieval --max-tokens 2 --stats < turns.txt"
                           : "chat -m rag.yaml --max-tokens 2 --stats < turns.txt"),
                     0, "%s", slurp("err.txt"));
        const char *err = slurp("err.txt");
        cr_assert(r ? !strstr(err, "retrieved")
                    : strstr(err, "stretch: retrieved a.txt (") &&
                          strstr(err, "stretch: retrieved c.txt ("), "%s", err);
        const char *l = strstr(err, "stretch: ");
        while (l && sscanf(l, "stretch: %u prompt tokens", &first[r]) != 1)
            l = strstr(l + 1, "stretch: ");
        cr_assert(l, "%s", err);
    }
    cr_assert_gt(first[0], first[1] + 10, "the first turn's prompt with the hits: %u, without %u",
                 first[0], first[1]);
}

/* A RestBench-shaped data set small enough to score by hand. Tool i's
 * description is "wi x" padded to 2 + i words, so the query "x" ranks the
 * tools in list order (BM25 favours the shorter document). */
static void write_tiny_restbench(const char *gold_name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/rb", dir);
    cr_assert_eq(system(cmd), 0);
    char tools[2048] = "[";
    for (int i = 0; i < 7; i++) {
        char desc[128];
        int w = snprintf(desc, sizeof desc, "w%d x", i);
        for (int p = 0; p < i; p++)
            w += snprintf(desc + w, sizeof desc - (size_t)w, " pad");
        size_t at = strlen(tools);
        snprintf(tools + at, sizeof tools - at,
                 "%s{\"ID\": %d, \"tool_usage\": \"GET /t%d\", \"rewrite_description\": "
                 "\"%s\"}", i ? ", " : "", i + 1, i, desc);
    }
    strcat(tools, "]");
    write_file("rb/tmdb_tool_rewrite.json", tools);
    char queries[1024];
    snprintf(queries, sizeof queries,
             "[{\"query\": \"w0 w1\", \"relevant Tools\": [\"GET /t0\", \"GET /t1\"], "
             "\"relevant IDs\": [0, 1]},\n"
             " {\"query\": \"w2\", \"relevant Tools\": [\"GET /t2\", \"GET /t5\"], "
             "\"relevant IDs\": [2, 5]},\n"
             " {\"query\": \"nothing\", \"relevant Tools\": [\"GET /t4\"], "
             "\"relevant IDs\": [4]},\n"
             " {\"query\": \"x\", \"relevant Tools\": [\"%s\"], \"relevant IDs\": [6]}]",
             gold_name);
    write_file("rb/mtr_restbench_test.json", queries);
}

Test(retrieve_cli, eval_retrieval_scores_by_the_papers_definitions)
{
    write_tiny_restbench("GET /t6");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench --json rb"), 0, "%s",
                 slurp("err.txt"));
    const char *out = slurp("out.txt");
    /* S@k: query 0 has both gold tools on top; query 1 misses t5 (no shared
     * word); query 2 finds nothing; query 3's gold is 7th: only in the top 10.
     * nDCG: 1; 1 / (1 + 1/log2 3) = 0.61315; 0; at 10, (1/log2 8) / 1 = 1/3. */
    double s5, s10, n5, n10;
    const char *p = strstr(out, "\"s@5\":");
    cr_assert(p, "%s", out);
    cr_assert_eq(sscanf(p, "\"s@5\":%lf,\"s@10\":%lf,\"ndcg@5\":%lf,\"ndcg@10\":%lf", &s5,
                        &s10, &n5, &n10), 4, "%s", out);
    cr_assert_float_eq(s5, 25.0, 1e-9);
    cr_assert_float_eq(s10, 50.0, 1e-9);
    cr_assert_float_eq(n5, 100.0 * (1 + 0.6131471927654584) / 4, 1e-6);
    cr_assert_float_eq(n10, 100.0 * (1 + 0.6131471927654584 + 1.0 / 3) / 4, 1e-6);
    cr_assert(strstr(out, "\"tools\":7,\"queries\":4"), "%s", out);
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench rb"), 0);
    cr_assert(strstr(slurp("out.txt"), "25.00  50.00   40.33   48.66"), "%s", slurp("out.txt"));
    /* Fusing a ranking with itself keeps its order, so the same scores. */
    cr_assert_eq(run("eval retrieval -m s.yaml --fuse s.yaml --dataset restbench --json rb"), 0,
                 "%s", slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"retriever\":\"bm25+bm25\",\"rrf_k\":60,"), "%s",
              slurp("out.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"s@5\":25,\"s@10\":50,"), "%s", slurp("out.txt"));
    cr_assert_eq(run("eval retrieval -m s.yaml --fuse s.yaml --rrf-k 0 --dataset restbench rb"),
                 1);
}

Test(retrieve_cli, eval_retrieval_reads_metatool_and_refuses_bad_data)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/mt", dir);
    cr_assert_eq(system(cmd), 0);
    write_file("mt/ts_metatool_api_list_rewrite.json",
               "{\"Weather\": \"forecast and rain\", \"Maps\": \"roads and routes\"}");
    write_file("mt/mtr_metatool_test.json",
               "[{\"query\": \"will it rain\", \"relevant Tools\": [\"Weather\"], "
               "\"relevant IDs\": [0]}, {\"query\": \"quiet routes\", \"relevant Tools\": "
               "[\"Maps\"], \"relevant IDs\": [1]}]");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset metatool --json mt"), 0, "%s",
                 slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"s@5\":100,\"s@10\":100,\"ndcg@5\":100"), "%s",
              slurp("out.txt"));
    /* A gold id that names another tool than the query says. */
    write_tiny_restbench("GET /t5");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench rb"), 4);
    cr_assert(strstr(slurp("err.txt"), "mtr_restbench_test.json: query 3: relevant ID 6 should "
                                       "be the position of tool 'GET /t5'"), "%s",
              slurp("err.txt"));
    write_file("rb/tmdb_tool_rewrite.json", "[{\"tool_usage\": 1}]");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench rb"), 4);
    cr_assert(strstr(slurp("err.txt"), "tmdb_tool_rewrite.json: entry 0: expected"), "%s",
              slurp("err.txt"));
    write_file("rb/tmdb_tool_rewrite.json", "[{\"tool_usage\": ");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench rb"), 4);
    cr_assert(strstr(slurp("err.txt"), "tmdb_tool_rewrite.json:1:"), "%s", slurp("err.txt"));
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset toolbench rb"), 4);
    cr_assert(strstr(slurp("err.txt"), "expected restbench or metatool"), "%s",
                 slurp("err.txt"));
    cr_assert_eq(run("eval retrieval -m s.yaml rb"), 1);
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench missing"), 4);
    /* jansson's line -1 (the file could not be read) is not a place. */
    cr_assert(strstr(slurp("err.txt"), "stretch: unable to open missing/") &&
              !strstr(slurp("err.txt"), ":-1:"), "%s", slurp("err.txt"));
    write_file("rb/tmdb_tool_rewrite.json", "\xff");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench rb"), 4);
    cr_assert(strstr(slurp("err.txt"), "tmdb_tool_rewrite.json:1:1: "), "%s", slurp("err.txt"));
}

Test(retrieve_cli, eval_retrieval_on_the_mtrb_fixture)
{
    /* The real tool lists with 20 queries each; tools/tests/test_mtrb_reference.py
     * checks the numbers against an independent implementation. */
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench --json "
                     ST_TEST_MTRB_DIR "/restbench"), 0, "%s", slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"tools\":54,\"queries\":20"), "%s", slurp("out.txt"));
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset metatool --text name+description "
                     ST_TEST_MTRB_DIR "/metatool"), 0, "%s", slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "metatool   bm25       name+description           199      20"),
              "%s", slurp("out.txt"));
}

/* --text ...+example appends the tool list's usage example (RestBench's
 * Example.Scenario): a query worded like a tool's example finds it only
 * with it; MetaTool's list has none, so there it changes nothing. */
Test(retrieve_cli, eval_retrieval_text_with_examples)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/ex", dir);
    cr_assert_eq(system(cmd), 0);
    write_file("ex/tmdb_tool_rewrite.json",
               "[{\"tool_usage\": \"GET /a\", \"rewrite_description\": \"alpha things\", "
               "\"Example\": {\"Scenario\": \"zebra stripes\"}},"
               " {\"tool_usage\": \"GET /b\", \"rewrite_description\": \"beta things\"}]");
    write_file("ex/mtr_restbench_test.json",
               "[{\"query\": \"zebra\", \"relevant Tools\": [\"GET /a\"], "
               "\"relevant IDs\": [0]}]");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench --json ex"), 0, "%s",
                 slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"s@5\":0,"), "%s", slurp("out.txt"));
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench --json "
                     "--text description+example ex"), 0, "%s", slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"s@5\":100,"), "%s", slurp("out.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"text\":\"description+example\""), "%s",
              slurp("out.txt"));
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench --text name+example ex"), 1);
    cr_assert(strstr(slurp("err.txt"), "--text: expected description, name+description, "
                                       "description+example or name+description+example"),
              "%s", slurp("err.txt"));
    /* An Example that is not an object with a string Scenario. */
    write_file("ex/tmdb_tool_rewrite.json",
               "[{\"tool_usage\": \"GET /a\", \"rewrite_description\": \"alpha\", "
               "\"Example\": {\"Scenario\": 3}}]");
    cr_assert_eq(run("eval retrieval -m s.yaml --dataset restbench ex"), 4);
    cr_assert(strstr(slurp("err.txt"), "tmdb_tool_rewrite.json: entry 0: expected \"Example\""),
              "%s", slurp("err.txt"));
}
