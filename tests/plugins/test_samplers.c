/*
 * The sampler plugins against direct computations of what each should do.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_fixture.h"

static const st_sampler_ops *sops(const st_plugin_entry *e)
{
    return e->ops;
}

static void fill(st_candidates *c, st_candidate *data, const float *logits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        data[i] = (st_candidate){.id = (int32_t)i, .logit = logits[i], .p = 0.0f};
    *c = (st_candidates){.data = data, .size = n, .sorted = false, .selected = -1};
}

static void apply_ok(const st_plugin_entry *e, void *s, st_candidates *c)
{
    st_error err = {0};
    cr_assert_eq(sops(e)->apply(s, c, &err), ST_OK, "%s: %s", e->name, err.message);
}

/* softmax of logits (double), the reference for the probability samplers */
static void softmax(const float *l, size_t n, double *p)
{
    double m = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < n; i++)
        m = l[i] > m ? l[i] : m;
    for (size_t i = 0; i < n; i++)
        sum += (p[i] = exp(l[i] - m));
    for (size_t i = 0; i < n; i++)
        p[i] /= sum;
}

static const float L[8] = {1.0f, 3.5f, -2.0f, 3.5f, 0.25f, 2.0f, -INFINITY, 1.5f};

Test(greedy, picks_max_lowest_id_on_ties)
{
    const st_plugin_entry *e = fx_entry("sampler", "greedy");
    void *s = fx_create(e, NULL);
    st_candidate d[8];
    st_candidates c;
    fill(&c, d, L, 8);
    /* Put id 3 before id 1 so array order and id order disagree. */
    st_candidate t = d[1];
    d[1] = d[3];
    d[3] = t;
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 8);
    cr_assert_eq(d[c.selected].id, 1);
    c.size = 0;
    st_error err = {0};
    cr_assert_neq(sops(e)->apply(s, &c, &err), ST_OK, "no candidates is an error");
    e->destroy(s);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

Test(temperature, divides_logits)
{
    const st_plugin_entry *e = fx_entry("sampler", "temperature");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "temperature", 0.5);
    void *s = fx_create(e, &p);
    st_candidate d[8];
    st_candidates c;
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 8);
    for (int i = 0; i < 8; i++)
        if (isfinite(L[i]))
            cr_assert_float_eq(d[i].logit, L[i] / 0.5f, 1e-6f);
    cr_assert(isinf(d[6].logit) && d[6].logit < 0);
    e->destroy(s);

    s = fx_create(e, NULL); /* default 0.8 */
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_float_eq(d[1].logit, 3.5f / 0.8f, 1e-5f);
    e->destroy(s);
}

Test(temperature, zero_keeps_only_the_max)
{
    const st_plugin_entry *e = fx_entry("sampler", "temperature");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "temperature", 0.0);
    void *s = fx_create(e, &p);
    st_candidate d[8];
    st_candidates c;
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 1);
    cr_assert_eq(d[0].id, 1, "ties go to the lowest id");
    cr_assert_float_eq(d[0].logit, 3.5f, 0.0f);
    e->destroy(s);
    st_test_params_init(&p);
    st_test_params_float(&p, "temperature", -0.1);
    fx_create_fails(e, &p, ST_E_RANGE);
}

Test(top_k, keeps_k_largest_sorted)
{
    const st_plugin_entry *e = fx_entry("sampler", "top-k");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "k", 3);
    void *s = fx_create(e, &p);
    st_candidate d[8];
    st_candidates c;
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 3);
    cr_assert(c.sorted);
    cr_assert_eq(d[0].id, 1);
    cr_assert_eq(d[1].id, 3);
    cr_assert_eq(d[2].id, 5);
    e->destroy(s);

    st_test_params_init(&p);
    st_test_params_int(&p, "k", 0);
    s = fx_create(e, &p);
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 8, "k = 0 is off");
    cr_assert_eq(d[0].id, 0, "and leaves the order alone");
    e->destroy(s);

    s = fx_create(e, NULL); /* default 40 > 8 candidates */
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 8);
    e->destroy(s);
}

/* The reference: the smallest descending prefix with mass >= p (>= min_keep). */
static size_t nucleus_size(const float *l, size_t n, double p, size_t min_keep)
{
    double pr[64];
    softmax(l, n, pr);
    double sorted[64];
    memcpy(sorted, pr, n * sizeof *pr);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += sorted[i];
        if (cum >= p && i + 1 >= min_keep)
            return i + 1;
    }
    return n;
}

