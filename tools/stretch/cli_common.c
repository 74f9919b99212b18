/*
 * tools/stretch/cli_common.c - see cli_common.h.
 */
#include "cli_common.h"

#include <sys/stat.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

void st_cli_error(const char *line)
{
    fprintf(stderr, "stretch: %s\n", line);
}

void st_cli_warnings(const char *const *lines, size_t n, size_t dropped)
{
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "stretch: warning: %s\n", lines[i]);
    if (dropped)
        fprintf(stderr, "stretch: warning: (%zu more places skipped)\n", dropped);
}

const char *st_cli_safe(const char *s)
{
    static char *ring[8];
    static size_t ring_cap[8];
    static unsigned next;
    unsigned k = next++ % 8;
    size_t need = st_text_safe(s, NULL, 0);
    if (need > ring_cap[k]) {
        char *grown = realloc(ring[k], need);
        if (!grown)
            return "(out of memory)";
        ring[k] = grown;
        ring_cap[k] = need;
    }
    st_text_safe(s, ring[k], ring_cap[k]);
    return ring[k];
}

st_plugins *st_cli_registry(char **dirs, size_t n_dirs, int *exit_code)
{
    st_error err = {0};
    st_plugins *p = NULL;
    st_status st = st_plugins_open((const char *const *)dirs, n_dirs, 0, &p, &err);
    if (st != ST_OK) {
        st_cli_error(err.message);
        /* A --path that is not a directory is the user's; anything else
         * (out of memory) is ours. */
        *exit_code = st == ST_E_NOT_FOUND ? ST_EXIT_USAGE : ST_EXIT_RUNTIME;
        return NULL;
    }
    size_t n = st_plugins_warning_count(p);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "stretch: warning: %s\n", st_plugins_warning_at(p, i));
    if (st_plugins_warnings_dropped(p))
        fprintf(stderr, "stretch: warning: (%zu more places skipped)\n",
                st_plugins_warnings_dropped(p));
    return p;
}

