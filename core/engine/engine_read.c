/*
 * core/engine/engine_read.c - st_engine_read: a document of any length
 * read chunk by chunk, the strategy's reader (stretch/reader.h) choosing
 * what to carry forward given the question.
 *
 * The document is streamed sentence by sentence (sentence_reader.c) and
 * tokenized a sentence at a time; sentences fill a chunk of at most
 * `chunk` tokens, and each full chunk is handed to the reader after what
 * it kept so far. What is resident is the read buffer, one chunk and the
 * kept tokens: flat in the document's length. The reader's own scoring
 * runs through model_score's scratch cache, sized by the same step.
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>
#include <stretch/reader.h>

#include "abi_sizes.h"
#include "sentence_reader.h"

typedef struct reader_ref {
    const st_reader_v1 *ops;
    void *inst;
    const char *name;
} reader_ref;

/* The first of the strategy's plugins that offers ST_READER_V1, in kind
 * order; ST_E_NOT_FOUND when none does. */
static st_status find_reader(st_engine *e, reader_ref *out, st_error *err)
{
    const st_engine_plugin *order[4 + 64];
    size_t n = 0;
    order[n++] = &e->tokenizer;
    order[n++] = &e->posenc;
    order[n++] = &e->attention;
    for (size_t i = 0; i < e->n_samplers && n < 4 + 63; i++)
        order[n++] = &e->samplers[i];
    order[n++] = &e->retriever;
    for (size_t i = 0; i < n; i++) {
        const st_engine_plugin *p = order[i];
        if (!p->lib || !p->in || !p->lib->entry->get_extension)
            continue;
        const st_reader_v1 *r = p->lib->entry->get_extension(p->in->inst, ST_READER_V1);
        if (!r)
            continue;
        const char *name = p->lib->entry->name;
        if (r->struct_size < ST_READER_V1_SIZE_1_3 || !r->kept_max || !r->select)
            return st_error_set(err, ST_E_PLUGIN,
                                "plugin '%s' offers " ST_READER_V1 " with struct_size %u "
                                "(expected at least %zu) or a NULL kept_max/select", name,
                                r->struct_size, (size_t)ST_READER_V1_SIZE_1_3);
        *out = (reader_ref){r, p->in->inst, name};
        return ST_OK;
    }
    return st_error_set(err, ST_E_NOT_FOUND,
                        "%s: none of the strategy's plugins offers " ST_READER_V1
                        ", so it cannot read a document chunk by chunk; use a reading "
                        "strategy (manifests/infiniretri.yaml, manifests/xl3m.yaml)",
                        e->strategy->path);
}

const char *st_engine_reader_name(st_engine *e)
{
    reader_ref r;
    return find_reader(e, &r, NULL) == ST_OK ? r.name : NULL;
}

/* The state of one reading. */
typedef struct reading {
    st_engine *e;
    reader_ref reader;
    const st_read_params *p;
    int32_t *question;
    size_t n_question;
    uint32_t chunk, kept_max;
    int32_t *tokens;      /* [kept_max + chunk]: the kept tokens, then the chunk's */
    uint32_t *sentence;   /* same layout */
    uint8_t *keep;
    size_t n_kept, n_chunk;
    uint32_t next_sentence;
    st_read_stats stats;
} reading;

