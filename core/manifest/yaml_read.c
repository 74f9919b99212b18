/*
 * core/yaml_read.c - one YAML file into an st_value tree, via libfyaml's
 * event parser. Events (not libfyaml's document tree) because they carry a
 * start mark for every node, collections included, which is what lets every
 * later check point at file:line:col.
 *
 * libfyaml is told to collect its diagnostics instead of printing them, so
 * a syntax error becomes our one-line message with libfyaml's own position
 * and text, and nothing reaches stderr.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>

#include "paths.h"
#include "yaml_manifest.h"

/* Aliases are expanded by copying; this bounds what a tiny file with
 * nested aliases can expand to. */
#define ST_YAML_NODES_MAX 100000
/* The node builder recurses once per level, and so do every later walk
 * (clone, free, count); real manifests nest four or five levels deep. */
#define ST_YAML_DEPTH_MAX 64

typedef struct st_yaml_anchor {
    char *name;
    const st_value *node; /* in the tree being built, or `owned` */
    st_value *owned;      /* an anchored key: the tree keeps only its text */
} st_yaml_anchor;

typedef struct st_yaml_reader {
    struct fy_parser *parser;
    struct fy_diag *fydiag;
    const char *label;
    st_diag *diag;
    st_yaml_anchor *anchors;
    size_t n_anchors, cap_anchors;
    size_t n_nodes;
    int depth; /* collections open around the node being built */
} st_yaml_reader;

static void st_yaml_quiet_output(struct fy_diag *d, void *user, const char *buf,
                                 size_t len)
{
    (void)d, (void)user, (void)buf, (void)len; /* collected, never printed */
}

/* The parser stopped: turn libfyaml's first collected error into ours. */
static st_status st_yaml_syntax_error(st_yaml_reader *r)
{
    void *it = NULL;
    struct fy_diag_error *e;
    while ((e = fy_diag_errors_iterate(r->fydiag, &it)) != NULL) {
        if (e->type < FYET_ERROR)
            continue;
        return st_diag_set(r->diag, ST_E_FORMAT, r->label, e->line, e->column,
                           "YAML syntax error: %s", e->msg ? e->msg : "malformed input");
    }
    return st_diag_set(r->diag, ST_E_FORMAT, r->label, 0, 0,
                       "YAML syntax error: malformed input");
}

static struct fy_event *st_yaml_next(st_yaml_reader *r)
{
    return fy_parser_parse(r->parser);
}

static void st_yaml_mark(struct fy_event *ev, int fallback_line, int fallback_col,
                         int *line, int *col)
{
    const struct fy_mark *m = fy_event_start_mark(ev);
    if (m && ev->type == FYET_SCALAR && fy_token_get_text_length(ev->scalar.value) == 0 &&
        fy_token_scalar_style(ev->scalar.value) == FYSS_PLAIN)
        m = NULL; /* an empty plain scalar has no position of its own */
    if (m) {
        *line = m->line + 1;
        *col = m->column + 1;
    } else {
        *line = fallback_line;
        *col = fallback_col;
    }
}

static struct fy_token *st_yaml_anchor_token(struct fy_event *ev)
{
    switch (ev->type) {
    case FYET_SCALAR: return ev->scalar.anchor;
    case FYET_MAPPING_START: return ev->mapping_start.anchor;
    case FYET_SEQUENCE_START: return ev->sequence_start.anchor;
    default: return NULL;
    }
}

