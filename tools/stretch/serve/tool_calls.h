/*
 * tools/stretch/serve/tool_calls.h - OpenAI function calling for chat
 * requests: the request's `tools` and `tool_choice` read and checked, the
 * conversation's earlier calls and results written into its messages, the
 * tools shown to the model in its system turn, and the calls read back
 * out of an answer. The format the model sees (docs/server.md, "Function
 * calling") is the `<tools>` / `<tool_call>` / `<tool_response>` markup
 * that ChatML models trained for function calling use. Built without
 * libuv, like openai_request.c, so the request side is fuzzed with it.
 */
#ifndef ST_CLI_SERVE_TOOL_CALLS_H
#define ST_CLI_SERVE_TOOL_CALLS_H

#include <stdbool.h>
#include <stddef.h>

#include "openai_request.h"

/* What the opening tag of a call looks like in an answer. */
#define ST_TOOL_CALL_TAG "<tool_call>"

/* How calls are written, in the prompt and in an answer (`serve
 * --tool-format`, per model; st_gen_request.tool_format):
 * - ST_TOOL_FORMAT_TAGS, "tags": one block a call,
 *   <tool_call>\n{"name":...,"arguments":...}\n</tool_call> (Hermes, Qwen);
 * - ST_TOOL_FORMAT_LIST, "list": one block, a JSON list of calls,
 *   <tool_call>[\n{...},\n{...}\n]</tool_call>, under the system prompt of
 *   the APIGen function-calling data SmolLM2 was trained on. */
enum { ST_TOOL_FORMAT_TAGS = 0, ST_TOOL_FORMAT_LIST };

/* What the format writes around an answer's calls. A forced call's prompt
 * ends with `open`, so the answer is the JSON object alone; after a whole
 * call comes `after`, then the choice (the regex `next_pattern`) of the
 * end of the turn or `next_tag`, which opens the next call and is
 * written out as `next_open` from where it starts. In "auto" an answer
 * that writes the opening tag goes on with the rest of `open`; where the
 * format has an empty list ("no call needed"), it first chooses, under
 * `open_choice`, between that list and a call. */
typedef struct st_tool_syntax {
    const char *open;          /* "<tool_call>\n" / "<tool_call>[\n" */
    const char *after;         /* "\n</tool_call>" / "" */
    const char *next_pattern;  /* "(\\n<tool_call>\\n)?" / "(,\\n)?" */
    const char *next_tag;      /* "<tool_call>" / "," */
    const char *next_open;     /* "<tool_call>\n" / ",\n" */
    const char *open_choice;   /* NULL / "\\[(\\]|\\n)": "[]" or "[\n" */
} st_tool_syntax;
const st_tool_syntax *st_tools_syntax(int format);

/* Where `tag` first starts in text[0, len), or len. */
size_t st_tools_find(const char *text, size_t len, const char *tag);

/* How an answer may call the request's tools (st_gen_request.tool_mode). */
enum {
    ST_TOOLS_OFF = 0,          /* no tools, or tool_choice "none" */
    ST_TOOLS_AUTO,             /* the model chooses: text, calls, or both */
    ST_TOOLS_FORCED            /* "required" or one named function: at least one call
                                  (one for a named function or without
                                  parallel_tool_calls), its JSON constrained to the
                                  tools' schemas */
};

/* `tools`, `tool_choice`, `parallel_tool_calls` and `tool_top_k` of a chat
 * request (json_root is the request object): sets the request's tool
 * fields. False with msg and *param when a field is wrong. */
bool st_tools_parse(void *json_root, st_gen_request *r, char *msg, size_t size,
                    const char **param);

/* What the model is shown of the tools keep[0..n_keep) (indices into the
 * request's tools, in that order): *block, the text that ends the system
 * turn, and *schema, the JSON Schema a call to them is generated under
 * (a forced call's whole answer, an "auto" answer's after it opens a
 * call; NULL with ST_TOOLS_OFF; free both). False when out of memory. */
bool st_tools_render(const st_gen_request *r, const size_t *keep, size_t n_keep, char **block,
                     char **schema);

/* The description tool i gives ("" when none): with its name, what a
 * retriever finds it by. */
const char *st_tools_description(const st_gen_request *r, size_t i);

/* One message's text for the prompt in `format`: an assistant turn's
 * content followed by its tool_calls, or a tool result wrapped as the
 * model expects it. NULL with msg and *param when the message is
 * malformed. `i` is its index, for the message. */
char *st_tools_message_text(void *json_message, const char *role, const char *content,
                            size_t i, int format, char *msg, size_t size, const char **param);

/* Where the request's tool `name` is among its tools, or SIZE_MAX. */
size_t st_tools_index(const st_gen_request *r, const char *name);

/* White space between an answer's content and its calls: ' ', '\n',
 * '\r', '\t' (the content ends before it). */
bool st_tools_is_blank(char c);

/* Where the first whole opening tag starts in an answer, or len. */
size_t st_tools_call_start(const char *text, size_t len);

/* How many bytes at the start of an answer are surely not part of a tool
 * call: all of it, or up to where a call starts or may be starting (a
 * tail that is a prefix of the opening tag). A streamed answer sends no
 * further than this until it ends. */
size_t st_tools_text_safe(const char *text, size_t len);

/* The calls an answer makes, as OpenAI's tool_calls array (ids made from
 * id_base), or NULL when it makes none, or when what follows the first
 * opening tag is not a well-formed call to a tool of the request (the
 * whole answer is then its content). *content_len: the bytes of text
 * before the first call, trailing white space left out. An "auto" list
 * answer's empty list (`<tool_call>[]`, "no call needed") makes no call:
 * NULL, its content the text before it. */
void *st_tools_answer_calls(const st_gen_request *r, const char *text, size_t len,
                            const char *id_base, size_t *content_len);

#endif
