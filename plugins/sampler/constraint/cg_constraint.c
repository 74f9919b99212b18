/*
 * plugins/sampler/constraint/cg_constraint.c - see cg_constraint.h.
 */
#include "cg_constraint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct vocab_ctx {
    const st_host_services *host;
    const st_host_vocab_v1 *ext;
    st_error *err;
} vocab_ctx;

static bool host_token_bytes(void *ctx, int32_t id, const char **bytes, size_t *len,
                             bool *special)
{
    vocab_ctx *v = ctx;
    return v->ext->token_bytes(v->host->host, id, bytes, len, special, v->err) == ST_OK;
}

double cg_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "mask-us: t t t ..." lines, at most 100 values each (the host's log
 * line is bounded). */
static void report_times(cg_constraint *c, const char *label, const float *us)
{
    for (size_t i = 0; i < c->n_mask; i += 100) {
        char line[1000];
        size_t n = (size_t)snprintf(line, sizeof line, "%s:", label);
        for (size_t j = i; j < c->n_mask && j < i + 100 && n + 12 < sizeof line; j++)
            n += (size_t)snprintf(line + n, sizeof line - n, " %.1f", us[j]);
        c->host->log(c->host->host, ST_LOG_DEBUG, c->plugin, "%s", line);
    }
}

static void report_mask_times(cg_constraint *c)
{
    report_times(c, "mask-us", c->mask_us);
    report_times(c, "apply-us", c->apply_us);
    c->n_mask = 0;
}

static bool is_eog(const cg_constraint *c, int32_t token)
{
    for (size_t i = 0; i < c->n_eog; i++)
        if (c->eog[i] == token)
            return true;
    return false;
}

st_status cg_constraint_open(cg_constraint *c, const st_host_services *host, const char *plugin,
                             const char *text, size_t len, const char *source,
                             bool text_is_generated, st_error *err)
{
    memset(c, 0, sizeof *c);
    c->host = host;
    c->plugin = plugin;
    cg_grammar_init(&c->grammar);
    double t0 = cg_now_s();
    cg_error gerr;
    if (!cg_gbnf_parse(&c->grammar, text, len, &gerr)) {
        int line = 0, col = 0;
        if (gerr.offset >= 0 && !text_is_generated) {
            cg_line_col(text, len, gerr.offset, &line, &col);
            host->error(err, ST_E_INVALID, "%s: %s:%d:%d: %s", plugin, source, line, col,
                        gerr.message);
        } else {
            host->error(err, ST_E_INVALID, "%s: %s: %s", plugin, source, gerr.message);
        }
        cg_constraint_close(c);
        return ST_E_INVALID;
    }
    const st_host_vocab_v1 *ext =
        host->get_extension ? host->get_extension(host->host, ST_HOST_VOCAB_V1) : NULL;
    if (!ext || ext->struct_size < sizeof *ext) {
        cg_constraint_close(c);
        return host->error(err, ST_E_UNAVAILABLE,
                           "%s: needs the token bytes of the vocabulary (%s), which this host "
                           "does not offer: run it in an engine with a tokenizer",
                           plugin, ST_HOST_VOCAB_V1);
    }
    double t_grammar = cg_now_s() - t0;
    vocab_ctx vc = {host, ext, err};
    c->vocab = cg_vocab_new(ext->n_tokens(host->host), host_token_bytes, &vc);
    c->n_eog = ext->eog_tokens(host->host, c->eog, CG_EOG_MAX);
    if (c->n_eog > CG_EOG_MAX)
        c->n_eog = CG_EOG_MAX;
    c->parser = cg_parser_new(&c->grammar);
    c->masker = c->vocab && c->parser ? cg_masker_new(c->vocab, c->parser) : NULL;
    if (!c->masker) {
        cg_constraint_close(c);
        return host->error(err, ST_E_NOMEM, "%s: out of memory building the token trie",
                           plugin);
    }
    if (c->n_eog == 0) {
        cg_constraint_close(c);
        return host->error(err, ST_E_INVALID,
                           "%s: the vocabulary has no end-of-generation token, so a "
                           "constrained output could never end", plugin);
    }
    c->state = cg_parser_start(c->parser);
    double t_trie = cg_now_s() - t0 - t_grammar;
    host->log(host->host, ST_LOG_DEBUG, plugin, "grammar-ms: %.3f trie-ms: %.3f rules: %zu",
              t_grammar * 1e3, t_trie * 1e3, c->grammar.n_rules);
    const uint8_t *mask = c->state ? cg_masker_get(c->masker, c->state) : NULL;
    bool any = false;
    for (size_t i = 0; mask && !any && i < ((size_t)cg_vocab_size(c->vocab) + 7) / 8; i++)
        any = mask[i] != 0;
    if (!any) {
        cg_constraint_close(c);
        return host->error(err, ST_E_INVALID,
                           "%s: %s: no token of the vocabulary can start this grammar "
                           "(its first bytes match no token's bytes)", plugin, source);
    }
    return ST_OK;
}

