/*
 * core/engine/logprobs.c - log-softmax at one token and the top n, in one
 * pass for the maximum and the top n and one for the sum (the kernel
 * table's sum_exp). The sum of the exponentials is kept in double: 50k
 * terms in float would lose the last digits that a caller comparing two
 * tokens' log-probabilities sees.
 */
#include "logprobs.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cpu_features.h"
#include "kernels.h"
#include "work_split.h"

/* One position's result, computed before it is reported. */
typedef struct lp_result {
    int32_t token;
    float logprob;
    uint32_t have;
    int32_t ids[ST_TOP_LOGPROBS_MAX];
    float top[ST_TOP_LOGPROBS_MAX];
} lp_result;

/* The kernel table, looked up once: st_cpu_isa_active asks the CPU and
 * the environment, which a token's log-probabilities should not pay for. */
static const st_cpu_kernels *kernels(void)
{
    static _Atomic(const st_cpu_kernels *) table;
    const st_cpu_kernels *k = atomic_load_explicit(&table, memory_order_acquire);
    if (!k) {
        k = st_cpu_kernels_get(st_cpu_isa_active());
        atomic_store_explicit(&table, k, memory_order_release);
    }
    return k;
}

static void lp_compute(const float *logits, uint32_t n_vocab, int32_t token, uint32_t n_top,
                       lp_result *out)
{
    int32_t *ids = out->ids;
    float *top = out->top;
    uint32_t have = 0;
    if (n_top > ST_TOP_LOGPROBS_MAX)
        n_top = ST_TOP_LOGPROBS_MAX;
    if (n_top > n_vocab)
        n_top = n_vocab;
    float mx = -INFINITY;
    for (uint32_t i = 0; i < n_vocab; i++) {
        float l = logits[i];
        if (l > mx)
            mx = l;
        /* Kept best first; a later equal logit ranks after (lower id first). */
        if (n_top == 0 || (have == n_top && !(l > top[have - 1])))
            continue;
        uint32_t at = have < n_top ? have++ : n_top - 1;
        while (at > 0 && l > top[at - 1]) {
            top[at] = top[at - 1];
            ids[at] = ids[at - 1];
            at--;
        }
        top[at] = l;
        ids[at] = (int32_t)i;
    }
    double sum = kernels()->sum_exp(logits, n_vocab, mx);
    float lse = mx + (float)log(sum);
    for (uint32_t k = 0; k < have; k++)
        top[k] -= lse;
    out->token = token;
    out->logprob = logits[token] - lse;
    out->have = have;
}

void st_logprobs_report(const float *logits, uint32_t n_vocab, int32_t token, uint32_t n_top,
                        st_logprobs_fn fn, void *user)
{
    lp_result r;
    lp_compute(logits, n_vocab, token, n_top, &r);
    fn(user, r.token, r.logprob, r.ids, r.top, r.have);
}

/* The prompt's rows are independent: the pool's threads compute them
 * (each a pass over the vocabulary, which one thread would do alone while
 * the others wait), and the caller reports them in order. */
typedef struct rows_task {
    const float *rows;
    const int32_t *next;       /* the token each row predicts */
    uint32_t n_vocab, n_top;
    lp_result *out;
    st_work_split split;
} rows_task;

static void rows_task_fn(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    rows_task *t = arg;
    uint32_t home = UINT32_MAX, r;
    while ((r = st_work_split_next(&t->split, ith, &home)) != UINT32_MAX)
        lp_compute(t->rows + (size_t)r * t->n_vocab, t->n_vocab, t->next[r], t->n_top,
                   &t->out[r]);
}

void st_prompt_logprobs_report(const float *rows, size_t k, const int32_t *prompt,
                               size_t n_prompt, size_t first, uint32_t n_vocab, uint32_t n_top,
                               st_threadpool *pool, st_logprobs_fn fn, void *user)
{
    /* Row r predicts prompt[first + r + 1]; the last prompt token's row
     * predicts the answer and is not reported. */
    size_t n = first + 1 >= n_prompt ? 0 : n_prompt - first - 1;
    if (n > k)
        n = k;
    if (n == 0)
        return;
    rows_task *t = malloc(sizeof *t);
    lp_result *out = malloc(n * sizeof *out);
    if (!t || !out) {
        /* Without room for the results, one row at a time. */
        free(t);
        free(out);
        for (size_t r = 0; r < n; r++)
            st_logprobs_report(rows + r * n_vocab, n_vocab, prompt[first + r + 1], n_top, fn,
                               user);
        return;
    }
    t->rows = rows;
    t->next = prompt + first + 1;
    t->n_vocab = n_vocab;
    t->n_top = n_top;
    t->out = out;
    st_work_split_init(&t->split, (uint32_t)n, pool ? st_threadpool_size(pool) : 1);
    st_threadpool_run(pool, rows_task_fn, t);
    for (size_t r = 0; r < n; r++)
        fn(user, out[r].token, out[r].logprob, out[r].ids, out[r].top, out[r].have);
    free(out);
    free(t);
}
