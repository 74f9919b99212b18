/*
 * tools/stretch/serve/openai_request.c - an OpenAI completion request body
 * read with jansson and checked field by field. Fields we do not know are
 * ignored, as OpenAI does; a known field of the wrong type or range is a
 * 400 that names it. jansson refuses invalid UTF-8 and "\u0000" in
 * strings, so every string here is valid UTF-8 C text. The embeddings
 * request is read the same way, at the end.
 */
#include "openai_request.h"
#include "tool_calls.h"
#include "../json_error_place.h"

#include <stretch/stretch.h>

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The many refusals below call it by its short name. */
#define fail st_req_refuse

bool st_req_refuse(char *msg, size_t size, const char **param, const char *name,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, size, fmt, ap);
    va_end(ap);
    *param = name;
    return false;
}

static const char *type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* A present, non-null field. */
static json_t *field(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return v && !json_is_null(v) ? v : NULL;
}

/* Message content: a string, or OpenAI's array of {"type":"text","text":...}
 * parts, joined. */
static char *content_text(json_t *v, size_t i, char *msg, size_t size, const char **param)
{
    if (json_is_string(v)) {
        char *text = strdup(json_string_value(v));
        if (!text)
            fail(msg, size, param, NULL, "out of memory");
        return text;
    }
    if (!json_is_array(v)) {
        fail(msg, size, param, "messages", "messages[%zu].content: expected a string or an "
             "array of text parts, found %s", i, v ? type_of(v) : "nothing");
        return NULL;
    }
    size_t total = 0, k;
    json_t *part;
    json_array_foreach(v, k, part) {
        json_t *text = json_object_get(part, "text");
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!json_is_object(part) || !type || strcmp(type, "text") != 0 ||
            !json_is_string(text)) {
            fail(msg, size, param, "messages", "messages[%zu].content[%zu]: expected "
                 "{\"type\": \"text\", \"text\": \"...\"} (only text is supported)", i, k);
            return NULL;
        }
        total += json_string_length(text);
    }
    char *out = malloc(total + 1), *w = out;
    if (!out) {
        fail(msg, size, param, NULL, "out of memory");
        return NULL;
    }
    json_array_foreach(v, k, part) {
        json_t *text = json_object_get(part, "text");
        memcpy(w, json_string_value(text), json_string_length(text));
        w += json_string_length(text);
    }
    *w = '\0';
    return out;
}

static bool parse_messages(json_t *root, st_gen_request *r, char *msg, size_t size,
                           const char **param)
{
    json_t *ms = json_object_get(root, "messages");
    if (!ms)
        return fail(msg, size, param, "messages", "'messages' is required");
    if (!json_is_array(ms))
        return fail(msg, size, param, "messages", "'messages': expected an array, found %s",
                    type_of(ms));
    if (json_array_size(ms) == 0)
        return fail(msg, size, param, "messages", "'messages' is empty: give at least one");
    r->messages = calloc(json_array_size(ms), sizeof *r->messages);
    if (!r->messages)
        return fail(msg, size, param, NULL, "out of memory");
    size_t i, out = 0;
    json_t *m;
    json_array_foreach(ms, i, m) {
        if (!json_is_object(m))
            return fail(msg, size, param, "messages", "messages[%zu]: expected an object, "
                        "found %s", i, type_of(m));
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role)
            return fail(msg, size, param, "messages", "messages[%zu].role: expected a string",
                        i);
        /* OpenAI's newer name for the system turn. */
        if (strcmp(role, "developer") == 0)
            role = "system";
        bool tool = strcmp(role, "tool") == 0;
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && !tool)
            return fail(msg, size, param, "messages", "messages[%zu].role: expected system, "
                        "developer, user, assistant or tool, found '%s'", i, role);
        /* An assistant turn that only calls tools has no content. */
        json_t *c = json_object_get(m, "content");
        bool calls_only = !strcmp(role, "assistant") && (!c || json_is_null(c)) &&
                          field(m, "tool_calls");
        char *content = calls_only ? strdup("") : content_text(c, i, msg, size, param);
        if (!content)
            return calls_only ? fail(msg, size, param, NULL, "out of memory") : false;
        /* Calls and results are text in the turns (tool_calls.c), in
         * both formats: the model, which says which, is not known yet. */
        char *list_content = NULL;
        if (!tool && field(m, "tool_calls") &&
            !(list_content = st_tools_message_text(m, role, content, i, ST_TOOL_FORMAT_LIST,
                                                   msg, size, param))) {
            free(content);
            return false;
        }
        if (tool || field(m, "tool_calls")) {
            char *text = st_tools_message_text(m, role, content, i, ST_TOOL_FORMAT_TAGS, msg,
                                               size, param);
            free(content);
            if (!(content = text)) {
                free(list_content);
                return false;
            }
        }
        /* Results of one round of calls share a user turn. */
        st_req_message *prev = out ? &r->messages[out - 1] : NULL;
        if (tool && prev && prev->tool_result) {
            size_t a = strlen(prev->content), b = strlen(content);
            char *joined = realloc(prev->content, a + b + 2);
            if (joined) {
                joined[a] = '\n';
                memcpy(joined + a + 1, content, b + 1);
                prev->content = joined;
            }
            free(content);
            if (!joined)
                return fail(msg, size, param, NULL, "out of memory");
            continue;
        }
        r->messages[out].content = content;
        r->messages[out].list_content = list_content;
        r->messages[out].role = strdup(tool ? "user" : role);
        r->messages[out].tool_result = tool;
        r->n_messages = ++out;
        if (!r->messages[out - 1].role)
            return fail(msg, size, param, NULL, "out of memory");
    }
    return true;
}

