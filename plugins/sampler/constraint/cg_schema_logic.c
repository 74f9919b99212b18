/*
 * plugins/sampler/constraint/cg_schema_logic.c - JSON Schema keywords that
 * tie members together, written as alternatives the grammar can hold.
 *
 * dependentRequired ({"a": ["b"]}: an object with a has b), dependentSchemas
 * ({"a": S}: an object with a also matches S) and draft 7's dependencies
 * (either form) are conditions on which members are present. With n
 * trigger members there are 2^n cases of which are present; each case is
 * one ordinary object schema: the present triggers required (with what
 * they require, merged with their schemas), the absent ones forbidden
 * (their schema false). The object is the alternatives of the cases that
 * can hold, which is exact and small for the few triggers schemas use
 * (at most SC_DEP_TRIGGERS_MAX; more is reported by name).
 */
#include <stdlib.h>
#include <string.h>

#include "cg_schema_int.h"

#define SC_DEP_TRIGGERS_MAX 4

typedef struct dep {
    const char *name;
    const cj_value *required;   /* names, or NULL */
    const cj_value *schema;     /* a schema, or NULL */
} dep;

static const char *const dep_keywords[] = {"dependentRequired", "dependentSchemas",
                                           "dependencies", NULL};

static const cj_value any_schema = {.type = CJ_BOOL, .boolean = true};
static const cj_value no_schema = {.type = CJ_BOOL, .boolean = false};

static bool has_name(const cj_value *names, const char *name)
{
    for (size_t i = 0; names && i < names->n; i++)
        if (names->items[i]->type == CJ_STRING && strcmp(names->items[i]->str, name) == 0)
            return true;
    return false;
}

/* Append `name` to the array `names` unless it is there. */
static bool add_name(sc *s, cj_value *names, const char *name)
{
    if (has_name(names, name))
        return true;
    cj_value *n = sc_owned_node(s, CJ_STRING);
    if (!n)
        return false;
    n->str = (char *)name;
    n->len = strlen(name);
    return sc_node_push(names, NULL, n);
}

/* The triggers of v's dependency keywords into deps (at most `cap`);
 * false with s->err filled when a keyword is malformed. */
static bool collect(sc *s, const cj_value *v, const char *path, dep *deps, size_t cap,
                    size_t *n)
{
    char p[600];
    *n = 0;
    for (const char *const *kw = dep_keywords; *kw; kw++) {
        const cj_value *d = cj_get(v, *kw);
        if (!d)
            continue;
        sc_child_path(p, sizeof p, path, *kw);
        if (d->type != CJ_OBJECT)
            return sc_fail(s, d, p, "'%s' must be an object", *kw);
        bool names_only = strcmp(*kw, "dependentRequired") == 0;
        bool schemas_only = strcmp(*kw, "dependentSchemas") == 0;
        for (size_t i = 0; i < d->n; i++) {
            const cj_value *x = d->items[i];
            dep one = {.name = d->keys[i]};
            if (x->type == CJ_ARRAY && !schemas_only) {
                for (size_t j = 0; j < x->n; j++)
                    if (x->items[j]->type != CJ_STRING)
                        return sc_fail(s, x->items[j], p, "'%s' of '%s' must list member "
                                                          "names", *kw, d->keys[i]);
                if (!x->n)
                    continue;   /* requires nothing */
                one.required = x;
            } else if ((x->type == CJ_OBJECT || x->type == CJ_BOOL) && !names_only) {
                if (x->type == CJ_BOOL && x->boolean)
                    continue;   /* true: no condition */
                one.schema = x;
            } else {
                return sc_fail(s, x, p, "'%s' of '%s' must be %s", *kw, d->keys[i],
                               names_only ? "an array of member names"
                               : schemas_only ? "a schema"
                                              : "an array of member names or a schema");
            }
            if (*n < cap)
                deps[*n] = one;
            (*n)++;
        }
    }
    return true;
}

/* The case `present` (bit i: trigger i present) as one object schema;
 * NULL without a failure when the case cannot hold, NULL with s->err set
 * on a failure. */