void cg_constraint_close(cg_constraint *c)
{
    if (c->n_mask)
        report_mask_times(c);
    free(c->mask_us);
    free(c->apply_us);
    c->mask_us = c->apply_us = NULL;
    c->cap_mask = 0;
    cg_masker_free(c->masker);
    cg_parser_free(c->parser);
    cg_vocab_free(c->vocab);
    cg_grammar_free(&c->grammar);
    c->masker = NULL;
    c->parser = NULL;
    c->vocab = NULL;
}

static st_status apply(cg_constraint *c, st_candidates *cands, st_error *err);

st_status cg_constraint_apply(cg_constraint *c, st_candidates *cands, st_error *err)
{
    double t0 = cg_now_s();
    c->last_mask_s = 0;
    st_status st = apply(c, cands, err);
    if (c->n_mask == c->cap_mask) {
        size_t cap = c->cap_mask ? c->cap_mask * 2 : 256;
        float *m = realloc(c->mask_us, cap * sizeof *m);
        if (m)
            c->mask_us = m;
        float *a = m ? realloc(c->apply_us, cap * sizeof *a) : NULL;
        if (!a)
            return st;
        c->apply_us = a;
        c->cap_mask = cap;
    }
    c->mask_us[c->n_mask] = (float)(c->last_mask_s * 1e6);
    c->apply_us[c->n_mask++] = (float)((cg_now_s() - t0) * 1e6);
    return st;
}

static st_status apply(cg_constraint *c, st_candidates *cands, st_error *err)
{
    /* After the end only end-of-generation is left (a caller that ignores
     * EOS keeps getting it). */
    double t0 = cg_now_s();
    const uint8_t *mask = c->ended ? NULL : cg_masker_get(c->masker, c->state);
    c->last_mask_s = cg_now_s() - t0;
    if (!mask && !c->ended)
        return c->host->error(err, ST_E_NOMEM,
                              "%s: the grammar is too ambiguous: its parser outgrew its budget",
                              c->plugin);
    bool accepting = c->ended || cg_parser_accepting(c->parser, c->state);
    int32_t nv = cg_vocab_size(c->vocab);
    size_t kept = 0;
    for (size_t i = 0; i < cands->size; i++) {
        int32_t id = cands->data[i].id;
        bool ok = id >= 0 && id < nv &&
                  (is_eog(c, id) ? accepting : mask && (mask[id >> 3] >> (id & 7)) & 1);
        if (ok)
            cands->data[kept++] = cands->data[i];
    }
    /* Compaction keeps the order, so `sorted` still holds; a pick made
     * before this sampler may point elsewhere now. */
    bool shrunk = kept != cands->size;
    cands->size = kept;
    if (shrunk)
        cands->selected = -1;
    if (kept == 0 && cands->data)
        return c->host->error(err, ST_E_INVALID,
                              "%s: none of the candidates continues the grammar (put the "
                              "constraint before samplers that truncate, such as top-k)",
                              c->plugin);
    return ST_OK;
}

st_status cg_constraint_accept(cg_constraint *c, int32_t token, bool is_prompt, st_error *err)
{
    if (is_prompt)
        return ST_OK;
    if (c->ended && is_eog(c, token))
        return ST_OK;
    if (c->ended)
        return c->host->error(err, ST_E_INVALID, "%s: token %d after the output ended",
                              c->plugin, token);
    if (token < 0 || token >= cg_vocab_size(c->vocab))
        return c->host->error(err, ST_E_INVALID, "%s: token %d is outside the vocabulary",
                              c->plugin, token);
    if (is_eog(c, token)) {
        if (!cg_parser_accepting(c->parser, c->state))
            return c->host->error(err, ST_E_INVALID,
                                  "%s: end of generation before the grammar is complete",
                                  c->plugin);
        c->ended = true;
        return ST_OK;
    }
    uint32_t next = cg_advance_token(c->parser, c->vocab, c->state, token);
    if (next == UINT32_MAX)
        return c->host->error(err, ST_E_NOMEM,
                              "%s: the grammar is too ambiguous: its parser outgrew its budget",
                              c->plugin);
    if (next == 0)
        return c->host->error(err, ST_E_INVALID, "%s: token %d does not continue the grammar",
                              c->plugin, token);
    c->state = next;
    return ST_OK;
}

void cg_constraint_reset(cg_constraint *c)
{
    if (c->n_mask)
        report_mask_times(c);
    c->state = cg_parser_start(c->parser);
    c->ended = false;
}

char *cg_read_file(const st_host_services *host, const char *plugin, const char *path,
                   size_t max_bytes, size_t *len, st_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        host->error(err, ST_E_IO, "%s: cannot open %s: %s", plugin, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max_bytes) {
            free(buf);
            fclose(f);
            host->error(err, ST_E_INVALID, "%s: %s is larger than %zu bytes", plugin, path,
                        max_bytes);
            return NULL;
        }
        if (got == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        host->error(err, bad ? ST_E_IO : ST_E_NOMEM, "%s: cannot read %s", plugin, path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