/* A token-id prompt: a non-empty list of integers (the vocabulary is
 * checked against the model later, when the job meets its engine). `name`
 * is how a refusal calls the list. */
static bool parse_prompt_ids(json_t *p, const char *name, st_req_prompt *out, char *msg,
                             size_t size, const char **param)
{
    size_t n = json_array_size(p);
    if (n == 0)
        return fail(msg, size, param, "prompt", "%s is an empty list of token ids", name);
    if (!(out->ids = malloc(n * sizeof *out->ids)))
        return fail(msg, size, param, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(p, i);
        if (json_is_integer(v) && (json_integer_value(v) < 0 ||
                                   json_integer_value(v) > INT32_MAX))
            return fail(msg, size, param, "prompt", "%s[%zu] is %lld: a token id is an "
                        "integer from 0", name, i, (long long)json_integer_value(v));
        if (!json_is_integer(v))
            return fail(msg, size, param, "prompt", "%s[%zu]: expected a token id (an "
                        "integer from 0), found %s", name, i, type_of(v));
        out->ids[i] = (int32_t)json_integer_value(v);
    }
    out->n_ids = n;
    return true;
}

/* One prompt: a text or a list of token ids. */
static bool parse_one_prompt(json_t *p, const char *name, st_req_prompt *out, char *msg,
                             size_t size, const char **param)
{
    if (json_is_array(p))
        return parse_prompt_ids(p, name, out, msg, size, param);
    if (!json_is_string(p))
        return fail(msg, size, param, "prompt", "%s: expected a string or a list of token "
                    "ids, found %s", name, type_of(p));
    if (json_string_length(p) == 0)
        return fail(msg, size, param, "prompt", "%s is empty", name);
    if (!(out->text = strdup(json_string_value(p))))
        return fail(msg, size, param, NULL, "out of memory");
    return true;
}

/* `prompt`: a string, a list of token ids, or a list of several of
 * either (each answered by its own choices). */
static bool parse_prompt(json_t *root, st_gen_request *r, char *msg, size_t size,
                         const char **param)
{
    json_t *p = json_object_get(root, "prompt");
    if (!p)
        return fail(msg, size, param, "prompt", "'prompt' is required");
    bool many = json_is_array(p) && json_array_size(p) > 0 &&
                !json_is_integer(json_array_get(p, 0));
    size_t n = many ? json_array_size(p) : 1;
    if (n > ST_SERVE_MAX_CHOICES)
        return fail(msg, size, param, "prompt", "'prompt': at most %d prompts a request, "
                    "found %zu", ST_SERVE_MAX_CHOICES, n);
    if (!(r->prompts = calloc(n, sizeof *r->prompts)))
        return fail(msg, size, param, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char name[32];
        if (many)
            snprintf(name, sizeof name, "prompt[%zu]", i);
        else
            snprintf(name, sizeof name, "prompt");
        r->n_prompts = i + 1; /* what is freed on a refusal */
        if (!parse_one_prompt(many ? json_array_get(p, i) : p, name, &r->prompts[i], msg, size,
                              param))
            return false;
    }
    return true;
}

static bool parse_number(json_t *root, const char *name, double lo, double hi, bool *has,
                         double *out, char *msg, size_t size, const char **param)
{
    json_t *v = field(root, name);
    if (!v)
        return true;
    if (!json_is_number(v))
        return fail(msg, size, param, name, "'%s': expected a number, found %s", name,
                    type_of(v));
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return fail(msg, size, param, name, "'%s' is %g: expected %g to %g", name, x, lo, hi);
    *has = true;
    *out = x;
    return true;
}

/* The sampling fields (st_sampling_name_at, the library's table):
 * OpenAI's, and the top_k, min_p and repetition penalty that vLLM and
 * llama-server take (two names for the last). Each sets its sampler's
 * parameter when the manifest's chain has that sampler; the plugin's
 * schema checks the value again. */
