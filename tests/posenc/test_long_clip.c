/*
 * long-clip: knowledge-preserved stretching of an absolute position table.
 * The input table has row i = (i, 2i, -i), so every output row is a
 * checkable number: slot j holds j for j < keep and keep + (j - keep) / ratio
 * after, extrapolation included.
 */
#include <stddef.h>
#include <stdlib.h>

#include "posenc_fixture.h"

#define DIM 3

static float *ramp_table(uint32_t rows)
{
    float *t = malloc((size_t)rows * DIM * sizeof *t);
    cr_assert_not_null(t);
    for (uint32_t i = 0; i < rows; i++) {
        t[i * DIM + 0] = (float)i;
        t[i * DIM + 1] = 2.0f * (float)i;
        t[i * DIM + 2] = -(float)i;
    }
    return t;
}

static void assert_row(const float *out, uint32_t j, double v)
{
    cr_assert_float_eq(out[j * DIM + 0], (float)v, 0.0f, "slot %u col 0: %.9g, expected %.9g", j,
                       (double)out[j * DIM + 0], v);
    cr_assert_float_eq(out[j * DIM + 1], (float)(2.0 * v), 0.0f, "slot %u col 1", j);
    cr_assert_float_eq(out[j * DIM + 2], (float)-v, 0.0f, "slot %u col 2", j);
}

