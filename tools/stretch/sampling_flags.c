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
#include "sampling_names.h"

const char st_cli_sampling_usage[] =
    "  --temp X, --top-k N, --top-p P, --min-p P, --repeat-penalty X,\n"
    "  --presence-penalty X, --frequency-penalty X\n"
    "                       set that sampler's parameter for this run, where the\n"
    "                       manifest's chain has the sampler (else a warning)\n";

int st_cli_sampling_option(const char *cmd, int argc, char **argv, int *i, st_cli_sampling *s)
{
    const char *a = argv[*i];
    /* llama-cli's names, and the parameters the server's fields set. */
    const st_sampling_name *f = NULL;
    for (size_t k = 0; k < ST_N_SAMPLING_NAMES && !f; k++)
        if (st_sampling_names[k].flag && !strcmp(a, st_sampling_names[k].flag))
            f = &st_sampling_names[k];
    if (!f)
        return 0;
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    char *end = NULL;
    errno = 0;
    double x = v ? strtod(v, &end) : 0.0;
    if (!v || errno || end == v || *end || !isfinite(x) || (f->integer && x != floor(x))) {
        fprintf(stderr, "stretch %s: %s: expected %s, found '%s'\n", cmd, a,
                f->integer ? "an integer" : "a number", v ? st_cli_safe(v) : "nothing");
        return -1;
    }
    for (size_t k = 0; k < s->n; k++)
        if (!strcmp(s->flag[k], a)) {
            fprintf(stderr, "stretch %s: %s is given twice\n", cmd, a);
            return -1;
        }
    if (s->n == ST_CLI_MAX_SAMPLING) /* one flag each at most: not reached */
        return -1;
    s->o[s->n] = (st_sampler_override){f->plugin, f->param, x};
    s->flag[s->n++] = a;
    ++*i;
    return 1;
}

void st_cli_sampling_check(st_engine *e, const st_cli_sampling *s)
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
}
