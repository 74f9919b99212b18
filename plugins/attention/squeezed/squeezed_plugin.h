/*
 * squeezed_plugin.h - the `squeezed` attention plugin's instance, shared by
 * squeezed.c (parameters, lifecycle, the plan entry point), offline.c
 * (clustering and calibration of the fixed context) and online.c (choosing
 * the clusters a block of queries reads and emitting the plan).
 */
#ifndef ST_SQUEEZED_PLUGIN_H
#define ST_SQUEEZED_PLUGIN_H

#include <pthread.h>
#include <stdatomic.h>

#include <stretch/attention.h>
#include <stretch/plugin.h>

#include "squeezed_internal.h"

typedef struct st_sq_params {
    uint32_t fixed_len;         /* 0 = the first request's prompt */
    uint32_t observation;
    uint32_t sinks;             /* first fixed-context keys always read */
    double cluster_fraction;
    double quantile;
    bool mode_fraction;         /* mode: fraction (else threshold) */
    double keep_fraction;
    bool aggregate_mean;        /* aggregate: mean (else max) over a block's queries */
    uint32_t levels;
    uint32_t k_coarse;          /* 0 = ceil(sqrt(k_fine)) */
    double coarse_keep_fraction;
    uint32_t kmeans_iters;
    uint64_t seed;
    bool rotary;                /* cluster and score after the model's RoPE */
    char *index_path;           /* NULL = do not persist */
} st_sq_params;

/* The last `observation` queries a layer saw before it was clustered. */
typedef struct st_sq_obs_ring {
    float *q;                   /* [observation][n_heads * head_dim] */
    int32_t *pos;               /* [observation] */
    uint32_t n, next;
} st_sq_obs_ring;

typedef struct st_sq_calib {
    float *fine, *coarse;       /* estimated attentions of the observation queries */
    size_t n_fine, n_coarse;
} st_sq_calib;

typedef struct st_squeezed {
    const st_host_services *host;
    st_sq_params p;
    st_model_shape shape;
    bool configured;

    /* Guards everything below while a layer is clustered or loaded. */
    pthread_mutex_t lock;
    uint32_t fixed_len;         /* resolved length; 0 = not known yet */
    bool have_index;            /* ix is initialised for `fixed_len` */
    bool verified;              /* this request starts with ix's fixed context */
    st_sq_index ix;
    uint32_t n_built;           /* layers of ix clustered or loaded */
    st_sq_obs_ring *rings;      /* [n_layers] */
    st_sq_calib *calib;         /* [n_layers], until the global threshold is set */

    /* Clustered keys read / offered by sparse plans since the last report
     * (summed over heads and blocks), for the log at reset and destroy. */
    atomic_ullong keys_read, keys_offered;
} st_squeezed;

/* Rotate a query or key by the model's RoPE at `pos` when `rotary` is on
 * and the model has RoPE; else copy. */
void st_sq_position(const st_squeezed *s, float *out, const float *x, int32_t pos);

/* offline.c: cluster layer `layer` from the plan's keys and calibrate its
 * thresholds from its observation ring (q->k must be set). */
st_status st_sq_build_layer(st_squeezed *s, const st_attn_query *q, st_error *err);
/* offline.c: once every layer is built, replace the per-layer thresholds by
 * the global quantile over all layers' calibration scores. */
void st_sq_finish_thresholds(st_squeezed *s);
/* offline.c: remember the block's queries at positions < fixed_len (or all,
 * while it is unknown) in the layer's observation ring. */
void st_sq_record_queries(st_squeezed *s, const st_attn_query *q);
void st_sq_calib_clear(st_sq_calib *c);

/* online.c: the plan of a block whose queries all lie after the fixed
 * context, for a built layer. */
st_status st_sq_plan_sparse(st_squeezed *s, const st_attn_query *q,
                            const st_attn_plan_builder *b, st_error *err);

#endif
