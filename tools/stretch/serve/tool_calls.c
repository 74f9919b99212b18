/*
 * tools/stretch/serve/tool_calls.c - OpenAI function calling (see
 * tool_calls.h). The prompt side turns `tools` and the conversation's
 * calls and results into text in the system, assistant and user turns;
 * the answer side reads `<tool_call>` blocks back into tool_calls. A
 * forced call (tool_choice "required" or a named function) runs under the
 * json-schema constraint, built here from the tools' parameter schemas,
 * so its arguments are valid by construction; an "auto" answer is free
 * text, read as calls only when every block in it is a well-formed call
 * to one of the request's tools.
 */
#include "tool_calls.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More than a benchmark's largest tool list (MTRB's MetaTool has 199);
 * the body limit bounds the text in any case. */
#define ST_SERVE_MAX_TOOLS 4096

/* openai_request.c's, by a short name. */
#define refuse st_req_refuse

/* OpenAI's rule for a function name. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool st_tools_is_blank(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* -- the format -- */

static const st_tool_syntax syntaxes[2] = {
    [ST_TOOL_FORMAT_TAGS] = {ST_TOOL_CALL_TAG "\n", "\n</tool_call>", "(\\n<tool_call>\\n)?",
                             ST_TOOL_CALL_TAG, ST_TOOL_CALL_TAG "\n", NULL},
    [ST_TOOL_FORMAT_LIST] = {ST_TOOL_CALL_TAG "[\n", "", "(,\\n)?", ",", ",\n",
                             "\\[(\\]|\\n)"},
};

const st_tool_syntax *st_tools_syntax(int format)
{
    return &syntaxes[format == ST_TOOL_FORMAT_LIST ? ST_TOOL_FORMAT_LIST : ST_TOOL_FORMAT_TAGS];
}

/* -- the prompt side -- */

/* {"name":NAME,"arguments":ARGS}: the compact form a forced call is
 * generated in, so the conversation's earlier calls look the same. ARGS
 * is the client's text as it came (its digits kept: jansson would write
 * 9.99 back as 9.9900000000000002). */
static char *call_json(const char *name, const char *args)
{
    json_t *jname = json_string(name);
    char *quoted = jname ? json_dumps(jname, JSON_ENCODE_ANY) : NULL;
    json_decref(jname);
    size_t n = quoted ? strlen(quoted) + strlen(args) + 32 : 0;
    char *s = quoted ? malloc(n) : NULL;
    if (s)
        snprintf(s, n, "{\"name\":%s,\"arguments\":%s}", quoted, args);
    free(quoted);
    return s;
}

/* An assistant turn's tool_calls after its content: each in its tags, or
 * all in one list (the format's). */
