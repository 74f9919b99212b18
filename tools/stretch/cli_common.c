/*
 * tools/stretch/cli_common.c - see cli_common.h.
 */
#include "cli_common.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "plugin_ops.h"
#include "text_escape.h"

void st_cli_error(const st_diag *d)
{
    char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 16];
    fprintf(stderr, "stretch: %s\n", st_diag_format(d, line, sizeof line));
}

void st_cli_registry_warnings(const st_registry *r)
{
    char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 16];
    for (size_t i = 0; i < st_registry_note_count(r); i++)
        fprintf(stderr, "stretch: warning: %s\n",
                st_diag_format(st_registry_note_at(r, i), line, sizeof line));
    if (st_registry_notes_dropped(r))
        fprintf(stderr, "stretch: warning: (%zu more places skipped)\n",
                st_registry_notes_dropped(r));
}

void st_cli_registry_warnings_json(st_json *j, const st_registry *r)
{
    char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 16];
    st_json_begin_array(j);
    for (size_t i = 0; i < st_registry_note_count(r); i++)
        st_json_string(j, st_diag_format(st_registry_note_at(r, i), line, sizeof line));
    st_json_end_array(j);
}

const char *st_cli_safe(const char *s)
{
    static char *ring[8];
    static size_t ring_cap[8];
    static unsigned next;
    unsigned k = next++ % 8;
    size_t need = st_text_escaped_size(s);
    if (need > ring_cap[k]) {
        char *grown = realloc(ring[k], need);
        if (!grown)
            return "(out of memory)";
        ring[k] = grown;
        ring_cap[k] = need;
    }
    return st_text_escape(s, ring[k], ring_cap[k]);
}

st_registry *st_cli_registry(char **dirs, size_t n_dirs, int *exit_code)
{
    st_diag diag;
    st_diag_clear(&diag);
    st_registry *r = st_registry_new();
    if (!r) {
        fprintf(stderr, "stretch: out of memory\n");
        *exit_code = ST_EXIT_RUNTIME;
        return NULL;
    }
    for (size_t i = 0; i < n_dirs; i++) {
        if (st_registry_add_dir(r, dirs[i], &diag) != ST_OK) {
            st_cli_error(&diag);
            st_registry_free(r);
            *exit_code = ST_EXIT_USAGE;
            return NULL;
        }
    }
    if (st_registry_scan(r, &diag) != ST_OK) {
        st_cli_error(&diag);
        st_registry_free(r);
        *exit_code = ST_EXIT_RUNTIME;
        return NULL;
    }
    st_cli_registry_warnings(r);
    return r;
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

static size_t value_text(const st_value *v, char *buf, size_t cap, size_t used)
{
    if (!v)
        return append(buf, cap, used, "null");
    switch (v->type) {
    case ST_VALUE_NULL: return append(buf, cap, used, "null");
    case ST_VALUE_BOOL: return append(buf, cap, used, "%s", v->b ? "true" : "false");
    case ST_VALUE_INT: return append(buf, cap, used, "%" PRId64, v->i);
    case ST_VALUE_FLOAT: return append(buf, cap, used, "%g", v->f);
    case ST_VALUE_STRING: return append(buf, cap, used, "%s", st_cli_safe(v->s));
    case ST_VALUE_LIST:
        used = append(buf, cap, used, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                used = append(buf, cap, used, ", ");
            used = value_text(v->items[i], buf, cap, used);
        }
        return append(buf, cap, used, "]");
    case ST_VALUE_MAP:
        used = append(buf, cap, used, "{");
        for (size_t i = 0; i < v->n; i++) {
            used = append(buf, cap, used, "%s%s: ", i ? ", " : "", st_cli_safe(v->entries[i].key));
            used = value_text(v->entries[i].value, buf, cap, used);
        }
        return append(buf, cap, used, "}");
    }
    return used;
}

const char *st_cli_value_text(const st_value *v, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    value_text(v, buf, cap, 0);
    return buf;
}

void st_cli_value_json(st_json *j, const st_value *v)
{
    if (!v) {
        st_json_null(j);
        return;
    }
    switch (v->type) {
    case ST_VALUE_NULL: st_json_null(j); break;
    case ST_VALUE_BOOL: st_json_bool(j, v->b); break;
    case ST_VALUE_INT: st_json_int(j, v->i); break;
    case ST_VALUE_FLOAT: st_json_double(j, v->f); break;
    case ST_VALUE_STRING: st_json_string(j, v->s ? v->s : ""); break;
    case ST_VALUE_LIST:
        st_json_begin_array(j);
        for (size_t i = 0; i < v->n; i++)
            st_cli_value_json(j, v->items[i]);
        st_json_end_array(j);
        break;
    case ST_VALUE_MAP:
        st_json_begin_object(j);
        for (size_t i = 0; i < v->n; i++) {
            st_json_key(j, v->entries[i].key);
            st_cli_value_json(j, v->entries[i].value);
        }
        st_json_end_object(j);
        break;
    }
}

void st_cli_msgpack_text(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", f); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: fprintf(f, "%g", o->via.f64); break;
    case MSGPACK_OBJECT_STR: {
        /* Up to a NUL, which validated params cannot hold anyway. */
        char *text = strndup(o->via.str.ptr, o->via.str.size);
        fputs(text ? st_cli_safe(text) : "?", f);
        free(text);
        break;
    }
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputs(", ", f);
            st_cli_msgpack_text(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputs(", ", f);
            st_cli_msgpack_text(f, &o->via.map.ptr[i].key);
            fputc('=', f);
            st_cli_msgpack_text(f, &o->via.map.ptr[i].val);
        }
        break;
    default: fputs("?", f); break;
    }
}

