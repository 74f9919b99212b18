/*
 * squeezed: the cosine k-means (planted clusters recovered exactly, seeded
 * k-means++ reproducible, centroids = means of the original keys) and the
 * centroid score / threshold rule on hand-made numbers.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "squeezed_internal.h"

enum { D = 8, K = 4, PER = 10, N = K * PER };

/* Row i belongs to planted cluster i % K: a direction e_c plus noise, at a
 * magnitude from 0.5 to 3 (cosine clustering must ignore magnitude). */
static void planted(float *x, uint64_t seed)
{
    uint64_t s = seed;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t c = i % K;
        float mag = 0.5f + 2.5f * (float)((st_sq_rng_next(&s) >> 11) * (1.0 / 9007199254740992.0));
        for (uint32_t j = 0; j < D; j++) {
            float noise = (float)((st_sq_rng_next(&s) >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
            x[i * D + j] = mag * ((j == c ? 1.0f : 0.0f) + 0.1f * noise);
        }
    }
}

Test(squeezed_kmeans, recovers_separable_clusters_exactly)
{
    float x[N * D], cen[K * D];
    uint32_t assign[N], counts[K];
    planted(x, 42);
    cr_assert_eq(st_sq_kmeans(x, NULL, N, D, K, 50, 7, cen, assign, counts), ST_OK);
    /* Same planted cluster <=> same found cluster. */
    for (uint32_t i = 0; i < N; i++)
        for (uint32_t j = 0; j < N; j++)
            cr_assert_eq(assign[i] == assign[j], i % K == j % K, "rows %u and %u", i, j);
    for (uint32_t c = 0; c < K; c++)
        cr_assert_eq(counts[c], PER);
}

Test(squeezed_kmeans, kmeanspp_is_deterministic_for_a_seed)
{
    float x[N * D], xn[N * D];
    planted(x, 3);
    for (uint32_t i = 0; i < N; i++) {
        double s = 0;
        for (uint32_t j = 0; j < D; j++)
            s += x[i * D + j] * x[i * D + j];
        for (uint32_t j = 0; j < D; j++)
            xn[i * D + j] = (float)(x[i * D + j] / sqrt(s));
    }
    uint32_t a[K], b[K];
    cr_assert_eq(st_sq_kmeanspp(xn, NULL, N, D, K, 99, a), ST_OK);
    cr_assert_eq(st_sq_kmeanspp(xn, NULL, N, D, K, 99, b), ST_OK);
    cr_assert_arr_eq(a, b, sizeof a);
    /* k-means++ on separable data picks one row of each planted cluster. */
    bool seen[K] = {false};
    for (uint32_t c = 0; c < K; c++)
        seen[a[c] % K] = true;
    for (uint32_t c = 0; c < K; c++)
        cr_assert(seen[c], "planted cluster %u got no seed", c);
    /* Different seeds start from different rows at least once. */
    bool differs = false;
    for (uint64_t sd = 100; sd < 110 && !differs; sd++) {
        cr_assert_eq(st_sq_kmeanspp(xn, NULL, N, D, K, sd, b), ST_OK);
        differs = memcmp(a, b, sizeof a) != 0;
    }
    cr_assert(differs);
    /* The whole clustering is reproducible too. */
    float c1[K * D], c2[K * D];
    uint32_t as1[N], as2[N], n1[K], n2[K];
    cr_assert_eq(st_sq_kmeans(x, NULL, N, D, K, 20, 5, c1, as1, n1), ST_OK);
    cr_assert_eq(st_sq_kmeans(x, NULL, N, D, K, 20, 5, c2, as2, n2), ST_OK);
    cr_assert_arr_eq(as1, as2, sizeof as1);
    cr_assert_arr_eq(c1, c2, sizeof c1);
}

Test(squeezed_kmeans, centroid_is_mean_of_original_keys)
{
    float x[N * D], cen[K * D];
    uint32_t assign[N], counts[K];
    planted(x, 11);
    cr_assert_eq(st_sq_kmeans(x, NULL, N, D, K, 50, 1, cen, assign, counts), ST_OK);
    for (uint32_t c = 0; c < K; c++) {
        double mean[D] = {0}, nmean[D] = {0};
        uint32_t n = 0;
        for (uint32_t i = 0; i < N; i++) {
            if (assign[i] != c)
                continue;
            double s = 0;
            for (uint32_t j = 0; j < D; j++)
                s += x[i * D + j] * x[i * D + j];
            for (uint32_t j = 0; j < D; j++) {
                mean[j] += x[i * D + j];
                nmean[j] += x[i * D + j] / sqrt(s);
            }
            n++;
        }
        cr_assert_eq(n, counts[c]);
        double off_norm = 0;
        for (uint32_t j = 0; j < D; j++) {
            cr_assert_float_eq(cen[c * D + j], mean[j] / n, 1e-5, "cluster %u dim %u", c, j);
            off_norm += fabs(mean[j] / n - nmean[j] / n);
        }
        /* Magnitudes vary, so the normalised mean would differ. */
        cr_assert_gt(off_norm, 1e-2);
    }
}

Test(squeezed_kmeans, weighted_centroids_and_bad_k)
{
    /* Two points, one cluster, weights 1 and 3: centroid at the 3/4 point. */
    float x[2 * 2] = {1, 0, 0, 1}, w[2] = {1, 3}, cen[2];
    uint32_t assign[2], counts[1];
    cr_assert_eq(st_sq_kmeans(x, w, 2, 2, 1, 5, 1, cen, assign, counts), ST_OK);
    cr_assert_float_eq(cen[0], 0.25f, 1e-6);
    cr_assert_float_eq(cen[1], 0.75f, 1e-6);
    cr_assert_eq(st_sq_kmeans(x, w, 2, 2, 0, 5, 1, cen, assign, counts), ST_E_INVALID);
    cr_assert_eq(st_sq_kmeans(x, w, 2, 2, 3, 5, 1, cen, assign, counts), ST_E_INVALID);
}

Test(squeezed_scoring, estimated_attention_on_hand_numbers)
{
    /* d = 4: logits = q.c / 2 = 1, 0, -1 for q = (2,0,0,0). */
    float q[4] = {2, 0, 0, 0};
    float cen[3 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0};
    float mass[3] = {2, 3, 5}, logits[3], est[3];
    st_sq_cluster_logits(q, cen, 3, 4, logits);
    cr_assert_float_eq(logits[0], 1.0f, 1e-6);
    cr_assert_float_eq(logits[1], 0.0f, 1e-6);
    cr_assert_float_eq(logits[2], -1.0f, 1e-6);
    double e = exp(1.0);
    double den = 2 * e + 3 + 5 / e;
    cr_assert_float_eq(st_sq_log_denominator(logits, mass, 3), log(den), 1e-9);
    st_sq_estimates(logits, 3, log(den), est);
    cr_assert_float_eq(est[0], e / den, 1e-6);
    cr_assert_float_eq(est[1], 1 / den, 1e-6);
    cr_assert_float_eq(est[2], 1 / e / den, 1e-6);
    /* Every key's estimate, summed, is the whole attention. */
    cr_assert_float_eq(2 * est[0] + 3 * est[1] + 5 * est[2], 1.0f, 1e-6);
    /* An empty cluster does not count in the denominator. */
    float mass0[3] = {2, 0, 5};
    cr_assert_float_eq(st_sq_log_denominator(logits, mass0, 3), log(2 * e + 5 / e), 1e-9);
}

Test(squeezed_scoring, quantile_and_top_rules)
{
    float v[5] = {5, 1, 3, 2, 4};
    cr_assert_float_eq(st_sq_quantile(v, 5, 0.7), 3.8f, 1e-6);
    cr_assert_float_eq(st_sq_quantile(v, 5, 0.0), 1.0f, 1e-6);
    cr_assert_float_eq(st_sq_quantile(v, 5, 1.0), 5.0f, 1e-6);
    cr_assert_float_eq(st_sq_quantile(v, 5, 0.5), 3.0f, 1e-6);
    float one[1] = {7};
    cr_assert_float_eq(st_sq_quantile(one, 1, 0.3), 7.0f, 1e-6);
    /* Threshold 0.7-quantile of {e0..e3} per query: keeps exactly the
     * clusters above it. */
    float s[4] = {0.1f, 0.5f, 0.3f, 0.5f};
    uint8_t f[4];
    st_sq_top_flags(s, 4, 2, f);
    cr_assert(f[1] && f[3] && !f[0] && !f[2]);
    st_sq_top_flags(s, 4, 1, f);
    cr_assert(f[1] && !f[3], "ties go to the lower index");
    st_sq_top_flags(s, 4, 9, f);
    cr_assert(f[0] && f[1] && f[2] && f[3]);
    st_sq_top_flags(s, 4, 0, f);
    cr_assert(!f[0] && !f[1] && !f[2] && !f[3]);
}

Test(squeezed_scoring, rope_matches_relative_rotation)
{
    /* (R(5) x) . (R(2) y) = (R(3) x) . y: the scores rotated keys give
     * depend on the distance only, as the host's attention does. */
    float x[8] = {0.3f, -1.0f, 0.7f, 0.2f, 1.5f, -0.4f, 0.9f, 2.0f};
    float y[8] = {-0.6f, 0.8f, 0.1f, 1.1f, -0.2f, 0.5f, 1.3f, -0.7f};
    float a[8], b[8], c[8];
    st_sq_rope(a, x, 5.0, 10000.0f, 6, 8);
    st_sq_rope(b, y, 2.0, 10000.0f, 6, 8);
    st_sq_rope(c, x, 3.0, 10000.0f, 6, 8);
    float ab = 0, cy = 0, nx = 0, na = 0;
    for (int i = 0; i < 8; i++) {
        ab += a[i] * b[i];
        cy += c[i] * y[i];
        nx += x[i] * x[i];
        na += a[i] * a[i];
    }
    cr_assert_float_eq(ab, cy, 1e-5);
    cr_assert_float_eq(na, nx, 1e-5, "rotation keeps the norm");
    cr_assert_float_eq(a[6], x[6], 0, "dims past rope_dims stay");
    cr_assert_float_eq(a[7], x[7], 0);
    /* pos 0 is the identity */
    st_sq_rope(a, x, 0.0, 10000.0f, 8, 8);
    cr_assert_arr_eq(a, x, sizeof x);
}