static char *assistant_calls(json_t *calls, const char *content, size_t i, int format,
                             char *msg, size_t size, const char **param)
{
    if (!json_is_array(calls)) {
        refuse(msg, size, param, "messages", "messages[%zu].tool_calls: expected an array",
               i);
        return NULL;
    }
    size_t len = strlen(content), cap = len + 64, k;
    char *out = malloc(cap);
    if (!out) {
        refuse(msg, size, param, NULL, "out of memory");
        return NULL;
    }
    memcpy(out, content, len + 1);
    json_t *c;
    json_array_foreach(calls, k, c) {
        json_t *fn = json_object_get(c, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *raw = json_object_get(fn, "arguments");
        json_t *args = NULL;
        if (json_is_string(raw))
            args = json_loads(json_string_value(raw),
                              JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, NULL);
        else if (json_is_object(raw))
            args = json_incref(raw);
        /* The API carries arguments as JSON text; an object is taken too. */
        char *dumped = json_is_object(raw) ? json_dumps(raw, JSON_COMPACT) : NULL;
        const char *args_text = json_is_string(raw) ? json_string_value(raw) : dumped;
        if (!json_is_object(c) || !name || !args || !args_text) {
            json_decref(args);
            free(dumped);
            free(out);
            refuse(msg, size, param, "messages", "messages[%zu].tool_calls[%zu]: expected "
                   "{\"type\": \"function\", \"function\": {\"name\": ..., \"arguments\": "
                   "a JSON text}}", i, k);
            return NULL;
        }
        char *text = call_json(name, args_text);
        json_decref(args);
        free(dumped);
        size_t n = text ? strlen(text) : 0, need = len + n + 64;
        char *grown = text && need > cap ? realloc(out, cap = need * 2) : out;
        if (!text || !grown) {
            free(text);
            free(grown ? grown : out);
            refuse(msg, size, param, NULL, "out of memory");
            return NULL;
        }
        out = grown;
        if (format == ST_TOOL_FORMAT_LIST)
            len += (size_t)sprintf(out + len, "%s%s", k ? ",\n" : len ? "\n" ST_TOOL_CALL_TAG "[\n"
                                                                  : ST_TOOL_CALL_TAG "[\n",
                                   text);
        else
            len += (size_t)sprintf(out + len, "%s" ST_TOOL_CALL_TAG "\n%s\n</tool_call>",
                                   len ? "\n" : "", text);
        free(text);
    }
    if (format == ST_TOOL_FORMAT_LIST && json_array_size(calls) > 0)
        strcpy(out + len, "\n]</tool_call>"); /* the 64 bytes of slack hold it */
    return out;
}

char *st_tools_message_text(void *json_message, const char *role, const char *content,
                            size_t i, int format, char *msg, size_t size, const char **param)
{
    json_t *m = json_message;
    if (strcmp(role, "tool") == 0) {
        static const char open[] = "<tool_response>\n", close[] = "\n</tool_response>";
        size_t n = strlen(content);
        char *out = malloc(sizeof open + n + sizeof close);
        if (!out) {
            refuse(msg, size, param, NULL, "out of memory");
            return NULL;
        }
        sprintf(out, "%s%s%s", open, content, close);
        return out;
    }
    json_t *calls = json_object_get(m, "tool_calls");
    if (strcmp(role, "assistant") != 0 || !calls || json_is_null(calls)) {
        char *out = strdup(content);
        if (!out)
            refuse(msg, size, param, NULL, "out of memory");
        return out;
    }
    return assistant_calls(calls, content, i, format, msg, size, param);
}

/* One tool of `tools`, checked; its name kept. */
static bool read_tool(json_t *t, size_t i, st_gen_request *r, char *msg, size_t size,
                      const char **param)
{
    json_t *fn = json_object_get(t, "function");
    const char *type = json_string_value(json_object_get(t, "type"));
    if (!json_is_object(t) || !type || strcmp(type, "function") || !json_is_object(fn))
        return refuse(msg, size, param, "tools", "tools[%zu]: expected {\"type\": "
                      "\"function\", \"function\": {\"name\": ..., \"parameters\": ...}}", i);
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (!name || !name_ok(name))
        return refuse(msg, size, param, "tools", "tools[%zu].function.name: expected 1 to 64 "
                      "letters, digits, '_' or '-'", i);
    json_t *desc = json_object_get(fn, "description"), *params = json_object_get(fn, "parameters");
    if (desc && !json_is_string(desc))
        return refuse(msg, size, param, "tools", "tools[%zu].function.description: expected a "
                      "string", i);
    if (params && !json_is_object(params))
        return refuse(msg, size, param, "tools", "tools[%zu].function.parameters: expected a "
                      "JSON Schema, an object", i);
    size_t twin = st_tools_index(r, name);
    if (twin != SIZE_MAX)
        return refuse(msg, size, param, "tools", "tools[%zu].function.name: '%s' is "
                      "tools[%zu]'s name too", i, name, twin);
    if (!(r->tool_names[r->n_tools] = strdup(name)))
        return refuse(msg, size, param, NULL, "out of memory");
    r->n_tools++;
    return true;
}

/* tool_choice: "none", "auto", "required" or {"type": "function",
 * "function": {"name": ...}}; *forced_name set for the last. */
static bool read_choice(json_t *root, st_gen_request *r, const char **forced_name, char *msg,
                        size_t size, const char **param)
{
    json_t *c = json_object_get(root, "tool_choice");
    r->tool_mode = r->n_tools ? ST_TOOLS_AUTO : ST_TOOLS_OFF;
    if (!c || json_is_null(c))
        return true;
    const char *s = json_string_value(c);
    if (s && strcmp(s, "none") == 0) {
        r->tool_mode = ST_TOOLS_OFF;
        return true;
    }
    if (!r->n_tools)
        return refuse(msg, size, param, "tool_choice", "'tool_choice' needs 'tools': give the "
                      "functions the answer may call");
    if (s && (strcmp(s, "auto") == 0 || strcmp(s, "required") == 0)) {
        r->tool_mode = s[0] == 'a' ? ST_TOOLS_AUTO : ST_TOOLS_FORCED;
        return true;
    }
    const char *type = json_string_value(json_object_get(c, "type"));
    const char *name = json_string_value(json_object_get(json_object_get(c, "function"),
                                                         "name"));
    if (!json_is_object(c) || !type || strcmp(type, "function") || !name)
        return refuse(msg, size, param, "tool_choice", "'tool_choice': expected \"none\", "
                      "\"auto\", \"required\" or {\"type\": \"function\", \"function\": "
                      "{\"name\": ...}}");
    size_t k = st_tools_index(r, name);
    if (k == SIZE_MAX)
        return refuse(msg, size, param, "tool_choice", "tool_choice.function.name: '%.64s' is "
                      "not a function of 'tools'", name);
    r->tool_mode = ST_TOOLS_FORCED;
    *forced_name = r->tool_names[k];
    return true;
}

/* The "list" format's system prompt: the one of the APIGen function-calling
 * data (as Ollama's SmolLM2 template gives it), which SmolLM2-135M-Instruct
 * follows far better than the tags' (docs/RESULTS.md 7.5); the tools a JSON
 * list between <tools> tags. */
static char *tools_block_list(json_t *tools, const size_t *keep, size_t n_keep)
{
    static const char head[] =
        "You are an expert in composing functions. You are given a question and a set of "
        "possible functions.\nBased on the question, you will need to make one or more "
        "function/tool calls to achieve the purpose.\nIf none of the functions can be used, "
        "point it out and refuse to answer.\nIf the given question lacks the parameters "
        "required by the function, also point it out.\nYou have access to the following "
        "tools:\n<tools>";
    static const char tail[] =
        "</tools>\nThe output MUST strictly adhere to the following format, and NO other text "
        "MUST be included.\nThe example format is as follows. Please make sure the parameter "
        "type is correct. If no function call is needed, please make the tool calls an empty "
        "list '[]'.\n" ST_TOOL_CALL_TAG "[\n{\"name\": \"func_name1\", \"arguments\": "
        "{\"argument1\": \"value1\", \"argument2\": \"value2\"}},\n(more tool calls as "
        "required)\n]</tool_call>";
    json_t *shown = json_array();
    for (size_t k = 0; shown && k < n_keep; k++)
        json_array_append(shown, json_array_get(tools, keep[k]));
    char *list = shown ? json_dumps(shown, JSON_COMPACT) : NULL;
    json_decref(shown);
    char *out = list ? malloc(sizeof head + strlen(list) + sizeof tail) : NULL;
    if (out)
        sprintf(out, "%s%s%s", head, list, tail);
    free(list);
    return out;
}

/* The tools as the model reads them in its system turn: one JSON object a
 * line between <tools> tags, and how to call one. */
static char *tools_block(json_t *tools, const size_t *keep, size_t n_keep, int format)
{
    if (format == ST_TOOL_FORMAT_LIST)
        return tools_block_list(tools, keep, n_keep);
    static const char head[] =
        "# Tools\n\nYou may call one or more of the functions below to answer the user. "
        "Their signatures, one JSON object a line:\n<tools>\n";
    static const char tail[] =
        "</tools>\n\nTo call a function, answer with a JSON object of its name and its "
        "arguments between tags, one call each:\n" ST_TOOL_CALL_TAG "\n"
        "{\"name\": <function name>, \"arguments\": <the arguments, a JSON object>}\n"
        "</tool_call>";
    size_t cap = sizeof head + sizeof tail, len = sizeof head - 1;
    char **lines = calloc(n_keep ? n_keep : 1, sizeof *lines);
    bool ok = lines != NULL;
    for (size_t k = 0; ok && k < n_keep; k++) {
        ok = (lines[k] = json_dumps(json_array_get(tools, keep[k]), JSON_COMPACT)) != NULL;
        cap += ok ? strlen(lines[k]) + 1 : 0;
    }
    char *out = ok ? malloc(cap) : NULL;
    if (out) {
        memcpy(out, head, len + 1);
        for (size_t k = 0; k < n_keep; k++)
            len += (size_t)sprintf(out + len, "%s\n", lines[k]);
        memcpy(out + len, tail, sizeof tail);
    }
    for (size_t k = 0; lines && k < n_keep; k++)
        free(lines[k]);
    free(lines);
    return out;
}

/* The schema a forced call is generated under: {"name": one of the
 * allowed names, "arguments": that function's parameters}. */
static char *forced_schema(json_t *tools, const size_t *keep, size_t n_keep, const char *only)
{
    json_t *alts = json_array();
    for (size_t k = 0; alts && k < n_keep; k++) {
        json_t *fn = json_object_get(json_array_get(tools, keep[k]), "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (only && strcmp(name, only) != 0)
            continue;
        json_t *params = json_object_get(fn, "parameters");
        /* No parameters: no arguments, {} (an empty `properties` alone
         * would let the constraint write any members). */
        json_t *args = params ? json_incref(params)
                              : json_pack("{s:s, s:{}, s:b}", "type", "object", "properties",
                                          "additionalProperties", 0);
        json_array_append_new(alts, json_pack("{s:s, s:{s:{s:s}, s:o}, s:[s, s]}", "type",
                                              "object", "properties", "name", "const", name,
                                              "arguments", args, "required", "name",
                                              "arguments"));
    }
    json_t *schema = json_array_size(alts) == 1 ? json_incref(json_array_get(alts, 0))
                                                : json_pack("{s:O}", "anyOf", alts);
    json_decref(alts);
    char *s = schema ? json_dumps(schema, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(schema);
    return s;
}

bool st_tools_render(const st_gen_request *r, const size_t *keep, size_t n_keep, char **block,
                     char **schema)
{
    *schema = NULL;
    if (!(*block = tools_block(r->tools, keep, n_keep, r->tool_format)))
        return false;
    if (r->tool_mode != ST_TOOLS_OFF &&
        !(*schema = forced_schema(r->tools, keep, n_keep, r->tool_forced))) {
        free(*block);
        *block = NULL;
        return false;
    }
    return true;
}

const char *st_tools_description(const st_gen_request *r, size_t i)
{
    json_t *fn = json_object_get(json_array_get(r->tools, i), "function");
    const char *d = json_string_value(json_object_get(fn, "description"));
    return d ? d : "";
}

bool st_tools_parse(void *json_root, st_gen_request *r, char *msg, size_t size,
                    const char **param)
{
    json_t *root = json_root;
    json_t *tools = json_object_get(root, "tools"), *par = json_object_get(root,
                                                                          "parallel_tool_calls");
    json_t *top = json_object_get(root, "tool_top_k");
    r->tool_parallel = true;
    r->tool_top_k = -1;
    if (par && !json_is_null(par)) {
        if (!json_is_boolean(par))
            return refuse(msg, size, param, "parallel_tool_calls", "'parallel_tool_calls': "
                          "expected a boolean");
        r->tool_parallel = json_is_true(par);
    }
    if (top && !json_is_null(top)) {
        if (!json_is_integer(top) || json_integer_value(top) < 0 ||
            json_integer_value(top) > ST_SERVE_MAX_TOOLS)
            return refuse(msg, size, param, "tool_top_k", "'tool_top_k': expected an integer "
                          "from 0 (every tool) to %d", ST_SERVE_MAX_TOOLS);
        r->tool_top_k = json_integer_value(top);
    }
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools) || json_array_size(tools) == 0 ||
            json_array_size(tools) > ST_SERVE_MAX_TOOLS)
            return refuse(msg, size, param, "tools", "'tools': expected an array of 1 to %d "
                          "functions", ST_SERVE_MAX_TOOLS);
        if (!(r->tool_names = calloc(json_array_size(tools), sizeof *r->tool_names)))
            return refuse(msg, size, param, NULL, "out of memory");
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t) {
            if (!read_tool(t, i, r, msg, size, param))
                return false;
        }
        r->tools = json_incref(tools);
    }
    if (!read_choice(root, r, &r->tool_forced, msg, size, param))
        return false;
    if (r->tool_mode == ST_TOOLS_FORCED && r->constraint)
        return refuse(msg, size, param, "tool_choice", "a forced tool call is generated as its "
                      "tool's JSON: give 'tool_choice' \"required\" or a function, or '%s', "
                      "not both", r->constraint_field);
    return true;
}

