/*
 * sampler `json-schema`: the output is one JSON value valid for a JSON
 * Schema. The schema is compiled to GBNF (cg_schema.c) and run by the
 * constraint engine; what it cannot enforce is refused at create time,
 * naming the keyword and its line:column, or (strict: false) logged as a
 * warning.
 */
#include <stdlib.h>
#include <string.h>

#include <stretch/params.h>

#include "cg_constraint.h"
#include "cg_schema.h"

/* Larger schema files are refused before they are read. */
#define SCHEMA_FILE_MAX (8u << 20)

static st_status schema_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    const char *arg = st_param_str(params, "schema");
    cg_schema_options opt = {
        .strict = st_param_bool(params, "strict"),
        .compact = st_param_is(params, "whitespace", "compact"),
        .open_objects = st_param_bool(params, "open-objects"),
    };
    const char *text = arg, *source = "schema";
    size_t len = strlen(arg);
    size_t skip = strspn(arg, " \t\r\n");
    char *file = NULL;
    if (arg[skip] != '{' && strcmp(arg + skip, "true") != 0) {
        if (!(file = cg_read_file(host, "json-schema", arg, SCHEMA_FILE_MAX, &len, err)))
            return err ? err->status : ST_E_IO;
        text = file;
        source = arg;
    }
    cg_buf gbnf = {0}, warnings = {0};
    cg_error cerr;
    double t0 = cg_now_s();
    bool compiled = cg_schema_to_gbnf(text, len, &opt, &gbnf, &warnings, &cerr);
    host->log(host->host, ST_LOG_DEBUG, "json-schema", "schema-ms: %.3f",
              (cg_now_s() - t0) * 1e3);
    if (!compiled) {
        int line = 0, col = 0;
        if (cerr.offset >= 0)
            cg_line_col(text, len, cerr.offset, &line, &col);
        host->error(err, ST_E_INVALID, "json-schema: %s:%d:%d: %s", source, line, col,
                    cerr.message);
        free(file);
        cg_buf_free(&gbnf);
        cg_buf_free(&warnings);
        return ST_E_INVALID;
    }
    free(file);
    for (char *w = warnings.s, *nl; w && *w; w = nl + 1) {
        nl = strchr(w, '\n');
        *nl = '\0';
        host->log(host->host, ST_LOG_WARN, "json-schema", "%s: %s", source, w);
    }
    cg_buf_free(&warnings);
    cg_constraint *c = host->calloc(host->host, 1, sizeof *c);
    if (!c || gbnf.oom) {
        if (c)
            host->free(host->host, c);
        cg_buf_free(&gbnf);
        return host->error(err, ST_E_NOMEM, "json-schema: out of memory");
    }
    st_status st = cg_constraint_open(c, host, "json-schema", gbnf.s, gbnf.n, source, true, err);
    cg_buf_free(&gbnf);
    if (st != ST_OK) {
        host->free(host->host, c);
        return st;
    }
    *inst = c;
    return ST_OK;
}

static void schema_destroy(void *inst)
{
    cg_constraint *c = inst;
    if (!c)
        return;
    const st_host_services *host = c->host;
    cg_constraint_close(c);
    host->free(host->host, c);
}

static st_status schema_apply(void *inst, st_candidates *cands, st_error *err)
{
    return cg_constraint_apply(inst, cands, err);
}

static st_status schema_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return cg_constraint_accept(inst, token, is_prompt, err);
}

static void schema_reset(void *inst, uint64_t seed)
{
    (void)seed;
    cg_constraint_reset(inst);
}

static const st_sampler_ops schema_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = schema_apply,
    .accept = schema_accept,
    .reset = schema_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "json-schema", "0.1.0",
          "Keeps only the tokens that keep the output valid JSON for a JSON Schema",
          schema_create, schema_destroy, &schema_ops, NULL);
