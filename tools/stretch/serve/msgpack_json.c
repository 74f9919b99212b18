/*
 * tools/stretch/serve/msgpack_json.c - msgpack value -> jansson value,
 * refusing with a message what JSON (and so an OpenAI request) cannot say.
 */
#include "msgpack_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static json_t *convert(const msgpack_object *o, int depth, char *msg, size_t size);

static json_t *refuse(char *msg, size_t size, const char *why)
{
    snprintf(msg, size, "%s", why);
    return NULL;
}

/* jansson's constructors fail only on memory, except json_real (NaN and
 * infinities) and json_stringn (UTF-8, NUL): those two are named. */
static json_t *made(json_t *v, char *msg, size_t size)
{
    return v ? v : refuse(msg, size, "out of memory");
}

static json_t *convert_array(const msgpack_object_array *a, int depth, char *msg, size_t size)
{
    json_t *out = json_array();
    if (!out)
        return refuse(msg, size, "out of memory");
    for (uint32_t i = 0; i < a->size; i++) {
        json_t *v = convert(&a->ptr[i], depth + 1, msg, size);
        if (!v || json_array_append_new(out, v)) {
            if (v)
                refuse(msg, size, "out of memory");
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *convert_map(const msgpack_object_map *m, int depth, char *msg, size_t size)
{
    json_t *out = json_object();
    if (!out)
        return refuse(msg, size, "out of memory");
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        char key[128];
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof key ||
            (k->via.str.size && memchr(k->via.str.ptr, 0, k->via.str.size))) {
            json_decref(out);
            return refuse(msg, size, "a map key is not a string (of under 128 bytes, no NUL)");
        }
        /* msgpack-c leaves an empty string's pointer NULL. */
        if (k->via.str.size)
            memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = '\0';
        json_t *v = convert(&m->ptr[i].val, depth + 1, msg, size);
        if (!v) {
            json_decref(out);
            return NULL;
        }
        /* json_object_set_new takes v even when it fails, and fails on a
         * key that is not UTF-8 as well as on memory. */
        if (json_object_set_new(out, key, v)) {
            json_decref(out);
            return refuse(msg, size, "a map key is not valid UTF-8");
        }
    }
    return out;
}

static json_t *convert(const msgpack_object *o, int depth, char *msg, size_t size)
{
    if (depth > ST_MSGPACK_JSON_MAX_DEPTH)
        return refuse(msg, size, "the request nests deeper than 32 levels");
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return made(json_null(), msg, size);
    case MSGPACK_OBJECT_BOOLEAN: return made(json_boolean(o->via.boolean), msg, size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            return refuse(msg, size, "an integer is too large (more than 2^63 - 1)");
        return made(json_integer((json_int_t)o->via.u64), msg, size);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return made(json_integer((json_int_t)o->via.i64), msg, size);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* JSON has no NaN or infinity (and json_real refuses them). */
        if (!isfinite(o->via.f64))
            return refuse(msg, size, "a number is not finite (NaN or infinity)");
        return made(json_real(o->via.f64), msg, size);
    case MSGPACK_OBJECT_STR: {
        /* An empty string's pointer is NULL, which json_stringn refuses. */
        json_t *s = json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
        return s ? s : refuse(msg, size, "a string is not valid UTF-8 (or holds a NUL)");
    }
    case MSGPACK_OBJECT_ARRAY: return convert_array(&o->via.array, depth, msg, size);
    case MSGPACK_OBJECT_MAP: return convert_map(&o->via.map, depth, msg, size);
    default: return refuse(msg, size, "binary and extension values are not accepted");
    }
}

json_t *st_msgpack_to_json(const msgpack_object *o, char *msg, size_t msg_size)
{
    return convert(o, 0, msg, msg_size);
}

bool st_gen_request_from_msgpack(const msgpack_object *map, st_gen_request *out, char *msg,
                                 size_t msg_size, const char **param)
{
    memset(out, 0, sizeof *out);
    *param = NULL;
    json_t *root = st_msgpack_to_json(map, msg, msg_size);
    if (!root)
        return false;
    bool chat = json_object_get(root, "messages") != NULL;
    bool ok = st_gen_request_from_json(root, chat, out, msg, msg_size, param);
    json_decref(root);
    return ok;
}
