/*
 * tests/fuzz/fuzz_serve_request.c - what `stretch serve` reads from a
 * client before any model runs: an OpenAI request body (JSON, over HTTP)
 * or a msgpack-RPC generate map (msgpack -> JSON -> the same checks). The
 * first byte picks the path and the endpoint; the rest is the body (for
 * msgpack, framed first as the RPC listener frames it).
 *
 * The same branch as the small bodies (embeddings, rerank, score, tokenize,
 * slot files) also reads the bytes as a model's answer for tool calls
 * (from_answer).
 *
 * Oracles: a refusal always leaves a message (NUL-terminated, not empty,
 * in a buffer poisoned before the call: a path that forgot to write one
 * would send the client uninitialised stack bytes), and an accepted
 * request holds what the runners rely on (a model, messages or a prompt,
 * every field in its documented range).
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "msgpack_frame.h"
#include "msgpack_json.h"
#include "openai_request.h"
#include "tool_calls.h"

#define MSG_SIZE 512
/* What the message buffer holds before a call: a byte no message starts
 * with. (Refusals name where a value is, so they may start with any
 * character of a request's key; keys are UTF-8, so never with 0xff.) */
#define POISON '\xff'
/* A request body limit for the framing scan (libFuzzer's inputs are
 * shorter by default, so every limit check is reached). */
#define FRAME_LIMIT 1024

static void check_refusal(const char *where, const char *msg)
{
    if (!memchr(msg, '\0', MSG_SIZE))
        st_fuzz_fail("%s: refused without writing a message", where);
    if (msg[0] == '\0' || msg[0] == POISON)
        st_fuzz_fail("%s: refused with an empty message", where);
}