Test(top_p, keeps_smallest_prefix_reaching_p)
{
    const st_plugin_entry *e = fx_entry("sampler", "top-p");
    double ps[] = {0.0, 0.3, 0.5, 0.8, 0.9, 0.95, 0.999};
    for (size_t t = 0; t < sizeof ps / sizeof *ps; t++) {
        st_test_params p;
        st_test_params_init(&p);
        st_test_params_float(&p, "p", ps[t]);
        void *s = fx_create(e, &p);
        st_candidate d[8];
        st_candidates c;
        fill(&c, d, L, 8);
        apply_ok(e, s, &c);
        size_t want = nucleus_size(L, 8, ps[t], 1);
        cr_assert_eq(c.size, want, "p = %g: kept %zu, expected %zu", ps[t], c.size, want);
        cr_assert(c.sorted);
        double mass = 0.0;
        for (size_t i = 0; i < c.size; i++)
            mass += d[i].p;
        cr_assert(mass >= ps[t] - 1e-6, "kept mass %g < p %g", mass, ps[t]);
        if (c.size > 1)
            cr_assert(mass - d[c.size - 1].p < ps[t], "prefix is not the smallest");
        e->destroy(s);
    }
}

Test(top_p, min_keep_and_off)
{
    const st_plugin_entry *e = fx_entry("sampler", "top-p");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "p", 0.1);
    st_test_params_int(&p, "min_keep", 4);
    void *s = fx_create(e, &p);
    st_candidate d[8];
    st_candidates c;
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 4);
    e->destroy(s);

    st_test_params_init(&p);
    st_test_params_float(&p, "p", 1.0);
    s = fx_create(e, &p);
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 8);
    e->destroy(s);
    st_test_params_init(&p);
    st_test_params_float(&p, "p", 1.5);
    fx_create_fails(e, &p, ST_E_RANGE);
}

Test(min_p, keeps_relative_probability_above_p)
{
    const st_plugin_entry *e = fx_entry("sampler", "min-p");
    double ps[] = {0.05, 0.1, 0.3, 0.6, 1.0};
    double pr[8];
    softmax(L, 8, pr);
    double pmax = pr[1];
    for (size_t t = 0; t < sizeof ps / sizeof *ps; t++) {
        st_test_params p;
        st_test_params_init(&p);
        st_test_params_float(&p, "p", ps[t]);
        void *s = fx_create(e, &p);
        st_candidate d[8];
        st_candidates c;
        fill(&c, d, L, 8);
        apply_ok(e, s, &c);
        size_t want = 0;
        for (int i = 0; i < 8; i++)
            want += pr[i] >= ps[t] * pmax * (1 - 1e-9);
        cr_assert_eq(c.size, want, "p = %g: kept %zu, expected %zu", ps[t], c.size, want);
        for (size_t i = 0; i < c.size; i++)
            cr_assert(pr[d[i].id] >= ps[t] * pmax * (1 - 1e-9));
        e->destroy(s);
    }
}

Test(min_p, min_keep)
{
    const st_plugin_entry *e = fx_entry("sampler", "min-p");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "p", 0.9);
    st_test_params_int(&p, "min_keep", 5);
    void *s = fx_create(e, &p);
    st_candidate d[8];
    st_candidates c;
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    cr_assert_eq(c.size, 5);
    e->destroy(s);
}

static void *penalties(const st_plugin_entry *e, double rep, double freq, double pres, int n)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "repeat", rep);
    st_test_params_float(&p, "frequency", freq);
    st_test_params_float(&p, "presence", pres);
    st_test_params_int(&p, "last_n", n);
    return fx_create(e, &p);
}

static void accept_all(const st_plugin_entry *e, void *s, const int32_t *t, size_t n, bool prompt)
{
    st_error err = {0};
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(sops(e)->accept(s, t[i], prompt, &err), ST_OK, "%s", err.message);
}

