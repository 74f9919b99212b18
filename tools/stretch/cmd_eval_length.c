/*
 * tools/stretch/cmd_eval_length.c - `stretch eval length`: Ruler's target
 * length generation (TLG) task. Each instruction is asked with "The
 * response should have a word count of N words." for each target level;
 * the answer (greedy, chat template) is scored by its \w+ word count
 * against Ruler's precise and flexible intervals, once with the strategy
 * as it is and once with the `length` sampler in front of its chain.
 * Prints Precise Match and Flexible Match per target and overall, one JSON
 * line per answer in OUT/points.jsonl (resumable).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_out.h"

/* Instructions in the style of Ruler's TLG set (open-ended, no natural
 * length of their own). */
static const char *const instructions[] = {
    "Describe the moon.",
    "Explain how a bicycle works.",
    "Tell me about the history of tea.",
    "Write about the benefits of walking.",
    "Describe a busy market in the morning.",
    "Explain why the sky is blue.",
    "Write a short story about a lost key.",
    "Describe how bread is made.",
};
enum { N_INSTRUCTIONS = sizeof instructions / sizeof instructions[0] };

static const struct { long target, plo, phi, flo, fhi; } levels[] = {
    {10, 0, 20, 0, 20},       {30, 20, 40, 20, 40},      {50, 40, 60, 40, 60},
    {80, 70, 90, 60, 100},    {150, 130, 170, 100, 200}, {300, 280, 320, 200, 400},
    {500, 450, 550, 400, 600}, {700, 630, 770, 600, 800},
};
enum { N_LEVELS = sizeof levels / sizeof levels[0] };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stretch eval length [-m MANIFEST] [options]\n\n"
            "  --targets T,T,...  word-count levels of Ruler's TLG (default 10,30,50,80,150)\n"
            "  --prompts N        instructions per target, of %d built in (default 4)\n"
            "  --out DIR          points.jsonl (default out/length)\n"
            "  --fresh            discard the points of an earlier run instead of resuming\n"
            "  Each answer is generated twice, greedy with the chat template: by the\n"
            "  strategy (default manifests/greedy.yaml) and with the length sampler\n"
            "  (target_words = the target) in front of its chain. Max tokens: 2 x target + 64.\n",
            N_INSTRUCTIONS);
}


static long count_words(const char *s, size_t n)
{
    long words = 0;
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool w = isalnum(c) || c == '_' || c >= 0x80;
        words += w && !in;
        in = w;
    }
    return words;
}

static st_status answer(st_engine *e, const char *prompt, uint32_t max_tokens, st_text_buf *out,
                        st_error *err)
{
    char *chat = NULL;
    st_status st = st_engine_chat_prompt(e, prompt, &chat, err);
    if (st != ST_OK)
        return st;
    int32_t *ids = NULL;
    size_t n = 0;
    st = st_engine_tokenize(e, chat, strlen(chat), ST_ENCODE_PARSE_SPECIAL, &ids, &n, err);
    st_free(chat);
    if (st != ST_OK)
        return st;
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = max_tokens};
    out->n = 0;
    if (out->s)
        out->s[0] = '\0';
    st = st_engine_generate(e, ids, n, &gp, st_text_buf_on_token, out, NULL, err);
    st_free(ids);
    return st;
}

/* A point already in the file: its word count, or -1 when absent or torn
 * by a kill (no line end yet: it is answered again). A count that is not
 * a number >= 0 followed by the answer is refused: -2, message printed. */
static long find_point(const char *existing, const char *path, long target, int prompt,
                       bool with)
{
    char needle[128];
    snprintf(needle, sizeof needle, "{\"target\":%ld,\"prompt\":%d,\"length\":%s,\"words\":",
             target, prompt, with ? "true" : "false");
    const char *p = existing ? strstr(existing, needle) : NULL;
    if (!p || !strchr(p, '\n'))
        return -1;
    const char *digits = p + strlen(needle);
    char *end;
    long words = strtol(digits, &end, 10);
    if (end == digits || *digits == '-' || strncmp(end, ",\"answer\":", 10) != 0) {
        fprintf(stderr, "stretch: %s:%zu: bad \"words\" (expected a count >= 0, then "
                        "\"answer\"); rerun with --fresh to answer again\n",
                path, st_points_line(existing, p));
        return -2;
    }
    return words;
}

