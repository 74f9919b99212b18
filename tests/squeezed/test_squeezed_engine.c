/*
 * squeezed end to end on a tiny generated model through the public engine
 * API: keeping every cluster scores exactly like dense attention; keeping
 * 30% of them changes the scores after the fixed context, but only a little.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stretch/stretch.h>

#include "tiny_model.h"

enum { FIXED = 96, N_TOK = 160, CHUNK = 16 };

static char dir[256];
static char model_path[300];

static void make_model(void)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 256;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_squeezed_engine", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

TestSuite(squeezed_engine, .init = make_model, .fini = cleanup, .timeout = 120);

static st_engine *open_with(const char *attention)
{
    char path[300];
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "format: 1\nmodel: %s\ncontext: 256\nthreads: 2\n"
            "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
            "attention: %s\nsamplers:\n  - plugin: greedy\n",
            model_path, attention);
    fclose(f);
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(path, NULL, &e, &err), ST_OK, "open failed: %s", err.message);
    return e;
}

static const char text[] =
    "The lighthouse keeper wrote every evening in a thick notebook: the wind, the colour "
    "of the sea, the ships that passed and the birds that rested on the rail. int main(void) "
    "{ for (int i = 0; i < 10; i++) printf(\"%d\\n\", i); return 0; } Years later his "
    "grand-daughter found the notebooks in a box under the stairs and read them aloud, one "
    "page a night, until the whole family knew the names of the ships by heart. The quick "
    "brown fox jumps over the lazy dog while the code compiles and the tests run again.";

/* nll of the first N_TOK tokens of `text` under `attention`. */
static void score(const char *attention, float *nll)
{
    st_engine *e = open_with(attention);
    int32_t *ids;
    size_t n;
    st_error err = {0};
    cr_assert_eq(st_engine_tokenize(e, text, strlen(text), 0, &ids, &n, &err), ST_OK, "%s",
                 err.message);
    cr_assert_geq(n, N_TOK, "the text gives only %zu tokens", n);
    cr_assert_eq(st_engine_score(e, ids, N_TOK, CHUNK, nll, NULL, NULL, &err), ST_OK, "%s",
                 err.message);
    st_free(ids);
    st_engine_close(e);
}

static double mean_after_fixed(const float *nll)
{
    double s = 0;
    for (int t = FIXED; t < N_TOK; t++)
        s += nll[t];
    return s / (N_TOK - FIXED);
}

#define SQ(extra)                                                                         \
    "{plugin: squeezed, params: {fixed_len: 96, observation: 16, cluster_fraction: 0.1, " \
    extra "}}"

Test(squeezed_engine, keep_all_equals_dense)
{
    static float dense[N_TOK], sq[N_TOK], sq2[N_TOK], sq3[N_TOK];
    score("{plugin: dense}", dense);
    score(SQ("mode: fraction, keep_fraction: 1.0, rotary: true"), sq3);
    score(SQ("mode: fraction, keep_fraction: 1.0"), sq);
    score(SQ("mode: fraction, keep_fraction: 1.0, levels: 2, coarse_keep_fraction: 1.0"), sq2);
    for (int t = 1; t < N_TOK; t++) {
        cr_assert(fabsf(dense[t] - sq[t]) < 1e-3f, "token %d: dense %f squeezed %f", t,
                  dense[t], sq[t]);
        cr_assert(fabsf(dense[t] - sq2[t]) < 1e-3f, "token %d: dense %f hierarchical %f", t,
                  dense[t], sq2[t]);
        cr_assert(fabsf(dense[t] - sq3[t]) < 1e-3f, "token %d: dense %f rotary %f", t,
                  dense[t], sq3[t]);
    }
}

Test(squeezed_engine, keeping_30_percent_is_close)
{
    static float dense[N_TOK], sq[N_TOK], thr[N_TOK];
    score("{plugin: dense}", dense);
    score(SQ("mode: fraction, keep_fraction: 0.3"), sq);
    score(SQ("mode: threshold, quantile: 0.7"), thr);
    static float rot[N_TOK], none[N_TOK];
    score(SQ("mode: fraction, keep_fraction: 0.3, rotary: true"), rot);
    score(SQ("mode: fraction, keep_fraction: 0.0"), none);
    double max_diff = 0, dev_sq = 0, dev_none = 0;
    for (int t = 1; t < N_TOK; t++) {
        cr_assert(isfinite(sq[t]) && sq[t] > 0.0f, "token %d: %f", t, sq[t]);
        cr_assert(isfinite(thr[t]) && thr[t] > 0.0f, "token %d: %f", t, thr[t]);
        cr_assert(isfinite(rot[t]) && rot[t] > 0.0f, "token %d: %f", t, rot[t]);
        if (t <= FIXED) /* the fixed context itself is read densely */
            cr_assert(fabsf(dense[t] - sq[t]) < 1e-3f, "token %d", t);
        if (t >= FIXED) {
            dev_sq += fabs(dense[t] - sq[t]);
            dev_none += fabs(dense[t] - none[t]);
        }
        if (fabs(dense[t] - sq[t]) > max_diff)
            max_diff = fabs(dense[t] - sq[t]);
    }
    double md = mean_after_fixed(dense), ms = mean_after_fixed(sq), mt = mean_after_fixed(thr);
    cr_log_info("mean nll after the fixed context: dense %.4f, 30%% clusters %.4f, "
                "threshold %.4f; largest token difference %.4f; mean |nll - dense| with 30%% "
                "of the clusters %.4f, with none %.4f", md, ms, mt, max_diff,
                dev_sq / (N_TOK - FIXED), dev_none / (N_TOK - FIXED));
    cr_assert_gt(max_diff, 1e-5, "keeping 30%% of the clusters changed nothing");
    /* The clusters chosen matter: reading the best 30% is closer to dense
     * than reading none of the clustered keys. */
    cr_assert_lt(dev_sq, dev_none, "30%%: %f, none: %f", dev_sq, dev_none);
    cr_assert(fabs(ms - md) < 0.05 * md, "dense %f, squeezed %f", md, ms);
    cr_assert(fabs(mt - md) < 0.05 * md, "dense %f, threshold %f", md, mt);
    double mr = mean_after_fixed(rot);
    cr_assert(fabs(mr - md) < 0.05 * md, "dense %f, rotary %f", md, mr);
}
