/*
 * tests/fuzz/fuzz_params.c - parameter validation, after DocTer (Xie et
 * al., ISSTA 2022): the input does not become YAML directly but steers a
 * generator that derives values from each plugin.yaml schema (the built-in
 * plugins' and the test fixtures'), each known to be valid (in range, of
 * the declared type, a listed enum value, a boundary) or invalid (another
 * type, just outside the range, NaN against a range, an unlisted enum
 * value, a misspelt or unknown key, a required parameter left out). The
 * parameters go through the real YAML reader and st_params_validate, which
 * must accept exactly the valid sets and pack exactly the values given.
 */
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "manifest.h"
#include "yaml_manifest.h"

#define MAX_SCHEMAS 64
#define TEXT_MAX 8192

static st_plugin_manifest *g_schemas[MAX_SCHEMAS];
static size_t g_n_schemas;

typedef struct bytes {
    const uint8_t *p;
    size_t n;
} bytes;

static uint8_t take_u8(bytes *b)
{
    if (!b->n)
        return 0;
    b->n--;
    return *b->p++;
}

static uint64_t take_u64(bytes *b)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v = v << 8 | take_u8(b);
    return v;
}

/* What was generated for one parameter, to check what was packed. */
typedef struct given {
    const st_param_schema *p;
    st_value_type type;
    int64_t i;
    double f;
    bool b;
    char s[64];
} given;

typedef struct text {
    char buf[TEXT_MAX];
    size_t len;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len = t->len + (size_t)n < sizeof t->buf ? t->len + (size_t)n : sizeof t->buf - 1;
}

static void put_quoted(text *t, const char *s)
{
    put(t, "\"");
    for (; *s; s++)
        put(t, *s == '"' || *s == '\\' ? "\\%c" : "%c", *s);
    put(t, "\"");
}

static void put_int(text *t, given *g, int64_t v)
{
    g->type = ST_VALUE_INT;
    g->i = v;
    put(t, "%lld", (long long)v);
}

/* Floats are written so YAML reads them back as floats, bit for bit. */
static void put_float(text *t, given *g, double v)
{
    g->type = ST_VALUE_FLOAT;
    g->f = v;
    if (isnan(v))
        put(t, ".nan");
    else if (isinf(v))
        put(t, v > 0 ? ".inf" : "-.inf");
    else {
        char num[64];
        snprintf(num, sizeof num, "%.17g", v);
        put(t, "%s%s", num, strpbrk(num, ".e") ? "" : ".0");
    }
}

static void put_string(text *t, given *g, const char *s)
{
    g->type = ST_VALUE_STRING;
    snprintf(g->s, sizeof g->s, "%s", s);
    put_quoted(t, g->s);
}

/* The int range a value may be drawn from: the schema's, or +-1e6. */
static bool int_range(const st_param_schema *p, int64_t *lo, int64_t *hi)
{
    double a = p->has_min ? ceil(p->min) : -1e6, z = p->has_max ? floor(p->max) : 1e6;
    if (a < -4e18)
        a = -4e18;
    if (z > 4e18)
        z = 4e18;
    if (a > z)
        return false;
    *lo = (int64_t)a;
    *hi = (int64_t)z;
    return true;
}

/* A value the schema accepts. Returns false when it has none to offer. */
static bool gen_valid(text *t, given *g, const st_param_schema *p, bytes *b)
{
    uint8_t how = take_u8(b);
    uint64_t r = take_u64(b);
    switch (p->type) {
    case ST_PARAM_INT: {
        int64_t lo, hi;
        if (!int_range(p, &lo, &hi))
            return false;
        int64_t v = how & 1 ? (how & 2 ? hi : lo)
                            : lo + (int64_t)(r % ((uint64_t)(hi - lo) + 1));
        put_int(t, g, v);
        return true;
    }
    case ST_PARAM_FLOAT: {
        double lo = p->has_min ? p->min : -1e6, hi = p->has_max ? p->max : 1e6;
        if (!p->has_min && !p->has_max && how % 8 == 7) {
            put_float(t, g, how & 8 ? NAN : how & 16 ? INFINITY : -INFINITY);
            return true;
        }
        double v = how & 1 ? (how & 2 ? hi : lo) : lo + (hi - lo) * ((double)(r >> 11) / 9007199254740992.0);
        if (v < lo || v > hi)
            v = lo;
        int64_t i = (int64_t)v;
        if (how & 4 && (double)i == v && fabs(v) < 1e15) {
            /* an int where a float is declared: promoted */
            put_int(t, g, i);
            return true;
        }
        put_float(t, g, v);
        return true;
    }
    case ST_PARAM_BOOL:
        g->type = ST_VALUE_BOOL;
        g->b = how & 1;
        put(t, g->b ? "true" : "false");
        return true;
    case ST_PARAM_ENUM:
        if (!p->n_enum)
            return false;
        put_string(t, g, p->enum_values[r % p->n_enum]);
        return true;
    case ST_PARAM_STRING: {
        char s[17];
        size_t n = how % sizeof s;
        for (size_t k = 0; k < n; k++)
            s[k] = (char)(0x20 + take_u8(b) % 0x5f);
        s[n] = '\0';
        put_string(t, g, s);
        return true;
    }
    }
    return false;
}