static bool parse_sampling(json_t *root, st_gen_request *r, char *msg, size_t size,
                           const char **param)
{
    const st_sampling_name *f;
    for (size_t i = 0; (f = st_sampling_name_at(i)) != NULL; i++) {
        bool has = false;
        double x = 0.0;
        if (!parse_number(root, f->field, f->lo, f->hi, &has, &x, msg, size, param))
            return false;
        if (!has)
            continue;
        if (f->integer && !json_is_integer(field(root, f->field)))
            return fail(msg, size, param, f->field, "'%s': expected an integer, found %g",
                        f->field, x);
        for (size_t k = 0; k < r->n_sampling; k++)
            if (!strcmp(r->sampling[k].param, f->param) &&
                !strcmp(r->sampling[k].plugin, f->plugin))
                return fail(msg, size, param, f->field, "give '%s' or '%s', not both",
                            r->sampling[k].field, f->field);
        if (r->n_sampling == ST_SERVE_MAX_SAMPLING)
            return fail(msg, size, param, f->field, "too many sampling fields");
        r->sampling[r->n_sampling++] =
            (st_req_sampling){f->field, f->plugin, f->param, x < 0.0 && f->integer ? 0.0 : x};
    }
    return true;
}

/* logit_bias: an object of token id (a decimal string) -> -100 .. 100. */
static bool parse_logit_bias(json_t *root, st_gen_request *r, char *msg, size_t size,
                             const char **param)
{
    json_t *lb = field(root, "logit_bias");
    if (!lb)
        return true;
    if (!json_is_object(lb))
        return fail(msg, size, param, "logit_bias", "'logit_bias': expected an object of "
                    "token id -> bias, found %s", type_of(lb));
    size_t n = json_object_size(lb);
    if (n > ST_SERVE_MAX_LOGIT_BIAS)
        return fail(msg, size, param, "logit_bias", "'logit_bias': at most %d tokens, found "
                    "%zu", ST_SERVE_MAX_LOGIT_BIAS, n);
    if (n && !(r->logit_bias = calloc(n, sizeof *r->logit_bias)))
        return fail(msg, size, param, NULL, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(lb, key, v) {
        char *end = NULL;
        long long id = strtoll(key, &end, 10);
        if (!*key || *end || key[0] == '-' || key[0] == '+' || key[0] == ' ' || id > INT32_MAX)
            return fail(msg, size, param, "logit_bias", "logit_bias: key '%.40s' is not a "
                        "token id (a decimal integer from 0)", key);
        if (!json_is_number(v) || !(json_number_value(v) >= -ST_LOGIT_BIAS_MAX &&
                                    json_number_value(v) <= ST_LOGIT_BIAS_MAX))
            return fail(msg, size, param, "logit_bias", "logit_bias[\"%s\"]: expected a "
                        "number from -100 to 100", key);
        r->logit_bias[r->n_logit_bias++] =
            (st_logit_bias){(int32_t)id, (float)json_number_value(v)};
    }
    return true;
}

static bool parse_stop(json_t *root, st_gen_request *r, char *msg, size_t size,
                       const char **param)
{
    json_t *v = field(root, "stop");
    if (!v)
        return true;
    json_t *one[1] = {v};
    json_t **items = one;
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > ST_SERVE_MAX_STOPS)
            return fail(msg, size, param, "stop", "'stop': at most %d sequences, found %zu",
                        ST_SERVE_MAX_STOPS, n);
        items = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = items ? items[i] : json_array_get(v, i);
        if (!json_is_string(s))
            return fail(msg, size, param, "stop", "'stop': expected a string or a list of "
                        "strings, found %s", type_of(s));
        if (json_string_length(s) == 0)
            continue;
        if (!(r->stops[r->n_stops] = strdup(json_string_value(s))))
            return fail(msg, size, param, NULL, "out of memory");
        r->n_stops++;
    }
    return true;
}

/* How many alternatives a top_logprobs (chat) or logprobs (completions)
 * value asks for. */
static bool count_field(json_t *v, const char *name, uint32_t *out, char *msg, size_t size,
                        const char **param)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > ST_TOP_LOGPROBS_MAX)
        return fail(msg, size, param, name, "'%s': expected an integer from 0 to %d", name,
                    ST_TOP_LOGPROBS_MAX);
    *out = (uint32_t)json_integer_value(v);
    return true;
}

/* Chat: logprobs (a boolean) and top_logprobs; completions: logprobs (the
 * number of alternatives), and echo, which puts the prompt before the
 * answer (with logprobs, the prompt's own log-probabilities too). */
