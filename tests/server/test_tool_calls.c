/*
 * tests/server/test_tool_calls.c - function calling in `stretch serve`
 * (tool_calls.h): a chat request's tools and earlier calls as the prompt's
 * text, the refusals that name their field, the schema a forced call runs
 * under, and the calls read back out of answers.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "openai_request.h"
#include "tool_calls.h"

#define WEATHER                                                                            \
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": " \
    "\"The weather now\", \"parameters\": {\"type\": \"object\", \"properties\": "        \
    "{\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}"
#define ADD "{\"type\": \"function\", \"function\": {\"name\": \"add\"}}"
#define ASK "{\"role\": \"user\", \"content\": \"Weather in Paris?\"}"

static st_gen_request parse_ok(const char *body)
{
    st_gen_request r;
    char msg[512];
    const char *param = NULL;
    bool ok = st_gen_request_parse(body, strlen(body), true, &r, msg, sizeof msg, &param);
    cr_assert(ok, "refused: %s (%s)", msg, param ? param : "-");
    return r;
}

static void refused(const char *body, const char *want_param, const char *want_text)
{
    st_gen_request r;
    char msg[512] = "";
    const char *param = NULL;
    cr_assert_not(st_gen_request_parse(body, strlen(body), true, &r, msg, sizeof msg, &param),
                  "accepted: %s", body);
    cr_assert(param && strcmp(param, want_param) == 0, "param %s, want %s (%s)",
              param ? param : "NULL", want_param, msg);
    cr_assert(strstr(msg, want_text), "message '%s' lacks '%s'", msg, want_text);
}

Test(tool_calls, the_conversation_s_calls_and_results_are_text_in_its_turns)
{
    st_gen_request r = parse_ok(
        "{\"model\": \"m\", \"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
        ASK ", {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", "
        "\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": "
        "\"{\\\"city\\\": \\\"Paris\\\"}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"c1\", "
        "\"content\": \"18 C\"}, {\"role\": \"tool\", \"content\": \"sunny\"}], \"tools\": ["
        WEATHER ", " ADD "]}");
    cr_assert_eq(r.n_messages, 4);
    cr_assert_eq(r.tool_mode, ST_TOOLS_AUTO);
    cr_assert_eq(r.n_tools, 2);
    cr_assert_str_eq(r.tool_names[1], "add");
    cr_assert_eq(r.tool_top_k, -1);
    /* The system turn is the client's: the tools join it when shown. */
    cr_assert_str_eq(r.messages[0].content, "Be brief.");
    cr_assert_str_eq(r.messages[2].role, "assistant");
    /* The arguments as the client sent them. */
    cr_assert_str_eq(r.messages[2].content, "<tool_call>\n{\"name\":\"get_weather\","
                                            "\"arguments\":{\"city\": \"Paris\"}}\n"
                                            "</tool_call>");
    /* Both results in one user turn, which retrieval does not look up. */
    cr_assert_str_eq(r.messages[3].role, "user");
    cr_assert(r.messages[3].tool_result);
    cr_assert_not(r.messages[1].tool_result);
    cr_assert_str_eq(r.messages[3].content, "<tool_response>\n18 C\n</tool_response>\n"
                                            "<tool_response>\nsunny\n</tool_response>");
    cr_assert_null(r.constraint);
    st_gen_request_free(&r);
}