static const cj_value *one_case(sc *s, const cj_value *base, const dep *deps, size_t n,
                                unsigned present, const char *path)
{
    const cj_value *merged = base;
    for (size_t i = 0; i < n && merged; i++)
        if ((present >> i & 1) && deps[i].schema)
            merged = sc_merge(s, merged, deps[i].schema, path);
    if (!merged)
        return NULL;
    if (merged->type == CJ_BOOL)   /* merged with true: base was true */
        merged = sc_owned_node(s, CJ_OBJECT);
    const cj_value *req = cj_get(merged, "required");
    if (req && req->type != CJ_ARRAY)
        req = NULL;
    cj_value *names = sc_owned_node(s, CJ_ARRAY);
    if (!names || !merged)
        return sc_fail(s, base, path, "out of memory"), NULL;
    for (size_t i = 0; req && i < req->n; i++)
        if (req->items[i]->type == CJ_STRING && !add_name(s, names, req->items[i]->str))
            return sc_fail(s, base, path, "out of memory"), NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(present >> i & 1))
            continue;
        if (!add_name(s, names, deps[i].name))
            return sc_fail(s, base, path, "out of memory"), NULL;
        for (size_t j = 0; deps[i].required && j < deps[i].required->n; j++)
            if (!add_name(s, names, deps[i].required->items[j]->str))
                return sc_fail(s, base, path, "out of memory"), NULL;
    }
    /* A trigger both absent and required (or present under another
     * keyword) rules the case out. */
    for (size_t i = 0; i < n; i++) {
        if (present >> i & 1)
            continue;
        if (has_name(names, deps[i].name))
            return NULL;
    }
    /* So does a member the case requires that a closed object cannot have
     * (not declared, additionalProperties false). */
    const cj_value *add = cj_get(merged, "additionalProperties");
    const cj_value *bp = cj_get(merged, "properties");
    bool closed = add && add->type == CJ_BOOL && !add->boolean &&
                  !cj_get(merged, "patternProperties");
    for (size_t i = 0; closed && i < names->n; i++)
        if (!has_name(req, names->items[i]->str) && !cj_get(bp, names->items[i]->str))
            return NULL;
    cj_value *out = sc_owned_node(s, CJ_OBJECT), *props = sc_owned_node(s, CJ_OBJECT);
    if (!merged || !out || !props)
        return sc_fail(s, base, path, "out of memory"), NULL;
    out->offset = base->offset;
    const cj_value *old_props = cj_get(merged, "properties");
    bool open = !old_props && !cj_get(merged, "patternProperties") &&
                !cj_get(merged, "additionalProperties");
    bool ok = true;
    for (size_t i = 0; ok && i < merged->n; i++) {
        const char *k = merged->keys[i];
        if (strcmp(k, "properties") && strcmp(k, "required"))
            ok = sc_node_push(out, k, merged->items[i]);
    }
    for (size_t i = 0; ok && old_props && old_props->type == CJ_OBJECT && i < old_props->n; i++) {
        bool absent = false;
        for (size_t j = 0; j < n; j++)
            absent = absent || (!(present >> j & 1) && strcmp(deps[j].name, old_props->keys[i]) == 0);
        ok = sc_node_push(props, old_props->keys[i], absent ? &no_schema : old_props->items[i]);
    }
    for (size_t j = 0; ok && j < n; j++)
        if (!(present >> j & 1) && !cj_get(props, deps[j].name))
            ok = sc_node_push(props, deps[j].name, &no_schema);
    ok = ok && sc_node_push(out, "properties", props) && sc_node_push(out, "required", names);
    /* Naming the forbidden members must not close an object that had no
     * declared members (an undeclared object takes any member). */
    if (ok && open)
        ok = sc_node_push(out, "additionalProperties", &any_schema);
    if (!ok)
        return sc_fail(s, base, path, "out of memory"), NULL;
    return out;
}

bool sc_gen_dependencies(sc *s, const cj_value *v, const char *path, cg_buf *e, bool *ok)
{
    bool any = false;
    for (const char *const *kw = dep_keywords; *kw; kw++)
        any = any || cj_get(v, *kw);
    if (!any)
        return false;
    const cj_value *base = v;
    for (const char *const *kw = dep_keywords; *kw && base; kw++)
        if (cj_get(base, *kw))
            base = sc_without(s, base, *kw);
    if (!base) {
        *ok = sc_fail(s, v, path, "out of memory");
        return true;
    }
    dep deps[SC_DEP_TRIGGERS_MAX];
    size_t n = 0;
    if (!collect(s, v, path, deps, SC_DEP_TRIGGERS_MAX, &n)) {
        *ok = false;
        return true;
    }
    /* They speak of objects only; a schema that allows no object (or no
     * trigger at all) is the rest of it. */
    if (!n || !(sc_type_bits(cj_get(v, "type")) & T_OBJECT)) {
        *ok = sc_gen_schema(s, base, path, e);
        return true;
    }
    if (n > SC_DEP_TRIGGERS_MAX) {
        const char *kw = cj_get(v, "dependencies") ? "dependencies"
                       : cj_get(v, "dependentSchemas") ? "dependentSchemas"
                                                        : "dependentRequired";
        *ok = sc_unsupported(s, cj_get(v, kw), path, kw, "more than 4 trigger members") &&
              sc_gen_schema(s, base, path, e);
        return true;
    }
    size_t written = 0;
    cg_buf_puts(e, "(");
    *ok = true;
    for (unsigned present = 0; *ok && present < 1u << n; present++) {
        sc_mark mark = sc_mark_now(s);
        char name[24];
        const cj_value *c = one_case(s, base, deps, n, present, path);
        if (!c) {
            *ok = !s->err->message[0] || sc_recover(s, mark);
            continue;
        }
        if (sc_gen_rule(s, c, path, name))
            cg_buf_printf(e, "%s%s", written++ ? " | " : "", name);
        else
            *ok = sc_recover(s, mark);   /* this case matches nothing */
    }
    cg_buf_puts(e, ")");
    if (*ok && !written)
        *ok = sc_fail_unsat(s, v, path, "no object satisfies the dependencies together with "
                                        "'required'");
    return true;
}
