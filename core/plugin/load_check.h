/*
 * core/plugin/load_check.h - load-check one plugin in a forked child:
 * dlopen with every ABI check, note which ops it implements, create and
 * destroy an instance with default parameters (and run the conformance
 * suite when the build has one). A plugin that crashes or hangs yields a
 * report naming the signal, never a crashed inspector. The child leads its
 * own process group, which is killed when the check ends, so processes a
 * plugin forks neither outlive the check nor keep it waiting.
 */
#ifndef ST_CORE_LOAD_CHECK_H
#define ST_CORE_LOAD_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "registry.h"

/* Plain data only: the child writes it through a pipe. Kept under
 * PIPE_BUF so each write is atomic. The child runs the plugin's code, so
 * the parent checks every report (st_load_report_valid) before using it. */
typedef struct st_load_report {
    uint64_t token;         /* the parent's random number for this check:
                               a report without it is not the checker's */
    bool finished;          /* the child reached the end of the check */
    bool loaded;            /* dlopen and entry checks passed */
    bool created;           /* create+destroy with default parameters passed */
    bool create_skipped;    /* not tried: the plugin requires a service this
                               check cannot give (see skip_reason) */
    char skip_reason[96];
    bool model_failed;      /* the --model GGUF could not be opened */
    st_refusal refusal;
    int status;             /* st_status of the first failure */
    char message[1100];     /* one line: the failure, or empty */
    bool has_abi;
    uint16_t abi_major, abi_minor;
    char entry_version[48];
    uint32_t ops_present;   /* bit i: op i of the kind's ops table is non-NULL */
    char stage[24];         /* what the child was doing last */
    int signal;             /* set by the parent: the child died of it */
    bool timed_out;         /* set by the parent: killed after the timeout */
    bool conformance_ran;
    bool conformance_ok;
    char conformance[1400]; /* summary lines of the suite, '\n' separated */
} st_load_report;

/* Runs the check; `timeout_s` 0 = $STRETCH_CHECK_TIMEOUT, else 60 s. `params` (a strategy's MAP, may be
 * NULL = defaults) is what create() gets; without it a plugin with a
 * required parameter is not created. `model` (a GGUF path, may be NULL)
 * backs the model metadata services; without it, plugins that require a
 * model are not created (create_skipped). Always fills `out`. True when the
 * plugin loaded and created or was skipped (and conformance passed when it
 * ran). */
bool st_load_check(const st_plugin_manifest *m, bool conformance, const char *model,
                   const st_value *params, unsigned timeout_s, st_load_report *out);

/* Whether `r`, as read from the child, can be trusted to be what the
 * checker wrote: `token` matches, every bool is 0 or 1, every string ends
 * inside its field, refusal, status, stage and ops (of a kind with `n_ops`
 * ops) are in range, the parent's fields are unset and the flags agree.
 * Else false with the first problem in `why`. */
bool st_load_report_valid(const st_load_report *r, uint64_t token, size_t n_ops, char *why,
                          size_t cap);

/* Whether the report counts as a pass (see st_load_check). */
bool st_load_report_ok(const st_load_report *r);

/* "ok", or "refused: <reason>" / "crashed: SIGSEGV ..." in one line. */
const char *st_load_report_reason(const st_load_report *r, char *buf, size_t cap);

#endif
