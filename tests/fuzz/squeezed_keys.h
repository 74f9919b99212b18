/*
 * tests/fuzz/squeezed_keys.h - the clusterings the squeezed index target
 * expects, shared with the seed generator that writes valid files for them
 * (a stored index is only read when it matches what the caller expects).
 * One key per clustering depth: one level, and fine plus coarse.
 */
#ifndef ST_FUZZ_SQUEEZED_KEYS_H
#define ST_FUZZ_SQUEEZED_KEYS_H

#include "squeezed_internal.h"

#define ST_FUZZ_SQ_N_KEYS 2

static inline st_sq_index_key st_fuzz_sq_key(int which)
{
    st_sq_index_key k = {
        .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4,
        .fixed_len = 12, .observation = 4, .levels = which == 0 ? 1 : 2,
        .k_coarse = 0, .kmeans_iters = 5, .rotary = 1, .seed = 7,
        .cluster_fraction = 0.25, .quantile = 0.9, .token_hash = 0x5eed5eed5eed5eedull};
    return k;
}

#endif
