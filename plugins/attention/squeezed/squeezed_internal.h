/*
 * squeezed_internal.h - the pieces of the `squeezed` attention plugin
 * (Squeezed Attention, Hooper et al. 2024) that are tested on their own:
 * spherical k-means with k-means++ seeding (kmeans.c), the cluster scores
 * and threshold rule (scoring.c) and the persisted clustering (index_io.c).
 * Not part of the SDK; the plugin and tests/squeezed/ compile these files.
 */
#ifndef ST_SQUEEZED_INTERNAL_H
#define ST_SQUEEZED_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stretch/common.h>

/* ---- kmeans.c --------------------------------------------------------- */

/* splitmix64: the seeded generator of k-means++ (same seed, same picks). */
uint64_t st_sq_rng_next(uint64_t *state);

/* k-means++ seeding on the rows of `xn` ([n][d], already L2-normalised):
 * the first centre uniformly (weighted by w), each next one with
 * probability proportional to w * (squared distance to the nearest centre
 * so far). Writes the k chosen row indices to `chosen`. w may be NULL
 * (all 1). Needs 1 <= k <= n. */
st_status st_sq_kmeanspp(const float *xn, const float *w, uint32_t n, uint32_t d,
                         uint32_t k, uint64_t seed, uint32_t *chosen);

/* Cosine k-means: rows of `x` ([n][d]) are L2-normalised, seeded with
 * k-means++, then Lloyd iterations (at most `iters`, until no assignment
 * changes) assign each row to the centre of highest cosine, a centre being
 * the normalised (w-weighted) mean of its normalised rows; an empty cluster
 * is re-seeded with the row farthest from its centre. On return:
 * assign[n] the cluster of each row, counts[k] rows per cluster, and
 * centroids[k][d] the w-weighted mean of the ORIGINAL rows of each cluster
 * (what the scores are computed with). Fails with ST_E_INVALID when
 * k == 0 or k > n, ST_E_NOMEM when scratch memory runs out. */
st_status st_sq_kmeans(const float *x, const float *w, uint32_t n, uint32_t d, uint32_t k,
                       uint32_t iters, uint64_t seed, float *centroids, uint32_t *assign,
                       uint32_t *counts);

/* ---- scoring.c -------------------------------------------------------- */

/* logits[c] = q . centroids[c] / sqrt(d) */
void st_sq_cluster_logits(const float *q, const float *centroids, uint32_t k, uint32_t d,
                          float *logits);

/* log sum_c mass[c] * exp(logits[c]), computed stably; -INFINITY when the
 * total mass is 0. */
double st_sq_log_denominator(const float *logits, const float *mass, uint32_t k);

/* Estimated attention of one key of cluster c: exp(logits[c] - log_denom),
 * i.e. exp(q.c/sqrt d) / sum_c' N_c' exp(q.c'/sqrt d). */
void st_sq_estimates(const float *logits, uint32_t k, double log_denom, float *out);

/* The q-quantile of v[n] (sorts v in place), linearly interpolated between
 * order statistics (numpy's default): q = 0 the minimum, 1 the maximum. */
float st_sq_quantile(float *v, size_t n, double q);

/* RoPE as the host applies it (adjacent pairs (2i, 2i+1) rotated by
 * pos * base^(-2i/rope_dims), dims past rope_dims unchanged): out = R(pos) x.
 * out may equal x. */
void st_sq_rope(float *out, const float *x, double pos, float base, uint32_t rope_dims,
                uint32_t head_dim);

/* Indices of the `keep` largest of v[n], in index order (ties: lower index
 * first). Writes a 0/1 flag per element to `flags`. */
void st_sq_top_flags(const float *v, uint32_t n, uint32_t keep, uint8_t *flags);

/* ---- index_io.c ------------------------------------------------------- */

/* The clustering of one layer's KV head. Fine clusters over the first
 * n_keys slots; coarse ones (levels == 2) over the fine centroids. */
typedef struct st_sq_head_index {
    uint32_t n_keys;
    uint32_t k;              /* fine clusters */
    uint32_t kc;             /* coarse clusters (0 with one level) */
    float *centroids;        /* [k][head_dim] mean of the original keys */
    float *mass;             /* [k] keys per fine cluster (N_c), as float */
    uint32_t *assign;        /* [n_keys] fine cluster of each key */
    float *coarse_centroids; /* [kc][head_dim] */
    float *coarse_mass;      /* [kc] keys per coarse cluster */
    uint32_t *parent;        /* [k] coarse cluster of each fine one */
    /* Derived, not stored: keys of each fine cluster, ascending. */
    uint32_t *member_off;    /* [k + 1] */
    uint32_t *members;       /* [n_keys] */
} st_sq_head_index;

typedef struct st_sq_layer_index {
    bool built;
    bool calibrated;         /* thresholds come from observation queries */
    float thr_fine;          /* effective thresholds (global once known) */
    float thr_coarse;
    st_sq_head_index *heads; /* [n_kv_heads] */
} st_sq_layer_index;

/* What a stored clustering must match to be reused. */
typedef struct st_sq_index_key {
    uint32_t n_layers, n_heads, n_kv_heads, head_dim;
    uint32_t fixed_len;      /* resolved length of the fixed context */
    uint32_t observation;
    uint32_t levels;
    uint32_t k_coarse;       /* the parameter (0 = ceil(sqrt(k))) */
    uint32_t kmeans_iters;
    uint32_t rotary;         /* keys clustered after RoPE (1) or before (0) */
    uint64_t seed;
    double cluster_fraction;
    double quantile;
    uint64_t token_hash;     /* FNV-1a of the fixed context's token ids */
} st_sq_index_key;

typedef struct st_sq_index {
    st_sq_index_key key;
    st_sq_layer_index *layers; /* [n_layers] */
} st_sq_index;

#define ST_SQ_INDEX_MAGIC "stretch-squeezed-index"
#define ST_SQ_INDEX_VERSION 1

/* Allocate the (unbuilt) layers and heads for key->n_layers x n_kv_heads. */
st_status st_sq_index_init(st_sq_index *ix, const st_sq_index_key *key);
/* Free every layer's clustering and the layer table. */
void st_sq_index_free(st_sq_index *ix);
/* Drop one head's clustering (leaves it empty). */
void st_sq_head_clear(st_sq_head_index *h);
/* Fill member_off/members from assign. */
st_status st_sq_head_members(st_sq_head_index *h);

/* FNV-1a 64 over the token ids. */
uint64_t st_sq_token_hash(const int32_t *tokens, size_t n);
bool st_sq_index_key_equal(const st_sq_index_key *a, const st_sq_index_key *b);

/* Write every built layer to `path` (msgpack, then a checksum), through a
 * temporary file renamed into place. ST_E_STATE, writing nothing, when
 * `path` exists and is not st_sq_index_replaceable. */
st_status st_sq_index_save(const st_sq_index *ix, const char *path, char *msg, size_t cap);

/* Whether a save may replace `path`: it does not exist, is empty, or
 * begins like one of this plugin's index files (of any version, damaged or
 * not). */
bool st_sq_index_replaceable(const char *path);

/* Read `path` into `ix` (which must be freshly initialised with `expect`'s
 * shape). ST_E_NOT_FOUND: no such file; ST_E_FORMAT: truncated, corrupt
 * (checksum), wrong format or version, or inconsistent sizes; ST_E_STATE:
 * a valid file for another model/fixed context/parameters. `msg` names the
 * file and what was expected. On failure `ix` holds no clustering. */
st_status st_sq_index_load(st_sq_index *ix, const st_sq_index_key *expect, const char *path,
                           char *msg, size_t cap);

#endif