static st_status st_yaml_remember_anchor(st_yaml_reader *r, struct fy_token *tok,
                                         const st_value *node)
{
    if (!tok)
        return ST_OK;
    const char *name = fy_token_get_text0(tok);
    if (!name)
        return st_diag_set(r->diag, ST_E_NOMEM, r->label, node->line, node->col,
                           "out of memory reading an anchor");
    /* A later anchor of the same name shadows the earlier (YAML 1.2). */
    if (r->n_anchors == r->cap_anchors) {
        size_t cap = r->cap_anchors ? 2 * r->cap_anchors : 8;
        st_yaml_anchor *a = realloc(r->anchors, cap * sizeof *a);
        if (!a)
            return st_diag_set(r->diag, ST_E_NOMEM, r->label, 0, 0, "out of memory");
        r->anchors = a;
        r->cap_anchors = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return st_diag_set(r->diag, ST_E_NOMEM, r->label, 0, 0, "out of memory");
    r->anchors[r->n_anchors].name = copy;
    r->anchors[r->n_anchors].node = node;
    r->anchors[r->n_anchors].owned = NULL;
    r->n_anchors++;
    return ST_OK;
}

/* A mapping keeps only its keys' text, so an anchored key node would be
 * freed while an alias may still copy it: its anchor takes the node over.
 * True when one did. */
static bool st_yaml_anchor_adopt(st_yaml_reader *r, st_value *node)
{
    for (size_t k = r->n_anchors; k-- > 0;)
        if (r->anchors[k].node == node) {
            r->anchors[k].owned = node;
            return true;
        }
    return false;
}

static size_t st_yaml_count_nodes(const st_value *v)
{
    size_t n = 1;
    for (size_t k = 0; v->type == ST_VALUE_LIST && k < v->n; k++)
        n += st_yaml_count_nodes(v->items[k]);
    for (size_t k = 0; v->type == ST_VALUE_MAP && k < v->n; k++)
        n += st_yaml_count_nodes(v->entries[k].value);
    return n;
}

static bool st_yaml_all(const char *s, size_t n, const char *set)
{
    if (n == 0)
        return false;
    for (size_t k = 0; k < n; k++)
        if (!strchr(set, s[k]))
            return false;
    return true;
}

static bool st_yaml_is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

/* YAML 1.2 core schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool st_yaml_is_float_text(const char *s)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    size_t int_digits = strspn(p, "0123456789");
    p += int_digits;
    size_t frac_digits = 0;
    if (*p == '.') {
        p++;
        frac_digits = strspn(p, "0123456789");
        p += frac_digits;
    } else if (int_digits == 0) {
        return false;
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        size_t exp_digits = strspn(p, "0123456789");
        if (exp_digits == 0)
            return false;
        p += exp_digits;
    }
    return *p == '\0';
}

/* Type a plain scalar by the YAML 1.2 core schema. Only true/false (and
 * their capitalisations) are bools: "yes", "no", "on", "off" stay strings. */
static st_status st_yaml_type_plain(st_yaml_reader *r, st_value *v)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s = v->s;
    size_t n = strlen(s);

    if (st_yaml_is_one_of(s, nulls)) {
        v->type = ST_VALUE_NULL;
        return ST_OK;
    }
    if (st_yaml_is_one_of(s, trues) || st_yaml_is_one_of(s, falses)) {
        v->type = ST_VALUE_BOOL;
        v->b = st_yaml_is_one_of(s, trues);
        return ST_OK;
    }
    const char *digits = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
    int base = 0;
    if (st_yaml_all(digits, strlen(digits), "0123456789"))
        base = 10;
    else if (n > 2 && s[0] == '0' && s[1] == 'x' && st_yaml_all(s + 2, n - 2, "0123456789abcdefABCDEF"))
        base = 16;
    else if (n > 2 && s[0] == '0' && s[1] == 'o' && st_yaml_all(s + 2, n - 2, "01234567"))
        base = 8;
    if (base) {
        errno = 0;
        char *end;
        long long i = strtoll(base == 10 ? s : s + 2, &end, base);
        if (errno == ERANGE || *end)
            return st_diag_set(r->diag, ST_E_RANGE, r->label, v->line, v->col,
                               "expected an integer within 64 bits, found '%s'", s);
        v->type = ST_VALUE_INT;
        v->i = (int64_t)i;
        return ST_OK;
    }
    const char *unsigned_s = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
    if (st_yaml_is_one_of(unsigned_s, infs)) {
        v->type = ST_VALUE_FLOAT;
        v->f = s[0] == '-' ? -__builtin_inf() : __builtin_inf();
        return ST_OK;
    }
    if (st_yaml_is_one_of(s, nans)) {
        v->type = ST_VALUE_FLOAT;
        v->f = __builtin_nan("");
        return ST_OK;
    }
    if (st_yaml_is_float_text(s)) {
        v->type = ST_VALUE_FLOAT;
        v->f = strtod(s, NULL);
        return ST_OK;
    }
    v->type = ST_VALUE_STRING;
    return ST_OK;
}

