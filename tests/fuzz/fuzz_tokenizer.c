/*
 * tests/fuzz/fuzz_tokenizer.c - the tokenizer targets' shared oracles
 * (fuzz_tokenizer.h).
 */
#include "fuzz_tokenizer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

int32_t *st_fuzz_encode(const st_tokenizer_ops *ops, void *inst, const char *text, size_t len,
                        uint32_t flags, size_t *n)
{
    st_error err = {0};
    size_t need = 0;
    st_status st = ops->encode(inst, text, len, flags, NULL, 0, &need, &err);
    if (st != ST_OK && st != ST_E_RANGE)
        st_fuzz_fail("encode refused %zu bytes: %s", len, err.message);
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    if (ops->encode(inst, text, len, flags, ids, need, n, &err) != ST_OK || *n != need)
        st_fuzz_fail("encode: sized %zu ids, then %s (%zu ids)", need, err.message, *n);
    return ids;
}

void st_fuzz_check_pieces(const st_tokenizer_ops *ops, void *inst, const int32_t *ids, size_t n)
{
    int32_t vocab = ops->vocab_size(inst);
    st_error err = {0};
    for (size_t k = 0; k < n; k++) {
        const char *piece;
        size_t plen;
        if (ids[k] < 0 || ids[k] >= vocab || ops->piece(inst, ids[k], &piece, &plen, &err) != ST_OK)
            st_fuzz_fail("encode produced id %d, which has no piece", ids[k]);
    }
}

char *st_fuzz_decode(const st_tokenizer_ops *ops, void *inst, const int32_t *ids, size_t n,
                     size_t *len)
{
    st_error err = {0};
    size_t need = 0;
    st_status st = ops->decode(inst, ids, n, NULL, 0, &need, &err);
    if (st != ST_OK && st != ST_E_RANGE) {
        if (!err.message[0])
            st_fuzz_fail("decode refused %zu ids without a message", n);
        return NULL;
    }
    char *out = malloc(need ? need : 1);
    st = ops->decode(inst, ids, n, out, need, len, &err);
    if (st != ST_OK || *len != need)
        st_fuzz_fail("decode: sized %zu bytes, then %s (%zu bytes)", need, err.message, *len);
    return out;
}

void st_fuzz_decode_raw_ids(const st_tokenizer_ops *ops, void *inst, const uint8_t *bytes,
                            size_t len)
{
    size_t n_raw = len / sizeof(int32_t), back_len = 0;
    int32_t *raw = malloc((n_raw ? n_raw : 1) * sizeof *raw);
    memcpy(raw, bytes, n_raw * sizeof *raw);
    char *back = st_fuzz_decode(ops, inst, raw, n_raw, &back_len);
    int32_t vocab = ops->vocab_size(inst);
    bool in_range = true;
    for (size_t k = 0; k < n_raw; k++)
        in_range = in_range && raw[k] >= 0 && raw[k] < vocab;
    if (!back && in_range)
        st_fuzz_fail("ids inside the vocabulary were refused");
    free(back);
    free(raw);
}
