/*
 * core/yaml_check.c - the checks and message pieces every manifest key
 * needs: "at file:line:col", "found <what>", unknown keys with the closest
 * allowed one, plugin-name syntax.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "yaml_manifest.h"

static st_status st_yaml_verror(st_diag *diag, st_status status, const char *file,
                                int line, int col, const char *fmt, va_list ap)
{
    char msg[ST_DIAG_MESSAGE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return st_diag_set(diag, status, file, line, col, "%s", msg);
}

st_status st_yaml_error_at(st_diag *diag, st_status status, const st_value *v,
                           const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_status st = st_yaml_verror(diag, status, v ? v->file : NULL, v ? v->line : 0,
                                  v ? v->col : 0, fmt, ap);
    va_end(ap);
    return st;
}

st_status st_yaml_error_at_key(st_diag *diag, st_status status, const st_value *map,
                               const st_value_entry *e, const char *fmt, ...)
{
    const char *file = map ? map->file : NULL;
    int line = 0, col = 0;
    if (e && e->line > 0) {
        line = e->line;
        col = e->col;
    } else if (e && e->value) {
        file = e->value->file;
        line = e->value->line;
        col = e->value->col;
    } else if (map) {
        line = map->line;
        col = map->col;
    }
    va_list ap;
    va_start(ap, fmt);
    st_status st = st_yaml_verror(diag, status, file, line, col, fmt, ap);
    va_end(ap);
    return st;
}

const char *st_yaml_describe(const st_value *v, char *buf, size_t cap)
{
    if (!v) {
        snprintf(buf, cap, "nothing");
        return buf;
    }
    switch (v->type) {
    case ST_VALUE_NULL: snprintf(buf, cap, "null"); break;
    case ST_VALUE_LIST: snprintf(buf, cap, "a list"); break;
    case ST_VALUE_MAP: snprintf(buf, cap, "a mapping"); break;
    case ST_VALUE_STRING: {
        /* Keep long strings from crowding out the rest of the message. */
        int n = (int)strlen(v->s ? v->s : "");
        snprintf(buf, cap, "'%.*s%s' (string)", n > 48 ? 48 : n, v->s ? v->s : "",
                 n > 48 ? "..." : "");
        break;
    }
    default:
        snprintf(buf, cap, "%s (%s)", v->s ? v->s : "?", st_value_type_name(v->type));
        break;
    }
    return buf;
}

const st_value_entry *st_yaml_entry(const st_value *map, const char *key)
{
    if (!map || map->type != ST_VALUE_MAP)
        return NULL;
    for (size_t k = 0; k < map->n; k++)
        if (strcmp(map->entries[k].key, key) == 0)
            return &map->entries[k];
    return NULL;
}

size_t st_yaml_edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXLEN || lb > MAXLEN)
        return (size_t)-1;
    size_t row[MAXLEN + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *st_yaml_closest(const char *word, const char *const *candidates,
                            size_t n, size_t max_distance)
{
    const char *best = NULL;
    size_t best_d = max_distance + 1;
    for (size_t k = 0; k < n; k++) {
        size_t d = st_yaml_edit_distance(word, candidates[k]);
        if (d < best_d) {
            best_d = d;
            best = candidates[k];
        }
    }
    return best;
}

const char *st_yaml_join(const char *const *items, size_t n, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < n && used < cap; k++) {
        int w = snprintf(buf + used, cap - used, "%s%s", k ? ", " : "", items[k]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

st_status st_yaml_check_keys(const st_value *map, const char *const *allowed,
                             const char *where, st_diag *diag)
{
    size_t n_allowed = 0;
    while (allowed[n_allowed])
        n_allowed++;
    for (size_t k = 0; k < map->n; k++) {
        const char *key = map->entries[k].key;
        bool known = false;
        for (size_t j = 0; j < n_allowed && !known; j++)
            known = strcmp(key, allowed[j]) == 0;
        if (known)
            continue;
        char list[512], hint[128] = "";
        const char *close = st_yaml_closest(key, allowed, n_allowed, 2);
        if (close)
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", close);
        return st_yaml_error_at_key(diag, ST_E_INVALID, map, &map->entries[k],
                                    "unknown key '%s' in %s%s; expected one of: %s", key,
                                    where, hint, st_yaml_join(allowed, n_allowed, list, sizeof list));
    }
    return ST_OK;
}

bool st_yaml_is_plugin_name(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}