static st_status st_yaml_node(st_yaml_reader *r, struct fy_event *ev, int fb_line,
                              int fb_col, st_value **out);

static st_status st_yaml_scalar(st_yaml_reader *r, struct fy_event *ev, st_value *v)
{
    size_t len = 0;
    const char *text = fy_token_get_text(ev->scalar.value, &len);
    if (!text && len)
        return st_diag_set(r->diag, ST_E_NOMEM, r->label, v->line, v->col, "out of memory");
    if (len && memchr(text, '\0', len))
        return st_diag_set(r->diag, ST_E_FORMAT, r->label, v->line, v->col,
                           "expected text, found a string containing a NUL character");
    if (!(v->s = malloc(len + 1)))
        return st_diag_set(r->diag, ST_E_NOMEM, r->label, v->line, v->col, "out of memory");
    if (len)
        memcpy(v->s, text, len);
    v->s[len] = '\0';

    struct fy_token *tag = ev->scalar.tag;
    if (tag) {
        const char *t = fy_token_get_text0(tag);
        if (t && strcmp(t, "tag:yaml.org,2002:str") == 0) {
            v->type = ST_VALUE_STRING;
            return ST_OK;
        }
        return st_diag_set(r->diag, ST_E_FORMAT, r->label, v->line, v->col,
                           "expected an untagged scalar (or !!str), found tag '%s'",
                           t ? t : "?");
    }
    if (fy_token_scalar_style(ev->scalar.value) != FYSS_PLAIN) {
        v->type = ST_VALUE_STRING; /* quoted or block: always text */
        return ST_OK;
    }
    return st_yaml_type_plain(r, v);
}

static st_status st_yaml_refuse_collection_tag(st_yaml_reader *r, struct fy_event *ev,
                                               const st_value *v)
{
    struct fy_token *tag = ev->type == FYET_MAPPING_START ? ev->mapping_start.tag
                                                          : ev->sequence_start.tag;
    if (!tag)
        return ST_OK;
    const char *t = fy_token_get_text0(tag);
    if (t && (strcmp(t, "tag:yaml.org,2002:map") == 0 || strcmp(t, "tag:yaml.org,2002:seq") == 0))
        return ST_OK;
    return st_diag_set(r->diag, ST_E_FORMAT, r->label, v->line, v->col,
                       "expected an untagged collection, found tag '%s'", t ? t : "?");
}

static st_status st_yaml_sequence(st_yaml_reader *r, st_value *v)
{
    size_t cap = 0;
    for (;;) {
        struct fy_event *ev = st_yaml_next(r);
        if (!ev)
            return st_yaml_syntax_error(r);
        if (ev->type == FYET_SEQUENCE_END) {
            fy_parser_event_free(r->parser, ev);
            return ST_OK;
        }
        if (v->n == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            st_value **items = realloc(v->items, ncap * sizeof *items);
            if (!items) {
                fy_parser_event_free(r->parser, ev);
                return st_diag_set(r->diag, ST_E_NOMEM, r->label, v->line, v->col, "out of memory");
            }
            v->items = items;
            cap = ncap;
        }
        st_value *item = NULL;
        st_status st = st_yaml_node(r, ev, v->line, v->col, &item);
        if (st != ST_OK)
            return st;
        v->items[v->n++] = item;
    }
}