Test(long_clip, clip_77_to_248)
{
    const st_plugin_entry *e = pe_entry("long-clip");
    void *p = pe_create(e, NULL);
    st_model_shape s = pe_shape();
    s.n_pos_rows = 77; /* a model with a learned table, as CLIP's text encoder */
    st_posenc_desc d = pe_configure(e, p, &s);
    cr_assert_eq(d.flags, 0u, "long-clip rotates nothing: the host adds the stretched rows");
    cr_assert_eq(d.n_freq, 0u);
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);

    float *in = ramp_table(77);
    float out[300 * DIM];
    memset(out, 0xff, sizeof out);
    uint32_t n = 0;
    st_error err = {0};
    cr_assert_eq(pe_ops(e)->stretch_table(p, in, 77, DIM, out, 300, &n, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(n, 248u);
    /* The first 20 rows are kept. */
    for (uint32_t j = 0; j < 20; j++)
        assert_row(out, j, j);
    /* Row i >= 20 at 4(i - 20) + 20, gaps blended 3/4-1/4, 1/2-1/2, 1/4-3/4. */
    for (uint32_t i = 20; i < 76; i++) {
        uint32_t at = 4 * (i - 20) + 20;
        assert_row(out, at, i);
        assert_row(out, at + 1, 0.75 * i + 0.25 * (i + 1));
        assert_row(out, at + 2, 0.5 * i + 0.5 * (i + 1));
        assert_row(out, at + 3, 0.25 * i + 0.75 * (i + 1));
    }
    /* The last row at 244, then the tail extrapolates the last step. */
    assert_row(out, 244, 76);
    assert_row(out, 245, 76.25);
    assert_row(out, 246, 76.5);
    assert_row(out, 247, 76.75);
    /* And the closed form for every slot. */
    for (uint32_t j = 0; j < 248; j++)
        assert_row(out, j, j < 20 ? j : 20.0 + (j - 20) / 4.0);
    /* Nothing written past row 248. */
    uint32_t untouched;
    memset(&untouched, 0xff, sizeof untouched);
    cr_assert_eq(memcmp(&out[248 * DIM], &untouched, sizeof untouched), 0);
    free(in);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(long_clip, blends_non_linear_rows)
{
    /* A table that is not a ramp, so blending and extrapolation are seen
     * for what they are: rows 0, 10, 30 with keep 1, ratio 4. */
    const st_plugin_entry *e = pe_entry("long-clip");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_int(&prm, "keep", 1);
    void *p = pe_create(e, &prm);
    float in[3] = {0.0f, 10.0f, 30.0f};
    float out[16];
    uint32_t n = 0;
    st_error err = {0};
    cr_assert_eq(pe_ops(e)->stretch_table(p, in, 3, 1, out, 16, &n, &err), ST_OK, "%s", err.message);
    cr_assert_eq(n, 9u);
    float want[9] = {0.0f, 10.0f, 15.0f, 20.0f, 25.0f, 30.0f, 35.0f, 40.0f, 45.0f};
    for (int j = 0; j < 9; j++)
        cr_assert_float_eq(out[j], want[j], 0.0f, "slot %d: %g, expected %g", j, (double)out[j],
                           (double)want[j]);
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

Test(long_clip, params_and_small_tables)
{
    const st_plugin_entry *e = pe_entry("long-clip");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_int(&prm, "keep", 0);
    st_test_params_int(&prm, "ratio", 2);
    void *p = pe_create(e, &prm);
    float *in = ramp_table(3);
    float out[20 * DIM];
    uint32_t n = 0;
    st_error err = {0};
    cr_assert_eq(pe_ops(e)->stretch_table(p, in, 3, DIM, out, 20, &n, &err), ST_OK);
    cr_assert_eq(n, 6u);
    for (uint32_t j = 0; j < 6; j++)
        assert_row(out, j, j / 2.0);
    /* A table no longer than keep (here 20 by default) is copied as is. */
    e->destroy(p);
    st_test_params_destroy(&prm);
    p = pe_create(e, NULL);
    free(in);
    in = ramp_table(20);
    cr_assert_eq(pe_ops(e)->stretch_table(p, in, 20, DIM, out, 20, &n, &err), ST_OK);
    cr_assert_eq(n, 20u);
    for (uint32_t j = 0; j < 20; j++)
        assert_row(out, j, j);
    /* An empty table stretches to nothing. */
    cr_assert_eq(pe_ops(e)->stretch_table(p, in, 0, DIM, out, 0, &n, &err), ST_OK);
    cr_assert_eq(n, 0u);
    free(in);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(long_clip, short_output_reports_the_need)
{
    const st_plugin_entry *e = pe_entry("long-clip");
    void *p = pe_create(e, NULL);
    float *in = ramp_table(77);
    float out[247 * DIM];
    uint32_t n = 0;
    st_error err = {0};
    cr_assert_eq(pe_ops(e)->stretch_table(p, in, 77, DIM, out, 247, &n, &err), ST_E_RANGE);
    cr_assert_eq(n, 248u, "the exact need is reported");
    cr_assert(strstr(err.message, "248") != NULL, "%s", err.message);
    cr_assert_eq(pe_ops(e)->stretch_table(p, NULL, 77, DIM, out, 247, &n, &err), ST_E_INVALID);
    cr_assert_eq(pe_ops(e)->stretch_table(p, in, 77, 0, out, 247, &n, &err), ST_E_INVALID);
    free(in);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(long_clip, nonsense_params_refused)
{
    const st_plugin_entry *e = pe_entry("long-clip");
    struct { const char *key; int64_t v; } bad[] = {{"keep", -1}, {"ratio", 0}, {"ratio", 5000}};
    for (int i = 0; i < 3; i++) {
        st_test_params prm;
        st_test_params_init(&prm);
        st_test_params_int(&prm, bad[i].key, bad[i].v);
        pe_create_fails(e, &prm, ST_E_RANGE);
        st_test_params_destroy(&prm);
    }
}

/* A model without a learned table (SmolLM2: RoPE) has nothing to stretch:
 * configure says so rather than running it as NoPE. A host older than ABI
 * 1.1 (a shorter shape) is not refused. */
Test(long_clip, refuses_a_model_without_a_table)
{
    const st_plugin_entry *e = pe_entry("long-clip");
    void *p = pe_create(e, NULL);
    st_model_shape s = pe_shape();
    st_posenc_desc d;
    st_error err = {0};
    cr_assert_eq(pe_ops(e)->configure(p, &s, &d, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "no learned absolute position table") &&
                  strstr(err.message, "RoPE"),
              "%s", err.message);
    s.struct_size = (uint32_t)offsetof(st_model_shape, n_pos_rows);
    cr_assert_eq(pe_ops(e)->configure(p, &s, &d, &err), ST_OK, "%s", err.message);
    e->destroy(p);
}