/* -- the answer side -- */

/* Where `needle` first starts in text[from, len), or len. */
static size_t find_text(const char *text, size_t len, size_t from, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = from; i + n <= len; i++)
        if (memcmp(text + i, needle, n) == 0)
            return i;
    return len;
}

size_t st_tools_find(const char *text, size_t len, const char *tag)
{
    return find_text(text, len, 0, tag);
}

size_t st_tools_call_start(const char *text, size_t len)
{
    return find_text(text, len, 0, ST_TOOL_CALL_TAG);
}

size_t st_tools_text_safe(const char *text, size_t len)
{
    const size_t n = strlen(ST_TOOL_CALL_TAG);
    size_t at = st_tools_call_start(text, len);
    if (at < len)
        return at;
    for (size_t k = n - 1; k > 0; k--)
        if (len >= k && memcmp(text + len - k, ST_TOOL_CALL_TAG, k) == 0)
            return len - k;
    return len;
}

size_t st_tools_index(const st_gen_request *r, const char *name)
{
    for (size_t k = 0; k < r->n_tools; k++)
        if (strcmp(r->tool_names[k], name) == 0)
            return k;
    return SIZE_MAX;
}

/* Past the JSON value at s[i] (valid JSON, checked by the caller): a
 * string, an object or array (brackets counted outside strings), or a
 * scalar. */