static void check_request(const st_gen_request *r, bool chat)
{
    if (!r->model)
        st_fuzz_fail("accepted without a model");
    if (chat) {
        if (r->n_messages == 0 || !r->messages)
            st_fuzz_fail("chat accepted without messages");
        for (size_t i = 0; i < r->n_messages; i++)
            if (!r->messages[i].role || !r->messages[i].content)
                st_fuzz_fail("message %zu lacks a role or content", i);
    } else if (r->n_prompts == 0 || !r->prompts) {
        st_fuzz_fail("completion accepted without a prompt");
    }
    for (size_t k = 0; !chat && k < r->n_prompts; k++) {
        const st_req_prompt *p = &r->prompts[k];
        if (!p->text == !p->ids)
            st_fuzz_fail("prompt %zu accepted with %s", k, p->text ? "a text and token ids"
                                                                  : "neither");
        if (p->ids && p->n_ids == 0)
            st_fuzz_fail("prompt %zu: an empty token-id prompt accepted", k);
        for (size_t i = 0; p->ids && i < p->n_ids; i++)
            if (p->ids[i] < 0)
                st_fuzz_fail("prompt %zu: token id %d accepted", k, p->ids[i]);
    }
    if (r->n < 1 || (r->n_prompts ? r->n_prompts : 1) * r->n > ST_SERVE_MAX_CHOICES)
        st_fuzz_fail("%zu prompts x n = %u accepted", r->n_prompts, r->n);
    if (r->echo && chat)
        st_fuzz_fail("echo accepted on a chat");
    if (r->max_tokens != -1 && r->max_tokens < (r->echo ? 0 : 1))
        st_fuzz_fail("max_tokens %lld accepted", (long long)r->max_tokens);
    for (size_t i = 0; i < r->n_sampling; i++) {
        const st_req_sampling *f = &r->sampling[i];
        bool unit = !strcmp(f->field, "top_p") || !strcmp(f->field, "min_p");
        bool penalty = !strcmp(f->param, "presence") || !strcmp(f->param, "frequency");
        if (!(f->value == f->value) || (!strcmp(f->field, "temperature") &&
                                        !(f->value >= 0.0 && f->value <= 2.0)) ||
            (unit && !(f->value >= 0.0 && f->value <= 1.0)) ||
            (penalty && !(f->value >= -2.0 && f->value <= 2.0)) ||
            (!strcmp(f->param, "repeat") && !(f->value > 0.0 && f->value <= 100.0)) ||
            (!strcmp(f->field, "top_k") && (f->value < 0.0 || f->value != (double)(long)f->value)))
            st_fuzz_fail("%s %g accepted", f->field, f->value);
    }
    if (r->n_sampling > ST_SERVE_MAX_SAMPLING || r->n_logit_bias > ST_SERVE_MAX_LOGIT_BIAS)
        st_fuzz_fail("%zu sampling fields or %zu logit biases", r->n_sampling,
                     r->n_logit_bias);
    for (size_t i = 0; i < r->n_logit_bias; i++)
        if (r->logit_bias[i].token < 0 || !(r->logit_bias[i].bias >= -100.0f &&
                                            r->logit_bias[i].bias <= 100.0f))
            st_fuzz_fail("logit_bias %d: %g accepted", r->logit_bias[i].token,
                         (double)r->logit_bias[i].bias);
    if (r->n_stops > ST_SERVE_MAX_STOPS)
        st_fuzz_fail("%zu stop sequences accepted", r->n_stops);
    for (size_t i = 0; i < r->n_stops; i++)
        if (!r->stops[i] || !r->stops[i][0])
            st_fuzz_fail("stop sequence %zu is empty", i);
    /* A constraint's schema or grammar is inline text, never something the
     * plugin would read as a path. */
    if (r->constraint && (r->n_constraint_params == 0 ||
                          r->n_constraint_params > ST_GEN_CONSTRAINT_PARAMS))
        st_fuzz_fail("constraint '%s' with %zu parameters", r->constraint,
                     r->n_constraint_params);
    for (size_t i = 0; r->constraint && i < r->n_constraint_params; i++) {
        const char *name = r->constraint_names[i], *value = r->constraint_values[i];
        if (!name || !value)
            st_fuzz_fail("constraint parameter %zu unset", i);
        if (!strcmp(name, "schema") && value[0] != '{')
            st_fuzz_fail("a schema that does not start with '{': %.40s", value);
        if (!strcmp(name, "grammar") && !strstr(value, "::="))
            st_fuzz_fail("a grammar without rules: %.40s", value);
    }
    if (!r->constraint && r->n_constraint_params)
        st_fuzz_fail("constraint parameters without a constraint");
    /* Function calling. */
    if (r->tool_mode != ST_TOOLS_OFF && (!chat || r->n_tools == 0))
        st_fuzz_fail("tool mode %d with %zu tools", r->tool_mode, r->n_tools);
    /* A forced call's schema is made when the tools are shown: the
     * request has no other constraint. */
    if (r->tool_mode == ST_TOOLS_FORCED && (r->constraint || r->n_tools == 0))
        st_fuzz_fail("a forced tool call with '%s' and %zu tools",
                     r->constraint ? r->constraint : "no constraint", r->n_tools);
    bool named = !r->tool_forced;
    for (size_t i = 0; i < r->n_tools && !named; i++)
        named = r->tool_names[i] == r->tool_forced;
    if (!named || (r->tool_forced && r->tool_mode != ST_TOOLS_FORCED))
        st_fuzz_fail("tool_choice names '%s', which is not one of the tools",
                     r->tool_forced);
    for (size_t i = 0; i < r->n_tools; i++)
        if (!r->tool_names[i] || !r->tool_names[i][0])
            st_fuzz_fail("tool %zu has no name", i);
}

/* A copy of exactly len bytes of a request body (a read past it is
 * ASan's to see), and msg poisoned, as every parser below is called. */
static char *body_copy(const uint8_t *body, size_t len, char msg[MSG_SIZE])
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, body, len);
    memset(msg, POISON, MSG_SIZE);
    return copy;
}

