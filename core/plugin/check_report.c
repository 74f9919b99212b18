/*
 * core/plugin/check_report.c - see check_report.h, and st_plugin_check:
 * the checker (load_check.c) keeps its fixed-size pipe report; this turns
 * a validated one into the public struct, strings in the report's arena.
 */
#include "check_report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_arena.h"
#include "plugin_ops.h"
#include "plugins_api.h"

/* The public struct first, so the caller's pointer is the allocation's. */
typedef struct check_report_owned {
    st_check_report pub;
    st_arena arena;
} check_report_owned;

/* "FAIL name: message" lines of the summary become failed checks; the last
 * line "N checks, F failed, S skipped" gives the counts. */
static void parse_conformance(st_arena *a, const char *text, st_check_report *out)
{
    size_t n_lines = 0;
    for (const char *c = text; *c; c++)
        n_lines += *c == '\n';
    const st_conformance_result **checks = st_arena_alloc(a, (n_lines + 1) * sizeof *checks);
    if (!checks)
        return;
    size_t n = 0;
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        char *one = strndup(line, len);
        if (!one) {
            a->failed = 1;
            return;
        }
        size_t run, failed, skipped;
        if (strncmp(one, "FAIL ", 5) == 0) {
            char *colon = strstr(one + 5, ": ");
            st_conformance_result *c = st_arena_alloc(a, sizeof *c);
            if (c) {
                if (colon)
                    *colon = '\0';
                c->name = st_arena_strdup(a, one + 5);
                c->passed = false;
                c->message = st_arena_strdup(a, colon ? colon + 2 : "");
                checks[n++] = c;
            }
        } else if (sscanf(one, "%zu checks, %zu failed, %zu skipped", &run, &failed,
                          &skipped) == 3) {
            out->n_checks_run = run;
            out->n_checks_failed = failed;
            out->n_checks_skipped = skipped;
        }
        free(one);
        line += len + (line[len] == '\n');
    }
    out->checks = checks;
    out->n_checks = n;
}

st_check_report *st_check_report_build(const st_plugin_manifest *m, const st_load_report *r)
{
    check_report_owned *own = calloc(1, sizeof *own);
    if (!own)
        return NULL;
    st_arena *a = &own->arena;
    st_check_report *out = &own->pub;
    bool untested = st_load_report_ok(r) && r->create_skipped;
    bool ok = st_load_report_ok(r) && !untested;
    char buf[2600];
    out->struct_size = sizeof *out;
    out->ok = ok;
    out->untested = untested;
    out->outcome = ok         ? "ok"
                   : untested ? "untested"
                   : r->signal ? "crashed"
                   : r->timed_out ? "hung" : "refused";
    out->result = st_arena_strdup(a, st_load_report_reason(r, buf, sizeof buf));
    out->finished = r->finished;
    out->loaded = r->loaded;
    out->created = r->created;
    out->create_skipped = r->create_skipped;
    out->skip_reason = st_arena_strdup(a, r->create_skipped ? r->skip_reason : "");
    out->model_failed = r->model_failed;
    out->refusal = r->refusal;
    out->status = (st_status)r->status;
    out->message = st_arena_strdup(a, r->message);
    out->has_abi = r->has_abi;
    out->abi_major = r->abi_major;
    out->abi_minor = r->abi_minor;
    out->entry_version = st_arena_strdup(a, r->entry_version);
    out->stage = st_arena_strdup(a, r->stage);
    out->signal = r->signal;
    if (r->signal) {
        snprintf(buf, sizeof buf, "SIG%s",
                 sigabbrev_np(r->signal) ? sigabbrev_np(r->signal) : "?");
        out->signal_name = st_arena_strdup(a, buf);
    }
    out->timed_out = r->timed_out;
    const st_ops_info *info = st_ops_info_of(m->kind);
    if (r->loaded && info && info->n_ops) {
        const st_op_result **ops = st_arena_alloc(a, info->n_ops * sizeof *ops);
        for (size_t i = 0; ops && i < info->n_ops; i++) {
            st_op_result *op = st_arena_alloc(a, sizeof *op);
            if (!op)
                break;
            op->name = info->ops[i].name; /* static */
            op->present = i < 32 && ((r->ops_present >> i) & 1u);
            op->required = info->ops[i].required;
            ops[i] = op;
        }
        out->ops = ops;
        out->n_ops = info->n_ops;
    }
    out->conformance_ran = r->conformance_ran;
    out->conformance_ok = r->conformance_ok;
    out->conformance_summary = st_arena_strdup(a, r->conformance_ran ? r->conformance : "");
    if (r->conformance_ran)
        parse_conformance(a, r->conformance, out);
    if (a->failed) {
        st_check_report_free(out);
        return NULL;
    }
    return out;
}

void st_check_report_free(st_check_report *r)
{
    if (!r)
        return;
    check_report_owned *own = (check_report_owned *)r;
    st_arena_free(&own->arena);
    free(own);
}

st_status st_plugin_check(const st_plugins *set, const st_plugin_info *plugin,
                          const st_check_options *opts, st_check_report **out, st_error *err)
{
    if (out)
        *out = NULL;
    if (!set || !plugin || !out)
        return st_error_set(err, ST_E_INVALID, "st_plugin_check: NULL argument");
    const st_plugin_record *rec = st_plugins_record_of(set, plugin);
    if (!rec)
        return st_error_set(err, ST_E_INVALID,
                            "st_plugin_check: the plugin is not one of this set's");
    if (!rec->manifest)
        return st_error_set(err, ST_E_INVALID, "%s: the manifest is broken, nothing to load",
                            rec->manifest_path);
    /* Read only the option fields the caller's struct has. */
    st_check_options o = {0};
    if (opts) {
        size_t n = opts->struct_size < sizeof o ? opts->struct_size : sizeof o;
        memcpy(&o, opts, n);
    }
    st_load_report *rep = malloc(sizeof *rep);
    if (!rep)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_load_check(rec->manifest, o.conformance, o.model, NULL, o.timeout_s, rep);
    *out = st_check_report_build(rec->manifest, rep);
    free(rep);
    return *out ? ST_OK : st_error_set(err, ST_E_NOMEM, "out of memory");
}
