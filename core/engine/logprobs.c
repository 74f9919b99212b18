/*
 * core/engine/logprobs.c - log-softmax at one token and the top n, in one
 * pass for the maximum and the top n and one for the sum. The sum of the
 * exponentials is kept in double: 50k terms in float would lose the last
 * digits that a caller comparing two tokens' log-probabilities sees.
 */
#include "logprobs.h"

#include <math.h>

void st_logprobs_report(const float *logits, uint32_t n_vocab, int32_t token, uint32_t n_top,
                        st_logprobs_fn fn, void *user)
{
    int32_t ids[ST_TOP_LOGPROBS_MAX];
    float top[ST_TOP_LOGPROBS_MAX];
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
    double sum = 0.0;
    for (uint32_t i = 0; i < n_vocab; i++)
        sum += (double)expf(logits[i] - mx);
    float lse = mx + (float)log(sum);
    for (uint32_t k = 0; k < have; k++)
        top[k] -= lse;
    fn(user, token, logits[token] - lse, ids, top, have);
}

void st_prompt_logprobs_report(const float *rows, size_t k, const int32_t *prompt,
                               size_t n_prompt, size_t first, uint32_t n_vocab, uint32_t n_top,
                               st_logprobs_fn fn, void *user)
{
    for (size_t r = 0; r < k && first + r + 1 < n_prompt; r++)
        st_logprobs_report(rows + r * n_vocab, n_vocab, prompt[first + r + 1], n_top, fn, user);
}