int st_cmd_eval_length(int argc, char **argv)
{
    const char *given = "manifests/greedy.yaml", *out_dir = "out/length";
    long long targets[N_LEVELS] = {10, 30, 50, 80, 150};
    int n_targets = 5;
    long long n_prompts = 4;
    bool fresh = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            given = argv[++i];
        } else if (!strcmp(a, "--targets") && next) {
            if ((n_targets = st_parse_list(a, argv[++i], targets, N_LEVELS, 1, 700)) < 0)
                return 2;
        } else if (!strcmp(a, "--prompts")) {
            if ((n_prompts = st_cli_parse_range(a, next, 1, N_INSTRUCTIONS)) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--out") && next) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--fresh")) {
            fresh = true;
        } else {
            fprintf(stderr, "stretch eval length: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    int level[N_LEVELS];
    for (int t = 0; t < n_targets; t++) {
        level[t] = -1;
        for (int l = 0; l < N_LEVELS; l++)
            if (levels[l].target == targets[t])
                level[t] = l;
        if (level[t] < 0) {
            fprintf(stderr, "stretch eval length: %lld is not a TLG level (10, 30, 50, 80, 150, "
                            "300, 500, 700)\n", targets[t]);
            return 2;
        }
    }
    const char *manifest = st_cli_default_manifest(given);
    if (!manifest)
        return 2;
    st_engine *base = NULL;
    int rc = st_cli_open_engine(manifest, NULL, &base);
    if (rc)
        return rc;
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(base, &info);
    st_points_field fields[2];
    if (!st_eval_input_fields(info.model_path, manifest, fields)) {
        st_engine_close(base);
        return 2;
    }
    char *existing = NULL;
    size_t existing_len = 0;
    FILE *points = st_points_open(out_dir, "points.jsonl", fresh, "length", fields, 2,
                                  &existing, &existing_len);
    if (!points) {
        st_engine_close(base);
        return 2;
    }
    char points_path[4096];
    snprintf(points_path, sizeof points_path, "%s/points.jsonl", out_dir);
    char *abs_base = realpath(manifest, NULL);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/with-length.yaml", out_dir);
    st_progress pr;
    st_progress_start(&pr, "answers", (size_t)(n_targets * n_prompts * 2));
    int pm[N_LEVELS][2] = {{0}}, fm[N_LEVELS][2] = {{0}};
    st_text_buf out = {0};
    st_error err = {0};
    st_cli_cancel_on_sigint(base);
    for (int t = 0; t < n_targets && rc == 0; t++) {
        const int l = level[t];
        FILE *f = fopen(tmp, "w");
        if (!f || !abs_base) {
            rc = 1;
            if (f)
                fclose(f);
            break;
        }
        fprintf(f, "format: 1\nextends: '%s'\nsamplers:\n  - plugin: length\n"
                   "    params: {target_words: %lld}\n  - plugin: greedy\n", abs_base, targets[t]);
        fclose(f);
        st_engine *with = NULL;
        if ((rc = st_cli_open_engine(tmp, NULL, &with)) != 0)
            break;
        for (int p = 0; p < n_prompts && rc == 0; p++) {
            char prompt[512];
            snprintf(prompt, sizeof prompt, "%s The response should have a word count of %lld "
                     "words.", instructions[p], targets[t]);
            for (int w = 0; w < 2 && rc == 0; w++) {
                long words = find_point(existing, points_path, targets[t], p, w);
                if (words == -2) {
                    rc = ST_EXIT_RUNTIME;
                    break;
                }
                if (words >= 0) {
                    pr.skipped++;
                } else {
                    st_status st = answer(w ? with : base, prompt,
                                          (uint32_t)(2 * targets[t] + 64), &out, &err);
                    if (st != ST_OK) {
                        fprintf(stderr, "\nstretch eval length: %s\n", err.message);
                        rc = st == ST_E_CANCELLED ? 130 : 1;
                        break;
                    }
                    words = count_words(out.s ? out.s : "", out.n);
                    fprintf(points, "{\"target\":%lld,\"prompt\":%d,\"length\":%s,\"words\":%ld,"
                                    "\"answer\":", targets[t], p, w ? "true" : "false", words);
                    st_json_write_escaped(points, out.s ? out.s : "", out.n);
                    fprintf(points, "}\n");
                    fflush(points);
                }
                pm[t][w] += words > levels[l].plo && words <= levels[l].phi;
                fm[t][w] += words > levels[l].flo && words <= levels[l].fhi;
                pr.done++;
                st_progress_show(&pr);
            }
        }
        st_engine_close(with);
    }
    st_cli_cancel_on_sigint(NULL);
    st_progress_end(&pr);
    remove(tmp);
    if (rc == 0) {
        printf("| target | precise (lo,hi] | PM without | PM with length | flexible (lo,hi] | "
               "FM without | FM with length |\n|---|---|---|---|---|---|---|\n");
        int tot[2][2] = {{0}};
        for (int t = 0; t < n_targets; t++) {
            const int l = level[t];
            printf("| %lld | (%ld,%ld] | %.0f%% | %.0f%% | (%ld,%ld] | %.0f%% | %.0f%% |\n",
                   targets[t], levels[l].plo, levels[l].phi, 100.0 * pm[t][0] / n_prompts,
                   100.0 * pm[t][1] / n_prompts, levels[l].flo, levels[l].fhi,
                   100.0 * fm[t][0] / n_prompts, 100.0 * fm[t][1] / n_prompts);
            for (int w = 0; w < 2; w++) {
                tot[0][w] += pm[t][w];
                tot[1][w] += fm[t][w];
            }
        }
        double n = (double)(n_targets * n_prompts);
        printf("| all | | %.1f%% | %.1f%% | | %.1f%% | %.1f%% |\n", 100 * tot[0][0] / n,
               100 * tot[0][1] / n, 100 * tot[1][0] / n, 100 * tot[1][1] / n);
    }
    fclose(points);
    free(existing);
    free(abs_base);
    free(out.s);
    st_engine_close(base);
    return rc;
}