static size_t skip_value(const char *s, size_t n, size_t i)
{
    int depth = 0;
    bool in_string = false;
    for (; i < n; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"' && (in_string = false, depth == 0))
                return i + 1;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0)
                return depth < 0 ? i : i + 1;
        } else if (depth == 0 && (c == ',' || st_tools_is_blank(c))) {
            return i;
        }
    }
    return n;
}

/* Where the value of the object's member `key` is in the object's text
 * s[0..n) (valid JSON), as it was written: the model's own digits, not
 * jansson's (which writes 9.99 back as 9.9900000000000002). */
static bool member_text(const char *s, size_t n, const char *key, size_t *at, size_t *len)
{
    size_t i = 0, klen = strlen(key);
    while (i < n && s[i] != '{')
        i++;
    for (i++; i < n;) {
        while (i < n && (st_tools_is_blank(s[i]) || s[i] == ','))
            i++;
        if (i >= n || s[i] != '"')
            return false;
        size_t k0 = i + 1, k1 = skip_value(s, n, i) - 1;
        i = k1 + 1;
        while (i < n && (st_tools_is_blank(s[i]) || s[i] == ':'))
            i++;
        size_t end = skip_value(s, n, i);
        if (k1 - k0 == klen && memcmp(s + k0, key, klen) == 0) {
            *at = i;
            *len = end - i;
            return true;
        }
        i = end;
    }
    return false;
}

