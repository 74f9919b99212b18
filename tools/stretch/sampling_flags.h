/*
 * tools/stretch/sampling_flags.h - llama-cli's sampling flags for the
 * commands that generate (run, chat): --temp, --top-k, --top-p, --min-p,
 * --repeat-penalty, --presence-penalty, --frequency-penalty. Each sets its
 * sampler's parameter for the command's requests (st_sampler_override), as
 * `stretch serve` maps OpenAI's fields; the plugin's schema checks the
 * value when the request starts. The strategy manifest still chooses the
 * chain: a flag whose sampler the chain lacks is warned about.
 */
#ifndef ST_CLI_SAMPLING_FLAGS_H
#define ST_CLI_SAMPLING_FLAGS_H

#include <stddef.h>
#include <stretch/stretch.h>

#define ST_CLI_MAX_SAMPLING 8

typedef struct st_cli_sampling {
    st_sampler_override o[ST_CLI_MAX_SAMPLING];
    const char *flag[ST_CLI_MAX_SAMPLING]; /* the flag that set o[i] */
    size_t n;
} st_cli_sampling;

/* 1 when argv[*i] is one of the flags (its value consumed), 0 when not,
 * -1 (a message printed) when its value is missing, not a number, or the
 * flag is given twice. */
int st_cli_sampling_option(const char *cmd, int argc, char **argv, int *i, st_cli_sampling *s);

/* A warning on stderr for each flag whose sampler the engine's chain does
 * not have: the override would change nothing. */
void st_cli_sampling_check(st_engine *e, const st_cli_sampling *s);

/* Their lines for a command's usage. */
extern const char st_cli_sampling_usage[];

#endif
