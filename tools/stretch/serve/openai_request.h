/*
 * tools/stretch/serve/openai_request.h - an OpenAI completion or chat
 * request, validated: what the HTTP routes and the msgpack-RPC listener
 * hand a model runner. Kept apart from server.h so that the parser can be
 * built (and fuzzed, tests/fuzz/fuzz_serve_request.c) without libuv.
 */
#ifndef ST_CLI_SERVE_OPENAI_REQUEST_H
#define ST_CLI_SERVE_OPENAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stretch/stretch.h>

/* A request's constraint takes at most this many parameters: the
 * schema's whitespace, the schema and its digit cap (max-digits). */
#define ST_GEN_CONSTRAINT_PARAMS 3

/* The json-schema constraint's max-digits for every JSON the server
 * generates (response_format and tool calls): at most 16 digits in each
 * digit run of a number the schema leaves unbounded, as llama-server's
 * JSON grammars allow; a small model otherwise writes 1000000... until
 * max_tokens. */
#define ST_SERVE_MAX_DIGITS "16"

/* One chat message of a request. */
typedef struct st_req_message {
    char *role;
    char *content;
    bool tool_result;          /* a user turn made of tool results (role "tool"):
                                  retrieval does not look it up */
    char *list_content;        /* an assistant turn with tool_calls: its text in the
                                  "list" format (content is the "tags" one), else NULL */
} st_req_message;

#define ST_SERVE_MAX_STOPS 4
#define ST_SERVE_MAX_SAMPLING 8
#define ST_SERVE_MAX_LOGIT_BIAS 1024

/* A request field that sets a sampler parameter (openai_request.c's table). */
typedef struct st_req_sampling {
    const char *field;         /* "temperature", "presence_penalty", ... */
    const char *plugin;        /* the sampler plugin it sets: "penalties" */
    const char *param;         /* and its parameter: "presence" */
    double value;
} st_req_sampling;

/* Choices one request may ask for: prompts x n (OpenAI allows n up to
 * 128; a model's sequences run them a few at a time). */
#define ST_SERVE_MAX_CHOICES 64

/* One prompt of a completion (or the text of /tokenize, the ids of
 * /detokenize): a text, or token ids run as given (no BOS added). */
typedef struct st_req_prompt {
    char *text;
    int32_t *ids;
    size_t n_ids;
} st_req_prompt;

/* A validated completion request (openai_request.c). */
typedef struct st_gen_request {
    bool chat;                 /* /v1/chat/completions, else /v1/completions */
    char *model;               /* a manifest stem */
    st_req_message *messages;
    size_t n_messages;
    st_req_prompt *prompts;    /* completions: one or more (a list of them) */
    size_t n_prompts;
    uint32_t n;                /* answers to each prompt (chat: to the messages) */
    bool echo;                 /* completions: the prompt comes back before the answer */
    int64_t max_tokens;        /* -1 = up to the context; 0 only with echo */
    /* Sampling fields, each setting one parameter of the manifest's
     * sampler of that plugin for this request (temperature, top_p, top_k,
     * min_p, the penalties). */
    st_req_sampling sampling[ST_SERVE_MAX_SAMPLING];
    size_t n_sampling;
    /* logit_bias: {token id: bias}, ids checked against the model later. */
    st_logit_bias *logit_bias;
    size_t n_logit_bias;
    bool has_seed;
    uint64_t seed;
    char *stops[ST_SERVE_MAX_STOPS];
    size_t n_stops;
    bool stream;
    bool include_usage;        /* stream_options.include_usage */
    bool no_retrieval;         /* "retrieval": false: skip the manifest's index */
    bool fresh_cache;          /* llama-server's "cache_prompt": false */
    /* A constraint sampler for this request (response_format, or
     * llama-server's grammar): the plugin, its parameters as text (the
     * schema or grammar always inline, a JSON object or GBNF rules, never
     * a path), and the request field it came from; NULL when none. */
    const char *constraint;
    const char *constraint_names[ST_GEN_CONSTRAINT_PARAMS];
    char *constraint_values[ST_GEN_CONSTRAINT_PARAMS];
    size_t n_constraint_params;
    const char *constraint_field;
    /* Log-probabilities of the answer's tokens (chat: logprobs true and
     * top_logprobs; completions: logprobs N), each with top_logprobs
     * alternatives (0..20). */
    bool logprobs;
    uint32_t top_logprobs;
    /* Function calling (tool_calls.c): the request's tools (a jansson
     * array, NULL when none) and their names, how an answer may call them
     * (ST_TOOLS_OFF, _AUTO, _FORCED), the function tool_choice names (one
     * of tool_names) or NULL, and stretch's own tool_top_k: how many of
     * the tools the model is shown, chosen by `serve --tool-retriever`
     * (-1: the server's --tool-top-k; 0: all of them). */
    void *tools;
    char **tool_names;
    size_t n_tools;
    int tool_mode;
    const char *tool_forced;
    bool tool_parallel;        /* parallel_tool_calls: more than one call an answer */
    int tool_format;           /* ST_TOOL_FORMAT_*: the model's (serve --tool-format),
                                  set when the job meets its model; tags until then */
    int64_t tool_top_k;
} st_gen_request;