Test(tool_calls, the_tools_shown_are_one_json_object_a_line_and_none_shows_none)
{
    st_gen_request r = parse_ok("{\"model\": \"m\", \"messages\": [" ASK "], \"tools\": ["
                                WEATHER ", " ADD "], \"tool_top_k\": 1}");
    cr_assert_eq(r.tool_top_k, 1);
    char *block = NULL, *schema = NULL;
    cr_assert(st_tools_render(&r, (size_t[]){1, 0}, 2, &block, &schema));
    /* "auto": the schema a call is generated under once the answer opens one. */
    cr_assert(schema && strstr(schema, "\"anyOf\""), "%s", schema);
    free(schema);
    cr_assert(strncmp(block, "# Tools\n", 8) == 0, "%s", block);
    /* In the order given: the retriever's, best first. */
    cr_assert(strstr(block, "\n<tools>\n{\"type\":\"function\",\"function\":{\"name\":\"add\"}}\n"
                            "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","),
              "%s", block);
    cr_assert(strstr(block, "}}\n</tools>\n"), "%s", block);
    cr_assert(strstr(block, "\n<tool_call>\n{\"name\": <function name>"), "%s", block);
    free(block);
    cr_assert(st_tools_render(&r, (size_t[]){0}, 1, &block, &schema));
    cr_assert_null(strstr(block, "\"add\""));
    free(block);
    free(schema);
    cr_assert_str_eq(st_tools_description(&r, 0), "The weather now");
    cr_assert_str_eq(st_tools_description(&r, 1), "");
    st_gen_request_free(&r);

    r = parse_ok("{\"model\": \"m\", \"messages\": [" ASK "], \"tools\": [" WEATHER
                 "], \"tool_choice\": \"none\"}");
    cr_assert_eq(r.tool_mode, ST_TOOLS_OFF);
    st_gen_request_free(&r);
}

/* The forced schema for the tools keep[0..n). */
static json_t *forced(const st_gen_request *r, const size_t *keep, size_t n)
{
    char *block = NULL, *schema = NULL;
    cr_assert(st_tools_render(r, keep, n, &block, &schema));
    cr_assert_not_null(schema);
    json_t *s = json_loads(schema, 0, NULL);
    cr_assert_not_null(s);
    free(block);
    free(schema);
    return s;
}

Test(tool_calls, a_forced_call_runs_under_its_tools_schemas)
{
    st_gen_request r = parse_ok("{\"model\": \"m\", \"messages\": [" ASK "], \"tools\": ["
                                WEATHER ", " ADD "], \"tool_choice\": {\"type\": \"function\", "
                                "\"function\": {\"name\": \"get_weather\"}}}");
    cr_assert_eq(r.tool_mode, ST_TOOLS_FORCED);
    cr_assert_str_eq(r.tool_forced, "get_weather");
    cr_assert_null(r.constraint);
    json_t *s = forced(&r, (size_t[]){0, 1}, 2);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(s, "properties"), "name"), "const")),
                     "get_weather");
    json_t *args = json_object_get(json_object_get(s, "properties"), "arguments");
    json_t *city = json_object_get(json_object_get(args, "properties"), "city");
    cr_assert_str_eq(json_string_value(json_object_get(city, "type")), "string");
    json_decref(s);
    st_gen_request_free(&r);

    /* "required" with two tools: either, each with its own arguments;
     * with one shown, that one. */
    r = parse_ok("{\"model\": \"m\", \"messages\": [" ASK "], \"tools\": [" WEATHER ", " ADD
                 "], \"tool_choice\": \"required\"}");
    s = forced(&r, (size_t[]){0, 1}, 2);
    json_t *alts = json_object_get(s, "anyOf");
    cr_assert_eq(json_array_size(alts), 2);
    json_t *add_args = json_object_get(json_object_get(json_array_get(alts, 1), "properties"),
                                       "arguments");
    cr_assert_str_eq(json_string_value(json_object_get(add_args, "type")), "object");
    json_decref(s);
    s = forced(&r, (size_t[]){1}, 1);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(s, "properties"), "name"), "const")),
                     "add");
    json_decref(s);
    st_gen_request_free(&r);
}

