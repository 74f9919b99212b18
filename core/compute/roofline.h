/*
 * core/compute/roofline.h - the machine's ceilings, measured in the
 * process that runs the model (same threads, same kernels), and what a
 * token costs against them: a decoded token reads every weight once plus
 * the cache; a prefilled token is multiply-adds through the weights (int8
 * dot products for quantized weights).
 * `stretch bench --roofline` divides measured speeds by these.
 */
#ifndef ST_CORE_ROOFLINE_H
#define ST_CORE_ROOFLINE_H

#include "diag.h"
#include "kernels.h"
#include "model.h"
#include "threadpool.h"

typedef struct st_roofline_ceiling {
    double read_bytes_per_s;  /* streaming reads of a buffer far larger than the caches:
                                 the fastest pass */
    double read_median_bytes_per_s; /* the median pass: on a shared host whose bandwidth
                                       comes in bursts, what a run of seconds can expect */
    double dot_ops_per_s;    /* the prefill kernel on cache-resident weights (2 per multiply-add) */
} st_roofline_ceiling;

/* Measure both with every thread of `pool`, the prefill kernel being the
 * one `kern` runs for weights of type `wtype` (repacked where the model's
 * would be). Takes about a second. */
st_status st_roofline_measure(st_threadpool *pool, const st_cpu_kernels *kern,
                              st_ggml_type wtype, st_roofline_ceiling *out, st_diag *diag);

/* The read probe's buffer in bytes: 256 MiB, or 4x the L3 the CPU
 * reports where that is larger, at most 1 GiB; a multiple of 2 MiB. */
size_t st_roofline_read_bytes(void);

/* Bytes of weights one decoded token streams (every matrix once, one
 * embedding row) and ops per token through them (2 x rows x cols). */
void st_roofline_model_costs(const st_model *m, double *weight_bytes, double *ops);

#endif