/* One call's JSON (n bytes at s) as an OpenAI tool call, or NULL. */
static json_t *read_call(const st_gen_request *r, const char *s, size_t n, const char *id_base,
                         size_t k)
{
    /* Integers past 64 bits are numbers too (the text is what is kept). */
    json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, NULL);
    const char *name = json_string_value(json_object_get(v, "name"));
    json_t *args = json_object_get(v, "arguments");
    /* Some models write the arguments as a JSON text, as the API does. */
    json_t *parsed = json_is_string(args) ? json_loads(json_string_value(args),
                                                       JSON_DECODE_INT_AS_REAL, NULL)
                                          : NULL;
    size_t at = 0, len = 0;
    json_t *call = NULL;
    if (name && st_tools_index(r, name) != SIZE_MAX && (!args || json_is_object(args) ||
                                         json_is_object(parsed))) {
        char *text = !args                   ? strdup("{}")
                     : parsed                ? strdup(json_string_value(args))
                     : member_text(s, n, "arguments", &at, &len) ? strndup(s + at, len)
                                                                  : NULL;
        char id[96];
        snprintf(id, sizeof id, "call_%s_%zu", id_base, k);
        if (text)
            call = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", id, "type", "function",
                             "function", "name", name, "arguments", text);
        free(text);
    }
    json_decref(parsed);
    json_decref(v);
    return call;
}