/* A value of another type than the schema's. */
static void gen_wrong_type(text *t, const st_param_schema *p, bytes *b)
{
    static const char *const any[] = {"~", "[1, 2]", "{a: 1}", "\"\""};
    uint8_t how = take_u8(b) % 8;
    bool text = p->type == ST_PARAM_STRING || p->type == ST_PARAM_ENUM;
    if (how < (text ? 3 : 4)) { /* "" is a string: of the wrong type only for the others */
        put(t, "%s", any[how]);
        return;
    }
    switch (p->type) {
    case ST_PARAM_INT: put(t, "%s", how == 4 ? "1.5" : how == 5 ? "true" : "\"3\""); break;
    case ST_PARAM_FLOAT: put(t, "%s", how == 4 ? "false" : how == 5 ? "\"1.0\"" : "[]"); break;
    case ST_PARAM_BOOL: put(t, "%s", how == 4 ? "1" : how == 5 ? "yes" : "\"true\""); break;
    case ST_PARAM_STRING:
    case ST_PARAM_ENUM: put(t, "%s", how == 4 ? "1" : how == 5 ? "true" : "2.5"); break;
    }
}

/* A value of the right type outside what the schema allows; false when
 * the schema allows every value of its type. */
static bool gen_out_of_range(text *t, given *g, const st_param_schema *p, bytes *b)
{
    uint8_t how = take_u8(b);
    bool low = p->has_min && (!p->has_max || how & 1);
    switch (p->type) {
    case ST_PARAM_INT:
        if (!p->has_min && !p->has_max)
            return false;
        if (low && p->min > -4e18)
            put_int(t, g, (int64_t)ceil(p->min) - 1);
        else if (!low && p->max < 4e18)
            put_int(t, g, (int64_t)floor(p->max) + 1);
        else
            return false;
        return true;
    case ST_PARAM_FLOAT:
        if (!p->has_min && !p->has_max)
            return false;
        if (how & 2)
            put_float(t, g, NAN);
        else
            put_float(t, g, low ? nextafter(p->min, -INFINITY) : nextafter(p->max, INFINITY));
        return true;
    case ST_PARAM_ENUM: {
        char s[64];
        snprintf(s, sizeof s, "%s%s", p->n_enum ? p->enum_values[how % p->n_enum] : "", "-x");
        for (size_t k = 0; k < p->n_enum; k++)
            if (strcmp(p->enum_values[k], s) == 0)
                return false;
        put_string(t, g, s);
        return true;
    }
    default:
        return false;
    }
}

static void load_schemas(const char *pattern)
{
    glob_t gl;
    if (glob(pattern, 0, NULL, &gl) != 0)
        return;
    for (size_t k = 0; k < gl.gl_pathc && g_n_schemas < MAX_SCHEMAS; k++) {
        st_diag diag;
        if (st_plugin_manifest_load(gl.gl_pathv[k], &g_schemas[g_n_schemas], &diag) == ST_OK)
            g_n_schemas++;
    }
    globfree(&gl);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    load_schemas(ST_FUZZ_SOURCE_DIR "/plugins/*/*/plugin.yaml");
    load_schemas(ST_FUZZ_SOURCE_DIR "/tests/bad/manifests/fixtures/*.yaml");
    if (!g_n_schemas) {
        fprintf(stderr, "fuzz_params: no plugin.yaml schema under %s\n", ST_FUZZ_SOURCE_DIR);
        abort();
    }
    return 0;
}

