/*
 * plugins/sampler/constraint/cg_open.c - see cg_open.h.
 */
#include "cg_open.h"

#include <stdlib.h>
#include <string.h>

/* Grammar and schema files larger than this are refused unread. */
#define CG_SPEC_FILE_MAX (8u << 20)

int cg_kind_from_name(const char *name)
{
    if (strcmp(name, "gbnf") == 0)
        return CG_KIND_GBNF;
    if (strcmp(name, "regex") == 0)
        return CG_KIND_REGEX;
    if (strcmp(name, "json-schema") == 0)
        return CG_KIND_JSON_SCHEMA;
    return -1;
}

/* A grammar is inline when it has "::=", a schema when it starts with '{'
 * (or is `true`); anything else is a file path. */
static bool is_inline(cg_kind kind, const char *spec)
{
    if (kind == CG_KIND_REGEX)
        return true;
    if (kind == CG_KIND_GBNF)
        return strstr(spec, "::=") != NULL;
    size_t skip = strspn(spec, " \t\r\n");
    return spec[skip] == '{' || strcmp(spec + skip, "true") == 0;
}

/* JSON Schema or regex -> GBNF into `gbnf`; ST_OK or a filled err. */
static st_status to_gbnf(const st_host_services *host, const char *plugin, cg_kind kind,
                         const char *text, size_t len, const char *source,
                         const cg_schema_options *opt, cg_buf *gbnf, st_error *err)
{
    cg_error cerr;
    if (kind == CG_KIND_REGEX) {
        cg_buf_puts(gbnf, "root ::= ");
        if (!cg_regex_to_gbnf(text, len, false, gbnf, &cerr))
            return host->error(err, ST_E_INVALID, "%s: pattern '%.200s': %s", plugin, text,
                               cerr.message);
        cg_buf_puts(gbnf, "\n");
        return ST_OK;
    }
    cg_buf warnings = {0};
    double t0 = cg_now_s();
    bool compiled = cg_schema_to_gbnf(text, len, opt, gbnf, &warnings, &cerr);
    host->log(host->host, ST_LOG_DEBUG, plugin, "schema-ms: %.3f", (cg_now_s() - t0) * 1e3);
    if (!compiled) {
        int line = 0, col = 0;
        if (cerr.offset >= 0)
            cg_line_col(text, len, cerr.offset, &line, &col);
        cg_buf_free(&warnings);
        return host->error(err, ST_E_INVALID, "%s: %s:%d:%d: %s", plugin, source, line, col,
                           cerr.message);
    }
    for (char *w = warnings.s, *nl; w && *w; w = nl + 1) {
        nl = strchr(w, '\n');
        *nl = '\0';
        host->log(host->host, ST_LOG_WARN, plugin, "%s: %s", source, w);
    }
    cg_buf_free(&warnings);
    return ST_OK;
}

st_status cg_open_spec(cg_constraint *c, const st_host_services *host, const char *plugin,
                       cg_kind kind, const char *spec, const cg_schema_options *opt,
                       st_error *err)
{
    const char *text = spec;
    const char *source = kind == CG_KIND_GBNF ? "grammar"
                       : kind == CG_KIND_REGEX ? "pattern" : "schema";
    size_t len = strlen(spec);
    char *file = NULL;
    if (!is_inline(kind, spec)) {
        if (!(file = cg_read_file(host, plugin, spec, CG_SPEC_FILE_MAX, &len, err)))
            return err ? err->status : ST_E_IO;
        text = file;
        source = spec;
    }
    st_status st;
    if (kind == CG_KIND_GBNF) {
        st = cg_constraint_open(c, host, plugin, text, len, source, false, err);
    } else {
        cg_buf gbnf = {0};
        st = to_gbnf(host, plugin, kind, text, len, source, opt, &gbnf, err);
        if (st == ST_OK && gbnf.oom)
            st = host->error(err, ST_E_NOMEM, "%s: out of memory", plugin);
        if (st == ST_OK)
            st = cg_constraint_open(c, host, plugin, gbnf.s, gbnf.n, source, true, err);
        cg_buf_free(&gbnf);
    }
    free(file);
    return st;
}