void st_cli_msgpack_json(st_json *j, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN: st_json_bool(j, o->via.boolean); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: st_json_uint(j, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: st_json_int(j, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: st_json_double(j, o->via.f64); break;
    case MSGPACK_OBJECT_STR: st_json_string_n(j, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_ARRAY:
        st_json_begin_array(j);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            st_cli_msgpack_json(j, &o->via.array.ptr[i]);
        st_json_end_array(j);
        break;
    case MSGPACK_OBJECT_MAP:
        st_json_begin_object(j);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char key[256];
            if (k->type == MSGPACK_OBJECT_STR)
                snprintf(key, sizeof key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
            else
                snprintf(key, sizeof key, "?");
            st_json_key(j, key);
            st_cli_msgpack_json(j, &o->via.map.ptr[i].val);
        }
        st_json_end_object(j);
        break;
    default: st_json_null(j); break;
    }
}

static void range_text(const st_param_schema *p, char *buf, size_t cap)
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
    if (p->has_min)
        snprintf(lo, sizeof lo, is_int ? "%.0f" : "%g", p->min);
    if (p->has_max)
        snprintf(hi, sizeof hi, is_int ? "%.0f" : "%g", p->max);
    snprintf(buf, cap, "range [%s, %s]", lo, hi);
}

void st_cli_params_text(FILE *f, const st_plugin_manifest *m, const char *indent)
{
    if (m->n_params == 0) {
        fprintf(f, "%s(none)\n", indent);
        return;
    }
    for (size_t i = 0; i < m->n_params; i++) {
        const st_param_schema *p = &m->params[i];
        char def[256], range[512];
        if (p->has_default)
            st_cli_value_text(p->default_value, def, sizeof def);
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

void st_cli_params_json(st_json *j, const st_plugin_manifest *m)
{
    st_json_begin_array(j);
    for (size_t i = 0; i < m->n_params; i++) {
        const st_param_schema *p = &m->params[i];
        st_json_begin_object(j);
        st_json_key(j, "name");
        st_json_string(j, p->name);
        st_json_key(j, "type");
        st_json_string(j, st_param_type_name(p->type));
        st_json_key(j, "required");
        st_json_bool(j, p->required);
        st_json_key(j, "default");
        if (p->has_default)
            st_cli_value_json(j, p->default_value);
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

const char *st_cli_abi_text(const st_load_report *r, char *buf, size_t cap)
{
    if (r && r->has_abi)
        snprintf(buf, cap, "%u.%u", r->abi_major, r->abi_minor);
    else
        snprintf(buf, cap, "-");
    return buf;
}

int st_cli_report_exit(const st_load_report *r)
{
    if (st_load_report_ok(r))
        return ST_EXIT_OK;
    if (r->finished && r->loaded && r->created && r->conformance_ran)
        return ST_EXIT_RUNTIME;
    if (r->model_failed)
        return ST_EXIT_MODEL; /* the --model file itself was bad */
    return ST_EXIT_LOAD;
}

void st_cli_report_json(st_json *j, const st_plugin_manifest *m, const st_load_report *r)
{
    char buf[2048];
    st_json_begin_object(j);
    st_json_key(j, "status");
    st_json_string(j, st_cli_report_exit(r) == ST_EXIT_OK ? "ok"
                      : r->signal ? "crashed" : r->timed_out ? "hung" : "refused");
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
    if (r->signal) {
        snprintf(buf, sizeof buf, "SIG%s", sigabbrev_np(r->signal) ? sigabbrev_np(r->signal) : "?");
        st_json_string(j, buf);
    } else {
        st_json_null(j);
    }
    st_json_key(j, "loaded");
    st_json_bool(j, r->loaded);
    st_json_key(j, "created");
    st_json_bool(j, r->created);
    st_json_key(j, "create_skipped");
    st_json_string(j, r->create_skipped ? r->skip_reason : NULL);
    st_json_key(j, "ops");
    const st_ops_info *info = st_ops_info_of(m->kind);
    if (r->loaded && info) {
        st_json_begin_object(j);
        for (size_t i = 0; i < info->n_ops; i++) {
            st_json_key(j, info->ops[i].name);
            st_json_bool(j, (r->ops_present >> i) & 1u);
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
        st_json_string(j, r->conformance);
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