static void from_http(const uint8_t *body, size_t len, bool chat)
{
    char msg[MSG_SIZE];
    char *copy = body_copy(body, len, msg);
    const char *param = NULL;
    st_gen_request r;
    if (st_gen_request_parse(copy, len, chat, &r, msg, sizeof msg, &param)) {
        check_request(&r, chat);
        st_gen_request_free(&r);
    } else {
        check_refusal("http body", msg);
    }
    free(copy);
}

/* /v1/embeddings: at most ST_SERVE_MAX_EMBED_INPUTS non-empty texts with
 * a model. /v1/rerank: a query and one document or more (texts[0] and
 * the rest), a top_n within them. /v1/score: text_1 and text_2, one text
 * against a list or two lists of one length. None empty; rerank and score
 * may leave the model to the server. */
static void from_encoder_body(const uint8_t *body, size_t len, int task)
{
    static const char *const what[] = {"embeddings", "rerank", "score"};
    char msg[MSG_SIZE];
    char *copy = body_copy(body, len, msg);
    const char *param = NULL;
    st_embed_request r;
    bool ok = task == ST_ENCODE_RERANK  ? st_rerank_request_parse(copy, len, &r, msg, sizeof msg,
                                                                  &param)
              : task == ST_ENCODE_SCORE ? st_score_request_parse(copy, len, &r, msg, sizeof msg,
                                                                 &param)
                                        : st_embed_request_parse(copy, len, &r, msg, sizeof msg,
                                                                 &param);
    if (ok) {
        if ((task == ST_ENCODE_VECTORS && !r.model) || (int)r.task != task ||
            r.n < (task == ST_ENCODE_VECTORS ? 1u : 2u) || r.n > ST_SERVE_MAX_EMBED_INPUTS ||
            !r.texts || !r.lens)
            st_fuzz_fail("%s accepted with %zu texts or no model", what[task], r.n);
        for (size_t i = 0; i < r.n; i++)
            if (!r.texts[i] || r.lens[i] == 0 || strlen(r.texts[i]) != r.lens[i])
                st_fuzz_fail("%s text %zu is empty or its length is wrong", what[task], i);
        if (r.dimensions != -1 && (task != ST_ENCODE_VECTORS || r.dimensions < 1))
            st_fuzz_fail("dimensions %lld accepted", (long long)r.dimensions);
        if (task == ST_ENCODE_RERANK && (r.top_n < 1 || r.top_n > r.n - 1 || r.base64))
            st_fuzz_fail("top_n %zu of %zu documents, or base64", r.top_n, r.n - 1);
        size_t second = r.n - r.n_first;
        if (task == ST_ENCODE_SCORE &&
            (r.n_first < 1 || second < 1 ||
             (r.n_first > 1 && second > 1 && r.n_first != second)))
            st_fuzz_fail("score accepted with %zu and %zu texts", r.n_first, second);
        st_embed_request_free(&r);
    } else {
        check_refusal(what[task], msg);
    }
    free(copy);
}

/* /tokenize and /detokenize: what is accepted is one text or a non-empty
 * list of non-negative ids, with a model. */
static void from_tokenize(const uint8_t *body, size_t len, bool detokenize)
{
    char msg[MSG_SIZE];
    char *copy = body_copy(body, len, msg);
    const char *param = NULL;
    st_gen_request r;
    bool add_special = false;
    if (st_tokenize_request_parse(copy, len, detokenize, &r, &add_special, msg, sizeof msg,
                                  &param)) {
        if (!r.model)
            st_fuzz_fail("tokenize accepted without a model");
        const st_req_prompt *p = r.n_prompts == 1 ? r.prompts : NULL;
        if (!p || (detokenize ? (!p->ids || p->n_ids == 0 || p->text) : !p->text))
            st_fuzz_fail("%s accepted without its input", detokenize ? "detokenize"
                                                                     : "tokenize");
        for (size_t i = 0; p->ids && i < p->n_ids; i++)
            if (p->ids[i] < 0)
                st_fuzz_fail("token id %d accepted", p->ids[i]);
        st_gen_request_free(&r);
    } else {
        check_refusal(detokenize ? "detokenize body" : "tokenize body", msg);
    }
    free(copy);
}