static bool parse_logprobs(json_t *root, bool chat, st_gen_request *r, char *msg, size_t size,
                           const char **param)
{
    json_t *lp = field(root, "logprobs"), *top = field(root, "top_logprobs");
    json_t *echo = field(root, "echo");
    if (echo && !json_is_boolean(echo))
        return fail(msg, size, param, "echo", "'echo': expected a boolean, found %s",
                    type_of(echo));
    /* Refused rather than ignored: a client asking for it would read the
     * answer as if it held the prompt. */
    if (echo && chat && json_is_true(echo))
        return fail(msg, size, param, "echo", "'echo' is a /v1/completions field: a chat "
                    "answer never repeats the messages");
    r->echo = echo && json_is_true(echo);
    if (!chat) {
        r->logprobs = lp != NULL;
        return !lp || count_field(lp, "logprobs", &r->top_logprobs, msg, size, param);
    }
    if (lp && !json_is_boolean(lp))
        return fail(msg, size, param, "logprobs", "'logprobs': expected a boolean, found %s",
                    type_of(lp));
    r->logprobs = lp && json_is_true(lp);
    if (!top)
        return true;
    if (!r->logprobs)
        return fail(msg, size, param, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    return count_field(top, "top_logprobs", &r->top_logprobs, msg, size, param);
}

static bool add_constraint_param(st_gen_request *r, const char *name, const char *value,
                                 char *msg, size_t size, const char **param)
{
    size_t k = r->n_constraint_params;
    if (k == ST_GEN_CONSTRAINT_PARAMS || !(r->constraint_values[k] = strdup(value)))
        return fail(msg, size, param, NULL, "out of memory");
    r->constraint_names[k] = name;
    r->n_constraint_params = k + 1;
    return true;
}

/* response_format (OpenAI's structured outputs) or grammar (llama-server's
 * GBNF): a constraint sampler for this request. The text handed on is
 * always inline, never a path: the plugins would read a file a parameter
 * names, and a request must not make the server read its files. */
static bool parse_constraint(json_t *root, st_gen_request *r, char *msg, size_t size,
                             const char **param)
{
    json_t *rf = field(root, "response_format"), *grammar = field(root, "grammar");
    const char *type = rf ? json_string_value(json_object_get(rf, "type")) : NULL;
    if (rf && (!json_is_object(rf) || !type))
        return fail(msg, size, param, "response_format", "'response_format': expected an "
                    "object with a \"type\": \"text\", \"json_object\" or \"json_schema\"");
    if (rf && strcmp(type, "text") && strcmp(type, "json_object") && strcmp(type, "json_schema"))
        return fail(msg, size, param, "response_format", "response_format.type is '%.40s': "
                    "expected \"text\", \"json_object\" or \"json_schema\"", type);
    bool structured = rf && strcmp(type, "text") != 0;
    if (structured && grammar)
        return fail(msg, size, param, "grammar", "give 'response_format' or 'grammar', not "
                    "both");
    if (grammar) {
        const char *g = json_string_value(grammar);
        if (!g || !strstr(g, "::="))
            return fail(msg, size, param, "grammar", "'grammar': expected GBNF rules as text "
                        "(root ::= ...)");
        r->constraint = "gbnf";
        r->constraint_field = "grammar";
        return add_constraint_param(r, "grammar", g, msg, size, param);
    }
    if (!structured)
        return true;
    r->constraint = "json-schema";
    r->constraint_field = "response_format";
    /* No whitespace between JSON tokens: the answer is the value alone,
     * and no token of the budget goes to padding; numbers capped as tool
     * calls' are (ST_SERVE_MAX_DIGITS). */
    if (!add_constraint_param(r, "whitespace", "compact", msg, size, param) ||
        !add_constraint_param(r, "max-digits", ST_SERVE_MAX_DIGITS, msg, size, param))
        return false;
    if (strcmp(type, "json_object") == 0)
        return add_constraint_param(r, "schema", "{\"type\": \"object\"}", msg, size, param);
    json_t *js = json_object_get(rf, "json_schema");
    json_t *schema = json_is_object(js) ? json_object_get(js, "schema") : NULL;
    if (!json_is_object(schema))
        return fail(msg, size, param, "response_format", "response_format.json_schema.schema: "
                    "expected the JSON Schema, an object");
    /* An object's text starts with '{': the plugin reads it as the schema. */
    char *text = json_dumps(schema, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!text)
        return fail(msg, size, param, NULL, "out of memory");
    bool ok = add_constraint_param(r, "schema", text, msg, size, param);
    free(text);
    return ok;
}

/* `model`: required, a string. */
static bool parse_model(json_t *root, char **out, char *msg, size_t size, const char **param)
{
    json_t *model = json_object_get(root, "model");
    if (!model)
        return fail(msg, size, param, "model", "'model' is required (GET /v1/models lists them)");
    if (!json_is_string(model))
        return fail(msg, size, param, "model", "'model': expected a string, found %s",
                    type_of(model));
    if (!(*out = strdup(json_string_value(model))))
        return fail(msg, size, param, NULL, "out of memory");
    return true;
}

static bool parse_fields(json_t *root, bool chat, st_gen_request *r, char *msg, size_t size,
                         const char **param)
{
    if (!parse_model(root, &r->model, msg, size, param))
        return false;
    if (chat ? !parse_messages(root, r, msg, size, param)
             : !parse_prompt(root, r, msg, size, param))
        return false;

    r->max_tokens = -1;
    const char *names[2] = {"max_completion_tokens", "max_tokens"};
    for (int k = 0; k < 2 && r->max_tokens < 0; k++) {
        json_t *v = field(root, names[k]);
        if (!v)
            continue;
        if (!json_is_integer(v))
            return fail(msg, size, param, names[k], "'%s': expected an integer, found %s",
                        names[k], type_of(v));
        /* 0 scores a prompt without continuing it: only with echo. */
        json_t *echo = chat ? NULL : field(root, "echo");
        long long min = echo && json_is_true(echo) ? 0 : 1;
        if (json_integer_value(v) < min)
            return fail(msg, size, param, names[k], "'%s' is %lld: expected at least %lld%s",
                        names[k], (long long)json_integer_value(v), min,
                        min ? " (0 only with \"echo\": true)" : "");
        r->max_tokens = json_integer_value(v);
    }
    if (!parse_sampling(root, r, msg, size, param) || !parse_logit_bias(root, r, msg, size, param))
        return false;
    json_t *seed = field(root, "seed");
    if (seed) {
        if (!json_is_integer(seed))
            return fail(msg, size, param, "seed", "'seed': expected an integer, found %s",
                        type_of(seed));
        r->has_seed = true;
        r->seed = (uint64_t)json_integer_value(seed);
    }
    json_t *n = field(root, "n");
    r->n = 1;
    size_t n_prompts = r->n_prompts ? r->n_prompts : 1;
    if (n && (!json_is_integer(n) || json_integer_value(n) < 1 ||
              json_integer_value(n) > ST_SERVE_MAX_CHOICES))
        return fail(msg, size, param, "n", "'n': expected an integer from 1 to %d",
                    ST_SERVE_MAX_CHOICES);
    if (n)
        r->n = (uint32_t)json_integer_value(n);
    if (r->n * n_prompts > ST_SERVE_MAX_CHOICES)
        return fail(msg, size, param, "n", "%zu prompts x n = %u is %zu answers: at most %d a "
                    "request", n_prompts, r->n, r->n * n_prompts, ST_SERVE_MAX_CHOICES);
    json_t *stream = field(root, "stream");
    if (stream) {
        if (!json_is_boolean(stream))
            return fail(msg, size, param, "stream", "'stream': expected a boolean, found %s",
                        type_of(stream));
        r->stream = json_is_true(stream);
    }
    json_t *so = field(root, "stream_options");
    if (so && json_is_true(json_object_get(so, "include_usage")))
        r->include_usage = true;
    /* stretch's own: a model whose manifest names a retriever index
     * augments the prompt unless the request turns that off. */
    /* llama-server's: false starts the request from an empty cache. */
    json_t *cache = field(root, "cache_prompt");
    if (cache && !json_is_boolean(cache))
        return fail(msg, size, param, "cache_prompt", "'cache_prompt': expected a boolean, "
                    "found %s", type_of(cache));
    r->fresh_cache = cache && json_is_false(cache);
    json_t *retrieval = field(root, "retrieval");
    if (retrieval) {
        if (!json_is_boolean(retrieval))
            return fail(msg, size, param, "retrieval", "'retrieval': expected a boolean, "
                        "found %s", type_of(retrieval));
        r->no_retrieval = json_is_false(retrieval);
    }
    return parse_stop(root, r, msg, size, param) && parse_constraint(root, r, msg, size, param) &&
           parse_logprobs(root, chat, r, msg, size, param) &&
           (!chat || st_tools_parse(root, r, msg, size, param));
}

bool st_gen_request_from_json(void *json_root, bool chat, st_gen_request *out, char *msg,
                              size_t msg_size, const char **param)
{
    json_t *root = json_root;
    memset(out, 0, sizeof *out);
    *param = NULL;
    bool ok;
    if (!json_is_object(root))
        ok = fail(msg, msg_size, param, NULL, "the request must be an object, found %s",
                  type_of(root));
    else
        ok = parse_fields(root, chat, out, msg, msg_size, param);
    if (!ok)
        st_gen_request_free(out);
    out->chat = chat;
    return ok;
}

/* The body as JSON, duplicate keys refused; NULL with msg set. */
static json_t *load_body(const char *body, size_t len, char *msg, size_t msg_size,
                         const char **param)
{
    *param = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    /* jansson names its own flag for \u0000; the client needs the reason:
     * the engine takes text as C strings, which a NUL would cut short. */
    if (!root && strstr(jerr.text, "JSON_ALLOW_NUL"))
        fail(msg, msg_size, param, NULL, "a string holds \\u0000 (line %d, column %d): text "
             "with a NUL character is not accepted", jerr.line, st_json_error_column(&jerr));
    else if (!root)
        fail(msg, msg_size, param, NULL, "the body is not valid JSON: %s (line %d, column %d)",
             jerr.text, jerr.line, st_json_error_column(&jerr));
    return root;
}

bool st_gen_request_parse(const char *body, size_t len, bool chat, st_gen_request *out,
                          char *msg, size_t msg_size, const char **param)
{
    memset(out, 0, sizeof *out);
    json_t *root = load_body(body, len, msg, msg_size, param);
    if (!root)
        return false;
    bool ok = st_gen_request_from_json(root, chat, out, msg, msg_size, param);
    json_decref(root);
    return ok;
}

void st_gen_request_free(st_gen_request *r)
{
    for (size_t i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
        free(r->messages[i].list_content);
    }
    free(r->messages);
    free(r->model);
    for (size_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    free(r->logit_bias);
    for (size_t i = 0; i < r->n_stops; i++)
        free(r->stops[i]);
    for (size_t i = 0; i < r->n_constraint_params; i++)
        free(r->constraint_values[i]);
    for (size_t i = 0; i < r->n_tools; i++)
        free(r->tool_names[i]);
    free(r->tool_names);
    json_decref(r->tools);
    memset(r, 0, sizeof *r);
}

/* -- /v1/embeddings -- */

/* The string t, `name`'s i-th text, appended to r (whose arrays have
 * room): an empty text is refused, having no embedding. */
static bool add_text(json_t *t, const char *name, size_t i, st_embed_request *r, char *msg,
                     size_t size, const char **param)
{
    if (json_string_length(t) == 0)
        return fail(msg, size, param, name, "%s[%zu] is empty: an empty text has no "
                    "embedding", name, i);
    if (!(r->texts[r->n] = strdup(json_string_value(t))))
        return fail(msg, size, param, NULL, "out of memory");
    r->lens[r->n++] = json_string_length(t);
    return true;
}

/* `name`'s texts (a string or a non-empty array of non-empty strings)
 * appended to r: /v1/embeddings' "input", /v1/score's "text_1" and
 * "text_2". ids_hint: a number or an array where a text should be is
 * answered as token ids, which the encoder does not take. */
static bool append_texts(json_t *root, const char *name, bool ids_hint, st_embed_request *r,
                         char *msg, size_t size, const char **param)
{
    json_t *v = field(root, name);
    if (!v)
        return fail(msg, size, param, name, "'%s' is required: a string or an array of "
                    "strings", name);
    bool one = json_is_string(v);
    if (!one && !json_is_array(v))
        return fail(msg, size, param, name, "'%s': expected a string or an array of strings, "
                    "found %s", name, type_of(v));
    size_t n = one ? 1 : json_array_size(v);
    if (n == 0)
        return fail(msg, size, param, name, "'%s' is an empty array: give at least one text",
                    name);
    if (r->n + n > ST_SERVE_MAX_EMBED_INPUTS)
        return fail(msg, size, param, name, "%zu texts with '%s': at most %d a request",
                    r->n + n, name, ST_SERVE_MAX_EMBED_INPUTS);
    char **texts = realloc(r->texts, (r->n + n) * sizeof *texts);
    if (texts)
        r->texts = texts;
    size_t *lens = texts ? realloc(r->lens, (r->n + n) * sizeof *lens) : NULL;
    if (lens)
        r->lens = lens;
    if (!texts || !lens)
        return fail(msg, size, param, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *t = one ? v : json_array_get(v, i);
        if (ids_hint && (json_is_integer(t) || json_is_array(t)))
            return fail(msg, size, param, name, "%s[%zu]: token ids are not accepted: send "
                        "the texts (the encoder has its own tokenizer)", name, i);
        if (!json_is_string(t))
            return fail(msg, size, param, name, "%s[%zu]: expected a string, found %s", name,
                        i, type_of(t));
        if (json_string_length(t) == 0 && one)
            return fail(msg, size, param, name, "'%s' is empty: an empty text has no "
                        "embedding", name);
        if (!add_text(t, name, i, r, msg, size, param))
            return false;
    }
    return true;
}

static bool parse_embed_fields(json_t *root, st_embed_request *r, char *msg, size_t size,
                               const char **param)
{
    if (!parse_model(root, &r->model, msg, size, param))
        return false;
    if (!append_texts(root, "input", true, r, msg, size, param))
        return false;
    json_t *format = field(root, "encoding_format");
    if (format) {
        const char *f = json_string_value(format);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64")))
            return fail(msg, size, param, "encoding_format", "'encoding_format': expected "
                        "\"float\" or \"base64\"");
        r->base64 = strcmp(f, "base64") == 0;
    }
    r->dimensions = -1;
    json_t *dims = field(root, "dimensions");
    if (dims) {
        if (!json_is_integer(dims) || json_integer_value(dims) < 1)
            return fail(msg, size, param, "dimensions", "'dimensions': expected a positive "
                        "integer");
        r->dimensions = json_integer_value(dims);
    }
    return true;
}

typedef bool (*encoder_fields_fn)(json_t *root, st_embed_request *r, char *msg, size_t size,
                                  const char **param);

/* An encoder request's body (embeddings or rerank): a JSON object whose
 * fields `read` takes; on a refusal nothing is left allocated in out. */
static bool parse_encoder_body(const char *body, size_t len, encoder_fields_fn read,
                               st_embed_request *out, char *msg, size_t msg_size,
                               const char **param)
{
    memset(out, 0, sizeof *out);
    json_t *root = load_body(body, len, msg, msg_size, param);
    if (!root)
        return false;
    bool ok = json_is_object(root)
                  ? read(root, out, msg, msg_size, param)
                  : fail(msg, msg_size, param, NULL, "the request must be an object, found %s",
                         type_of(root));
    json_decref(root);
    if (!ok)
        st_embed_request_free(out);
    return ok;
}

bool st_embed_request_parse(const char *body, size_t len, st_embed_request *out, char *msg,
                            size_t msg_size, const char **param)
{
    return parse_encoder_body(body, len, parse_embed_fields, out, msg, msg_size, param);
}

/* -- /v1/rerank -- */

/* The query into texts[0], then the documents: Jina's (and vLLM's) strings
 * or {"text": ...} objects under `list` ("documents" or TEI's "texts"). */
static bool parse_rerank_texts(json_t *root, const char *list, st_embed_request *r, char *msg,
                               size_t size, const char **param)
{
    json_t *query = json_object_get(root, "query");
    if (!query)
        return fail(msg, size, param, "query", "'query' is required: the text the documents "
                    "are ranked against");
    if (!json_is_string(query))
        return fail(msg, size, param, "query", "'query': expected a string, found %s",
                    type_of(query));
    if (json_string_length(query) == 0)
        return fail(msg, size, param, "query", "'query' is empty: an empty text has no "
                    "embedding to rank by");
    json_t *docs = json_object_get(root, list);
    if (!docs)
        return fail(msg, size, param, list, "'%s' is required: an array of the texts to rank",
                    list);
    if (!json_is_array(docs))
        return fail(msg, size, param, list, "'%s': expected an array of strings, found %s",
                    list, type_of(docs));
    size_t n = json_array_size(docs);
    if (n == 0)
        return fail(msg, size, param, list, "'%s' is an empty array: give at least one "
                    "document", list);
    if (n >= ST_SERVE_MAX_EMBED_INPUTS)
        return fail(msg, size, param, list, "'%s' has %zu documents: at most %d a request",
                    list, n, ST_SERVE_MAX_EMBED_INPUTS - 1);
    r->texts = calloc(n + 1, sizeof *r->texts);
    r->lens = calloc(n + 1, sizeof *r->lens);
    if (!r->texts || !r->lens)
        return fail(msg, size, param, NULL, "out of memory");
    /* The query is checked above; the documents are texts 1.. */
    if (!add_text(query, "query", 0, r, msg, size, param))
        return false;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(docs, i);
        if (json_is_object(v) && json_is_string(json_object_get(v, "text")))
            v = json_object_get(v, "text");
        else if (!json_is_string(v))
            return fail(msg, size, param, list, "%s[%zu]: expected a string or an object "
                        "with a string \"text\", found %s", list, i, type_of(v));
        if (!add_text(v, list, i, r, msg, size, param))
            return false;
    }
    return true;
}

static bool parse_flag(json_t *root, const char *name, bool *out, char *msg, size_t size,
                       const char **param)
{
    json_t *v = field(root, name);
    if (v && !json_is_boolean(v))
        return fail(msg, size, param, name, "'%s': expected true or false, found %s", name,
                    type_of(v));
    *out = v ? json_is_true(v) : false;
    return true;
}

static bool parse_rerank_fields(json_t *root, st_embed_request *r, char *msg, size_t size,
                                const char **param)
{
    r->task = ST_ENCODE_RERANK;
    r->dimensions = -1;
    if (field(root, "model") && !parse_model(root, &r->model, msg, size, param))
        return false;
    bool jina = json_object_get(root, "documents") != NULL;
    r->tei = !jina && json_object_get(root, "texts") != NULL;
    if (!parse_rerank_texts(root, r->tei ? "texts" : "documents", r, msg, size, param))
        return false;
    if (!parse_flag(root, r->tei ? "return_text" : "return_documents", &r->return_documents,
                    msg, size, param))
        return false;
    r->top_n = r->n - 1;
    json_t *top = field(root, "top_n");
    if (top) {
        if (!json_is_integer(top) || json_integer_value(top) < 1)
            return fail(msg, size, param, "top_n", "'top_n': expected a positive integer "
                        "(the results to return, best first)");
        if ((uint64_t)json_integer_value(top) < r->top_n)
            r->top_n = (size_t)json_integer_value(top);
    }
    return true;
}

bool st_rerank_request_parse(const char *body, size_t len, st_embed_request *out, char *msg,
                             size_t msg_size, const char **param)
{
    return parse_encoder_body(body, len, parse_rerank_fields, out, msg, msg_size, param);
}

/* -- /v1/score -- */

static bool parse_score_fields(json_t *root, st_embed_request *r, char *msg, size_t size,
                               const char **param)
{
    r->task = ST_ENCODE_SCORE;
    r->dimensions = -1;
    if (field(root, "model") && !parse_model(root, &r->model, msg, size, param))
        return false;
    if (!append_texts(root, "text_1", false, r, msg, size, param))
        return false;
    r->n_first = r->n;
    if (!append_texts(root, "text_2", false, r, msg, size, param))
        return false;
    size_t n_second = r->n - r->n_first;
    if (r->n_first > 1 && n_second > 1 && r->n_first != n_second)
        return fail(msg, size, param, "text_2", "'text_1' has %zu texts and 'text_2' %zu: "
                    "give one text against a list, or two lists of one length", r->n_first,
                    n_second);
    return true;
}

bool st_score_request_parse(const char *body, size_t len, st_embed_request *out, char *msg,
                            size_t msg_size, const char **param)
{
    return parse_encoder_body(body, len, parse_score_fields, out, msg, msg_size, param);
}

void st_embed_request_free(st_embed_request *r)
{
    for (size_t i = 0; r->texts && i < r->n; i++)
        free(r->texts[i]);
    free(r->texts);
    free(r->lens);
    free(r->model);
    memset(r, 0, sizeof *r);
}

/* -- /tokenize and /detokenize -- */

static bool parse_tokenize_fields(json_t *root, bool detokenize, st_gen_request *r,
                                  bool *add_special, char *msg, size_t size, const char **param)
{
    if (!parse_model(root, &r->model, msg, size, param))
        return false;
    if (detokenize) {
        json_t *t = json_object_get(root, "tokens");
        if (!json_is_array(t))
            return fail(msg, size, param, "tokens", "'tokens': expected a list of token ids, "
                        "found %s", t ? type_of(t) : "nothing");
        if (json_array_size(t) == 0)
            return fail(msg, size, param, "tokens", "'tokens' is empty");
        if (!(r->prompts = calloc(1, sizeof *r->prompts)))
            return fail(msg, size, param, NULL, "out of memory");
        r->n_prompts = 1;
        if (!parse_prompt_ids(t, "tokens", &r->prompts[0], msg, size, param)) {
            if (*param)
                *param = "tokens";
            return false;
        }
        return true;
    }
    /* vLLM's "prompt", or llama-server's "content". */
    json_t *p = json_object_get(root, "prompt");
    const char *name = "prompt";
    if (!p) {
        p = json_object_get(root, "content");
        name = "content";
    }
    if (!json_is_string(p))
        return fail(msg, size, param, name, "'%s': expected a string, found %s", name,
                    p ? type_of(p) : "nothing");
    if (!(r->prompts = calloc(1, sizeof *r->prompts)))
        return fail(msg, size, param, NULL, "out of memory");
    r->n_prompts = 1;
    if (!(r->prompts[0].text = strdup(json_string_value(p))))
        return fail(msg, size, param, NULL, "out of memory");
    json_t *add = field(root, "add_special_tokens");
    if (!add) {
        add = field(root, "add_special");
        name = "add_special";
    } else {
        name = "add_special_tokens";
    }
    if (add && !json_is_boolean(add))
        return fail(msg, size, param, name, "'%s': expected a boolean, found %s", name,
                    type_of(add));
    *add_special = !add || json_is_true(add);
    return true;
}

bool st_tokenize_request_parse(const char *body, size_t len, bool detokenize,
                               st_gen_request *out, bool *add_special, char *msg,
                               size_t msg_size, const char **param)
{
    memset(out, 0, sizeof *out);
    *add_special = true;
    json_t *root = load_body(body, len, msg, msg_size, param);
    if (!root)
        return false;
    bool ok = json_is_object(root)
                  ? parse_tokenize_fields(root, detokenize, out, add_special, msg, msg_size,
                                          param)
                  : fail(msg, msg_size, param, NULL, "the request must be an object, found %s",
                         type_of(root));
    json_decref(root);
    if (!ok)
        st_gen_request_free(out);
    return ok;
}

static bool parse_slot_fields(json_t *root, bool need_file, st_gen_request *r,
                              char **filename, char *msg, size_t size, const char **param)
{
    if (!parse_model(root, &r->model, msg, size, param))
        return false;
    json_t *f = json_object_get(root, "filename");
    if (!need_file)
        return true;
    if (!json_is_string(f))
        return fail(msg, size, param, "filename", "'filename': expected the slot file's name, "
                    "found %s", f ? type_of(f) : "nothing");
    const char *name = json_string_value(f);
    size_t n = strlen(name);
    /* A name in --slot-save-path, never a path that leaves it. */
    if (!n || n > 200 || name[0] == '.' || strchr(name, '/') || strchr(name, '\\'))
        return fail(msg, size, param, "filename", "'filename': expected a plain file name "
                    "(1 to 200 bytes, no '/' or '\\', not starting with '.'), found '%.200s'",
                    name);
    if (!(*filename = strdup(name)))
        return fail(msg, size, param, NULL, "out of memory");
    return true;
}

bool st_slot_request_parse(const char *body, size_t len, bool need_file, st_gen_request *out,
                           char **filename, char *msg, size_t msg_size, const char **param)
{
    memset(out, 0, sizeof *out);
    *filename = NULL;
    json_t *root = load_body(body, len, msg, msg_size, param);
    if (!root)
        return false;
    bool ok = json_is_object(root)
                  ? parse_slot_fields(root, need_file, out, filename, msg, msg_size, param)
                  : fail(msg, msg_size, param, NULL, "the request must be an object, found %s",
                         type_of(root));
    json_decref(root);
    if (!ok) {
        st_gen_request_free(out);
        free(*filename);
        *filename = NULL;
    }
    return ok;
}

const char *st_gen_request_last_user(const st_gen_request *req, size_t *at)
{
    for (size_t i = req->n_messages; i-- > 0;)
        if (!strcmp(req->messages[i].role, "user") && !req->messages[i].tool_result) {
            *at = i;
            return req->messages[i].content;
        }
    return NULL;
}
