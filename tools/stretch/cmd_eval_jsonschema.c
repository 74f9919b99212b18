/*
 * tools/stretch/cmd_eval_jsonschema.c - `stretch eval jsonschema DIR`: for
 * each schema of a JSONSchemaBench-style folder (subset folders of .json
 * files), open the strategy with the json-schema sampler first in its
 * chain, and record what it costs and what it writes: compile time
 * (schema to grammar, grammar, token trie, from the plugin's debug log),
 * refusal and its reason (declared coverage), a greedy constrained
 * generation (its text, whether it ended, per-token mask times), the
 * same prompt without the constraint (tokens/s beside it), and seeded
 * sampled constrained generations (temperature, then a draw). One JSON line
 * per schema in DIR/points.jsonl, resumable; tools/jsonschema_report.py
 * validates the outputs with Python's jsonschema (empirical coverage) and
 * prints the tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dir_list.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_out.h"

#define SCHEMA_PROMPT_MAX 1500

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stretch eval jsonschema [-m MANIFEST] [options] DIR\n\n"
            "  DIR holds subset folders of JSON Schema files (JSONSchemaBench's data/).\n"
            "  --subset NAME     only DIR/NAME (default: every subset folder)\n"
            "  --limit N         the first N schemas of each subset, by name (default 20)\n"
            "  --max-tokens N    tokens per generation (default 256)\n"
            "  --out DIR         points.jsonl goes here (default out/jsonschema)\n"
            "  --fresh           discard the points of an earlier run instead of resuming\n"
            "  --compile-only    compile (declared coverage, compile time), generate nothing\n"
            "  --samples N       sampled constrained generations per schema beside the\n"
            "                    greedy one (default 0), seeds SEED..SEED+N-1\n"
            "  --temperature T   their temperature (default 1.0)\n"
            "  --seed S          their first seed (default 1)\n"
            "  The strategy (default manifests/greedy.yaml) gets the json-schema sampler\n"
            "  (compact whitespace) in front of its chain and greedy at the end. Report:\n"
            "    python3 tools/jsonschema_report.py OUT/points.jsonl\n");
}

typedef struct times {
    float *us;
    size_t n, cap;
} times;

typedef struct run_log {
    double schema_ms, grammar_ms, trie_ms;
    times mask, apply;
} run_log;

static void times_add(times *t, float v)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        float *m = realloc(t->us, cap * sizeof *m);
        if (!m)
            return;
        t->us = m;
        t->cap = cap;
    }
    t->us[t->n++] = v;
}

static void times_write(FILE *f, const char *key, const times *t)
{
    fprintf(f, ",\"%s\":[", key);
    for (size_t m = 0; m < t->n; m++)
        fprintf(f, "%s%.1f", m ? "," : "", t->us[m]);
    fprintf(f, "]");
}

static void on_log(void *user, st_log_level level, const char *plugin, const char *msg)
{
    run_log *r = user;
    if (!plugin || strcmp(plugin, "json-schema") != 0)
        return;
    if (sscanf(msg, "schema-ms: %lf", &r->schema_ms) == 1)
        return;
    if (sscanf(msg, "grammar-ms: %lf trie-ms: %lf", &r->grammar_ms, &r->trie_ms) == 2)
        return;
    times *t = strncmp(msg, "mask-us:", 8) == 0    ? &r->mask
               : strncmp(msg, "apply-us:", 9) == 0 ? &r->apply
                                                    : NULL;
    if (!t)
        return;
    const char *p = strchr(msg, ':') + 1;
    char *end;
    for (double v = strtod(p, &end); end != p; p = end, v = strtod(p, &end))
        times_add(t, (float)v);
}


/* Generation of `prompt` (chat-wrapped) on `e`, its samplers reset with
 * `seed`. */
static st_status generate(st_engine *e, const char *prompt, uint32_t max_tokens, uint64_t seed,
                          st_text_buf *out, st_generate_stats *stats, st_error *err)
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
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = max_tokens, .seed = seed};
    memset(stats, 0, sizeof *stats);
    stats->struct_size = sizeof *stats;
    out->n = 0;
    if (out->s)
        out->s[0] = '\0';
    st = st_engine_generate(e, ids, n, &gp, st_text_buf_on_token, out, stats, err);
    st_free(ids);
    return st;
}

