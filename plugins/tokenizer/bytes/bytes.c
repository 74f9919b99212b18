/*
 * tokenizer `bytes`: every byte is its own token (ids 0..255), followed by
 * three special tokens <bos> = 256, <eos> = 257, <pad> = 258. Needs no model,
 * so it is what tests and model-free tools use; any byte string round-trips.
 */
#include <string.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

#define BYTES_BOS 256
#define BYTES_EOS 257
#define BYTES_PAD 258
#define BYTES_VOCAB 259

typedef struct bytes_tok {
    const st_host_services *host;
    bool has_bos;
    char byte_piece[256]; /* byte_piece[i] == i: the stable storage piece() points into */
} bytes_tok;

static const char *const special_text[3] = {"<bos>", "<eos>", "<pad>"};

static st_status bytes_create(const st_host_services *host, const st_params *params,
                              void **inst, st_error *err)
{
    bool has_bos = st_param_bool(params, "bos");
    bytes_tok *t = host->calloc(host->host, 1, sizeof *t);
    if (!t)
        return host->error(err, ST_E_NOMEM, "bytes: out of memory");
    t->host = host;
    t->has_bos = has_bos;
    for (int i = 0; i < 256; i++)
        t->byte_piece[i] = (char)i;
    *inst = t;
    return ST_OK;
}

static void bytes_destroy(void *inst)
{
    bytes_tok *t = inst;
    if (t)
        t->host->free(t->host->host, t);
}

/* The special token whose text starts text[0..len), or -1. */
static int32_t match_special(const bytes_tok *t, const char *text, size_t len, size_t *n)
{
    for (int s = 0; s < 3; s++) {
        size_t sl = strlen(special_text[s]);
        if (len >= sl && memcmp(text, special_text[s], sl) == 0) {
            if (s == 0 && !t->has_bos)
                continue;
            *n = sl;
            return BYTES_BOS + s;
        }
    }
    return -1;
}

static st_status bytes_encode(void *inst, const char *text, size_t len, uint32_t flags,
                              int32_t *ids, size_t cap, size_t *n_ids, st_error *err)
{
    bytes_tok *t = inst;
    if (!text && len)
        return t->host->error(err, ST_E_INVALID, "bytes: encode given NULL text");
    size_t n = 0;
    if ((flags & ST_ENCODE_ADD_BOS) && t->has_bos) {
        if (n < cap)
            ids[n] = BYTES_BOS;
        n++;
    }
    for (size_t i = 0; i < len;) {
        int32_t id = -1;
        size_t used = 1;
        if ((flags & ST_ENCODE_PARSE_SPECIAL) && text[i] == '<')
            id = match_special(t, text + i, len - i, &used);
        if (id < 0) {
            id = (unsigned char)text[i];
            used = 1;
        }
        if (n < cap)
            ids[n] = id;
        n++;
        i += used;
    }
    *n_ids = n;
    if (n > cap)
        return t->host->error(err, ST_E_RANGE, "bytes: encode needs %zu ids, buffer holds %zu",
                              n, cap);
    return ST_OK;
}

static st_status bytes_piece(void *inst, int32_t id, const char **bytes, size_t *len,
                             st_error *err)
{
    bytes_tok *t = inst;
    if (id >= 0 && id < 256) {
        *bytes = &t->byte_piece[id];
        *len = 1;
        return ST_OK;
    }
    if (id >= BYTES_BOS && id < BYTES_VOCAB) {
        *bytes = special_text[id - BYTES_BOS];
        *len = strlen(*bytes);
        return ST_OK;
    }
    return t->host->error(err, ST_E_INVALID, "bytes: token id %d is outside the vocabulary [0, %d)",
                          (int)id, BYTES_VOCAB);
}

static st_status bytes_decode(void *inst, const int32_t *ids, size_t n_ids, char *out,
                              size_t cap, size_t *n_bytes, st_error *err)
{
    bytes_tok *t = inst;
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        const char *p = NULL;
        size_t pl = 0;
        st_status st = bytes_piece(inst, ids[i], &p, &pl, err);
        if (st != ST_OK)
            return st;
        if (n + pl <= cap)
            memcpy(out + n, p, pl);
        else if (n < cap)
            memcpy(out + n, p, cap - n); /* fill what fits; caller retries anyway */
        n += pl;
    }
    *n_bytes = n;
    if (n > cap)
        return t->host->error(err, ST_E_RANGE, "bytes: decode needs %zu bytes, buffer holds %zu",
                              n, cap);
    return ST_OK;
}

static int32_t bytes_vocab_size(void *inst)
{
    return BYTES_VOCAB;
}

static void bytes_special(void *inst, st_special_tokens *out)
{
    bytes_tok *t = inst;
    out->struct_size = (uint32_t)sizeof *out;
    out->bos = t->has_bos ? BYTES_BOS : -1;
    out->eos = BYTES_EOS;
    out->eot = BYTES_EOS;
    out->pad = BYTES_PAD;
    out->unk = -1;
    out->sep = -1;
}

static bool bytes_is_special(void *inst, int32_t id)
{
    return id >= BYTES_BOS && id < BYTES_VOCAB;
}

static const st_tokenizer_ops bytes_ops = {
    .struct_size = sizeof(st_tokenizer_ops),
    .encode = bytes_encode,
    .decode = bytes_decode,
    .piece = bytes_piece,
    .vocab_size = bytes_vocab_size,
    .special = bytes_special,
    .is_special = bytes_is_special,
};

ST_PLUGIN(ST_KIND_TOKENIZER, "bytes", "1.0.0",
          "Byte-level tokenizer; ids 0-255 are bytes, then <bos>, <eos>, <pad>",
          bytes_create, bytes_destroy, &bytes_ops, NULL);
