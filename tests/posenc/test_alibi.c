/*
 * alibi: the head slopes of Press et al. 2022 (heads counted from 1, and the
 * closest-power-of-two rule for other head counts) and the bias matrix
 * -m_h * (q_pos - k_pos), against values written out here.
 */
#include "posenc_fixture.h"

/* The slope of head h (0-based) read back through bias(q = 1, k = 0). */
static double slope_of(const st_plugin_entry *e, void *p, uint32_t h)
{
    int32_t q = 1, k = 0;
    float b = 1.0f;
    st_error err = {0};
    cr_assert_eq(pe_ops(e)->bias(p, h, &q, 1, &k, 1, &b, &err), ST_OK, "%s", err.message);
    return -(double)b;
}

static void *alibi_with_heads(const st_plugin_entry *e, uint32_t H, st_test_params *prm)
{
    void *p = pe_create(e, prm);
    st_model_shape s = pe_shape();
    s.n_heads = H;
    s.n_kv_heads = 1;
    st_posenc_desc d = pe_configure(e, p, &s);
    cr_assert_eq(d.flags, ST_POSENC_SLOPES, "alibi must only bias, by slopes as data");
    cr_assert_eq(d.n_slopes, H);
    cr_assert_not_null(d.slopes);
    /* The data slopes are what the bias op applies. */
    for (uint32_t h = 0; h < H; h++)
        cr_assert_float_eq(d.slopes[h], (float)slope_of(e, p, h), 1e-7f * d.slopes[h]);
    cr_assert_eq(d.n_freq, 0u);
    cr_assert_null(d.inv_freq);
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);
    cr_assert_float_eq(d.attn_temperature, 1.0f, 0.0f);
    return p;
}

Test(alibi, slopes_for_8_heads)
{
    const st_plugin_entry *e = pe_entry("alibi");
    void *p = alibi_with_heads(e, 8, NULL);
    /* The paper: 1/2, 1/4, ..., 1/256 for 8 heads. */
    for (uint32_t h = 0; h < 8; h++) {
        double want = 1.0 / (double)(2u << h);
        cr_assert(pe_close((float)slope_of(e, p, h), want), "head %u: %.9g, expected %.9g", h,
                  slope_of(e, p, h), want);
    }
    e->destroy(p);
    pe_assert_no_leak();
}

Test(alibi, slopes_for_9_and_12_heads)
{
    const st_plugin_entry *e = pe_entry("alibi");
    /* 9 heads: the 8 slopes of 8 heads, then the first odd-numbered slope
     * of 16 heads (2^(-8/16) = 2^-0.5). */
    void *p = alibi_with_heads(e, 9, NULL);
    double want9[9] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625,
                       0.70710678118654752};
    for (uint32_t h = 0; h < 9; h++)
        cr_assert(pe_close((float)slope_of(e, p, h), want9[h]), "H=9 head %u: %.9g vs %.9g", h,
                  slope_of(e, p, h), want9[h]);
    e->destroy(p);
    /* 12 heads: 8 slopes of 8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5. */
    p = alibi_with_heads(e, 12, NULL);
    for (uint32_t h = 0; h < 12; h++) {
        double want = h < 8 ? pow(2.0, -(double)(h + 1)) : pow(2.0, -0.5 - (double)(h - 8));
        cr_assert(pe_close((float)slope_of(e, p, h), want), "H=12 head %u", h);
    }
    e->destroy(p);
    /* One head: 2^-8. */
    p = alibi_with_heads(e, 1, NULL);
    cr_assert(pe_close((float)slope_of(e, p, 0), 1.0 / 256.0));
    e->destroy(p);
    pe_assert_no_leak();
}

Test(alibi, max_bias_param)
{
    const st_plugin_entry *e = pe_entry("alibi");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, "max_bias", 4.0);
    void *p = alibi_with_heads(e, 4, &prm);
    for (uint32_t h = 0; h < 4; h++)
        cr_assert(pe_close((float)slope_of(e, p, h), pow(2.0, -4.0 * (h + 1) / 4.0)));
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

Test(alibi, bias_matrix)
{
    const st_plugin_entry *e = pe_entry("alibi");
    void *p = alibi_with_heads(e, 8, NULL);
    int32_t q[3] = {5, 6, 70000};
    int32_t k[5] = {0, 3, 5, 6, 69999};
    float out[15];
    memset(out, 0xff, sizeof out);
    st_error err = {0};
    /* Head index 2 is the third head: m = 2^-3. */
    cr_assert_eq(pe_ops(e)->bias(p, 2, q, 3, k, 5, out, &err), ST_OK, "%s", err.message);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 5; j++) {
            double want = -0.125 * ((double)q[i] - (double)k[j]);
            cr_assert(pe_close(out[i * 5 + j], want), "[%d][%d] = %.9g, expected %.9g", i, j,
                      (double)out[i * 5 + j], want);
        }
    cr_assert_float_eq(out[0], -0.625f, 0.0f);
    cr_assert_float_eq(out[2], 0.0f, 0.0f);
    /* Empty sets are fine. */
    cr_assert_eq(pe_ops(e)->bias(p, 0, q, 0, k, 0, out, &err), ST_OK);
    /* A head beyond the model's is refused. */
    cr_assert_eq(pe_ops(e)->bias(p, 8, q, 3, k, 5, out, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "head") != NULL, "%s", err.message);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(alibi, refusals)
{
    const st_plugin_entry *e = pe_entry("alibi");
    /* bias before configure */
    void *p = pe_create(e, NULL);
    int32_t q = 1, k = 0;
    float b;
    st_error err = {0};
    cr_assert_neq(pe_ops(e)->bias(p, 0, &q, 1, &k, 1, &b, &err), ST_OK);
    cr_assert(err.message[0]);
    /* no heads */
    st_model_shape s = pe_shape();
    s.n_heads = 0;
    st_posenc_desc d = {0};
    cr_assert_neq(pe_ops(e)->configure(p, &s, &d, &err), ST_OK);
    e->destroy(p);
    /* bad max_bias */
    double bad[] = {0.0, -8.0, 65.0};
    for (int i = 0; i < 3; i++) {
        st_test_params prm;
        st_test_params_init(&prm);
        st_test_params_float(&prm, "max_bias", bad[i]);
        pe_create_fails(e, &prm, ST_E_RANGE);
        st_test_params_destroy(&prm);
    }
    /* A RoPE-less model is fine: ALiBi does not rotate. */
    p = pe_create(e, NULL);
    s = pe_shape();
    s.rope_dims = 0;
    pe_configure(e, p, &s);
    e->destroy(p);
    pe_assert_no_leak();
}