/* A refusal, for every reader of requests: msg (always NUL-terminated)
 * says why, printf-style, and *param names the field (or is NULL).
 * Returns false, so a reader can return it. */
bool st_req_refuse(char *msg, size_t size, const char **param, const char *name,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Parse and check a body (len bytes of JSON). On failure msg (always
 * NUL-terminated) says why and *param names the field, or is NULL. */
bool st_gen_request_parse(const char *body, size_t len, bool chat, st_gen_request *out,
                          char *msg, size_t msg_size, const char **param);
void st_gen_request_free(st_gen_request *r);

/* A chat's last user message (tool results are user turns too, not
 * looked up), its index in *at; NULL when there is none. */
const char *st_gen_request_last_user(const st_gen_request *req, size_t *at);
/* The same from a parsed jansson object (json_t *). */
bool st_gen_request_from_json(void *json_root, bool chat, st_gen_request *out, char *msg,
                              size_t msg_size, const char **param);

/* POST /tokenize (detokenize false: out->prompt, and *add_special: add
 * the model's BOS as a text completion does; default true) or /detokenize
 * (out->prompt_ids), in vLLM's shape: {"model", "prompt" (or
 * llama-server's "content"), "add_special_tokens"} and {"model", "tokens"}. */
bool st_tokenize_request_parse(const char *body, size_t len, bool detokenize,
                               st_gen_request *out, bool *add_special, char *msg,
                               size_t msg_size, const char **param);

/* POST /slots/ID?action=save|restore|erase (llama-server's slot files):
 * {"model", "filename"}; the file name (need_file: save and restore) is a
 * plain name of at most 200 bytes, no folder, not starting with '.', into
 * *filename (malloc'd). */
bool st_slot_request_parse(const char *body, size_t len, bool need_file, st_gen_request *out,
                           char **filename, char *msg, size_t msg_size, const char **param);

/* The most inputs one embeddings request may carry (OpenAI's limit). */
#define ST_SERVE_MAX_EMBED_INPUTS 2048

/* A validated /v1/embeddings request (openai_request.c). */
typedef struct st_embed_request {
    char *model;               /* an encoder's name (stretch serve --embedding-model) */
    char **texts;              /* n non-empty UTF-8 texts */
    size_t *lens;
    size_t n;
    bool base64;               /* encoding_format "base64": little-endian float32 */
    int64_t dimensions;        /* the length asked for, -1 when not given */
    /* What the vectors are for: /v1/embeddings answers them; /v1/rerank
     * (st_rerank_request_parse) ranks texts[1..n-1], the documents, by the
     * cosine of their vectors to texts[0]'s, the query's; /v1/score
     * (st_score_request_parse) gives the cosine of each pair of
     * texts[0..n_first-1] (text_1) and texts[n_first..n-1] (text_2). */
    enum { ST_ENCODE_VECTORS, ST_ENCODE_RERANK, ST_ENCODE_SCORE } task;
    bool tei;                  /* rerank in TEI's shape ("texts"): a bare array */
    bool return_documents;     /* rerank: each result carries its text */
    size_t top_n;              /* rerank: results kept, best first (at most the documents) */
    size_t n_first;            /* score: how many texts text_1 has (1 or n - n_first) */
} st_embed_request;

bool st_embed_request_parse(const char *body, size_t len, st_embed_request *out, char *msg,
                            size_t msg_size, const char **param);
void st_embed_request_free(st_embed_request *r);

/* POST /v1/rerank (and /rerank, /v1/reranking, /reranking), in the shape
 * llama-server and vLLM take: Jina's {"model", "query", "documents" (strings
 * or {"text"} objects), "top_n", "return_documents"}, or TEI's {"query",
 * "texts", "return_text"}. "model" may be left out (out->model NULL): the
 * server then uses its only sentence encoder. */
bool st_rerank_request_parse(const char *body, size_t len, st_embed_request *out, char *msg,
                             size_t msg_size, const char **param);

/* POST /v1/score (vLLM's): {"model", "text_1", "text_2"}, each a string or
 * a non-empty list of strings: one text against each of a list, or two
 * lists of one length pair by pair. "model" may be left out as above. */
bool st_score_request_parse(const char *body, size_t len, st_embed_request *out, char *msg,
                            size_t msg_size, const char **param);

#endif
