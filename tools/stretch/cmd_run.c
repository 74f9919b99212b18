/*
 * tools/stretch/cmd_run.c - `stretch run [-m MANIFEST] [options] PROMPT`:
 * generate with the strategy and stream the text as it is produced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "answer_text.h"
#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_out.h"
#include "reading.h"
#include "sampling_flags.h"

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch run [-m MANIFEST] [options] PROMPT\n"
            "       stretch run [-m MANIFEST] [options] --file PROMPT_FILE   (- : standard input)\n\n"
            "  -m, --manifest FILE  strategy manifest (default: manifests/default.yaml)\n"
            "  --max-tokens N       generate at most N tokens (default 256)\n"
            "  --seed N             seed for the samplers (default: from the clock)\n"
            "  (llama-cli's spellings work too: -p PROMPT, -f FILE, -n N, -s N, -t N, -c N,\n"
            "   and -m MODEL.gguf runs that model with the default strategy)\n"
            "  --chat               wrap the prompt in the model's chat template; the\n"
            "                       prompt is plain text (\"<|im_end|>\" in it is not a marker)\n"
            "  --chat-special       with --chat, parse special tokens in the prompt too\n"
            "  --raw                use the prompt as it is (the default)\n"
            "  --ignore-eos         keep generating past end-of-text tokens\n"
            "  --threads N          worker threads (default: the manifest's, else all cores)\n"
            "  --context N          context size in tokens, 16 to 1048576 (default: the\n"
            "                       manifest's)\n"
            "  --model FILE         use this GGUF instead of the manifest's\n"
            "  --logits-out FILE    write the first step's logits as float32\n"
            "  --numerics MODE      fast (default) or ggml: llama.cpp's CPU float operations,\n"
            "                       bit for bit (slower; overrides STRETCH_NUMERICS)\n"
            "  --json               print one JSON object (ids, text, timings, device, what\n"
            "                       was retrieved) at the end\n"
            "  --stats              the prompt's tokens (how many from the cache), the\n"
            "                       generated ones and their speeds, on stderr at the end\n"
            "  --no-retrieval       ignore the manifest's retriever index\n"
            "  --prompt-cache FILE  take the prompt's start from FILE's cached keys and\n"
            "                       values where it matches, and write the prompt's there\n"
            "                       (a file of another model or strategy is refused with a\n"
            "                       warning and written anew)\n"
            "  --prompt-cache-ro    with --prompt-cache: read the file, never write it\n"
            "  --question Q         read the document (PROMPT or --file, streamed) chunk by\n"
            "                       chunk with a reading strategy (manifests/infiniretri.yaml,\n"
            "                       xl3m.yaml), keeping what matters to Q, then answer Q\n"
            "                       from what was kept\n"
            "  --chunk N            with --question: tokens per chunk (default 1024)\n"
            "  --progress           with --question, when stderr is not a terminal: the\n"
            "                       reading's progress as a line at most every second (a\n"
            "                       terminal gets a bar)\n"
            "\n  With a `retriever:` block naming an `index:` in the manifest, the prompt is\n"
            "  first looked up there and its top_k hits put into the prompt through the\n"
            "  block's template (docs/retrieval.md).\n"
            "\n  Generation stops at --max-tokens, an end-of-text token, or a full context\n"
            "  (a warning on stderr; the text so far is kept and the exit code is 0).\n\n");
    fputs(st_cli_sampling_usage, f);
    fputs(st_cli_backend_usage, f);
}

typedef struct run_state {
    int32_t *tokens;
    size_t n, cap;
    st_cli_answer answer;    /* printed as it comes, or kept for --json */
} run_state;

static int on_token(void *user, int32_t token, const char *text, size_t len)
{
    run_state *rs = user;
    if (token >= 0) {
        if (rs->n == rs->cap) {
            size_t cap = rs->cap ? rs->cap * 2 : 64;
            int32_t *grown = realloc(rs->tokens, cap * sizeof *grown);
            if (!grown)
                return 1;
            rs->tokens = grown;
            rs->cap = cap;
        }
        rs->tokens[rs->n++] = token;
    }
    return st_cli_answer_feed(&rs->answer, text, len);
}

