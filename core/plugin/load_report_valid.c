/*
 * core/plugin/load_report_valid.c - see load_check.h. The report comes
 * from a process that runs the plugin's code, so it is read as bytes from
 * an untrusted source: a plugin can write into the pipe itself.
 */
#include "load_check.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* A bool field's byte: reading a bool holding anything but 0 or 1 is
 * undefined, so look at the raw byte. */
static int bool_byte(const st_load_report *r, size_t off)
{
    return ((const unsigned char *)r)[off];
}

#define BOOL_FIELD(f) {#f, offsetof(st_load_report, f)}
#define TEXT_FIELD(f) {#f, offsetof(st_load_report, f), sizeof((st_load_report *)0)->f}

static const struct {
    const char *name;
    size_t off;
} bools[] = {
    BOOL_FIELD(finished), BOOL_FIELD(loaded), BOOL_FIELD(created),
    BOOL_FIELD(create_skipped), BOOL_FIELD(model_failed), BOOL_FIELD(has_abi),
    BOOL_FIELD(timed_out), BOOL_FIELD(conformance_ran), BOOL_FIELD(conformance_ok),
};

static const struct {
    const char *name;
    size_t off, size;
} texts[] = {
    TEXT_FIELD(skip_reason), TEXT_FIELD(message), TEXT_FIELD(entry_version),
    TEXT_FIELD(stage), TEXT_FIELD(conformance),
};

static const char *const stages[] = {"open", "create", "destroy", "conformance", "done"};

bool st_load_report_valid(const st_load_report *r, uint64_t token, size_t n_ops, char *why,
                          size_t cap)
{
    if (r->token != token) {
        snprintf(why, cap, "not written by the checker (token)");
        return false;
    }
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
        if (bool_byte(r, bools[i].off) > 1) {
            snprintf(why, cap, "field %s is not a bool", bools[i].name);
            return false;
        }
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!memchr((const char *)r + texts[i].off, '\0', texts[i].size)) {
            snprintf(why, cap, "field %s is not terminated", texts[i].name);
            return false;
        }
    int refusal;
    memcpy(&refusal, &r->refusal, sizeof refusal);
    if (refusal < ST_REFUSE_NONE || refusal > ST_REFUSE_CREATE_FAILED) {
        snprintf(why, cap, "field refusal is %d", refusal);
        return false;
    }
    if (r->status > ST_OK || r->status < ST_E_INTERNAL) {
        snprintf(why, cap, "field status is %d", r->status);
        return false;
    }
    if (n_ops < 32 && (r->ops_present >> n_ops) != 0) {
        snprintf(why, cap, "field ops_present names ops the kind does not have");
        return false;
    }
    size_t s = 0;
    while (s < sizeof stages / sizeof stages[0] && strcmp(r->stage, stages[s]) != 0)
        s++;
    if (s == sizeof stages / sizeof stages[0]) {
        snprintf(why, cap, "field stage is not a stage of the check");
        return false;
    }
    /* Only the parent sets these; the rest must agree with each other. */
    if (r->signal != 0 || r->timed_out) {
        snprintf(why, cap, "fields signal/timed_out are the parent's");
        return false;
    }
    if ((r->finished != (strcmp(r->stage, "done") == 0)) ||
        (r->created && r->create_skipped) || (r->created && !r->loaded) ||
        (r->conformance_ran && !r->created) || (r->conformance_ok && !r->conformance_ran)) {
        snprintf(why, cap, "fields contradict each other");
        return false;
    }
    return true;
}