/* POST /slots/ID: what is accepted names a model and, for save and
 * restore, a file name that stays in --slot-save-path. */
static void from_slot(const uint8_t *body, size_t len, bool need_file)
{
    char msg[MSG_SIZE];
    char *copy = body_copy(body, len, msg);
    const char *param = NULL;
    st_gen_request r;
    char *name = NULL;
    if (st_slot_request_parse(copy, len, need_file, &r, &name, msg, sizeof msg, &param)) {
        if (!r.model)
            st_fuzz_fail("a slot request accepted without a model");
        if (need_file && (!name || !name[0] || name[0] == '.' || strchr(name, '/') ||
                          strlen(name) > 200))
            st_fuzz_fail("slot file name '%s' accepted", name ? name : "(none)");
        if (!need_file && name)
            st_fuzz_fail("erase kept a file name");
        st_gen_request_free(&r);
        free(name);
    } else {
        if (name)
            st_fuzz_fail("a refused slot request kept its file name");
        check_refusal("slot body", msg);
    }
    free(copy);
}

/* Whether text[at, len) is the list format's "no call needed": white
 * space, the opening tag, "[", "]" (white space around them) and an
 * optional closing tag; an "auto" list answer's content ends there. */
static bool blank(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool empty_list_at(const char *text, size_t len, size_t at)
{
    static const char open[] = "<tool_call>", close[] = "</tool_call>";
    size_t i = at;
    while (i < len && blank(text[i]))
        i++;
    if (len - i < sizeof open - 1 || memcmp(text + i, open, sizeof open - 1) != 0)
        return false;
    i += sizeof open - 1;
    for (const char *want = "[]"; *want; want++) {
        while (i < len && blank(text[i]))
            i++;
        if (i >= len || text[i++] != *want)
            return false;
    }
    if (len - i >= sizeof close - 1 && memcmp(text + i, close, sizeof close - 1) == 0)
        i += sizeof close - 1;
    while (i < len && blank(text[i]))
        i++;
    return i == len;
}

/* A model's answer read for tool calls (tool_calls.h): the bytes as the
 * answer to a request with two tools, free ("auto"), forced, and with
 * one call allowed (parallel_tool_calls false), in both formats. Whatever
 * the text, the held-back prefix ends before any opening tag, the content
 * is a prefix of the text (all of it when there is no call, unless an
 * "auto" list ends with its empty list), and every call names a given
 * tool with arguments that are a JSON object. */
static void from_answer(const uint8_t *data, size_t len)
{
    static const char body[] =
        "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], "
        "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"add\"}}, "
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
        "\"parameters\": {\"type\": \"object\"}}}]}";
    char msg[MSG_SIZE];
    const char *param = NULL;
    st_gen_request r;
    if (!st_gen_request_parse(body, sizeof body - 1, true, &r, msg, sizeof msg, &param))
        st_fuzz_fail("the tools request was refused: %s", msg);
    char *text = malloc(len ? len : 1);
    memcpy(text, data, len);
    size_t safe = st_tools_text_safe(text, len);
    for (size_t i = 0; i + 11 <= safe; i++)
        if (memcmp(text + i, "<tool_call>", 11) == 0)
            st_fuzz_fail("an opening tag at %zu, before the held-back text at %zu", i, safe);
    int modes[3] = {ST_TOOLS_AUTO, ST_TOOLS_FORCED, ST_TOOLS_AUTO};
    for (int m = 0; m < 6; m++) {
        /* Both formats: one block a call, and one block with a list. */
        r.tool_format = m < 3 ? ST_TOOL_FORMAT_TAGS : ST_TOOL_FORMAT_LIST;
        r.tool_mode = modes[m % 3];
        r.tool_parallel = m % 3 != 2;
        size_t content = 0;
        json_t *calls = st_tools_answer_calls(&r, text, len, "x", &content);
        bool no_call = r.tool_format == ST_TOOL_FORMAT_LIST && r.tool_mode == ST_TOOLS_AUTO &&
                       empty_list_at(text, len, content);
        if (content > len || (!calls && content != len && !no_call))
            st_fuzz_fail("content of %zu bytes from %zu", content, len);
        for (size_t k = 0; k < json_array_size(calls); k++) {
            json_t *fn = json_object_get(json_array_get(calls, k), "function");
            const char *name = json_string_value(json_object_get(fn, "name"));
            /* As a client reads them: an integer past 64 bits is a
             * number (JSON sets no limit), which the server keeps. */
            json_t *args = json_loads(json_string_value(json_object_get(fn, "arguments")),
                                      JSON_DECODE_INT_AS_REAL, NULL);
            if (!name || (strcmp(name, "add") && strcmp(name, "get_weather")) ||
                !json_is_object(args))
                st_fuzz_fail("call %zu: %s", k, name ? name : "no name");
            json_decref(args);
        }
        if (m % 3 == 2 && json_array_size(calls) > 1)
            st_fuzz_fail("%zu calls where one is allowed", json_array_size(calls));
        json_decref(calls);
    }
    free(text);
    st_gen_request_free(&r);
}

/* The RPC listener's framing (msgpack_frame.h), differentially against
 * msgpack-c: a message the scan calls complete msgpack-c parses to the
 * same length; a prefix it calls incomplete msgpack-c waits on. Only what
 * the scan lets through reaches msgpack-c, as in the server. */
static bool frame(const uint8_t *data, size_t len, msgpack_unpacked *up)
{
    size_t n = 0, off = 0;
    st_msgpack_frame f = st_msgpack_frame_scan(data, len, FRAME_LIMIT, &n);
    if (f == ST_FRAME_INVALID)
        return false;
    msgpack_unpack_return ret =
        msgpack_unpack_next(up, (const char *)data, f == ST_FRAME_COMPLETE ? n : len, &off);
    if (f == ST_FRAME_INCOMPLETE) {
        if (ret != MSGPACK_UNPACK_CONTINUE)
            st_fuzz_fail("the scan waits for more bytes, msgpack-c says %d", (int)ret);
        return false;
    }
    if (ret != MSGPACK_UNPACK_SUCCESS || off != n)
        st_fuzz_fail("the scan found a %zu-byte message, msgpack-c says %d after %zu", n,
                     (int)ret, off);
    return true;
}

static void from_rpc(const uint8_t *data, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (frame(data, len, &up) && up.data.type == MSGPACK_OBJECT_MAP) {
        char msg[MSG_SIZE];
        memset(msg, POISON, sizeof msg);
        const char *param = NULL;
        st_gen_request r;
        /* As rpc.c reads a generate call: a map with messages is a chat request. */
        if (st_gen_request_from_msgpack(&up.data, &r, msg, sizeof msg, &param)) {
            check_request(&r, r.chat);
            if (r.logprobs || r.echo)
                st_fuzz_fail("msgpack-RPC accepted logprobs or echo, which it cannot return");
            st_gen_request_free(&r);
        } else {
            check_refusal("msgpack request", msg);
        }
    }
    msgpack_unpacked_destroy(&up);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0: from_http(data + 1, size - 1, false); break;
    case 1: from_http(data + 1, size - 1, true); break;
    case 2: from_rpc(data + 1, size - 1); break;
    default:
        /* The other small bodies share the branch (the corpus keeps its
         * first bytes' meaning). */
        from_encoder_body(data + 1, size - 1, ST_ENCODE_VECTORS);
        from_encoder_body(data + 1, size - 1, ST_ENCODE_RERANK);
        from_encoder_body(data + 1, size - 1, ST_ENCODE_SCORE);
        from_tokenize(data + 1, size - 1, false);
        from_tokenize(data + 1, size - 1, true);
        from_slot(data + 1, size - 1, true);
        from_slot(data + 1, size - 1, false);
        from_answer(data + 1, size - 1);
        break;
    }
    return 0;
}
