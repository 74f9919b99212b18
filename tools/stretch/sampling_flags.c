/*
 * tools/stretch/sampling_flags.c - see sampling_flags.h.
 */
#include "sampling_flags.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"

#include <stretch/stretch.h>

const char st_cli_sampling_usage[] =
    "  --temp X, --top-k N, --top-p P, --min-p P, --repeat-penalty X,\n"
    "  --presence-penalty X, --frequency-penalty X\n"
    "                       set that sampler's parameter for this run, where the\n"
    "                       manifest's chain has the sampler (else a warning)\n"
    "  --grammar GBNF, --grammar-file FILE\n"
    "                       answer in a llama.cpp GBNF grammar (start rule root)\n"
    "  -j, --json-schema SCHEMA, --json-schema-file FILE\n"
    "                       answer with JSON valid for a JSON Schema\n"
    "  --regex PATTERN      answer with text the regular expression matches whole\n"
    "                       (one constraint at a time; it replaces the manifest's\n"
    "                       sampler of the same plugin; FILE may be - for stdin)\n"
    "  --logit-bias ID+B, --logit-bias ID-B\n"
    "                       add B (up to 100, or inf) to token ID's logit, or\n"
    "                       subtract it (-inf bans the token); repeatable\n"
    "  --stop TEXT, -r TEXT end the answer where TEXT first appears (not shown);\n"
    "                       repeatable, up to 16\n";

/* The constraint flags: the plugin each names, its parameter, and whether
 * the value is a file holding the text. */
typedef struct constraint_flag {
    const char *flag, *alias, *plugin, *param;
    bool file;
} constraint_flag;

static const constraint_flag constraint_flags[] = {
    {"--grammar", NULL, "gbnf", "grammar", false},
    {"--grammar-file", NULL, "gbnf", "grammar", true},
    {"--json-schema", "-j", "json-schema", "schema", false},
    {"--json-schema-file", NULL, "json-schema", "schema", true},
    {"--regex", NULL, "regex", "pattern", false},
};

/* A grammar or schema file's text, checked to be what its plugin reads as
 * text rather than as a path: a schema object, a grammar with rules. */
static int read_constraint_file(const char *cmd, const constraint_flag *f, const char *path,
                                st_cli_sampling *s)
{
    size_t n = 0;
    char *text = st_cli_read_file(path, &n);
    if (!text)
        return -ST_EXIT_MODEL;
    const char *start = text;
    while (*start == ' ' || *start == '\t' || *start == '\r' || *start == '\n')
        start++;
    const char *why = NULL;
    if (memchr(text, '\0', n))
        why = "text, found a NUL byte";
    else if (!strcmp(f->plugin, "json-schema") && *start != '{')
        why = "a JSON Schema object, starting with '{'";
    else if (!strcmp(f->plugin, "gbnf") && !strstr(text, "::="))
        why = "a GBNF grammar, rules written NAME ::= ...";
    if (why) {
        fprintf(stderr, "stretch %s: %s: %s: expected %s\n", cmd, f->flag,
                st_cli_safe(st_cli_input_name(path)), why);
        free(text);
        return -ST_EXIT_MODEL;
    }
    /* The schema plugin reads text as inline only from its '{'. */
    memmove(text, start, n - (size_t)(start - text) + 1);
    s->constraint_text = text;
    s->constraint_param.value = text;
    return 1;
}

static int constraint_option(const char *cmd, int argc, char **argv, int *i,
                             st_cli_sampling *s)
{
    const char *a = argv[*i];
    const constraint_flag *f = NULL;
    for (size_t k = 0; k < sizeof constraint_flags / sizeof *constraint_flags && !f; k++)
        if (!strcmp(a, constraint_flags[k].flag) ||
            (constraint_flags[k].alias && !strcmp(a, constraint_flags[k].alias)))
            f = &constraint_flags[k];
    if (!f)
        return 0;
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!v || (!f->file && !*v)) {
        fprintf(stderr, "stretch %s: %s: expected %s, found %s\n", cmd, a,
                f->file ? "a file" : "its text", v ? "an empty argument" : "nothing");
        return -ST_EXIT_USAGE;
    }
    if (s->constraint) {
        fprintf(stderr, "stretch %s: %s and %s: one constraint at a time\n", cmd,
                s->constraint_flag, a);
        return -ST_EXIT_USAGE;
    }
    s->constraint = f->plugin;
    s->constraint_flag = a;
    s->constraint_param = (st_param_text){f->param, v};
    ++*i;
    return f->file ? read_constraint_file(cmd, f, v, s) : 1;
}

/* llama-cli's form: TOKEN+BIAS or TOKEN-BIAS, BIAS a number or inf. The
 * engine allows -100 .. 100, where -100 already bans a token: inf is 100. */
