/*
 * core/engine/sampling_names.c - st_sampling_name_at: the names requests
 * and command lines give the samplers' parameters (stretch.h). The CLI's
 * flags, the server's request fields and the Python binding's sampling=
 * keys all read this one table, so that no two map a name differently.
 */
#include <stretch/stretch.h>

static const st_sampling_name names[] = {
    {"temperature", "--temp", "temperature", "temperature", 0.0, 2.0, false},
    {"top_p", "--top-p", "top-p", "p", 0.0, 1.0, false},
    {"top_k", "--top-k", "top-k", "k", -1.0, 16777216.0, true}, /* vLLM's -1 and 0: off */
    {"min_p", "--min-p", "min-p", "p", 0.0, 1.0, false},
    {"presence_penalty", "--presence-penalty", "penalties", "presence", -2.0, 2.0, false},
    {"frequency_penalty", "--frequency-penalty", "penalties", "frequency", -2.0, 2.0, false},
    {"repetition_penalty", NULL, "penalties", "repeat", 0.0001, 100.0, false},
    {"repeat_penalty", "--repeat-penalty", "penalties", "repeat", 0.0001, 100.0, false},
};

const st_sampling_name *st_sampling_name_at(size_t i)
{
    return i < sizeof names / sizeof names[0] ? &names[i] : NULL;
}