static st_status st_yaml_mapping(st_yaml_reader *r, st_value *v)
{
    size_t cap = 0;
    for (;;) {
        struct fy_event *ev = st_yaml_next(r);
        if (!ev)
            return st_yaml_syntax_error(r);
        if (ev->type == FYET_MAPPING_END) {
            fy_parser_event_free(r->parser, ev);
            return ST_OK;
        }
        st_value *key = NULL;
        st_status st = st_yaml_node(r, ev, v->line, v->col, &key);
        if (st != ST_OK)
            return st;
        if (key->type == ST_VALUE_LIST || key->type == ST_VALUE_MAP) {
            st = st_diag_set(r->diag, ST_E_FORMAT, r->label, key->line, key->col,
                             "expected a plain key, found %s as a key",
                             key->type == ST_VALUE_LIST ? "a list" : "a mapping");
            st_value_free(key);
            return st;
        }
        for (size_t k = 0; k < v->n; k++) {
            if (strcmp(v->entries[k].key, key->s) == 0) {
                st = st_diag_set(r->diag, ST_E_FORMAT, r->label, key->line, key->col,
                                 "expected each key once, found duplicate key '%s' "
                                 "(first at line %d)", key->s, v->entries[k].line);
                st_value_free(key);
                return st;
            }
        }
        if (v->n == cap) {
            size_t ncap = cap ? 2 * cap : 4;
            st_value_entry *e = realloc(v->entries, ncap * sizeof *e);
            if (!e) {
                st_value_free(key);
                return st_diag_set(r->diag, ST_E_NOMEM, r->label, v->line, v->col, "out of memory");
            }
            v->entries = e;
            cap = ncap;
        }
        st_value_entry *e = &v->entries[v->n];
        e->line = key->line;
        e->col = key->col;
        e->value = NULL;
        if (!st_yaml_anchor_adopt(r, key)) {
            e->key = key->s;
            key->s = NULL;
            st_value_free(key);
        } else if (!(e->key = strdup(key->s))) {
            return st_diag_set(r->diag, ST_E_NOMEM, r->label, key->line, key->col,
                               "out of memory");
        }
        v->n++; /* counted now so a failure below frees the key */

        struct fy_event *vev = st_yaml_next(r);
        if (!vev)
            return st_yaml_syntax_error(r);
        st = st_yaml_node(r, vev, e->line, e->col, &e->value);
        if (st != ST_OK)
            return st;
    }
}

/* Build the node that starts with `ev` (consumed). Empty plain scalars take
 * the fallback position (the key they belong to). */
static st_status st_yaml_node(st_yaml_reader *r, struct fy_event *ev, int fb_line,
                              int fb_col, st_value **out)
{
    st_status st = ST_OK;
    st_value *v = calloc(1, sizeof *v);
    if (!v) {
        fy_parser_event_free(r->parser, ev);
        return st_diag_set(r->diag, ST_E_NOMEM, r->label, fb_line, fb_col, "out of memory");
    }
    v->file = r->label;
    st_yaml_mark(ev, fb_line, fb_col, &v->line, &v->col);
    if (++r->n_nodes > ST_YAML_NODES_MAX) {
        st = st_diag_set(r->diag, ST_E_RANGE, r->label, v->line, v->col,
                         "expected a manifest of at most %d nodes, found more",
                         ST_YAML_NODES_MAX);
        goto done;
    }

    switch (ev->type) {
    case FYET_SCALAR:
        st = st_yaml_scalar(r, ev, v);
        break;
    case FYET_SEQUENCE_START:
    case FYET_MAPPING_START: {
        bool is_map = ev->type == FYET_MAPPING_START;
        v->type = is_map ? ST_VALUE_MAP : ST_VALUE_LIST;
        if (r->depth >= ST_YAML_DEPTH_MAX) {
            st = st_diag_set(r->diag, ST_E_RANGE, r->label, v->line, v->col,
                             "expected lists and mappings nested at most %d deep, found "
                             "deeper nesting", ST_YAML_DEPTH_MAX);
            break;
        }
        if ((st = st_yaml_refuse_collection_tag(r, ev, v)) != ST_OK)
            break;
        r->depth++;
        st = is_map ? st_yaml_mapping(r, v) : st_yaml_sequence(r, v);
        r->depth--;
        break;
    }
    case FYET_ALIAS: {
        const char *name = fy_token_get_text0(ev->alias.anchor);
        const st_value *target = NULL;
        for (size_t k = r->n_anchors; k-- > 0;)
            if (name && strcmp(r->anchors[k].name, name) == 0) {
                target = r->anchors[k].node;
                break;
            }
        if (!target) {
            st = st_diag_set(r->diag, ST_E_FORMAT, r->label, v->line, v->col,
                             "expected an alias to a complete anchored node, found "
                             "unknown anchor '*%s'", name ? name : "?");
            break;
        }
        r->n_nodes += st_yaml_count_nodes(target);
        if (r->n_nodes > ST_YAML_NODES_MAX) {
            st = st_diag_set(r->diag, ST_E_RANGE, r->label, v->line, v->col,
                             "expected a manifest of at most %d nodes, found more "
                             "(after expanding aliases)", ST_YAML_NODES_MAX);
            break;
        }
        st_value *copy = st_value_clone(target);
        if (!copy) {
            st = st_diag_set(r->diag, ST_E_NOMEM, r->label, v->line, v->col, "out of memory");
            break;
        }
        /* The copy keeps the anchored node's positions: values are checked
         * where they were written. */
        st_value_free(v);
        v = copy;
        break;
    }
    default:
        st = st_diag_set(r->diag, ST_E_INTERNAL, r->label, v->line, v->col,
                         "unexpected YAML event %d", (int)ev->type);
        break;
    }
    if (st == ST_OK)
        st = st_yaml_remember_anchor(r, st_yaml_anchor_token(ev), v);
done:
    fy_parser_event_free(r->parser, ev);
    if (st != ST_OK) {
        st_value_free(v);
        return st;
    }
    *out = v;
    return ST_OK;
}