/* A strategy that puts the json-schema sampler for `schema` in front,
 * then greedy (temperature < 0) or temperature and a seeded draw. */
static bool write_manifest(const char *path, const char *base, const char *schema,
                           double temperature)
{
    char *abs_base = realpath(base, NULL), *abs_schema = realpath(schema, NULL);
    FILE *f = abs_base && abs_schema ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "format: 1\nextends: '%s'\nsamplers:\n  - plugin: json-schema\n"
                   "    params: {whitespace: compact, schema: '",
                abs_base);
        for (const char *p = abs_schema; *p; p++)
            fputs(*p == '\'' ? "''" : (char[2]){*p, 0}, f);
        if (temperature < 0)
            fprintf(f, "'}\n  - plugin: greedy\n");
        else
            fprintf(f, "'}\n  - plugin: temperature\n    params: {temperature: %g}\n"
                       "  - plugin: dist\n", temperature);
        fclose(f);
    }
    free(abs_base);
    free(abs_schema);
    return f != NULL;
}

/* Whether `existing` has a finished point for `key` (a point that ended in
 * an error or a cancel is run again, and so is a last line a kill tore). */
static bool already_done(const char *existing, const char *key)
{
    char needle[1200];
    snprintf(needle, sizeof needle, "{\"file\":\"%s\"", key);
    for (const char *p = existing; p && (p = strstr(p, needle)); p++) {
        const char *end = strchr(p, '\n');
        if (!end)
            break;
        const char *err = strstr(p, "\"status\":\"error\"");
        if (!err || err >= end)
            return true;
    }
    return false;
}

