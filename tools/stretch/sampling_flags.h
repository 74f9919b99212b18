/*
 * tools/stretch/sampling_flags.h - llama-cli's sampling flags for the
 * commands that generate (run, chat):
 * - --temp, --top-k, --top-p, --min-p, --repeat-penalty,
 *   --presence-penalty, --frequency-penalty each set their sampler's
 *   parameter for the command's requests (st_sampler_override), as
 *   `stretch serve` maps OpenAI's fields. The strategy manifest still
 *   chooses the chain: a flag whose sampler the chain lacks is warned
 *   about.
 * - --grammar, --grammar-file, --json-schema (-j), --json-schema-file and
 *   --regex constrain every answer (st_generate_params.constraint), as the
 *   server's `grammar` and `response_format` do.
 * - --logit-bias TOKEN+BIAS (or -BIAS), repeated, biases tokens.
 * - --stop TEXT (-r, --reverse-prompt), repeated, ends the answer where
 *   TEXT first appears (stop_strings.h), as OpenAI's `stop` does.
 * The engine checks them all once the strategy is open
 * (st_engine_check_request), before any prompt runs.
 */
#ifndef ST_CLI_SAMPLING_FLAGS_H
#define ST_CLI_SAMPLING_FLAGS_H

#include <stddef.h>
#include <stretch/stretch.h>

#define ST_CLI_MAX_SAMPLING 8
#define ST_CLI_MAX_STOPS 16

typedef struct st_cli_sampling {
    st_sampler_override o[ST_CLI_MAX_SAMPLING];
    const char *flag[ST_CLI_MAX_SAMPLING]; /* the flag that set o[i] */
    size_t n;
    /* The constraint: its plugin (NULL: none), the flag that set it, and
     * its one parameter; a file's text is owned. */
    const char *constraint;
    const char *constraint_flag;
    st_param_text constraint_param;
    char *constraint_text;
    st_logit_bias *bias; /* [n_bias], owned */
    size_t n_bias;
    const char *stops[ST_CLI_MAX_STOPS]; /* --stop's texts (argv's) */
    size_t n_stops;
} st_cli_sampling;

/* 1 when argv[*i] is one of the flags (its value consumed), 0 when not;
 * when its value is missing or malformed, the flag is given twice, a
 * second constraint is asked for or a file cannot be read: a message is
 * printed and the exit code to return is given negated (-ST_EXIT_USAGE,
 * -ST_EXIT_MODEL for a file). */
int st_cli_sampling_option(const char *cmd, int argc, char **argv, int *i, st_cli_sampling *s);

/* Once the engine is open: a warning on stderr for each override whose
 * sampler the engine's chain lacks (it would change nothing), then the
 * engine's check of the whole request (st_engine_check_request). 0, or
 * ST_EXIT_MANIFEST with the refusal printed. */
int st_cli_sampling_check(st_engine *e, const st_cli_sampling *s);

/* The flags' part of a request. */
void st_cli_sampling_apply(const st_cli_sampling *s, st_generate_params *gp);

void st_cli_sampling_free(st_cli_sampling *s);

/* A command whose flags fill an st_cli_sampling: run `command` with
 * empty flags and free what they read (a grammar file, the biases) once
 * it returns, whichever way it returns. */
int st_cli_with_sampling(int argc, char **argv,
                         int (*command)(int argc, char **argv, st_cli_sampling *s));

/* Their lines for a command's usage. */
extern const char st_cli_sampling_usage[];

#endif