static int write_logits(const char *path, const float *logits, uint32_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(logits, sizeof(float), n, f) != n) {
        fprintf(stderr, "stretch: %s: cannot write logits\n", path);
        if (f)
            fclose(f);
        return ST_EXIT_RUNTIME;
    }
    fclose(f);
    return 0;
}

static int run(int argc, char **argv, st_cli_sampling *sampling);

/* --prompt-cache: false when the strategy cannot keep a prompt (nothing
 * to write then). A missing file is the first run's; a refused one is
 * warned about and written anew. */
static bool load_prompt_cache(st_engine *e, const char *path)
{
    st_error err = {0};
    uint32_t n = 0;
    st_status st = st_engine_load_prompt(e, path, &n, &err);
    if (st == ST_E_UNAVAILABLE) {
        fprintf(stderr, "stretch: warning: --prompt-cache is ignored: %s\n",
                st_cli_safe(err.message));
        return false;
    }
    if (st != ST_OK && st != ST_E_NOT_FOUND)
        fprintf(stderr, "stretch: warning: %s; the prompt is prefilled in full\n",
                st_cli_safe(err.message));
    return true;
}

static void save_prompt_cache(st_engine *e, const char *path)
{
    st_error err = {0};
    if (st_engine_save_prompt(e, path, NULL, &err) != ST_OK)
        fprintf(stderr, "stretch: warning: %s\n", st_cli_safe(err.message));
}

int st_cmd_run(int argc, char **argv)
{
    return st_cli_with_sampling(argc, argv, run);
}

