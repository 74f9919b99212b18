/*
 * tools/maskbench/compile_all.c - `st-maskbench --compile-only`: declared
 * coverage of a whole schema folder without opening an engine per schema.
 *
 * `stretch eval jsonschema --compile-only` opens a strategy (model, trie)
 * for every schema, a quarter of a second each on this machine, which is
 * most of an hour for JSONSchemaBench's 8,619 schemas. This does what the
 * json-schema sampler's create does (cg_open.c, cg_constraint.c: schema to
 * GBNF under strict, compact whitespace; GBNF to grammar; a parser; the
 * first mask must allow some token) with one token trie for all schemas,
 * and writes the eval's points format, so tools/jsonschema_report.py and
 * tools/jsonschema_peers.py --stretch read it unchanged.
 */
#define _POSIX_C_SOURCE 200809L
#include "compile_all.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_schema.h"
#include "dir_list.h"

static void write_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

char *mb_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* One schema: true when it compiles; else `why` says what refused it. */
static bool compile_one(const cg_vocab *v, const char *text, size_t len, double *schema_ms,
                        double *grammar_ms, char *why, size_t why_cap)
{
    cg_schema_options opt = {.strict = true, .compact = true};
    cg_buf gbnf = {0}, warn = {0};
    cg_error err;
    double t0 = cg_now_s();
    bool ok = cg_schema_to_gbnf(text, len, &opt, &gbnf, &warn, &err);
    double t1 = cg_now_s();
    *schema_ms = (t1 - t0) * 1e3;
    *grammar_ms = 0;
    if (!ok) {
        snprintf(why, why_cap, "%s", err.message);
    } else if (gbnf.oom) {
        snprintf(why, why_cap, "out of memory");
        ok = false;
    }
    cg_grammar g;
    cg_grammar_init(&g);
    if (ok && !cg_gbnf_parse(&g, gbnf.s, gbnf.n, &err)) {
        snprintf(why, why_cap, "%s", err.message);
        ok = false;
    }
    *grammar_ms = ok ? (cg_now_s() - t1) * 1e3 : 0;
    cg_parser *p = ok ? cg_parser_new(&g) : NULL;
    cg_masker *m = p ? cg_masker_new(v, p) : NULL;
    if (ok && !m) {
        snprintf(why, why_cap, "out of memory building the parser");
        ok = false;
    }
    if (ok) {
        uint32_t start = cg_parser_start(p);
        const uint8_t *mask = start ? cg_masker_get(m, start) : NULL;
        bool any = false;
        for (size_t i = 0; mask && !any && i < ((size_t)cg_vocab_size(v) + 7) / 8; i++)
            any = mask[i] != 0;
        if (!any) {
            snprintf(why, why_cap, "no token of the vocabulary can start this grammar");
            ok = false;
        }
    }
    cg_masker_free(m);
    cg_parser_free(p);
    cg_grammar_free(&g);
    cg_buf_free(&gbnf);
    cg_buf_free(&warn);
    return ok;
}

int mb_compile_all(const cg_vocab *v, const char *data_dir, const char *subset, long limit,
                   FILE *out)
{
    size_t n_sub = 0;
    char **subs = subset ? NULL : st_cli_dir_list(data_dir, NULL, &n_sub);
    if (subset) {
        subs = malloc(sizeof *subs);
        if (!subs || !(subs[0] = strdup(subset))) {
            free(subs);
            return 1;
        }
        n_sub = 1;
    }
    if (!n_sub) {
        fprintf(stderr, "st-maskbench: %s has no subset folders\n", data_dir);
        st_cli_dir_list_free(subs, n_sub);
        return 2;
    }
    fprintf(out, "{\"points\":\"jsonschema\",\"version\":1,\"compile_only\":\"st-maskbench\"}\n");
    size_t n_ok = 0, n_refused = 0;
    for (size_t s = 0; s < n_sub; s++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", data_dir, subs[s]);
        size_t n = 0;
        char **files = st_cli_dir_list(dir, ".json", &n);
        for (size_t i = 0; i < n && (limit < 0 || (long)i < limit); i++) {
            char path[8200], why[600];
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            size_t len = 0;
            char *text = mb_read_file(path, &len);
            double sms = 0, gms = 0;
            bool ok = false;
            if (!text)
                snprintf(why, sizeof why, "cannot read %.500s", path);
            else
                ok = compile_one(v, text, len, &sms, &gms, why, sizeof why);
            free(text);
            char key[8200];
            snprintf(key, sizeof key, "%s/%s", subs[s], files[i]);
            fprintf(out, "{\"file\":");
            write_json_string(out, key);
            fprintf(out, ",\"subset\":");
            write_json_string(out, subs[s]);
            if (ok) {
                n_ok++;
                fprintf(out, ",\"status\":\"ok\",\"schema_ms\":%.3f,\"grammar_ms\":%.3f}\n",
                        sms, gms);
            } else {
                n_refused++;
                fprintf(out, ",\"status\":\"refused\",\"schema_ms\":%.3f,\"reason\":", sms);
                write_json_string(out, why);
                fprintf(out, "}\n");
            }
        }
        st_cli_dir_list_free(files, n);
        fprintf(stderr, "st-maskbench: %s done (%zu compiled, %zu refused so far)\n", subs[s],
                n_ok, n_refused);
    }
    st_cli_dir_list_free(subs, n_sub);
    return 0;
}