/* A NUL would end the text libfyaml sees: every key after it would vanish
 * without a word. */
static st_status st_yaml_refuse_nul(const char *buf, size_t len, const char *label,
                                    st_diag *diag)
{
    const char *nul = memchr(buf, '\0', len);
    if (!nul)
        return ST_OK;
    int line = 1, col = 1;
    for (const char *p = buf; p < nul; p++, col++)
        if (*p == '\n') {
            line++;
            col = 0;
        }
    return st_diag_set(diag, ST_E_FORMAT, label, line, col,
                       "expected text, found a NUL byte (a manifest is UTF-8 text)");
}

static st_status st_yaml_slurp(const char *path, const char *label, char **buf,
                               size_t *len, st_diag *diag)
{
    const char *not_regular = NULL;
    int fd = st_path_open_regular(path, &not_regular);
    if (fd < 0 && not_regular)
        return st_diag_set(diag, ST_E_IO, label, 0, 0,
                           "expected a regular file, found %s", not_regular);
    if (fd < 0)
        return st_diag_set(diag, errno == ENOENT ? ST_E_NOT_FOUND : ST_E_IO, label, 0, 0,
                           "cannot open manifest: %s", strerror(errno));
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return st_diag_set(diag, ST_E_NOMEM, label, 0, 0, "out of memory");
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = errno;
        fclose(f);
        return st_diag_set(diag, ST_E_IO, label, 0, 0, "cannot stat manifest: %s",
                           strerror(e));
    }
    if ((unsigned long long)sb.st_size > ST_YAML_FILE_MAX) {
        fclose(f);
        return st_diag_set(diag, ST_E_RANGE, label, 0, 0,
                           "expected a manifest of at most %u bytes, found %lld bytes",
                           ST_YAML_FILE_MAX, (long long)sb.st_size);
    }
    char *b = malloc((size_t)sb.st_size + 1);
    if (!b) {
        fclose(f);
        return st_diag_set(diag, ST_E_NOMEM, label, 0, 0, "out of memory");
    }
    size_t n = fread(b, 1, (size_t)sb.st_size, f);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(b);
        return st_diag_set(diag, ST_E_IO, label, 0, 0, "cannot read manifest");
    }
    b[n] = '\0';
    st_status st = st_yaml_refuse_nul(b, n, label, diag);
    if (st == ST_OK)
        st = st_yaml_check_utf8(b, n, label, diag);
    if (st != ST_OK) {
        free(b);
        return st;
    }
    *buf = b;
    *len = n;
    return ST_OK;
}