/* Hand the reader one step and carry what it keeps. */
static st_status run_step(reading *r, bool last, st_error *err)
{
    size_t n = r->n_kept + r->n_chunk;
    st_read_step step = {
        .struct_size = sizeof step,
        .tokens = r->tokens,
        .n_tokens = n,
        .n_kept = r->n_kept,
        .sentence = r->sentence,
        .question = r->question,
        .n_question = r->n_question,
        .bos = r->e->add_bos ? r->e->special.bos : -1,
        .chunk = r->stats.n_chunks,
        .last = last,
    };
    memset(r->keep, 0, n);
    st_status st = r->reader.ops->select(r->reader.inst, &step, r->keep, NULL, err);
    if (st != ST_OK)
        return st_engine_fail_wrap(err, st, "reader plugin '%s': select of chunk %llu failed",
                                   r->reader.name, (unsigned long long)r->stats.n_chunks);
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (r->keep[i])
            j++;
    if (j > r->kept_max)
        return st_error_set(err, ST_E_PLUGIN,
                            "reader plugin '%s' kept %zu tokens of chunk %llu; its kept_max "
                            "is %u", r->reader.name, j,
                            (unsigned long long)r->stats.n_chunks, r->kept_max);
    if (n > r->stats.max_step_tokens)
        r->stats.max_step_tokens = (uint32_t)n;
    j = 0;
    for (size_t i = 0; i < n; i++)
        if (r->keep[i]) {
            r->tokens[j] = r->tokens[i];
            r->sentence[j] = r->sentence[i];
            j++;
        }
    r->n_kept = j;
    r->n_chunk = 0;
    r->stats.n_chunks++;
    r->stats.n_kept = (uint32_t)j;
    return ST_OK;
}

/* Add one sentence's tokens to the chunk, reading the chunk first when
 * they do not fit; a sentence longer than a chunk is cut in pieces. */
static st_status add_sentence(reading *r, const int32_t *ids, size_t m, st_error *err)
{
    for (size_t at = 0; at < m;) {
        size_t piece = m - at < r->chunk ? m - at : r->chunk;
        if (r->n_chunk + piece > r->chunk) {
            st_status st = run_step(r, false, err);
            if (st != ST_OK)
                return st;
            if (st_engine_take_cancel(r->e))
                return st_error_set(err, ST_E_CANCELLED, "cancelled");
            if (r->p->progress &&
                r->p->progress(r->p->progress_user, (size_t)r->stats.n_bytes, 0) != 0)
                return st_error_set(err, ST_E_CANCELLED, "cancelled");
        }
        size_t w = r->n_kept + r->n_chunk;
        memcpy(r->tokens + w, ids + at, piece * sizeof *ids);
        for (size_t i = 0; i < piece; i++)
            r->sentence[w + i] = r->next_sentence;
        r->next_sentence++;
        r->n_chunk += piece;
        r->stats.n_sentences++;
        at += piece;
    }
    r->stats.n_tokens += m;
    return ST_OK;
}

static bool has_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return true;
    return false;
}

/* The limits the bad inputs meet, checked before reading. */
static st_status check_sizes(reading *r, st_error *err)
{
    st_engine *e = r->e;
    if (r->n_question > r->chunk)
        return st_error_set(err, ST_E_RANGE,
                            "the question is %zu tokens, longer than a chunk of %u: shorten "
                            "it or raise the chunk size", r->n_question, r->chunk);
    uint64_t need = (uint64_t)r->kept_max + r->chunk + r->n_question + 1;
    if (need > e->n_ctx)
        return st_error_set(err, ST_E_RANGE,
                            "a chunk of %u tokens does not fit the context: with the %u tokens "
                            "reader '%s' may keep, the question's %zu and BOS a step is %llu "
                            "tokens, the context %u; lower the chunk size or raise `context:`",
                            r->chunk, r->kept_max, r->reader.name, r->n_question,
                            (unsigned long long)need, e->n_ctx);
    return ST_OK;
}