Test(penalties, llama_cpp_numbers)
{
    const st_plugin_entry *e = fx_entry("sampler", "penalties");
    void *s = penalties(e, 1.5, 0.5, 0.25, 3);
    int32_t hist[] = {5, 5, 7, 9}; /* last 3: 5, 7, 9 */
    accept_all(e, s, hist, 2, true);
    accept_all(e, s, hist + 2, 2, false);
    float l[10] = {0, 2.0f, 0, 0, 0, 3.0f, 0, -2.0f, 0, 0.0f};
    st_candidate d[10];
    st_candidates c;
    fill(&c, d, l, 10);
    apply_ok(e, s, &c);
    cr_assert_float_eq(d[5].logit, 3.0f / 1.5f - (1 * 0.5f + 0.25f), 1e-6f);
    cr_assert_float_eq(d[7].logit, -2.0f * 1.5f - 0.75f, 1e-6f);
    cr_assert_float_eq(d[9].logit, 0.0f - 0.75f, 1e-6f);
    cr_assert_float_eq(d[1].logit, 2.0f, 0.0f, "token not in history unchanged");
    cr_assert_not(c.sorted);

    /* A longer window sees token 5 twice. */
    e->destroy(s);
    s = penalties(e, 1.5, 0.5, 0.25, 64);
    accept_all(e, s, hist, 4, false);
    fill(&c, d, l, 10);
    apply_ok(e, s, &c);
    cr_assert_float_eq(d[5].logit, 3.0f / 1.5f - (2 * 0.5f + 0.25f), 1e-6f);

    /* reset forgets the history. */
    sops(e)->reset(s, 1);
    fill(&c, d, l, 10);
    apply_ok(e, s, &c);
    cr_assert_float_eq(d[5].logit, 3.0f, 0.0f);
    e->destroy(s);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

Test(penalties, defaults_are_neutral_and_bad_tokens_refused)
{
    const st_plugin_entry *e = fx_entry("sampler", "penalties");
    void *s = fx_create(e, NULL);
    int32_t hist[] = {1, 2, 3};
    accept_all(e, s, hist, 3, true);
    st_candidate d[8];
    st_candidates c;
    fill(&c, d, L, 8);
    apply_ok(e, s, &c);
    for (int i = 0; i < 8; i++)
        cr_assert(d[i].logit == L[i] || (isinf(d[i].logit) && isinf(L[i])));
    st_error err = {0};
    cr_assert_eq(sops(e)->accept(s, -4, false, &err), ST_E_RANGE);
    e->destroy(s);
}

static void *dist_with_seed(const st_plugin_entry *e, int64_t seed)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "seed", seed);
    return fx_create(e, &p);
}

Test(dist, frequencies_follow_softmax)
{
    const st_plugin_entry *e = fx_entry("sampler", "dist");
    void *s = fx_create(e, NULL);
    sops(e)->reset(s, 1234);
    const float l[5] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f};
    double pr[5];
    softmax(l, 5, pr);
    enum { DRAWS = 20000 };
    int hist[5] = {0};
    st_candidate d[5];
    st_candidates c;
    for (int i = 0; i < DRAWS; i++) {
        fill(&c, d, l, 5);
        apply_ok(e, s, &c);
        cr_assert(c.selected >= 0 && c.selected < 5);
        hist[d[c.selected].id]++;
    }
    for (int i = 0; i < 5; i++) {
        double f = (double)hist[i] / DRAWS;
        double sd = sqrt(pr[i] * (1 - pr[i]) / DRAWS);
        cr_assert(fabs(f - pr[i]) < 5 * sd + 1e-4, "token %d: frequency %g, probability %g", i,
                  f, pr[i]);
        cr_assert_float_eq(d[i].p, pr[i], 1e-6, "p filled with the softmax");
    }
    e->destroy(s);
}

Test(dist, never_picks_masked)
{
    const st_plugin_entry *e = fx_entry("sampler", "dist");
    void *s = fx_create(e, NULL);
    st_candidate d[8];
    st_candidates c;
    for (int i = 0; i < 2000; i++) {
        fill(&c, d, L, 8);
        apply_ok(e, s, &c);
        cr_assert_neq(d[c.selected].id, 6);
    }
    float all_masked[2] = {-INFINITY, -INFINITY};
    fill(&c, d, all_masked, 2);
    st_error err = {0};
    cr_assert_neq(sops(e)->apply(s, &c, &err), ST_OK);
    e->destroy(s);
}

