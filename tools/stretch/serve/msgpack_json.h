/*
 * tools/stretch/serve/msgpack_json.h - a msgpack-RPC request's parameters
 * as a jansson value, so that a generate call is checked by the same code
 * as an HTTP body (openai_request.c); and a jansson value packed for a
 * reply, so that its parts (an answer's tool calls) are the HTTP API's.
 */
#ifndef ST_CLI_SERVE_MSGPACK_JSON_H
#define ST_CLI_SERVE_MSGPACK_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

#include "openai_request.h"

/* The deepest nesting accepted (the request itself is level 0). */
#define ST_MSGPACK_JSON_MAX_DEPTH 32

/* o as a new JSON value, or NULL with msg (NUL-terminated) saying where
 * ("stop[0]: ...", "messages[1].content: ...") and what JSON cannot hold:
 * binary and extension values, a non-finite float, an unsigned integer
 * past INT64_MAX, a string that is not UTF-8 or holds a NUL, a map key
 * that is not a string of under 128 bytes, deeper nesting. */
json_t *st_msgpack_to_json(const msgpack_object *o, char *msg, size_t msg_size);

/* Pack v (objects, arrays, strings, numbers, booleans, null) as the
 * msgpack value of the same shape; object members in their order. */
void st_json_pack_msgpack(msgpack_packer *pk, const json_t *v);

/* A generate call's map as a checked request (openai_request.h): a chat
 * request when it has "messages", a completion otherwise. On failure msg
 * says why and *param names the field, or is NULL. */
bool st_gen_request_from_msgpack(const msgpack_object *map, st_gen_request *out, char *msg,
                                 size_t msg_size, const char **param);

#endif