/* Expect `type` next; STREAM_START/DOCUMENT_START are skipped by callers. */
static st_status st_yaml_expect_event(st_yaml_reader *r, enum fy_event_type type,
                                      struct fy_event **out)
{
    struct fy_event *ev = st_yaml_next(r);
    if (!ev)
        return st_yaml_syntax_error(r);
    if (ev->type != type) {
        fy_parser_event_free(r->parser, ev);
        return st_diag_set(r->diag, ST_E_INTERNAL, r->label, 0, 0,
                           "unexpected YAML event order");
    }
    *out = ev;
    return ST_OK;
}

static st_status st_yaml_read_document(st_yaml_reader *r, st_value **root)
{
    struct fy_event *ev = NULL;
    st_status st = st_yaml_expect_event(r, FYET_STREAM_START, &ev);
    if (st != ST_OK)
        return st;
    fy_parser_event_free(r->parser, ev);

    ev = st_yaml_next(r);
    if (!ev)
        return st_yaml_syntax_error(r);
    if (ev->type == FYET_STREAM_END) {
        fy_parser_event_free(r->parser, ev);
        return st_diag_set(r->diag, ST_E_FORMAT, r->label, 1, 1,
                           "expected a mapping (manifest keys), found an empty file");
    }
    fy_parser_event_free(r->parser, ev); /* DOCUMENT_START */

    ev = st_yaml_next(r);
    if (!ev)
        return st_yaml_syntax_error(r);
    if ((st = st_yaml_node(r, ev, 1, 1, root)) != ST_OK)
        return st;

    if ((st = st_yaml_expect_event(r, FYET_DOCUMENT_END, &ev)) != ST_OK)
        return st;
    fy_parser_event_free(r->parser, ev);
    ev = st_yaml_next(r);
    if (!ev)
        return st_yaml_syntax_error(r);
    if (ev->type == FYET_DOCUMENT_START) {
        int line = 0, col = 0;
        st_yaml_mark(ev, 0, 0, &line, &col);
        fy_parser_event_free(r->parser, ev);
        return st_diag_set(r->diag, ST_E_FORMAT, r->label, line, col,
                           "expected one YAML document, found a second one");
    }
    fy_parser_event_free(r->parser, ev);

    if ((*root)->type != ST_VALUE_MAP) {
        char what[96];
        return st_diag_set(r->diag, ST_E_FORMAT, r->label, (*root)->line, (*root)->col,
                           "expected a mapping (manifest keys) at the top, found %s",
                           st_yaml_describe(*root, what, sizeof what));
    }
    return ST_OK;
}

st_status st_yaml_read_map(const char *path, const char *label, st_value **out,
                           st_diag *diag)
{
    char *buf = NULL;
    size_t len = 0;
    st_status st = st_yaml_slurp(path, label, &buf, &len, diag);
    if (st != ST_OK)
        return st;

    st_yaml_reader r = {.label = label, .diag = diag};
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = st_yaml_quiet_output;
    dcfg.colorize = false;
    r.fydiag = fy_diag_create(&dcfg);
    if (!r.fydiag) {
        free(buf);
        return st_diag_set(diag, ST_E_NOMEM, label, 0, 0, "cannot create a YAML diagnostic");
    }
    fy_diag_set_collect_errors(r.fydiag, true);
    /* No FYPCF_DISABLE_MMAP_OPT: with it libfyaml 0.7.12 crashes reading
     * scalar text from a string input. */
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET, .diag = r.fydiag};
    r.parser = fy_parser_create(&pcfg);
    st_value *root = NULL;
    if (!r.parser) {
        st = st_diag_set(diag, ST_E_NOMEM, label, 0, 0, "cannot create a YAML parser");
    } else if (fy_parser_set_string(r.parser, buf, len) != 0) {
        st = st_diag_set(diag, ST_E_NOMEM, label, 0, 0, "cannot start the YAML parser");
    } else {
        st = st_yaml_read_document(&r, &root);
    }
    if (r.parser)
        fy_parser_destroy(r.parser);
    fy_diag_destroy(r.fydiag);
    for (size_t k = 0; k < r.n_anchors; k++) {
        free(r.anchors[k].name);
        st_value_free(r.anchors[k].owned);
    }
    free(r.anchors);
    free(buf);
    if (st != ST_OK) {
        st_value_free(root);
        return st;
    }
    *out = root;
    return ST_OK;
}