static void draw_seq(const st_plugin_entry *e, void *s, uint64_t seed, int *out, int n)
{
    static const float l[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    sops(e)->reset(s, seed);
    st_candidate d[6];
    st_candidates c;
    for (int i = 0; i < n; i++) {
        fill(&c, d, l, 6);
        apply_ok(e, s, &c);
        out[i] = d[c.selected].id;
    }
}

Test(dist, same_seed_same_picks)
{
    const st_plugin_entry *e = fx_entry("sampler", "dist");
    void *s = fx_create(e, NULL);
    int a[64], b[64], x[64];
    draw_seq(e, s, 99, a, 64);
    draw_seq(e, s, 99, b, 64);
    draw_seq(e, s, 100, x, 64);
    cr_assert_arr_eq(a, b, sizeof a);
    cr_assert(memcmp(a, x, sizeof a) != 0, "another seed gives another sequence");

    /* A fixed seed parameter overrides the request seed. */
    void *f = dist_with_seed(e, 99);
    int y[64], z[64];
    draw_seq(e, f, 1, y, 64);
    draw_seq(e, f, 2, z, 64);
    cr_assert_arr_eq(y, z, sizeof y);
    cr_assert_arr_eq(y, a, sizeof y, "seed 99 from the parameter equals reset(99)");
    e->destroy(s);
    e->destroy(f);
}

/* ---- large arrays: the partial-sort paths against a full sort ---- */

enum { BIG = 5000 };

/* Logits on a 0.25 grid so many tie; ids shuffled. */
static void big_candidates(st_candidate *d, st_candidates *c, unsigned seed)
{
    srand(seed);
    for (int i = 0; i < BIG; i++)
        d[i] = (st_candidate){.id = i, .logit = (float)(rand() % 80) * 0.25f - 10.0f};
    for (int i = BIG - 1; i > 0; i--) {
        int j = rand() % (i + 1);
        st_candidate t = d[i];
        d[i] = d[j];
        d[j] = t;
    }
    *c = (st_candidates){.data = d, .size = BIG, .sorted = false, .selected = -1};
}

static int ref_cmp(const void *a, const void *b)
{
    const st_candidate *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The reference order: descending logit, ascending id. */
static void reference(const st_candidate *d, st_candidate *ref)
{
    memcpy(ref, d, BIG * sizeof *ref);
    qsort(ref, BIG, sizeof *ref, ref_cmp);
}

static void expect_prefix(const st_candidates *c, const st_candidate *ref, size_t n)
{
    cr_assert_eq(c->size, n);
    cr_assert(c->sorted);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(c->data[i].id, ref[i].id, "position %zu: id %d, expected %d", i,
                     c->data[i].id, ref[i].id);
}

Test(top_k, large_array_matches_full_sort)
{
    const st_plugin_entry *e = fx_entry("sampler", "top-k");
    static st_candidate d[BIG], ref[BIG];
    int ks[] = {1, 7, 40, 333, BIG - 1};
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        st_test_params p;
        st_test_params_init(&p);
        st_test_params_int(&p, "k", ks[t]);
        void *s = fx_create(e, &p);
        st_candidates c;
        big_candidates(d, &c, 100 + (unsigned)t);
        reference(d, ref);
        apply_ok(e, s, &c);
        expect_prefix(&c, ref, (size_t)ks[t]);
        e->destroy(s);
    }
}

Test(top_p, large_array_matches_full_sort)
{
    const st_plugin_entry *e = fx_entry("sampler", "top-p");
    static st_candidate d[BIG], ref[BIG];
    double ps[] = {0.05, 0.5, 0.9, 0.999}; /* 0.999 needs far more than 64 */
    for (size_t t = 0; t < sizeof ps / sizeof *ps; t++) {
        st_test_params p;
        st_test_params_init(&p);
        st_test_params_float(&p, "p", ps[t]);
        void *s = fx_create(e, &p);
        st_candidates c;
        big_candidates(d, &c, 200 + (unsigned)t);
        reference(d, ref);
        float l[BIG];
        for (int i = 0; i < BIG; i++)
            l[i] = ref[i].logit;
        double pr[BIG];
        softmax(l, BIG, pr);
        double cum = 0.0;
        size_t want = BIG;
        for (size_t i = 0; i < BIG; i++) {
            cum += pr[i];
            if (cum >= ps[t]) {
                want = i + 1;
                break;
            }
        }
        apply_ok(e, s, &c);
        cr_assert(want > 1);
        expect_prefix(&c, ref, want);
        e->destroy(s);
    }
}

Test(min_p, large_array_matches_full_sort)
{
    const st_plugin_entry *e = fx_entry("sampler", "min-p");
    static st_candidate d[BIG], ref[BIG];
    struct { double p; int min_keep; } cases[] = {{0.05, 1}, {0.5, 1}, {0.9, 300}, {1.0, 2}};
    for (size_t t = 0; t < sizeof cases / sizeof *cases; t++) {
        st_test_params p;
        st_test_params_init(&p);
        st_test_params_float(&p, "p", cases[t].p);
        st_test_params_int(&p, "min_keep", cases[t].min_keep);
        void *s = fx_create(e, &p);
        st_candidates c;
        big_candidates(d, &c, 300 + (unsigned)t);
        reference(d, ref);
        double thr = (double)ref[0].logit + log(cases[t].p);
        size_t want = 0;
        while (want < BIG && ((double)ref[want].logit >= thr || want < (size_t)cases[t].min_keep))
            want++;
        apply_ok(e, s, &c);
        expect_prefix(&c, ref, want);
        e->destroy(s);
    }
}
