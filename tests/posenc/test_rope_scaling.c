/*
 * The RoPE-scaling plugins (linear, ntk, dynamic-ntk, yarn, giraffe) against
 * their formulas in METHODS.md, computed here in double precision on the
 * SmolLM2-like shape: d = 64, base = 100000, L = 8192.
 */
#include "posenc_fixture.h"

#define D 64
#define NF (D / 2)
#define BASE 100000.0
#define LTRAIN 8192.0

/* theta_i = base^(-2i/d), the trained frequencies. */
static void theta(double base, double *out)
{
    for (int i = 0; i < NF; i++)
        out[i] = pow(base, -2.0 * i / D);
}

/* ---------------- linear (position interpolation) ---------------- */

Test(linear, default_scale_divides_every_frequency_by_4)
{
    const st_plugin_entry *e = pe_entry("linear");
    void *p = pe_create(e, NULL);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double want[NF];
    theta(BASE, want);
    for (int i = 0; i < NF; i++)
        want[i] /= 4.0;
    pe_assert_table(&d, want, NF, "linear s=4");
    cr_assert_eq(d.flags, ST_POSENC_ROTARY);
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);
    cr_assert_float_eq(d.attn_temperature, 1.0f, 0.0f);
    cr_assert_null(pe_ops(e)->update, "position interpolation is static");
    e->destroy(p);
    pe_assert_no_leak();
}

Test(linear, scale_and_base_params)
{
    const st_plugin_entry *e = pe_entry("linear");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, "scale", 2.5);
    st_test_params_float(&prm, "base", 10000.0);
    void *p = pe_create(e, &prm);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double want[NF];
    theta(10000.0, want);
    for (int i = 0; i < NF; i++)
        want[i] /= 2.5;
    pe_assert_table(&d, want, NF, "linear s=2.5 base=1e4");
    /* Scale 1 is the model's own table. */
    e->destroy(p);
    st_test_params_destroy(&prm);
    st_test_params_init(&prm);
    st_test_params_float(&prm, "scale", 1.0);
    p = pe_create(e, &prm);
    d = pe_configure(e, p, &s);
    theta(BASE, want);
    pe_assert_table(&d, want, NF, "linear s=1");
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

/* ---------------- ntk (NTK-aware) ---------------- */