/* The "list" format's calls from text[i, len) (past the opening tag, or
 * a forced answer's start): an optional '[', objects between commas, an
 * optional ']' and closing tag, or an empty list with both brackets.
 * False when it is anything else. */
static bool list_calls(const st_gen_request *r, const char *text, size_t len, size_t i,
                       const char *id_base, json_t *calls)
{
    while (i < len && st_tools_is_blank(text[i]))
        i++;
    bool opened = i < len && text[i] == '[', closed = false;
    if (opened)
        i++;
    for (;;) {
        while (i < len && st_tools_is_blank(text[i]))
            i++;
        if (i >= len || text[i] != '{')
            break;
        json_error_t err;
        json_t *one = json_loadb(text + i, len - i, JSON_DISABLE_EOF_CHECK, &err);
        json_decref(one);
        json_t *call = one ? read_call(r, text + i, (size_t)err.position, id_base,
                                       json_array_size(calls))
                           : NULL;
        if (!call)
            return false;
        json_array_append_new(calls, call);
        i += (size_t)err.position;
        while (i < len && st_tools_is_blank(text[i]))
            i++;
        if (i >= len || text[i] != ',')
            break;
        i++;
    }
    static const char close[] = "]</tool_call>";
    /* The answer is len bytes, not a C string: compare within them. */
    if (i < len && text[i] == ']') {
        closed = true;
        i += len - i >= sizeof close - 1 && memcmp(text + i, close, sizeof close - 1) == 0
                 ? sizeof close - 1
                 : 1;
    }
    while (i < len && st_tools_is_blank(text[i]))
        i++;
    /* An empty list ("[]") is whole too: the caller tells it by its calls. */
    return i == len && (json_array_size(calls) > 0 || (opened && closed));
}

void *st_tools_answer_calls(const st_gen_request *r, const char *text, size_t len,
                            const char *id_base, size_t *content_len)
{
    static const char open[] = ST_TOOL_CALL_TAG, close[] = "</tool_call>";
    *content_len = len;
    if (r->tool_mode == ST_TOOLS_OFF || !text)
        return NULL;
    json_t *calls = json_array();
    if (!calls)
        return NULL;
    /* A forced answer is the call's JSON (its opening tag was the prompt's). */
    size_t at = r->tool_mode == ST_TOOLS_FORCED ? 0 : st_tools_call_start(text, len);
    size_t i = at;
    bool forced = r->tool_mode == ST_TOOLS_FORCED, ok = at < len;
    if (ok && r->tool_format == ST_TOOL_FORMAT_LIST) {
        ok = list_calls(r, text, len, forced ? 0 : at + sizeof open - 1, id_base, calls);
        i = len;
    }
    while (ok && i < len) {
        if (!forced) {
            if (len - i < sizeof open - 1 || memcmp(text + i, open, sizeof open - 1) != 0) {
                ok = false;
                break;
            }
            i += sizeof open - 1;
        }
        /* The call runs to its closing tag, or to the end of the answer. */
        size_t end = find_text(text, len, i, close);
        json_t *call = read_call(r, text + i, end - i, id_base, json_array_size(calls));
        if (!call) {
            ok = false;
            break;
        }
        json_array_append_new(calls, call);
        /* parallel_tool_calls false: the first call is the answer's. */
        if (!r->tool_parallel)
            break;
        i = end < len ? end + sizeof close - 1 : len;
        while (i < len && st_tools_is_blank(text[i]))
            i++;
        forced = false; /* the calls after a forced one open with their tags */
    }
    while (ok && !r->tool_parallel && json_array_size(calls) > 1)
        json_array_remove(calls, json_array_size(calls) - 1);
    bool none = ok && json_array_size(calls) == 0;
    if (!ok || none) {
        json_decref(calls);
        calls = NULL;
    }
    /* A forced answer is a call: its empty list is not well-formed. */
    if (!ok || (none && r->tool_mode == ST_TOOLS_FORCED))
        return NULL;
    while (at > 0 && st_tools_is_blank(text[at - 1]))
        at--;
    *content_len = at;
    return calls;
}