static int run(int argc, char **argv, st_cli_sampling *sampling)
{
    const char *manifest = NULL, *prompt = NULL, *prompt_file = NULL, *logits_out = NULL;
    const char *question = NULL, *prompt_cache = NULL;
    bool prompt_cache_ro = false;
    long long chunk = 0;
    long long max_tokens = 256, seed = -1, v;
    bool chat = false, chat_special = false, json = false, ignore_eos = false;
    bool progress_lines = false;
    bool stats_line = false;
    bool retrieval = true;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--max-tokens") || !strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if ((max_tokens = st_cli_parse_count(a, next, 1 << 24)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--seed") || !strcmp(a, "-s")) {
            if ((seed = st_cli_parse_count(a, next, INT64_MAX)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if ((v = st_cli_engine_option("run", argc, argv, &i, &opts)) != 0) {
            if (v < 0)
                return ST_EXIT_USAGE;
        } else if ((v = st_cli_sampling_option("run", argc, argv, &i, sampling)) != 0) {
            if (v < 0)
                return (int)-v;
        } else if ((!strcmp(a, "--file") || !strcmp(a, "-f")) && next) {
            prompt_file = argv[++i];
        } else if (!strcmp(a, "--prompt-cache") && next) {
            prompt_cache = argv[++i];
        } else if (!strcmp(a, "--prompt-cache-ro")) {
            prompt_cache_ro = true;
        } else if (!strcmp(a, "--question") && next) {
            question = argv[++i];
        } else if (!strcmp(a, "--chunk")) {
            if ((chunk = st_cli_parse_range(a, next, 16, ST_CONTEXT_MAX)) < 0)
                return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--logits-out") && next) {
            logits_out = argv[++i];
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--chat-special")) {
            chat_special = true;
        } else if (!strcmp(a, "--raw")) {
            chat = false;
        } else if (!strcmp(a, "--stats")) {
            stats_line = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-retrieval")) {
            retrieval = false;
        } else if (!strcmp(a, "--progress")) {
            progress_lines = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--numerics") && i + 1 < argc) {
            const char *mode = argv[++i];
            if (strcmp(mode, "ggml") && strcmp(mode, "fast")) {
                fprintf(stderr, "stretch run: --numerics: expected fast or ggml, found '%s'\n",
                        mode);
                return ST_EXIT_USAGE;
            }
            opts.numerics = strcmp(mode, "ggml") ? ST_NUMERICS_FAST : ST_NUMERICS_GGML;
        } else if (a[0] == '-' && a[1] && strcmp(a, "-p") && strcmp(a, "--prompt")) {
            fprintf(stderr, "stretch run: unknown or incomplete option '%s'\n", a);
            run_usage(stderr);
            return ST_EXIT_USAGE;
        } else if (a[0] == '-' && a[1] && !next) {
            fprintf(stderr, "stretch run: %s needs the prompt\n", a);
            return ST_EXIT_USAGE;
        } else if (!prompt) {
            prompt = a[0] == '-' && a[1] ? argv[++i] : a; /* -p PROMPT, llama-cli's */
        } else {
            fprintf(stderr, "stretch run: one prompt only (quote it)\n");
            return ST_EXIT_USAGE;
        }
    }
    if (!prompt == !prompt_file) {
        fprintf(stderr, "stretch run: give a PROMPT or --file FILE\n");
        run_usage(stderr);
        return ST_EXIT_USAGE;
    }
    if ((prompt_cache_ro && !prompt_cache) || (prompt_cache && question)) {
        fprintf(stderr, "stretch run: %s\n", question ? "--prompt-cache keeps a prompt; "
                "--question reads a document through the cache, which it cannot keep"
                : "--prompt-cache-ro needs --prompt-cache FILE");
        return ST_EXIT_USAGE;
    }
    char *file_text = NULL;
    /* A document to read with --question is streamed, never loaded whole. */
    if (prompt_file && !question) {
        size_t n;
        if (!(file_text = st_cli_read_file(prompt_file, &n)))
            return ST_EXIT_MODEL;
        /* The prompt is handed on as C text: a NUL would silently cut it. */
        const char *nul = memchr(file_text, '\0', n);
        if (nul) {
            size_t line = 1, col = 1;
            for (const char *p = file_text; p < nul; p++, col++)
                if (*p == '\n') {
                    line++;
                    col = 0;
                }
            fprintf(stderr, "stretch: %s:%zu:%zu: expected a text prompt, found a NUL byte "
                            "(offset %zu of %zu bytes); the prompt would end there\n",
                    st_cli_safe(prompt_file), line, col, (size_t)(nul - file_text), n);
            free(file_text);
            return ST_EXIT_MODEL;
        }
        prompt = file_text;
    }
    if (!(manifest = st_cli_default_manifest(manifest))) {
        free(file_text);
        return ST_EXIT_USAGE;
    }
    if (seed < 0)
        seed = (long long)time(NULL);

    st_engine *e = NULL;
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc) {
        free(file_text);
        return rc;
    }
    if ((rc = st_cli_sampling_check(e, sampling)) != 0) {
        st_engine_close(e);
        free(file_text);
        return rc;
    }
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    st_error err;
    memset(&err, 0, sizeof err);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *logits = NULL;
    run_state rs = {0};
    st_cli_answer_init(&rs.answer, sampling->stops, sampling->n_stops, !json, json);
    st_status st;
    uint32_t bos = info.add_bos ? ST_ENCODE_ADD_BOS : 0;
    /* Retrieval-augmented: the prompt becomes the template with the hits. */
    st_retriever *retriever = retrieval ? st_engine_retriever(e) : NULL;
    st_retrieval *hits = NULL;
    char *augmented = NULL;
    st = ST_OK;
    if (retriever && !question && st_retriever_index_path(retriever)) {
        st = st_retriever_query(retriever, prompt, strlen(prompt), st_retriever_top_k(retriever),
                                &hits, &err);
        if (st == ST_OK && (st = st_retriever_render(retriever, prompt, hits, &augmented,
                                                     &err)) == ST_OK)
            prompt = augmented;
    }
    /* A raw prompt is the user's own formatting, markers included; in a
     * chat only the template's markers are special unless asked. */
    st_read_stats read_stats = {.struct_size = sizeof read_stats};
    if (st == ST_OK && question) {
        /* Reading a long document takes minutes: a bar by bytes read. */
        struct stat fs;
        uint64_t bytes = prompt_file ? (stat(prompt_file, &fs) == 0 ? (uint64_t)fs.st_size : 0)
                                     : strlen(prompt);
        st_progress pr;
        st_progress_start(&pr, "read", (size_t)bytes);
        pr.lines = progress_lines;
        pr.unit = "B";
        st_progress_read rp = {&pr, 0, (size_t)bytes, bytes};
        st_cli_document doc = {prompt_file, prompt, prompt ? strlen(prompt) : 0, NULL, NULL,
                               st_progress_on_read, &rp};
        st_cli_cancel_on_sigint(e);
        st = st_cli_reading_prompt(e, &doc, question, (uint32_t)chunk, chat, &ids, &n_ids,
                                   &read_stats, &err);
        st_cli_cancel_on_sigint(NULL);
        if (pr.done && st == ST_OK) {
            pr.done = pr.total;
            st_progress_show(&pr);
        }
        if (pr.done)
            st_progress_end(&pr);
        if (st == ST_OK)
            fprintf(stderr, "stretch: read %llu tokens in %llu chunks, kept %u\n",
                    (unsigned long long)read_stats.n_tokens,
                    (unsigned long long)read_stats.n_chunks, read_stats.n_kept);
    } else if (st == ST_OK && chat)
        st = st_engine_chat_tokenize(e, prompt, bos | (chat_special ? ST_ENCODE_PARSE_SPECIAL : 0),
                                     &ids, &n_ids, &err);
    else if (st == ST_OK)
        st = st_engine_tokenize(e, prompt, strlen(prompt), bos | ST_ENCODE_PARSE_SPECIAL, &ids,
                                &n_ids, &err);
    if (st == ST_OK && logits_out && !(logits = malloc(sizeof(float) * info.n_vocab))) {
        st = ST_E_NOMEM;
        snprintf(err.message, sizeof err.message, "out of memory for the logits");
    }
    st_generate_stats stats = {.struct_size = sizeof stats};
    bool cache_usable = prompt_cache && st == ST_OK && load_prompt_cache(e, prompt_cache);
    if (st == ST_OK) {
        st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = (uint32_t)max_tokens,
                                 .seed = (uint64_t)seed, .ignore_eos = ignore_eos,
                                 .first_logits = logits};
        st_cli_sampling_apply(sampling, &gp);
        st_cli_cancel_on_sigint(e);
        st = st_engine_generate(e, ids, n_ids, &gp, on_token, &rs, &stats, &err);
        st_cli_cancel_on_sigint(NULL);
        if (st == ST_OK && rs.answer.out_of_memory) {
            st = ST_E_NOMEM;
            snprintf(err.message, sizeof err.message, "out of memory for the answer's text");
        }
    }
    st_cli_answer_end(&rs.answer);
    /* Written once the prompt is in the cache, whatever came of the
     * answer; only when it holds more than the file gave. */
    if (cache_usable && !prompt_cache_ro && stats.n_prompt > stats.n_cached)
        save_prompt_cache(e, prompt_cache);
    if (stats.stopped_by_context)
        fprintf(stderr, "stretch: warning: the context of %u tokens is full: generation stopped "
                        "after %u tokens; raise --context or `context:` in the strategy manifest, "
                        "or use a bounded attention strategy (streaming, lm-infinite)\n",
                info.n_ctx, stats.n_generated);
    if (st == ST_OK || st == ST_E_CANCELLED) {
        if (logits_out && stats.n_prompt)
            rc = write_logits(logits_out, logits, info.n_vocab);
        if (json) {
            st_json j;
            st_json_init(&j, stdout, false);
            st_json_begin_object(&j);
            st_json_key(&j, "prompt_ids");
            st_json_begin_array(&j);
            for (size_t i = 0; i < n_ids; i++)
                st_json_int(&j, ids[i]);
            st_json_end_array(&j);
            st_json_key(&j, "tokens");
            st_json_begin_array(&j);
            for (size_t i = 0; i < rs.n; i++)
                st_json_int(&j, rs.tokens[i]);
            st_json_end_array(&j);
            st_json_key(&j, "text");
            st_json_string_n(&j, rs.answer.text.s ? rs.answer.text.s : "", rs.answer.text.n);
            st_json_key(&j, "seed");
            st_json_int(&j, seed);
            st_json_key(&j, "cached_tokens");
            st_json_uint(&j, stats.n_cached);
            st_json_key(&j, "stopped_by_eos");
            st_json_bool(&j, stats.stopped_by_eos);
            st_json_key(&j, "stopped_by");
            st_json_string(&j, st_cli_stopped_by(&stats, rs.answer.by_stop_text,
                                                  st == ST_E_CANCELLED));
            st_json_key(&j, "timings");
            st_json_begin_object(&j);
            st_json_key(&j, "prefill_s");
            st_json_double(&j, stats.prefill_s);
            st_json_key(&j, "prefill_tok_s");
            st_json_double(&j, stats.prefill_s > 0 ? stats.n_prompt / stats.prefill_s : 0);
            st_json_key(&j, "decode_s");
            st_json_double(&j, stats.decode_s);
            st_json_key(&j, "decode_tok_s");
            /* The first token comes from the prefill's logits; the decode
             * rate counts the forward steps after it. */
            st_json_double(&j, stats.decode_s > 0 && stats.n_generated > 1
                                   ? (stats.n_generated - 1) / stats.decode_s : 0);
            st_json_end_object(&j);
            if (question) {
                st_json_key(&j, "read");
                st_json_begin_object(&j);
                st_json_key(&j, "tokens");
                st_json_uint(&j, read_stats.n_tokens);
                st_json_key(&j, "chunks");
                st_json_uint(&j, read_stats.n_chunks);
                st_json_key(&j, "kept");
                st_json_uint(&j, read_stats.n_kept);
                st_json_key(&j, "max_step_tokens");
                st_json_uint(&j, read_stats.max_step_tokens);
                st_json_end_object(&j);
            }
            st_json_key(&j, "peak_rss_mb");
            st_json_double(&j, st_peak_rss_bytes() / 1048576.0);
            st_engine_info kv = {.struct_size = sizeof kv};
            st_engine_get_info(e, &kv);
            st_json_key(&j, "kv_type");
            st_json_string(&j, kv.kv_type);
            st_json_key(&j, "kv_bytes_per_token");
            st_json_uint(&j, kv.kv_bytes_per_token);
            st_json_key(&j, "kv_cache_bytes");
            st_json_uint(&j, kv.kv_cache_bytes);
            if (hits) {
                st_json_key(&j, "retrieved");
                st_cli_hits_json(&j, hits);
            }
            st_json_key(&j, "backend");
            st_json_string(&j, kv.backend);
            st_json_key(&j, "device");
            st_json_string(&j, kv.device_name && kv.device_name[0] ? kv.device_name : NULL);
            st_json_end_object(&j);
            st_json_end(&j);
        } else {
            fputc('\n', stdout);
        }
    }
    if (stats_line && (st == ST_OK || st == ST_E_CANCELLED)) {
        fflush(stdout); /* after the text's last line on a terminal */
        st_cli_print_stats(&stats, st == ST_E_CANCELLED);
    }
    if (st != ST_OK) {
        fprintf(stderr, "stretch: %s\n", st == ST_E_CANCELLED ? "cancelled" : st_cli_safe(err.message));
        rc = ST_EXIT_RUNTIME;
    }
    free(logits);
    free(rs.tokens);
    free(rs.answer.text.s);
    st_free(ids);
    st_free(augmented);
    st_retrieval_free(hits);
    st_engine_close(e);
    free(file_text);
    return rc;
}
