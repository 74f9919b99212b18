/*
 * tools/stretch/serve/msgpack_json.c - msgpack value -> jansson value,
 * refusing with a message what JSON (and so an OpenAI request) cannot say.
 */
#include "msgpack_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Where in the request a value sits, as its refusal names it:
 * "stop[0]", "messages[1].content"; empty for the request itself. */
typedef struct where {
    char text[192];
    size_t len;
} where;

static json_t *convert(const msgpack_object *o, int depth, where *at, char *msg, size_t size);

static json_t *refuse(const where *at, char *msg, size_t size, const char *why)
{
    snprintf(msg, size, "%s%s%s", at->text, at->len ? ": " : "", why);
    return NULL;
}

/* jansson's constructors fail only on memory, except json_real (NaN and
 * infinities) and json_stringn (UTF-8): those two are named. */
static json_t *made(json_t *v, const where *at, char *msg, size_t size)
{
    return v ? v : refuse(at, msg, size, "out of memory");
}

/* Append ".key" (or "key" at the top) or "[i]" to the path; returns the
 * length to restore. A path too long for the buffer ends in "...". */
static size_t enter(where *at, const char *key, uint32_t index)
{
    size_t was = at->len, room = sizeof at->text - was;
    int n = key ? snprintf(at->text + was, room, "%s%s", was ? "." : "", key)
                : snprintf(at->text + was, room, "[%u]", index);
    if (n < 0 || (size_t)n >= room) {
        memcpy(at->text + sizeof at->text - 4, "...", 4);
        at->len = sizeof at->text - 1;
    } else {
        at->len = was + (size_t)n;
    }
    return was;
}

static void leave(where *at, size_t was)
{
    at->len = was;
    at->text[was] = '\0';
}

static json_t *convert_array(const msgpack_object_array *a, int depth, where *at, char *msg,
                             size_t size)
{
    json_t *out = json_array();
    if (!out)
        return refuse(at, msg, size, "out of memory");
    for (uint32_t i = 0; i < a->size; i++) {
        size_t was = enter(at, NULL, i);
        json_t *v = convert(&a->ptr[i], depth + 1, at, msg, size);
        if (!v || json_array_append_new(out, v)) {
            if (v)
                refuse(at, msg, size, "out of memory");
            json_decref(out);
            return NULL;
        }
        leave(at, was);
    }
    return out;
}

static json_t *convert_map(const msgpack_object_map *m, int depth, where *at, char *msg,
                           size_t size)
{
    json_t *out = json_object();
    if (!out)
        return refuse(at, msg, size, "out of memory");
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        char key[128];
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof key ||
            (k->via.str.size && memchr(k->via.str.ptr, 0, k->via.str.size))) {
            json_decref(out);
            return refuse(at, msg, size, "a map key is not a string (of under 128 bytes, no NUL)");
        }
        /* msgpack-c leaves an empty string's pointer NULL. */
        if (k->via.str.size)
            memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = '\0';
        /* json_object_set_new fails on a key that is not UTF-8 (as well
         * as on memory); checked first, so that the path below is text. */
        json_t *check = json_stringn(key, k->via.str.size);
        if (!check) {
            json_decref(out);
            return refuse(at, msg, size, "a map key is not valid UTF-8");
        }
        json_decref(check);
        size_t was = enter(at, key, 0);
        json_t *v = convert(&m->ptr[i].val, depth + 1, at, msg, size);
        if (!v) {
            json_decref(out);
            return NULL;
        }
        leave(at, was);
        /* json_object_set_new takes v even when it fails. */
        if (json_object_set_new(out, key, v)) {
            json_decref(out);
            return refuse(at, msg, size, "out of memory");
        }
    }
    return out;
}

static json_t *convert(const msgpack_object *o, int depth, where *at, char *msg, size_t size)
{
    if (depth > ST_MSGPACK_JSON_MAX_DEPTH)
        return refuse(at, msg, size, "the request nests deeper than 32 levels");
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return made(json_null(), at, msg, size);
    case MSGPACK_OBJECT_BOOLEAN: return made(json_boolean(o->via.boolean), at, msg, size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX)
            return refuse(at, msg, size, "an integer is too large (more than 2^63 - 1)");
        return made(json_integer((json_int_t)o->via.u64), at, msg, size);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return made(json_integer((json_int_t)o->via.i64), at, msg, size);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* JSON has no NaN or infinity (and json_real refuses them). */
        if (!isfinite(o->via.f64))
            return refuse(at, msg, size, "a number is not finite (NaN or infinity)");
        return made(json_real(o->via.f64), at, msg, size);
    case MSGPACK_OBJECT_STR: {
        /* json_stringn keeps a NUL, and every reader of the request takes
         * its strings as C strings: "x\0y" would be "x", and a stop
         * sequence "\0" an empty one. (A JSON body cannot say \u0000 to
         * this server either: jansson refuses it when parsing.) */
        if (o->via.str.size && memchr(o->via.str.ptr, 0, o->via.str.size))
            return refuse(at, msg, size, "a string holds a NUL byte");
        /* An empty string's pointer is NULL, which json_stringn refuses. */
        json_t *s = json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
        return s ? s : refuse(at, msg, size, "a string is not valid UTF-8");
    }
    case MSGPACK_OBJECT_ARRAY: return convert_array(&o->via.array, depth, at, msg, size);
    case MSGPACK_OBJECT_MAP: return convert_map(&o->via.map, depth, at, msg, size);
    default: return refuse(at, msg, size, "binary and extension values are not accepted");
    }
}

json_t *st_msgpack_to_json(const msgpack_object *o, char *msg, size_t msg_size)
{
    where at = {.len = 0};
    at.text[0] = '\0';
    return convert(o, 0, &at, msg, msg_size);
}

void st_json_pack_msgpack(msgpack_packer *pk, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        msgpack_pack_map(pk, json_object_size(v));
        const char *key;
        json_t *member;
        json_object_foreach((json_t *)v, key, member) {
            size_t n = strlen(key);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, key, n);
            st_json_pack_msgpack(pk, member);
        }
        break;
    }
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(v));
        for (size_t i = 0; i < json_array_size(v); i++)
            st_json_pack_msgpack(pk, json_array_get(v, i));
        break;
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(v)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    default: msgpack_pack_nil(pk); break;
    }
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
    /* generate's result map has no place for them: refused, never
     * silently left out. */
    if (ok && (out->n > 1 || out->n_prompts > 1)) {
        *param = out->n > 1 ? "n" : "prompt";
        snprintf(msg, msg_size, "msgpack-RPC's generate answers one prompt once (n = 1): "
                 "send several calls, they run side by side");
        st_gen_request_free(out);
        return false;
    }
    if (ok && (out->logprobs || out->echo)) {
        *param = out->echo ? "echo" : "logprobs";
        snprintf(msg, msg_size, "'%s' is not supported over msgpack-RPC: generate returns the "
                 "text alone; ask the HTTP API (/v1/completions) for it", *param);
        st_gen_request_free(out);
        return false;
    }
    return ok;
}