static st_status read_all(reading *r, int32_t **kept, size_t *n_kept, st_error *err)
{
    st_engine *e = r->e;
    const st_read_params *p = r->p;
    st_status st = st_engine_tokenize(e, p->question, p->question_len, 0, &r->question,
                                      &r->n_question, err);
    if (st != ST_OK)
        return st;
    if ((st = check_sizes(r, err)) != ST_OK)
        return st;
    size_t step_cap = (size_t)r->kept_max + r->chunk;
    r->tokens = malloc(step_cap * sizeof *r->tokens);
    r->sentence = malloc(step_cap * sizeof *r->sentence);
    r->keep = malloc(step_cap);
    if (!r->tokens || !r->sentence || !r->keep)
        return st_error_set(err, ST_E_NOMEM, "out of memory for a %zu-token step", step_cap);
    st_sentence_reader sr;
    /* A sentence of at most `chunk` bytes is at most `chunk` tokens for a
     * tokenizer that never emits more tokens than bytes; add_sentence cuts
     * any other in pieces all the same. */
    if ((st = st_sentence_reader_init(&sr, p->read, p->read_user, r->chunk, err)) != ST_OK)
        return st;
    bool text = false;
    for (;;) {
        const char *s = NULL;
        size_t n = 0;
        if ((st = st_sentence_next(&sr, &s, &n, err)) != ST_OK || n == 0)
            break;
        text = text || has_text(s, n);
        /* What the progress callback reports: the bytes taken into
         * sentences so far, not those buffered ahead of them. */
        r->stats.n_bytes = sr.n_bytes - sr.len;
        int32_t *ids = NULL;
        size_t m = 0;
        if ((st = st_engine_tokenize(e, s, n, 0, &ids, &m, err)) != ST_OK)
            break;
        st = add_sentence(r, ids, m, err);
        free(ids);
        if (st != ST_OK)
            break;
    }
    r->stats.n_bytes = sr.n_bytes;
    st_sentence_reader_free(&sr);
    if (st != ST_OK)
        return st;
    if (!text)
        return st_error_set(err, ST_E_INVALID,
                            "the document is empty (%llu bytes, no text): nothing to read",
                            (unsigned long long)r->stats.n_bytes);
    if (r->n_chunk && (st = run_step(r, true, err)) != ST_OK)
        return st;
    *kept = malloc((r->n_kept ? r->n_kept : 1) * sizeof **kept);
    if (!*kept)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    memcpy(*kept, r->tokens, r->n_kept * sizeof **kept);
    *n_kept = r->n_kept;
    return ST_OK;
}

st_status st_engine_read(st_engine *e, const st_read_params *caller, int32_t **kept,
                         size_t *n_kept, st_read_stats *stats, st_error *err)
{
    *kept = NULL;
    *n_kept = 0;
    /* Fields a later minor appends keep their zero defaults for an older
     * caller; nothing past its struct is read. */
    st_read_params p;
    if (!caller || !st_sized_read(&p, sizeof p, caller, caller->struct_size,
                                  ST_READ_PARAMS_SIZE_1_3))
        return st_error_set(err, ST_E_ABI,
                            "st_read_params.struct_size is %u, expected at least %zu (set it "
                            "to sizeof(st_read_params))", caller ? caller->struct_size : 0,
                            (size_t)ST_READ_PARAMS_SIZE_1_3);
    const st_read_params *params = &p;
    if (!params->read)
        return st_error_set(err, ST_E_INVALID, "st_engine_read: no read function");
    if (!params->question || !has_text(params->question, params->question_len))
        return st_error_set(err, ST_E_INVALID,
                            "the question is empty: reading needs a question to choose what "
                            "to keep (--question)");
    st_status st = st_engine_check_vocab(e, err);
    if (st != ST_OK)
        return st;
    reading r = {.e = e, .p = params};
    r.stats.struct_size = sizeof r.stats;
    r.chunk = params->chunk ? params->chunk : ST_READ_CHUNK_DEFAULT;
    if ((st = find_reader(e, &r.reader, err)) != ST_OK)
        return st;
    r.kept_max = r.reader.ops->kept_max(r.reader.inst);
    if (r.kept_max == 0)
        return st_error_set(err, ST_E_PLUGIN, "reader plugin '%s' says it keeps 0 tokens",
                            r.reader.name);
    st = read_all(&r, kept, n_kept, err);
    free(r.question);
    free(r.tokens);
    free(r.sentence);
    free(r.keep);
    if (stats)
        st_sized_write(stats, &r.stats, sizeof r.stats, sizeof r.stats);
    return st;
}
