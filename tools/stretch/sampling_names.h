/*
 * tools/stretch/sampling_names.h - the names a request or a command line
 * gives the samplers' parameters, and the plugin and parameter each sets
 * (plugins/sampler/): OpenAI's request fields with vLLM's and
 * llama-server's (`stretch serve`, openai_request.c), and llama-cli's flags
 * (`run`, `chat`, sampling_flags.c). One table, so that the two never map a
 * name to different parameters.
 */
#ifndef ST_CLI_SAMPLING_NAMES_H
#define ST_CLI_SAMPLING_NAMES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct st_sampling_name {
    const char *field;          /* the request field */
    const char *flag;           /* llama-cli's flag; NULL for a field's second name */
    const char *plugin, *param; /* what it sets */
    double lo, hi;              /* the field's range in a request */
    bool integer;
} st_sampling_name;

static const st_sampling_name st_sampling_names[] = {
    {"temperature", "--temp", "temperature", "temperature", 0.0, 2.0, false},
    {"top_p", "--top-p", "top-p", "p", 0.0, 1.0, false},
    {"top_k", "--top-k", "top-k", "k", -1.0, 16777216.0, true}, /* vLLM's -1 and 0: off */
    {"min_p", "--min-p", "min-p", "p", 0.0, 1.0, false},
    {"presence_penalty", "--presence-penalty", "penalties", "presence", -2.0, 2.0, false},
    {"frequency_penalty", "--frequency-penalty", "penalties", "frequency", -2.0, 2.0, false},
    {"repetition_penalty", NULL, "penalties", "repeat", 0.0001, 100.0, false},
    {"repeat_penalty", "--repeat-penalty", "penalties", "repeat", 0.0001, 100.0, false},
};
#define ST_N_SAMPLING_NAMES (sizeof st_sampling_names / sizeof st_sampling_names[0])

#endif