Test(tool_calls, bad_tools_and_choices_are_refused_by_name)
{
    const char *head = "{\"model\": \"m\", \"messages\": [" ASK "], ";
    struct { const char *rest, *param, *text; } cases[] = {
        {"\"tools\": {}}", "tools", "expected an array of 1 to"},
        {"\"tools\": []}", "tools", "expected an array of 1 to"},
        {"\"tools\": [{\"function\": {\"name\": \"x\"}}]}", "tools", "tools[0]: expected"},
        {"\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"a b\"}}]}", "tools",
         "tools[0].function.name: expected 1 to 64"},
        {"\"tools\": [" ADD ", " ADD "]}", "tools", "'add' is tools[0]'s name too"},
        {"\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"x\", "
         "\"parameters\": 3}}]}", "tools", "parameters: expected a JSON Schema"},
        {"\"tool_choice\": \"required\"}", "tool_choice", "needs 'tools'"},
        {"\"tools\": [" ADD "], \"tool_choice\": \"always\"}", "tool_choice", "expected \"none\""},
        {"\"tools\": [" ADD "], \"tool_choice\": {\"type\": \"function\", \"function\": "
         "{\"name\": \"sub\"}}}", "tool_choice", "'sub' is not a function of 'tools'"},
        {"\"tools\": [" ADD "], \"tool_choice\": \"required\", \"response_format\": "
         "{\"type\": \"json_object\"}}", "tool_choice", "or 'response_format', not both"},
        {"\"tools\": [" ADD "], \"parallel_tool_calls\": 1}", "parallel_tool_calls",
         "expected a boolean"},
        {"\"tools\": [" ADD "], \"tool_top_k\": -1}", "tool_top_k", "from 0 (every tool)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, "%s%s", head, cases[i].rest);
        refused(body, cases[i].param, cases[i].text);
    }
    refused("{\"model\": \"m\", \"messages\": [{\"role\": \"assistant\", \"content\": null, "
            "\"tool_calls\": [{\"function\": {\"name\": \"add\", \"arguments\": \"{oops\"}}]}]}",
            "messages", "messages[0].tool_calls[0]: expected");
    refused("{\"model\": \"m\", \"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}",
            "messages", "expected system, developer, user, assistant or tool");
}

/* The answer's calls as "name(arguments)" lines, or "none". */
static void calls_of(const st_gen_request *r, const char *text, char *out, size_t size,
                     size_t *content_len)
{
    json_t *calls = st_tools_answer_calls(r, text, strlen(text), "x_0", content_len);
    size_t k, n = 0;
    json_t *c;
    out[0] = '\0';
    if (!calls) {
        snprintf(out, size, "none");
        return;
    }
    json_array_foreach(calls, k, c) {
        json_t *fn = json_object_get(c, "function");
        char id[32];
        snprintf(id, sizeof id, "call_x_0_%zu", k);
        cr_assert_str_eq(json_string_value(json_object_get(c, "id")), id);
        cr_assert_str_eq(json_string_value(json_object_get(c, "type")), "function");
        n += (size_t)snprintf(out + n, size - n, "%s(%s);",
                              json_string_value(json_object_get(fn, "name")),
                              json_string_value(json_object_get(fn, "arguments")));
    }
    json_decref(calls);
}

/* An answer, the calls read from it ("none": the whole text is content;
 * "empty": no call, an empty list after the content) and where its
 * content ends. */
typedef struct answer_case {
    const char *text;
    const char *want;
    size_t content;
} answer_case;

static void check_answers(const st_gen_request *r, const answer_case *cases, size_t n)
{
    char got[512];
    for (size_t i = 0; i < n; i++) {
        size_t content = 0;
        calls_of(r, cases[i].text, got, sizeof got, &content);
        bool empty = strcmp(cases[i].want, "empty") == 0;
        cr_assert_str_eq(got, empty ? "none" : cases[i].want, "case %zu", i);
        cr_assert_eq(content, cases[i].want[0] == 'n' ? strlen(cases[i].text)
                                                      : cases[i].content, "case %zu", i);
    }
}

Test(tool_calls, an_answer_s_calls_are_read_back_only_when_well_formed)
{
    st_gen_request r = parse_ok("{\"model\": \"m\", \"messages\": [" ASK "], \"tools\": ["
                                WEATHER ", " ADD "]}");
    /* content: the bytes before the calls (all of the text when none). */
    answer_case cases[] = {
        {"It is sunny.", "none", 0},
        {"<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>",
         "add({\"a\": 1});", 0},
        {"Let me look.\n<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\":"
         "\"Paris\"}}\n</tool_call>\n<tool_call>{\"name\":\"add\"}</tool_call>\n",
         "get_weather({\"city\":\"Paris\"});add({});", 12},
        /* The answer ended before its closing tag: the call is whole. */
        {"<tool_call>\n{\"name\": \"add\", \"arguments\": {}}", "add({});", 0},
        /* Arguments given as a JSON text, as the API carries them. */
        {"<tool_call>{\"name\": \"add\", \"arguments\": \"{\\\"b\\\": 2}\"}</tool_call>",
         "add({\"b\": 2});", 0},
        /* The arguments as the model wrote them, digits and all (jansson
         * would write 9.99 back as 9.9900000000000002). */
        {"<tool_call>{\"arguments\": {\"p\": 9.99, \"s\": \"}{\\\"\"}, \"name\": \"add\"}",
         "add({\"p\": 9.99, \"s\": \"}{\\\"\"});", 0},
        /* An integer past 64 bits is still a number. */
        {"<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 123456789012345678901234}}",
         "add({\"a\": 123456789012345678901234});", 0},
        {"<tool_call>\n{\"name\": \"sub\", \"arguments\": {}}\n</tool_call>", "none", 0},
        {"<tool_call>\n{\"name\": \"add\", \"arguments\": [1]}\n</tool_call>", "none", 0},
        {"<tool_call>\n{\"name\": \"add\", \"argu\n</tool_call>", "none", 0},
        {"<tool_call>{\"name\": \"add\"}</tool_call> and then some", "none", 0},
    };
    check_answers(&r, cases, sizeof cases / sizeof cases[0]);
    char got[512];
    /* parallel_tool_calls false: the first call only. */
    r.tool_parallel = false;
    calls_of(&r, cases[2].text, got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "get_weather({\"city\":\"Paris\"});");
    /* A forced answer is the call's JSON alone. */
    r.tool_mode = ST_TOOLS_FORCED;
    calls_of(&r, "{\"name\":\"add\",\"arguments\":{\"a\":3}}", got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "add({\"a\":3});");
    calls_of(&r, "{\"name\":\"add\",\"argum", got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "none");
    /* The calls after it (parallel_tool_calls) open with their tags, as
     * the server goes on after a call (st_tools_syntax). */
    r.tool_parallel = true;
    static const char two[] = "{\"name\":\"add\",\"arguments\":{\"a\":3}}\n</tool_call>\n"
                              "<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{}}\n"
                              "</tool_call>";
    calls_of(&r, two, got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "add({\"a\":3});get_weather({});");
    calls_of(&r, "{\"name\":\"add\",\"arguments\":{}}\n</tool_call>\nmore", got, sizeof got,
             &(size_t){0});
    cr_assert_str_eq(got, "none");
    r.tool_parallel = false;
    calls_of(&r, two, got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "add({\"a\":3});");
    r.tool_mode = ST_TOOLS_OFF;
    calls_of(&r, cases[1].text, got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "none");
    st_gen_request_free(&r);
}

Test(tool_calls, a_stream_holds_back_only_what_may_open_a_call)
{
    struct { const char *text; size_t safe; } cases[] = {
        {"plain text", 10}, {"text <", 5}, {"text <tool_c", 5}, {"text <tool_call>{", 5},
        {"<tool_call>", 0}, {"a < b <t", 6}, {"<tool_cal", 0}, {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(st_tools_text_safe(cases[i].text, strlen(cases[i].text)), cases[i].safe,
                     "'%s'", cases[i].text);
}

/* --tool-format list: one <tool_call> block holding a JSON list of calls,
 * under the system prompt SmolLM2 was trained with. */
Test(tool_calls, the_list_format_writes_and_reads_calls_as_one_json_list)
{
    st_gen_request r = parse_ok(
        "{\"model\": \"m\", \"messages\": [" ASK ", {\"role\": \"assistant\", \"content\": "
        "\"Both.\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": "
        "{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}, "
        "{\"id\": \"c2\", \"type\": \"function\", \"function\": {\"name\": \"add\", "
        "\"arguments\": \"{}\"}}]}], \"tools\": [" WEATHER ", " ADD "]}");
    /* Both formats' text is kept: the model, which says which, comes later. */
    cr_assert_str_eq(r.messages[1].content,
                     "Both.\n<tool_call>\n{\"name\":\"get_weather\",\"arguments\":{\"city\": "
                     "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\":\"add\",\"arguments\":{}}"
                     "\n</tool_call>");
    cr_assert_null(r.messages[0].list_content);
    cr_assert_str_eq(r.messages[1].list_content,
                     "Both.\n<tool_call>[\n{\"name\":\"get_weather\",\"arguments\":{\"city\": "
                     "\"Paris\"}},\n{\"name\":\"add\",\"arguments\":{}}\n]</tool_call>");
    r.tool_format = ST_TOOL_FORMAT_LIST;
    char *block = NULL, *schema = NULL;
    cr_assert(st_tools_render(&r, (size_t[]){1}, 1, &block, &schema));
    cr_assert(strncmp(block, "You are an expert in composing functions.", 41) == 0, "%s", block);
    cr_assert(strstr(block, "<tools>[{\"type\":\"function\",\"function\":{\"name\":\"add\"}}]"
                            "</tools>"), "%s", block);
    cr_assert_null(strstr(block, "get_weather"));
    free(block);
    free(schema);
    const st_tool_syntax *syn = st_tools_syntax(ST_TOOL_FORMAT_LIST);
    cr_assert_str_eq(syn->open, "<tool_call>[\n");
    cr_assert_str_eq(syn->next_tag, ",");
    cr_assert_str_eq(syn->open_choice, "\\[(\\]|\\n)");
    cr_assert_null(st_tools_syntax(ST_TOOL_FORMAT_TAGS)->open_choice);
    answer_case cases[] = {
        {"Sure. <tool_call>[\n{\"name\": \"add\", \"arguments\": {\"a\": 1}},\n"
         "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n]</tool_call>",
         "add({\"a\": 1});get_weather({\"city\": \"Oslo\"});", 5},
        /* Cut before the list closes: the whole calls. */
        {"<tool_call>[{\"name\": \"add\", \"arguments\": {}}", "add({});", 0},
        /* The format's "no call needed": no calls, the content before it. */
        {"<tool_call>[]</tool_call>", "empty", 0},
        {"I cannot help with that. <tool_call>[ ]", "empty", 24},
        /* Opened and cut, or never opened: the whole answer is content. */
        {"Hm. <tool_call>[", "none", 0},
        {"Hm. <tool_call>", "none", 0},
        {"<tool_call>]", "none", 0},
        {"<tool_call>[{\"name\": \"add\", \"arguments\": {}}, {\"name\": \"sub\"}]", "none", 0},
        {"<tool_call>[{\"name\": \"add\", \"arguments\": {}}] and more", "none", 0},
        {"<tool_call>\n{\"name\": \"add\", \"arguments\": {}}\n</tool_call>", "none", 0},
    };
    check_answers(&r, cases, sizeof cases / sizeof cases[0]);
    char got[512];
    /* A forced answer: its prompt ends with the list's opening. */
    r.tool_mode = ST_TOOLS_FORCED;
    calls_of(&r, "{\"name\":\"add\",\"arguments\":{}},\n{\"name\":\"add\",\"arguments\":{\"b\":2}}",
             got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "add({});add({\"b\":2});");
    /* A forced answer is a call: an empty list there is not one. */
    size_t content = 0;
    calls_of(&r, "]", got, sizeof got, &content);
    cr_assert_str_eq(got, "none");
    cr_assert_eq(content, 1);
    r.tool_parallel = false;
    calls_of(&r, "{\"name\":\"add\",\"arguments\":{}},\n{\"name\":\"add\",\"arguments\":{\"b\":2}}",
             got, sizeof got, &(size_t){0});
    cr_assert_str_eq(got, "add({});");
    st_gen_request_free(&r);
}
