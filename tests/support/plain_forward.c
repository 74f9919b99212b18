/*
 * tests/support/plain_forward.c - see plain_forward.h.
 */
#include "plain_forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "kv_cache.h"

st_status st_test_plain_forward(const st_model *m, const int32_t *tokens, size_t n,
                                int32_t layer, float *logprob, float *weights, st_diag *diag)
{
    const st_model_hparams *hp = &m->hp;
    st_kv_cache *kv = NULL;
    st_status st = st_kv_cache_create(hp->n_layers, hp->n_kv_heads, hp->head_dim, (uint32_t)n,
                                      ST_KV_F32, &kv, diag);
    if (st != ST_OK)
        return st;
    st_forward_config cfg = {.model = m, .kv = kv, .want_weights = weights != NULL,
                             .weights_layer = layer, .pos_table = m->pos_embd,
                             .pos_rows = m->n_pos};
    st_forward_ctx *fwd = NULL;
    uint32_t nv = hp->n_vocab;
    float *logits = malloc(sizeof(float) * nv * n);
    int32_t *pos = malloc(sizeof(int32_t) * n);
    if (!logits || !pos) {
        st = st_diag_set(diag, ST_E_NOMEM, NULL, 0, 0, "out of memory");
        goto done;
    }
    if ((st = st_forward_ctx_create(&cfg, &fwd, diag)) != ST_OK)
        goto done;
    for (size_t i = 0; i < n; i++)
        pos[i] = (int32_t)i;
    if ((st = st_forward(fwd, tokens, pos, n, logits, ST_FORWARD_ALL_LOGITS, diag)) != ST_OK)
        goto done;
    for (size_t t = 0; logprob && t < n; t++) {
        if (t == 0) {
            logprob[0] = 0.0f;
            continue;
        }
        const float *row = logits + (t - 1) * nv;
        double max = row[0], sum = 0.0;
        for (uint32_t i = 1; i < nv; i++)
            max = row[i] > max ? row[i] : max;
        for (uint32_t i = 0; i < nv; i++)
            sum += exp(row[i] - max);
        logprob[t] = (float)(row[tokens[t]] - max - log(sum));
    }
    if (weights) {
        uint32_t nq = 0, ns = 0;
        const float *w = st_forward_weights(fwd, &nq, &ns);
        if (!w || nq != n || ns != n) {
            st = st_diag_set(diag, ST_E_INTERNAL, NULL, 0, 0, "weights %ux%u, expected %zu",
                             nq, ns, n);
            goto done;
        }
        memcpy(weights, w, sizeof(float) * n * n);
    }
done:
    free(logits);
    free(pos);
    st_forward_ctx_free(fwd);
    st_kv_cache_free(kv);
    return st;
}
