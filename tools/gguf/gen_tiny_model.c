/*
 * st-gen-tiny-model - write a tiny random-weight llama GGUF shaped like
 * SmolLM2's (see tests/support/tiny_model.h and docs/gguf.md), or with
 * --bert the tiny BERT sentence encoder of tests/support/tiny_bert.h.
 */
#include "tiny_bert.h"
#include "tiny_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: st-gen-tiny-model --out FILE [options]\n"
            "  --type T        matrix weight type: f32 f16 q4_0 q4_1 q8_0 (default f32)\n"
            "  --embd-type T   token_embd/output type (default q8_0)\n"
            "  --seed N        random seed (default 1)\n"
            "  --layers N      (default 2)     --embd N     (default 64)\n"
            "  --heads N       (default 4)     --kv-heads N (default 2)\n"
            "  --ffn N         (default 128)   --ctx N      (default 128)\n"
            "  --vocab N       259 + BPE merges wanted (default 459)\n"
            "  --tied          no output.weight (default)\n"
            "  --untied        write an output.weight\n"
            "  --pos-table N   write a learned position table of N rows (default 0: none)\n"
            "  --bert          a tiny BERT sentence encoder instead (a WordPiece vocabulary\n"
            "                  of English words; --seed, and --type f32 or q8_0, apply)\n");
}

static int parse_type(const char *s, st_ggml_type *t)
{
    static const struct { const char *n; st_ggml_type t; } types[] = {
        {"f32", ST_GGML_F32}, {"f16", ST_GGML_F16}, {"q4_0", ST_GGML_Q4_0},
        {"q4_1", ST_GGML_Q4_1}, {"q8_0", ST_GGML_Q8_0}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(s, types[i].n) == 0) {
            *t = types[i].t;
            return 0;
        }
    return -1;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    const char *out = NULL;
    bool bert = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--tied") == 0) { spec.tied = true; continue; }
        if (strcmp(a, "--untied") == 0) { spec.tied = false; continue; }
        if (strcmp(a, "--bert") == 0) { bert = true; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "st-gen-tiny-model: %s: missing value (expected an argument after it)\n", a);
            return 2;
        }
        const char *val = argv[++i];
        uint64_t n = 0;
        int bad = 0;
        if (strcmp(a, "--out") == 0) out = val;
        else if (strcmp(a, "--type") == 0) bad = parse_type(val, &spec.type);
        else if (strcmp(a, "--embd-type") == 0) bad = parse_type(val, &spec.embd_type);
        else if (strcmp(a, "--seed") == 0) { bad = parse_u64(val, UINT64_MAX, &n); spec.seed = n; }
        else if (strcmp(a, "--layers") == 0) { bad = parse_u64(val, UINT32_MAX, &n); spec.n_layers = (uint32_t)n; }
        else if (strcmp(a, "--embd") == 0) { bad = parse_u64(val, UINT32_MAX, &n); spec.n_embd = (uint32_t)n; }
        else if (strcmp(a, "--heads") == 0) { bad = parse_u64(val, UINT32_MAX, &n); spec.n_heads = (uint32_t)n; }
        else if (strcmp(a, "--kv-heads") == 0) { bad = parse_u64(val, UINT32_MAX, &n); spec.n_kv_heads = (uint32_t)n; }
        else if (strcmp(a, "--ffn") == 0) { bad = parse_u64(val, UINT32_MAX, &n); spec.n_ff = (uint32_t)n; }
        else if (strcmp(a, "--ctx") == 0) { bad = parse_u64(val, UINT32_MAX, &n); spec.n_ctx = (uint32_t)n; }
        else if (strcmp(a, "--pos-table") == 0) { bad = parse_u64(val, 1u << 20, &n); spec.n_pos_table = (uint32_t)n; }
        else if (strcmp(a, "--vocab") == 0) { bad = parse_u64(val, UINT32_MAX, &n); spec.n_vocab = (uint32_t)n; }
        else {
            fprintf(stderr, "st-gen-tiny-model: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "st-gen-tiny-model: %s: bad value '%s'%s\n", a, val,
                    strstr(a, "type") ? " (expected f32, f16, q4_0, q4_1 or q8_0)"
                                      : " (expected a non-negative integer)");
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "st-gen-tiny-model: --out FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (bert) {
        if (spec.type != ST_GGML_F32 && spec.type != ST_GGML_Q8_0) {
            fprintf(stderr, "st-gen-tiny-model: --bert: --type must be f32 or q8_0\n");
            return 2;
        }
        if (tb_write_typed(out, (uint32_t)spec.seed, NULL, NULL, spec.type) != ST_OK) {
            fprintf(stderr, "st-gen-tiny-model: cannot write %s\n", out);
            return 1;
        }
        return 0;
    }
    st_diag d;
    st_diag_clear(&d);
    if (st_gen_tiny_model(&spec, out, &d) != ST_OK) {
        char buf[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 32];
        fprintf(stderr, "st-gen-tiny-model: %s\n", st_diag_format(&d, buf, sizeof buf));
        return 1;
    }
    return 0;
}