/* The packed value of `g->p` must be what was written. */
static void check_packed(const msgpack_object *map, const given *g)
{
    const msgpack_object *v = NULL;
    for (uint32_t k = 0; k < map->via.map.size; k++) {
        const msgpack_object *key = &map->via.map.ptr[k].key;
        if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == strlen(g->p->name) &&
            memcmp(key->via.str.ptr, g->p->name, key->via.str.size) == 0)
            v = &map->via.map.ptr[k].val;
    }
    if (!v)
        st_fuzz_fail("parameter '%s' missing from the packed map", g->p->name);
    bool same = false;
    switch (g->p->type) {
    case ST_PARAM_INT:
        same = (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && g->i >= 0 && v->via.u64 == (uint64_t)g->i) ||
               (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && v->via.i64 == g->i);
        break;
    case ST_PARAM_FLOAT: {
        double want = g->type == ST_VALUE_INT ? (double)g->i : g->f;
        same = v->type == MSGPACK_OBJECT_FLOAT64 &&
               (v->via.f64 == want || (isnan(want) && isnan(v->via.f64)));
        break;
    }
    case ST_PARAM_BOOL: same = v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean == g->b; break;
    case ST_PARAM_STRING:
    case ST_PARAM_ENUM:
        same = v->type == MSGPACK_OBJECT_STR && v->via.str.size == strlen(g->s) &&
               memcmp(v->via.str.ptr, g->s, v->via.str.size) == 0;
        break;
    }
    if (!same)
        st_fuzz_fail("parameter '%s': the packed value is not the one given", g->p->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bytes b = {data, size};
    const st_plugin_manifest *m = g_schemas[take_u8(&b) % g_n_schemas];
    static text t;
    given gv[64];
    size_t n_given = 0;
    bool valid = true;
    bool no_map = false, as_list = false;
    t.len = 0;
    put(&t, "p:\n");
    uint8_t shape = take_u8(&b);
    if (shape == 0xff) {
        put(&t, "  ~\n"); /* no parameters at all */
        no_map = true;
    } else if (shape == 0xfe) {
        put(&t, "  [1]\n");
        valid = false;
        as_list = true;
    }
    for (size_t k = 0; k < m->n_params && !no_map && !as_list; k++) {
        const st_param_schema *p = &m->params[k];
        given g = {.p = p};
        uint8_t what = take_u8(&b) % 8;
        if (what == 0) { /* left out */
            valid = valid && !p->required;
            continue;
        }
        char key[96];
        snprintf(key, sizeof key, "%s%c", p->name, 'a' + take_u8(&b) % 26);
        if (what == 7 && st_plugin_manifest_param(m, key))
            continue; /* the misspelling is another parameter's name */
        put(&t, "  ");
        if (what == 7) { /* misspelt: a key the schema does not declare */
            valid = false;
            put_quoted(&t, key);
        } else {
            put_quoted(&t, p->name);
        }
        put(&t, ": ");
        bool ok = true;
        if (what == 5) {
            gen_wrong_type(&t, p, &b);
            ok = false;
        } else if (what == 6 && gen_out_of_range(&t, &g, p, &b)) {
            ok = false;
        } else if (!gen_valid(&t, &g, p, &b)) {
            put(&t, "~");
            ok = false;
        }
        put(&t, "\n");
        valid = valid && ok;
        if (what != 7 && n_given < sizeof gv / sizeof gv[0])
            gv[n_given++] = g;
    }
    if (no_map)
        for (size_t k = 0; k < m->n_params; k++)
            valid = valid && !m->params[k].required;
    if (!as_list && !no_map && shape >= 0xf0) {
        put(&t, "  zz-unknown: 1\n");
        valid = false;
    }
    if (m->n_params == 0 && shape < 0xf0) {
        /* nothing to derive: an empty flow map is the one valid input */
        t.len = 0;
        put(&t, "p: {}\n");
    }

    const char *path = st_fuzz_write(0, "params.yaml", t.buf, t.len);
    st_value *root = NULL;
    st_diag diag;
    if (st_yaml_read_map(path, "params.yaml", &root, &diag) != ST_OK)
        st_fuzz_fail("the generated YAML does not read back: %s\n%s", diag.message, t.buf);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    st_status st = st_params_validate(m, st_value_get(root, "p"), &sb, &diag);
    if ((st == ST_OK) != valid)
        st_fuzz_fail("plugin '%s': %s a parameter set that is %s:\n%s%s", m->name,
                     st == ST_OK ? "accepted" : "refused", valid ? "valid" : "invalid", t.buf,
                     st == ST_OK ? "" : diag.message);
    if (st == ST_OK) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        if (msgpack_unpack_next(&up, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS ||
            up.data.type != MSGPACK_OBJECT_MAP || up.data.via.map.size != m->n_params)
            st_fuzz_fail("plugin '%s': the packed parameters are not a map of every parameter",
                         m->name);
        for (size_t k = 0; k < n_given; k++)
            check_packed(&up.data, &gv[k]);
        msgpack_unpacked_destroy(&up);
    }
    msgpack_sbuffer_destroy(&sb);
    st_value_free(root);
    return 0;
}