static int bias_option(const char *cmd, int argc, char **argv, int *i, st_cli_sampling *s)
{
    const char *a = argv[*i];
    if (strcmp(a, "--logit-bias") && strcmp(a, "-l"))
        return 0;
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    char *end = NULL;
    errno = 0;
    long tok = v ? strtol(v, &end, 10) : 0;
    double b = 0.0;
    bool ok = v && end != v && !errno && tok >= 0 && tok <= INT32_MAX &&
              (*end == '+' || *end == '-') && end[1] != '+' && end[1] != '-';
    if (ok) {
        const char *num = end;
        if (!strcmp(end + 1, "inf")) {
            b = *num == '-' ? -ST_LOGIT_BIAS_MAX : ST_LOGIT_BIAS_MAX;
        } else {
            errno = 0;
            b = strtod(num, &end);
            ok = end > num + 1 && !*end && !errno && fabs(b) <= ST_LOGIT_BIAS_MAX;
        }
    }
    if (!ok) {
        fprintf(stderr, "stretch %s: %s: expected TOKEN+BIAS or TOKEN-BIAS (a token id, a bias "
                        "up to 100 or inf), found '%s'\n",
                cmd, a, v ? st_cli_safe(v) : "nothing");
        return -ST_EXIT_USAGE;
    }
    st_logit_bias *grown = realloc(s->bias, (s->n_bias + 1) * sizeof *grown);
    if (!grown) {
        fprintf(stderr, "stretch %s: out of memory\n", cmd);
        return -ST_EXIT_RUNTIME;
    }
    s->bias = grown;
    s->bias[s->n_bias++] = (st_logit_bias){(int32_t)tok, (float)b};
    ++*i;
    return 1;
}

/* --stop TEXT, and llama-cli's -r / --reverse-prompt. */
static int stop_option(const char *cmd, int argc, char **argv, int *i, st_cli_sampling *s)
{
    const char *a = argv[*i];
    if (strcmp(a, "--stop") && strcmp(a, "-r") && strcmp(a, "--reverse-prompt"))
        return 0;
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!v || !*v) {
        fprintf(stderr, "stretch %s: %s: expected the text to stop at, found %s\n", cmd, a,
                v ? "an empty argument" : "nothing");
        return -ST_EXIT_USAGE;
    }
    if (s->n_stops == ST_CLI_MAX_STOPS) {
        fprintf(stderr, "stretch %s: %s: at most %d stop texts\n", cmd, a, ST_CLI_MAX_STOPS);
        return -ST_EXIT_USAGE;
    }
    s->stops[s->n_stops++] = v;
    ++*i;
    return 1;
}

int st_cli_sampling_option(const char *cmd, int argc, char **argv, int *i, st_cli_sampling *s)
{
    int taken = constraint_option(cmd, argc, argv, i, s);
    if (!taken)
        taken = bias_option(cmd, argc, argv, i, s);
    if (!taken)
        taken = stop_option(cmd, argc, argv, i, s);
    if (taken)
        return taken;
    const char *a = argv[*i];
    /* llama-cli's names, and the parameters the server's fields set. */
    const st_sampling_name *f;
    for (size_t k = 0; (f = st_sampling_name_at(k)) != NULL; k++)
        if (f->flag && !strcmp(a, f->flag))
            break;
    if (!f)
        return 0;
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    char *end = NULL;
    errno = 0;
    double x = v ? strtod(v, &end) : 0.0;
    if (!v || errno || end == v || *end || !isfinite(x) || (f->integer && x != floor(x))) {
        fprintf(stderr, "stretch %s: %s: expected %s, found '%s'\n", cmd, a,
                f->integer ? "an integer" : "a number", v ? st_cli_safe(v) : "nothing");
        return -ST_EXIT_USAGE;
    }
    for (size_t k = 0; k < s->n; k++)
        if (!strcmp(s->flag[k], a)) {
            fprintf(stderr, "stretch %s: %s is given twice\n", cmd, a);
            return -ST_EXIT_USAGE;
        }
    if (s->n == ST_CLI_MAX_SAMPLING) /* one flag each at most: not reached */
        return -ST_EXIT_USAGE;
    s->o[s->n] = (st_sampler_override){f->plugin, f->param, x};
    s->flag[s->n++] = a;
    ++*i;
    return 1;
}

int st_cli_sampling_check(st_engine *e, const st_cli_sampling *s)
{
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    for (size_t k = 0; k < s->n; k++) {
        bool found = false;
        for (uint32_t j = 0; j < info.n_samplers && !found; j++)
            found = !strcmp(info.sampler_names[j], s->o[k].plugin);
        if (!found)
            fprintf(stderr, "stretch: warning: %s has no effect: the strategy's sampler chain "
                            "has no '%s' sampler (add it to the manifest's samplers:)\n",
                    s->flag[k], s->o[k].plugin);
    }
    st_generate_params gp = {.struct_size = sizeof gp};
    st_cli_sampling_apply(s, &gp);
    st_error err = {0};
    if (st_engine_check_request(e, &gp, &err) != ST_OK) {
        fprintf(stderr, "stretch: the sampling flags are refused: %s\n",
                st_cli_safe(err.message));
        return ST_EXIT_MANIFEST;
    }
    return 0;
}

void st_cli_sampling_apply(const st_cli_sampling *s, st_generate_params *gp)
{
    gp->sampler_overrides = s->o;
    gp->n_sampler_overrides = s->n;
    gp->constraint = s->constraint;
    gp->constraint_params = s->constraint ? &s->constraint_param : NULL;
    gp->n_constraint_params = s->constraint ? 1 : 0;
    gp->logit_bias = s->bias;
    gp->n_logit_bias = s->n_bias;
}

void st_cli_sampling_free(st_cli_sampling *s)
{
    free(s->constraint_text);
    free(s->bias);
    memset(s, 0, sizeof *s);
}

int st_cli_with_sampling(int argc, char **argv,
                         int (*command)(int argc, char **argv, st_cli_sampling *s))
{
    st_cli_sampling sampling = {0};
    int rc = command(argc, argv, &sampling);
    st_cli_sampling_free(&sampling);
    return rc;
}
