/*
 * tests/bad/libs/tokenizer_misbehaves/tokenizer.c - a byte tokenizer (byte b
 * is id 3 + b, as in the tiny test models) that breaks one promise of
 * tokenizer.h, chosen by its `mode` parameter, so the engine's checks of
 * tokenizer output can be shown to hold (tests/engine/test_engine_plugins.c).
 */
#include <string.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

#define FIRST_BYTE 3

enum mode { HONEST, OVER_CAPACITY, OUT_OF_VOCAB, NULL_PIECE, HUGE_PIECE };

typedef struct bad_tok {
    const st_host_services *host;
    enum mode mode;
    int32_t vocab;
    char bytes[256];
} bad_tok;

static st_status bad_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    static const char *const names[] = {"honest", "over-capacity", "out-of-vocab",
                                        "null-piece", "huge-piece"};
    bad_tok *t = host->calloc(host->host, 1, sizeof *t);
    if (!t)
        return host->error(err, ST_E_NOMEM, "bad-tokenizer: out of memory");
    t->host = host;
    for (int i = 0; i < 5; i++)
        if (st_param_is(params, "mode", names[i]))
            t->mode = (enum mode)i;
    t->vocab = (int32_t)st_param_int(params, "vocab");
    for (int i = 0; i < 256; i++)
        t->bytes[i] = (char)i;
    *inst = t;
    return ST_OK;
}

static void bad_destroy(void *inst)
{
    bad_tok *t = inst;
    if (t)
        t->host->free(t->host->host, t);
}

static st_status bad_encode(void *inst, const char *text, size_t len, uint32_t flags,
                            int32_t *ids, size_t cap, size_t *n_ids, st_error *err)
{
    bad_tok *t = inst;
    (void)flags;
    (void)err;
    for (size_t i = 0; i < len && i < cap; i++)
        ids[i] = FIRST_BYTE + (unsigned char)text[i];
    if (t->mode == OUT_OF_VOCAB && len && cap)
        ids[0] = t->vocab + 7;
    if (t->mode == OVER_CAPACITY) {
        *n_ids = cap + 4096; /* and ST_OK: the host must not read past cap */
        return ST_OK;
    }
    *n_ids = len;
    return len > cap ? ST_E_RANGE : ST_OK;
}

static st_status bad_decode(void *inst, const int32_t *ids, size_t n_ids, char *out,
                            size_t cap, size_t *n_bytes, st_error *err)
{
    (void)inst;
    (void)err;
    size_t w = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] >= FIRST_BYTE && ids[i] < FIRST_BYTE + 256) {
            if (w < cap)
                out[w] = (char)(ids[i] - FIRST_BYTE);
            w++;
        }
    *n_bytes = w;
    return w > cap ? ST_E_RANGE : ST_OK;
}

static st_status bad_piece(void *inst, int32_t id, const char **bytes, size_t *len,
                           st_error *err)
{
    bad_tok *t = inst;
    (void)err;
    if (t->mode == NULL_PIECE) {
        *bytes = NULL;
        *len = 1;
        return ST_OK;
    }
    *bytes = id >= FIRST_BYTE && id < FIRST_BYTE + 256 ? &t->bytes[id - FIRST_BYTE] : "?";
    *len = t->mode == HUGE_PIECE ? (size_t)1 << 40 : 1;
    return ST_OK;
}

static int32_t bad_vocab_size(void *inst)
{
    return ((bad_tok *)inst)->vocab;
}

static void bad_special(void *inst, st_special_tokens *out)
{
    (void)inst;
    out->bos = out->eos = out->eot = out->pad = out->unk = out->sep = -1;
}

static bool bad_is_special(void *inst, int32_t id)
{
    (void)inst;
    (void)id;
    return false;
}

static const st_tokenizer_ops bad_ops = {
    .struct_size = sizeof(st_tokenizer_ops),
    .encode = bad_encode,
    .decode = bad_decode,
    .piece = bad_piece,
    .vocab_size = bad_vocab_size,
    .special = bad_special,
    .is_special = bad_is_special,
};

ST_PLUGIN(ST_KIND_TOKENIZER, "bad-tokenizer", "0.0.1",
          "engine fixture: a byte tokenizer that breaks one promise", bad_create, bad_destroy,
          &bad_ops, NULL);