Test(ntk, default_alpha_raises_the_base)
{
    const st_plugin_entry *e = pe_entry("ntk");
    void *p = pe_create(e, NULL);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double base2 = BASE * pow(4.0, (double)D / (D - 2));
    double want[NF];
    theta(base2, want);
    pe_assert_table(&d, want, NF, "ntk alpha=4");
    /* The property the exponent is chosen for: the slowest pair is alpha
     * times slower, the fastest unchanged. */
    cr_assert(pe_close(d.inv_freq[NF - 1], pow(BASE, -2.0 * (NF - 1) / D) / 4.0));
    cr_assert_float_eq(d.inv_freq[0], 1.0f, 0.0f);
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(ntk, alpha_param)
{
    const st_plugin_entry *e = pe_entry("ntk");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, "alpha", 8.0);
    void *p = pe_create(e, &prm);
    st_model_shape s = pe_shape();
    s.rope_dims = 32; /* partial rotary: d = 32 */
    st_posenc_desc d = pe_configure(e, p, &s);
    double want[16];
    double base2 = BASE * pow(8.0, 32.0 / 30.0);
    for (int i = 0; i < 16; i++)
        want[i] = pow(base2, -2.0 * i / 32.0);
    pe_assert_table(&d, want, 16, "ntk alpha=8 d=32");
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

/* ---------------- dynamic-ntk ---------------- */

/* alpha = max(1, s * len / L - (s - 1)), capped; base' = base alpha^(d/(d-2)). */
static void dyn_want(double s, double cap, double len, double *out)
{
    double alpha = s * len / LTRAIN - (s - 1.0);
    if (alpha < 1.0)
        alpha = 1.0;
    if (cap > 0.0 && alpha > cap)
        alpha = cap;
    theta(BASE * pow(alpha, (double)D / (D - 2)), out);
}

static st_posenc_desc dyn_update(const st_plugin_entry *e, void *p, uint32_t len, bool *changed)
{
    st_posenc_desc d;
    memset(&d, 0, sizeof d);
    st_error err = {0};
    *changed = false;
    cr_assert_eq(pe_ops(e)->update(p, len, &d, changed, &err), ST_OK, "update(%u): %s", len,
                 err.message);
    return d;
}

Test(dynamic_ntk, follows_the_length)
{
    const st_plugin_entry *e = pe_entry("dynamic-ntk");
    cr_assert_not_null(pe_ops(e)->update);
    void *p = pe_create(e, NULL);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double want[NF];
    theta(BASE, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk at configure");

    bool changed;
    /* 0.5 L and L: still the trained table, nothing changes. */
    d = dyn_update(e, p, 4096, &changed);
    cr_assert_not(changed, "0.5L changed the table");
    pe_assert_table(&d, want, NF, "dynamic-ntk 0.5L");
    d = dyn_update(e, p, 8192, &changed);
    cr_assert_not(changed, "L changed the table");
    pe_assert_table(&d, want, NF, "dynamic-ntk L");
    /* 2 L: alpha 2. */
    d = dyn_update(e, p, 16384, &changed);
    cr_assert(changed, "2L did not change the table");
    dyn_want(1.0, 0.0, 16384, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk 2L");
    d = dyn_update(e, p, 16384, &changed);
    cr_assert_not(changed, "the same length changed the table again");
    pe_assert_table(&d, want, NF, "dynamic-ntk 2L again");
    /* 4 L: alpha 4, the static ntk default. */
    d = dyn_update(e, p, 32768, &changed);
    cr_assert(changed);
    dyn_want(1.0, 0.0, 32768, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk 4L");
    double ntk4[NF];
    theta(BASE * pow(4.0, (double)D / (D - 2)), ntk4);
    for (int i = 0; i < NF; i++)
        cr_assert_eq(want[i], ntk4[i]);
    /* One token more: a new (slightly larger) base. */
    d = dyn_update(e, p, 32769, &changed);
    cr_assert(changed);
    dyn_want(1.0, 0.0, 32769, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk 4L+1");
    /* A new, short sequence: back to the trained table. */
    d = dyn_update(e, p, 100, &changed);
    cr_assert(changed, "shrinking back did not report a change");
    theta(BASE, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk back to short");
    e->destroy(p);
    pe_assert_no_leak();
}

Test(dynamic_ntk, hf_factor_and_cap)
{
    const st_plugin_entry *e = pe_entry("dynamic-ntk");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, "factor", 2.0);
    st_test_params_float(&prm, "max_alpha", 5.0);
    void *p = pe_create(e, &prm);
    st_model_shape s = pe_shape();
    pe_configure(e, p, &s);
    bool changed;
    double want[NF];
    uint32_t lens[] = {4096, 8192, 16384, 32768};
    st_posenc_desc d;
    for (int k = 0; k < 4; k++) {
        d = dyn_update(e, p, lens[k], &changed);
        dyn_want(2.0, 5.0, lens[k], want);
        pe_assert_table(&d, want, NF, "dynamic-ntk s=2 cap 5");
    }
    /* At 4L, 2*4 - 1 = 7 is capped to 5: the slowest pair is 5x slower. */
    cr_assert(pe_close(d.inv_freq[NF - 1], pow(BASE, -62.0 / 64) / 5.0));
    e->destroy(p);
    st_test_params_destroy(&prm);

    /* trained_length overrides L. */
    st_test_params_init(&prm);
    st_test_params_int(&prm, "trained_length", 2048);
    p = pe_create(e, &prm);
    pe_configure(e, p, &s);
    d = dyn_update(e, p, 8192, &changed);
    cr_assert(changed);
    theta(BASE * pow(4.0, (double)D / (D - 2)), want);
    pe_assert_table(&d, want, NF, "dynamic-ntk L=2048 at 8192");
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

Test(dynamic_ntk, step_rounds_the_length_up)
{
    const st_plugin_entry *e = pe_entry("dynamic-ntk");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_int(&prm, "step", 1024);
    void *p = pe_create(e, &prm);
    st_model_shape s = pe_shape();
    pe_configure(e, p, &s);
    bool changed;
    double want[NF];
    /* 8193 rounds up to 9216: alpha 9216 / 8192 = 1.125. */
    st_posenc_desc d = dyn_update(e, p, 8193, &changed);
    cr_assert(changed);
    dyn_want(1.0, 0.0, 9216, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk step 1024 at 8193");
    /* Up to 9216 nothing changes; 9217 moves to 10240. */
    d = dyn_update(e, p, 9000, &changed);
    cr_assert_not(changed);
    d = dyn_update(e, p, 9216, &changed);
    cr_assert_not(changed);
    d = dyn_update(e, p, 9217, &changed);
    cr_assert(changed);
    dyn_want(1.0, 0.0, 10240, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk step 1024 at 9217");
    /* Within L the step changes nothing. */
    d = dyn_update(e, p, 8192, &changed);
    cr_assert(changed);
    theta(BASE, want);
    pe_assert_table(&d, want, NF, "dynamic-ntk step 1024 at L");
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

Test(dynamic_ntk, update_before_configure_refused)
{
    const st_plugin_entry *e = pe_entry("dynamic-ntk");
    void *p = pe_create(e, NULL);
    st_posenc_desc d;
    bool changed = true;
    st_error err = {0};
    cr_assert_neq(pe_ops(e)->update(p, 100, &d, &changed, &err), ST_OK);
    cr_assert(err.message[0]);
    cr_assert_not(changed);
    e->destroy(p);
    pe_assert_no_leak();
}

/* ---------------- yarn ---------------- */

/* corr(n) = d ln(L / (2 pi n)) / (2 ln base). */
static double yarn_corr(double n)
{
    return D * log(LTRAIN / (2.0 * M_PI * n)) / (2.0 * log(BASE));
}

static void yarn_want(double s, double *out)
{
    double low = fmax(0.0, floor(yarn_corr(32.0)));
    double high = fmin(D - 1, ceil(yarn_corr(1.0)));
    for (int i = 0; i < NF; i++) {
        double th = pow(BASE, -2.0 * i / D);
        double t = (i - low) / fmax(0.001, high - low);
        double ramp = 1.0 - fmin(1.0, fmax(0.0, t));
        out[i] = th / s * (1.0 - ramp) + th * ramp;
    }
}

Test(yarn, defaults_ramp_and_mscale)
{
    /* The correction range for SmolLM2 by hand: corr(32) = 64 ln(8192 /
     * (64 pi)) / (2 ln 1e5) = 10.30 -> low 10; corr(1) = 19.94 -> high 20. */
    cr_assert_float_eq(floor(yarn_corr(32.0)), 10.0, 0.0);
    cr_assert_float_eq(ceil(yarn_corr(1.0)), 20.0, 0.0);

    const st_plugin_entry *e = pe_entry("yarn");
    void *p = pe_create(e, NULL);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double want[NF];
    yarn_want(4.0, want);
    pe_assert_table(&d, want, NF, "yarn defaults");
    /* Ramp boundaries: up to low the trained frequency, from high on
     * theta / 4, strictly between in between. */
    for (int i = 0; i < NF; i++) {
        double th = pow(BASE, -2.0 * i / D);
        if (i <= 10)
            cr_assert(pe_close(d.inv_freq[i], th), "pair %d should be extrapolated", i);
        else if (i >= 20)
            cr_assert(pe_close(d.inv_freq[i], th / 4.0), "pair %d should be interpolated", i);
        else
            cr_assert(d.inv_freq[i] < (float)th && d.inv_freq[i] > (float)(th / 4.0),
                      "pair %d should blend", i);
    }
    /* Pair 15 is halfway: theta (1/4 * 1/2 + 1/2). */
    cr_assert(pe_close(d.inv_freq[15], pow(BASE, -30.0 / D) * 0.625));
    cr_assert(pe_close(d.rotary_scale, 0.1 * log(4.0) + 1.0), "rotary_scale %.9g",
              (double)d.rotary_scale);
    cr_assert_float_eq(d.attn_temperature, 1.0f, 0.0f);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(yarn, mscale_off_attn_factor_and_scale)
{
    const st_plugin_entry *e = pe_entry("yarn");
    st_model_shape s = pe_shape();
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_bool(&prm, "mscale", false);
    void *p = pe_create(e, &prm);
    st_posenc_desc d = pe_configure(e, p, &s);
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);
    e->destroy(p);
    st_test_params_destroy(&prm);

    st_test_params_init(&prm);
    st_test_params_float(&prm, "attn_factor", 0.5);
    st_test_params_float(&prm, "scale", 16.0);
    p = pe_create(e, &prm);
    d = pe_configure(e, p, &s);
    cr_assert(pe_close(d.rotary_scale, 0.5 * (0.1 * log(16.0) + 1.0)));
    double want[NF];
    yarn_want(16.0, want);
    pe_assert_table(&d, want, NF, "yarn s=16");
    e->destroy(p);
    st_test_params_destroy(&prm);

    /* Scale 1: the trained table, no temperature. */
    st_test_params_init(&prm);
    st_test_params_float(&prm, "scale", 1.0);
    p = pe_create(e, &prm);
    d = pe_configure(e, p, &s);
    theta(BASE, want);
    pe_assert_table(&d, want, NF, "yarn s=1");
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

Test(yarn, custom_betas_and_trained_length)
{
    const st_plugin_entry *e = pe_entry("yarn");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, "beta_fast", 64.0);
    st_test_params_float(&prm, "beta_slow", 2.0);
    st_test_params_int(&prm, "trained_length", 2048);
    void *p = pe_create(e, &prm);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double corr_f = D * log(2048.0 / (2.0 * M_PI * 64.0)) / (2.0 * log(BASE));
    double corr_s = D * log(2048.0 / (2.0 * M_PI * 2.0)) / (2.0 * log(BASE));
    double low = fmax(0.0, floor(corr_f)), high = fmin(D - 1, ceil(corr_s));
    cr_assert_float_eq(low, 4.0, 0.0);
    cr_assert_float_eq(high, 15.0, 0.0);
    for (int i = 0; i < NF; i++) {
        double th = pow(BASE, -2.0 * i / D);
        double ramp = 1.0 - fmin(1.0, fmax(0.0, (i - low) / (high - low)));
        double w = th / 4.0 * (1.0 - ramp) + th * ramp;
        cr_assert(pe_close(d.inv_freq[i], w), "pair %d: %.9g vs %.9g", i, (double)d.inv_freq[i], w);
    }
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

/* ---------------- giraffe (truncated basis) ---------------- */

Test(giraffe, default_cutoffs)
{
    const st_plugin_entry *e = pe_entry("giraffe");
    void *p = pe_create(e, NULL);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double b = 2.0 * M_PI / LTRAIN, rho = 2.0 * M_PI / (16.0 * LTRAIN);
    double want[NF];
    int kept = 0, at_rho = 0, zero = 0;
    for (int i = 0; i < NF; i++) {
        double f = pow(BASE, -2.0 * i / D);
        if (f >= b) {
            want[i] = f;
            kept++;
        } else if (f >= b / 8.0) {
            want[i] = rho;
            at_rho++;
        } else {
            want[i] = 0.0;
            zero++;
        }
    }
    /* By hand: freq_i < b from i = 20 (19.94), < b/8 from i = 26 (25.7). */
    cr_assert_eq(kept, 20);
    cr_assert_eq(at_rho, 6);
    cr_assert_eq(zero, 6);
    pe_assert_table(&d, want, NF, "giraffe defaults");
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(giraffe, T_rho_low_ratio_params)
{
    const st_plugin_entry *e = pe_entry("giraffe");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, "T", 1000.0);
    st_test_params_float(&prm, "rho", 0.0001);
    st_test_params_float(&prm, "low_ratio", 0.5);
    void *p = pe_create(e, &prm);
    st_model_shape s = pe_shape();
    st_posenc_desc d = pe_configure(e, p, &s);
    double b = 2.0 * M_PI / 1000.0;
    double want[NF];
    for (int i = 0; i < NF; i++) {
        double f = pow(BASE, -2.0 * i / D);
        want[i] = f >= b ? f : f >= b * 0.5 ? 0.0001 : 0.0;
    }
    pe_assert_table(&d, want, NF, "giraffe T=1000");
    e->destroy(p);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}

/* ---------------- refusals common to the rotary plugins ---------------- */

static const char *const rotary[] = {"linear", "ntk", "dynamic-ntk", "yarn", "giraffe"};

static void configure_fails(const char *name, st_model_shape s, const char *why)
{
    const st_plugin_entry *e = pe_entry(name);
    void *p = pe_create(e, NULL);
    st_posenc_desc d = {0};
    st_error err = {0};
    st_status st = pe_ops(e)->configure(p, &s, &d, &err);
    cr_assert_neq(st, ST_OK, "%s accepted %s", name, why);
    cr_assert(strncmp(err.message, name, strlen(name)) == 0, "%s: message '%s' does not name it",
              name, err.message);
    e->destroy(p);
    pe_assert_no_leak();
}

Test(rotary_refusals, no_rope_dims)
{
    for (size_t k = 0; k < sizeof rotary / sizeof *rotary; k++) {
        st_model_shape s = pe_shape();
        s.rope_dims = 0;
        configure_fails(rotary[k], s, "rope_dims 0");
    }
}

Test(rotary_refusals, odd_and_oversized_dims)
{
    for (size_t k = 0; k < sizeof rotary / sizeof *rotary; k++) {
        st_model_shape s = pe_shape();
        s.rope_dims = 63;
        configure_fails(rotary[k], s, "odd rope_dims");
        s.rope_dims = 128;
        configure_fails(rotary[k], s, "rope_dims > head_dim");
        s = pe_shape();
        s.rope_base = 0.0f;
        configure_fails(rotary[k], s, "rope_base 0");
    }
}

Test(rotary_refusals, no_trained_length)
{
    const char *need_l[] = {"dynamic-ntk", "yarn", "giraffe"};
    for (int k = 0; k < 3; k++) {
        st_model_shape s = pe_shape();
        s.n_ctx_train = 0;
        configure_fails(need_l[k], s, "n_ctx_train 0");
    }
}

Test(rotary_refusals, two_dims_ntk_is_the_identity)
{
    const char *names[] = {"ntk", "dynamic-ntk"};
    for (int k = 0; k < 2; k++) {
        const st_plugin_entry *e = pe_entry(names[k]);
        void *p = pe_create(e, NULL);
        st_model_shape s = pe_shape();
        s.rope_dims = 2;
        st_posenc_desc d = pe_configure(e, p, &s);
        cr_assert_eq(d.n_freq, 1u);
        cr_assert_float_eq(d.inv_freq[0], 1.0f, 0.0f);
        e->destroy(p);
    }
    pe_assert_no_leak();
}

static void create_fails_with(const char *name, const char *key, double v)
{
    const st_plugin_entry *e = pe_entry(name);
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, key, v);
    pe_create_fails(e, &prm, ST_E_RANGE);
    st_test_params_destroy(&prm);
}

Test(rotary_refusals, nonsense_params)
{
    create_fails_with("linear", "scale", 0.5);
    create_fails_with("linear", "scale", NAN);
    create_fails_with("linear", "base", -1.0);
    create_fails_with("ntk", "alpha", 0.99);
    create_fails_with("dynamic-ntk", "factor", 0.5);
    create_fails_with("dynamic-ntk", "max_alpha", 0.5);
    create_fails_with("yarn", "scale", 0.25);
    create_fails_with("yarn", "beta_slow", 0.0);
    create_fails_with("yarn", "beta_slow", 64.0); /* above beta_fast 32 */
    create_fails_with("yarn", "attn_factor", 0.0);
    create_fails_with("giraffe", "T", 0.5);
    {
        const st_plugin_entry *dn = pe_entry("dynamic-ntk");
        st_test_params sp;
        st_test_params_init(&sp);
        st_test_params_int(&sp, "step", 0);
        pe_create_fails(dn, &sp, ST_E_RANGE);
        st_test_params_destroy(&sp);
    }
    create_fails_with("giraffe", "low_ratio", 0.0);
    create_fails_with("giraffe", "rho", -1.0);

    const st_plugin_entry *e = pe_entry("dynamic-ntk");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_int(&prm, "trained_length", -5);
    pe_create_fails(e, &prm, ST_E_RANGE);
    st_test_params_destroy(&prm);
    st_test_params_init(&prm);
    st_test_params_str(&prm, "factor", "big");
    pe_create_fails(e, &prm, ST_E_INVALID);
    st_test_params_destroy(&prm);
    pe_assert_no_leak();
}