int st_cmd_eval_jsonschema(int argc, char **argv)
{
    const char *given = "manifests/greedy.yaml", *subset = NULL, *dir = NULL;
    const char *out_dir = "out/jsonschema";
    long long limit = 20, max_tokens = 256, samples = 0, seed = 1;
    double temperature = 1.0;
    bool fresh = false, compile_only = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            given = argv[++i];
        } else if (!strcmp(a, "--subset") && next) {
            subset = argv[++i];
        } else if (!strcmp(a, "--limit")) {
            if ((limit = st_cli_parse_range(a, next, 1, 100000)) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--max-tokens")) {
            if ((max_tokens = st_cli_parse_range(a, next, 1, 8192)) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--out") && next) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--fresh")) {
            fresh = true;
        } else if (!strcmp(a, "--compile-only")) {
            compile_only = true;
        } else if (!strcmp(a, "--samples")) {
            if ((samples = st_cli_parse_range(a, next, 0, 1000)) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if ((seed = st_cli_parse_range(a, next, 0, 1LL << 53)) < 0)
                return 2;
            i++;
        } else if (!strcmp(a, "--temperature")) {
            char *end = NULL;
            temperature = next ? strtod(next, &end) : -1;
            if (!next || end == next || *end || !(temperature > 0 && temperature <= 100)) {
                fprintf(stderr, "stretch eval jsonschema: --temperature expects a number in "
                                "(0, 100], got '%s'\n", next ? next : "");
                return 2;
            }
            i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "stretch eval jsonschema: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, "stretch eval jsonschema: one DIR expected, got '%s' too\n", a);
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    const char *manifest = st_cli_default_manifest(given);
    if (!manifest)
        return 2;
    size_t n_subsets = 0;
    char **subsets = subset ? NULL : st_cli_dir_list(dir, NULL, &n_subsets);
    if (subset) {
        subsets = malloc(sizeof *subsets);
        subsets[0] = strdup(subset);
        n_subsets = 1;
    }
    if (!n_subsets) {
        fprintf(stderr, "stretch eval jsonschema: %s has no subset folders\n", dir);
        st_cli_dir_list_free(subsets, n_subsets);
        return 2;
    }
    st_engine *base = NULL;
    int rc = st_cli_open_engine(manifest, NULL, &base);
    if (rc) {
        st_cli_dir_list_free(subsets, n_subsets);
        return rc;
    }
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(base, &info);
    st_points_field fields[4];
    if (!st_eval_input_fields(info.model_path, manifest, fields)) {
        fprintf(stderr, "stretch eval jsonschema: cannot read %s or %s\n", info.model_path,
                manifest);
        st_engine_close(base);
        st_cli_dir_list_free(subsets, n_subsets);
        return 2;
    }
    fields[2].key = "max_tokens";
    snprintf(fields[2].value, sizeof fields[2].value, "%lld", compile_only ? 0 : max_tokens);
    /* Sampled runs: how many, from which seed, at what temperature. */
    fields[3].key = "samples";
    snprintf(fields[3].value, sizeof fields[3].value, "%lld seed %lld temperature %g",
             compile_only ? 0 : samples, seed, temperature);
    char *existing = NULL;
    size_t existing_len = 0;
    FILE *points = st_points_open(out_dir, "points.jsonl", fresh, "jsonschema", fields, 4,
                                  &existing, &existing_len);
    if (!points) {
        st_engine_close(base);
        st_cli_dir_list_free(subsets, n_subsets);
        return 2;
    }
    char tmp_manifest[4096], tmp_sampled[4096];
    snprintf(tmp_manifest, sizeof tmp_manifest, "%s/constrained.yaml", out_dir);
    snprintf(tmp_sampled, sizeof tmp_sampled, "%s/constrained-sampled.yaml", out_dir);

    size_t total = 0;
    for (size_t s = 0; s < n_subsets; s++) {
        char sdir[4096];
        snprintf(sdir, sizeof sdir, "%s/%s", dir, subsets[s]);
        size_t n;
        char **files = st_cli_dir_list(sdir, ".json", &n);
        total += n < (size_t)limit ? n : (size_t)limit;
        st_cli_dir_list_free(files, n);
    }
    st_progress pr;
    st_progress_start(&pr, "schemas", total);
    st_text_buf out = {0};
    int n_ok = 0, n_refused = 0;
    st_cli_cancel_on_sigint(base);
    for (size_t s = 0; s < n_subsets && rc == 0; s++) {
        char sdir[4096];
        snprintf(sdir, sizeof sdir, "%s/%s", dir, subsets[s]);
        size_t n;
        char **files = st_cli_dir_list(sdir, ".json", &n);
        for (size_t i = 0; i < n && i < (size_t)limit && rc == 0; i++) {
            char key[1024], path[8200];
            snprintf(key, sizeof key, "%s/%s", subsets[s], files[i]);
            snprintf(path, sizeof path, "%s/%s", sdir, files[i]);
            pr.done++;
            if (already_done(existing, key)) {
                pr.skipped++;
                continue;
            }
            size_t slen = 0;
            char *schema = st_cli_read_file(path, &slen);
            if (!schema || !write_manifest(tmp_manifest, manifest, path, -1)) {
                free(schema);
                rc = 1;
                break;
            }
            run_log lg = {0};
            st_engine_options opts = {.struct_size = sizeof opts, .log = on_log, .log_user = &lg};
            st_engine *e = NULL;
            st_error err = {0};
            st_status st = st_engine_open(tmp_manifest, &opts, &e, &err);
            fprintf(points, "{\"file\":");
            st_json_write_escaped(points, key, strlen(key));
            fprintf(points, ",\"subset\":");
            st_json_write_escaped(points, subsets[s], strlen(subsets[s]));
            if (st != ST_OK) {
                n_refused++;
                fprintf(points, ",\"status\":\"refused\",\"schema_ms\":%.3f,\"reason\":",
                        lg.schema_ms);
                st_json_write_escaped(points, err.message, strlen(err.message));
                fprintf(points, "}\n");
            } else if (compile_only) {
                n_ok++;
                st_engine_close(e);
                fprintf(points, ",\"status\":\"ok\",\"schema_ms\":%.3f,\"grammar_ms\":%.3f,"
                                "\"trie_ms\":%.3f}\n", lg.schema_ms, lg.grammar_ms, lg.trie_ms);
            } else {
                char prompt[SCHEMA_PROMPT_MAX + 200];
                snprintf(prompt, sizeof prompt,
                         "Write one JSON value that is valid for this JSON Schema, and nothing "
                         "else.\nSchema: %.*s", SCHEMA_PROMPT_MAX, schema);
                st_generate_stats cs, fs;
                st = generate(e, prompt, (uint32_t)max_tokens, 0, &out, &cs, &err);
                st_engine_close(e);   /* the plugin logs its mask times here */
                char *constrained = out.s ? strdup(out.s) : strdup("");
                if (st == ST_OK)
                    st = generate(base, prompt, (uint32_t)max_tokens, 0, &out, &fs, &err);
                /* The sampled runs, each on a fresh engine (so each one's
                 * mask times start cold, as the greedy run's do). */
                char *sampled = NULL;
                size_t sampled_len = 0;
                FILE *sf = st == ST_OK && samples ? open_memstream(&sampled, &sampled_len) : NULL;
                if (st == ST_OK && samples &&
                    (!sf || !write_manifest(tmp_sampled, manifest, path, temperature)))
                {
                    snprintf(err.message, sizeof err.message, "cannot write %.300s", tmp_sampled);
                    st = ST_E_IO;
                }
                for (long long k = 0; st == ST_OK && k < samples; k++) {
                    run_log sl = {0};
                    st_engine_options so = {.struct_size = sizeof so, .log = on_log,
                                            .log_user = &sl};
                    st_engine *se = NULL;
                    st_generate_stats ss;
                    st = st_engine_open(tmp_sampled, &so, &se, &err);
                    if (st == ST_OK) {
                        st_cli_cancel_on_sigint(se);
                        st = generate(se, prompt, (uint32_t)max_tokens, (uint64_t)(seed + k),
                                      &out, &ss, &err);
                        st_cli_cancel_on_sigint(base);
                        st_engine_close(se);
                    }
                    if (st == ST_OK) {
                        fprintf(sf, "%s{\"seed\":%lld,\"tokens\":%u,\"ended\":%s,"
                                    "\"decode_s\":%.6f,\"output\":",
                                k ? "," : "", seed + k, ss.n_generated,
                                ss.stopped_by_eos ? "true" : "false", ss.decode_s);
                        st_json_write_escaped(sf, out.s ? out.s : "", out.s ? out.n : 0);
                        times_write(sf, "mask_us", &sl.mask);
                        fprintf(sf, "}");
                    }
                    free(sl.mask.us);
                    free(sl.apply.us);
                }
                if (sf)
                    fclose(sf);
                if (st != ST_OK) {
                    fprintf(stderr, "\nstretch eval jsonschema: %s: %s\n", key, err.message);
                    free(constrained);
                    free(sampled);
                    free(schema);
                    free(lg.mask.us);
                    free(lg.apply.us);
                    fprintf(points, ",\"status\":\"error\"}\n");
                    rc = st == ST_E_CANCELLED ? 130 : 1;
                    break;
                }
                n_ok++;
                fprintf(points, ",\"status\":\"ok\",\"schema_ms\":%.3f,\"grammar_ms\":%.3f,"
                                "\"trie_ms\":%.3f,\"tokens\":%u,\"ended\":%s,\"decode_s\":%.6f,"
                                "\"free_tokens\":%u,\"free_decode_s\":%.6f,\"output\":",
                        lg.schema_ms, lg.grammar_ms, lg.trie_ms, cs.n_generated,
                        cs.stopped_by_eos ? "true" : "false", cs.decode_s, fs.n_generated,
                        fs.decode_s);
                st_json_write_escaped(points, constrained, strlen(constrained));
                times_write(points, "mask_us", &lg.mask);
                times_write(points, "apply_us", &lg.apply);
                if (samples)
                    fprintf(points, ",\"temperature\":%g,\"samples\":[%s]", temperature,
                            sampled ? sampled : "");
                fprintf(points, "}\n");
                free(sampled);
                free(constrained);
            }
            fflush(points);
            free(lg.mask.us);
            free(lg.apply.us);
            free(schema);
            st_progress_show(&pr);
        }
        st_cli_dir_list_free(files, n);
    }
    st_cli_cancel_on_sigint(NULL);
    st_progress_end(&pr);
    fclose(points);
    remove(tmp_manifest);
    remove(tmp_sampled);
    free(existing);
    free(out.s);
    st_cli_dir_list_free(subsets, n_subsets);
    st_engine_close(base);
    fprintf(stderr, "stretch eval jsonschema: %d compiled, %d refused this run (%zu resumed); "
                    "points in %s/points.jsonl\n", n_ok, n_refused, pr.skipped, out_dir);
    return rc;
}