static size_t append(char *buf, size_t cap, size_t used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t append(char *buf, size_t cap, size_t used, const char *fmt, ...)
{
    if (used >= cap)
        return used;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
    return n < 0 ? used : used + (size_t)n;
}

/* A default as the manifest would write it in flow style ("0.5", "true"). */
static const char *default_text(const st_param_info *p, char *buf, size_t cap)
{
    switch (p->type) {
    case ST_PARAM_INT: snprintf(buf, cap, "%" PRId64, p->default_int); break;
    case ST_PARAM_FLOAT: st_number_text(p->default_float, buf, cap); break;
    case ST_PARAM_BOOL: snprintf(buf, cap, "%s", p->default_bool ? "true" : "false"); break;
    default: snprintf(buf, cap, "%s", st_cli_safe(p->default_string)); break;
    }
    return buf;
}

static void default_json(st_json *j, const st_param_info *p)
{
    switch (p->type) {
    case ST_PARAM_INT: st_json_int(j, p->default_int); break;
    case ST_PARAM_FLOAT: st_json_double(j, p->default_float); break;
    case ST_PARAM_BOOL: st_json_bool(j, p->default_bool); break;
    default: st_json_string(j, p->default_string ? p->default_string : ""); break;
    }
}

void st_cli_params_values_text(FILE *f, const st_resolved_plugin *rp)
{
    for (size_t i = 0; i < rp->n_params; i++) {
        const st_resolved_param *p = rp->params[i];
        fprintf(f, "%s%s=", i ? ", " : "", st_cli_safe(p->name));
        switch (p->type) {
        case ST_PARAM_INT: fprintf(f, "%" PRId64, p->i); break;
        case ST_PARAM_FLOAT: fputs(st_number_text(p->f, (char[32]){0}, 32), f); break;
        case ST_PARAM_BOOL: fputs(p->b ? "true" : "false", f); break;
        default: fputs(st_cli_safe(p->s), f); break;
        }
    }
}

void st_cli_params_values_json(st_json *j, const st_resolved_plugin *rp)
{
    st_json_begin_object(j);
    for (size_t i = 0; i < rp->n_params; i++) {
        const st_resolved_param *p = rp->params[i];
        st_json_key(j, p->name);
        switch (p->type) {
        case ST_PARAM_INT: st_json_int(j, p->i); break;
        case ST_PARAM_FLOAT: st_json_double(j, p->f); break;
        case ST_PARAM_BOOL: st_json_bool(j, p->b); break;
        default: st_json_string(j, p->s); break;
        }
    }
    st_json_end_object(j);
}

static void range_text(const st_param_info *p, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (p->type == ST_PARAM_ENUM) {
        size_t used = append(buf, cap, 0, "one of ");
        for (size_t i = 0; i < p->n_enum; i++)
            used = append(buf, cap, used, "%s%s", i ? "|" : "", st_cli_safe(p->enum_values[i]));
        return;
    }
    if (!p->has_min && !p->has_max)
        return;
    bool is_int = p->type == ST_PARAM_INT;
    char lo[32] = "-inf", hi[32] = "inf";
    if (p->has_min && is_int)
        snprintf(lo, sizeof lo, "%.0f", p->min);
    else if (p->has_min)
        st_number_text(p->min, lo, sizeof lo);
    if (p->has_max && is_int)
        snprintf(hi, sizeof hi, "%.0f", p->max);
    else if (p->has_max)
        st_number_text(p->max, hi, sizeof hi);
    snprintf(buf, cap, "range [%s, %s]", lo, hi);
}

void st_cli_params_text(FILE *f, const st_plugin_info *m, const char *indent)
{
    if (m->n_params == 0) {
        fprintf(f, "%s(none)\n", indent);
        return;
    }
    for (size_t i = 0; i < m->n_params; i++) {
        const st_param_info *p = m->params[i];
        char def[256], range[512];
        if (p->has_default)
            default_text(p, def, sizeof def);
        else
            snprintf(def, sizeof def, "(required)");
        range_text(p, range, sizeof range);
        fprintf(f, "%s%-20s %-7s default %s", indent, st_cli_safe(p->name),
                st_param_type_name(p->type), def);
        if (range[0])
            fprintf(f, "  %s", range);
        if (p->unit && p->unit[0])
            fprintf(f, "  unit: %s", st_cli_safe(p->unit));
        fputc('\n', f);
        if (p->doc && p->doc[0])
            fprintf(f, "%s    %s\n", indent, st_cli_safe(p->doc));
    }
}

void st_cli_params_json(st_json *j, const st_plugin_info *m)
{
    st_json_begin_array(j);
    for (size_t i = 0; i < m->n_params; i++) {
        const st_param_info *p = m->params[i];
        st_json_begin_object(j);
        st_json_key(j, "name");
        st_json_string(j, p->name);
        st_json_key(j, "type");
        st_json_string(j, st_param_type_name(p->type));
        st_json_key(j, "required");
        st_json_bool(j, p->required);
        st_json_key(j, "default");
        if (p->has_default)
            default_json(j, p);
        else
            st_json_null(j);
        st_json_key(j, "min");
        if (p->has_min)
            st_json_double(j, p->min);
        else
            st_json_null(j);
        st_json_key(j, "max");
        if (p->has_max)
            st_json_double(j, p->max);
        else
            st_json_null(j);
        st_json_key(j, "enum");
        if (p->type == ST_PARAM_ENUM) {
            st_json_begin_array(j);
            for (size_t k = 0; k < p->n_enum; k++)
                st_json_string(j, p->enum_values[k]);
            st_json_end_array(j);
        } else {
            st_json_null(j);
        }
        st_json_key(j, "unit");
        st_json_string(j, p->unit);
        st_json_key(j, "doc");
        st_json_string(j, p->doc);
        st_json_end_object(j);
    }
    st_json_end_array(j);
}

const char *st_cli_abi_text(const st_check_report *r, char *buf, size_t cap)
{
    if (r && r->has_abi)
        snprintf(buf, cap, "%u.%u", r->abi_major, r->abi_minor);
    else
        snprintf(buf, cap, "-");
    return buf;
}

int st_cli_report_exit(const st_check_report *r)
{
    if (r->ok)
        return ST_EXIT_OK;
    if (r->struct_size > offsetof(st_check_report, untested) && r->untested)
        return ST_EXIT_UNTESTED;
    if (r->finished && r->loaded && r->created && r->conformance_ran)
        return ST_EXIT_RUNTIME;
    if (r->model_failed)
        return ST_EXIT_MODEL; /* the --model file itself was bad */
    return ST_EXIT_LOAD;
}

void st_cli_report_json(st_json *j, const st_check_report *r)
{
    char buf[64];
    st_json_begin_object(j);
    st_json_key(j, "status");
    st_json_string(j, r->outcome);
    st_json_key(j, "refusal");
    if (r->refusal != ST_REFUSE_NONE)
        st_json_string(j, st_refusal_name(r->refusal));
    else
        st_json_null(j);
    st_json_key(j, "message");
    st_json_string(j, r->message[0] ? r->message : NULL);
    st_json_key(j, "abi");
    st_json_string(j, r->has_abi ? st_cli_abi_text(r, buf, sizeof buf) : NULL);
    snprintf(buf, sizeof buf, "%d.%d", ST_ABI_MAJOR, ST_ABI_MINOR);
    st_json_key(j, "host_abi");
    st_json_string(j, buf);
    st_json_key(j, "entry_version");
    st_json_string(j, r->entry_version[0] ? r->entry_version : NULL);
    st_json_key(j, "stage");
    st_json_string(j, r->stage);
    st_json_key(j, "signal");
    st_json_string(j, r->signal_name);
    st_json_key(j, "loaded");
    st_json_bool(j, r->loaded);
    st_json_key(j, "created");
    st_json_bool(j, r->created);
    st_json_key(j, "create_skipped");
    st_json_string(j, r->create_skipped ? r->skip_reason : NULL);
    st_json_key(j, "ops");
    if (r->loaded && r->n_ops) {
        st_json_begin_object(j);
        for (size_t i = 0; i < r->n_ops; i++) {
            st_json_key(j, r->ops[i]->name);
            st_json_bool(j, r->ops[i]->present);
        }
        st_json_end_object(j);
    } else {
        st_json_null(j);
    }
    st_json_key(j, "conformance");
    if (r->conformance_ran) {
        st_json_begin_object(j);
        st_json_key(j, "ok");
        st_json_bool(j, r->conformance_ok);
        st_json_key(j, "report");
        st_json_string(j, r->conformance_summary);
        st_json_end_object(j);
    } else {
        st_json_null(j);
    }
    st_json_end_object(j);
}

int st_strlist_push(st_strlist *l, char *s)
{
    char **grown = realloc(l->items, (l->n + 1) * sizeof *grown);
    if (!grown)
        return -1;
    grown[l->n++] = s;
    l->items = grown;
    return 0;
}

void st_strlist_free(st_strlist *l)
{
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

bool st_cli_is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}
