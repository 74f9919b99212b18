/*
 * tests/bad/libs/fixture.c - one small sampler plugin, compiled once per
 * loader fixture with FIX_* definitions that break it in exactly one way
 * (see tests/loader/CMakeLists.txt). Without any FIX_* it is a correct
 * plugin ("fixture-good": picks the largest logit, lowest id on ties).
 */
#include <stdlib.h>
#include <unistd.h>

#include <stretch/plugin.h>

#if defined(FIX_FORGES_REPORT) || defined(FIX_FORGES_VERDICT) || defined(FIX_CREATE_FORKS)
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#endif
#ifdef FIX_FORGES_VERDICT
#include "load_check.h"
#endif

#ifndef FIX_NAME
#define FIX_NAME "fixture-good"
#endif
#ifndef FIX_KIND
#define FIX_KIND ST_KIND_SAMPLER
#endif
#ifndef FIX_ABI_MAJOR
#define FIX_ABI_MAJOR ST_ABI_MAJOR
#endif
#ifndef FIX_ABI_MINOR
#define FIX_ABI_MINOR ST_ABI_MINOR
#endif
#ifndef FIX_STRUCT_SIZE
#define FIX_STRUCT_SIZE ((uint32_t)sizeof(st_plugin_entry))
#endif
/* The misspelt export name is the no-entry fixture's one mistake. */
#ifdef FIX_NO_ENTRY
#define FIX_ENTRY_SYMBOL stretch_plugin_entry_v1
#else
#define FIX_ENTRY_SYMBOL stretch_plugin_entry
#endif

#ifdef FIX_MISSING_DEP
/* Defined in libst_fixture_gone.so, which lies where the loader will not
 * look (no rpath), so dlopen fails on the dependency. */
int st_fixture_gone(void);
#endif

#if defined(FIX_CTOR_EXITS)
/* Ends the process from dlopen itself, before the loader sees an entry. */
__attribute__((constructor)) static void fixture_ctor(void)
{
    exit(0);
}
#elif defined(FIX_CTOR_ABORTS)
__attribute__((constructor)) static void fixture_ctor(void)
{
    abort();
}
#endif

typedef struct fixture {
    const st_host_services *host;
    int picks;
} fixture;

#if defined(FIX_FORGES_REPORT) || defined(FIX_FORGES_VERDICT)
/* Write `bytes` into every pipe this process holds past stdio: one of them
 * is the load checker's report pipe. */
static void write_to_pipes(const void *bytes, size_t n)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
            (void)!write(fd, bytes, n);
    }
}
#endif

/* unused: the null-create fixture leaves it out of the entry */
__attribute__((unused))
static st_status fixture_create(const st_host_services *host, const st_params *params,
                                void **inst, st_error *err)
{
    (void)params;
#if defined(FIX_CREATE_FAILS)
    (void)inst;
    return host->error(err, ST_E_INVALID, "fixture refuses on purpose: margin must be > 0");
#elif defined(FIX_CREATE_HANGS)
    (void)host; (void)inst; (void)err;
    volatile int forever = 1;
    while (forever)
        pause(); /* never returns: the checker must kill it after its timeout */
    return ST_E_INTERNAL;
#elif defined(FIX_FORGES_REPORT)
    /* Unterminated strings and bools of 0x41, then "success". */
    (void)host; (void)inst; (void)err;
    static char junk[8192];
    memset(junk, 'A', sizeof junk);
    write_to_pipes(junk, sizeof junk);
    _exit(0);
#elif defined(FIX_FORGES_VERDICT)
    /* A well-formed report saying all passed, but without the checker's token. */
    (void)host; (void)inst; (void)err;
    st_load_report r;
    memset(&r, 0, sizeof r);
    r.finished = r.loaded = r.created = r.conformance_ran = r.conformance_ok = true;
    r.has_abi = true;
    r.abi_major = ST_ABI_MAJOR;
    r.abi_minor = ST_ABI_MINOR;
    snprintf(r.stage, sizeof r.stage, "done");
    snprintf(r.conformance, sizeof r.conformance, "1 checks, 0 failed, 0 skipped");
    write_to_pipes(&r, sizeof r);
    _exit(0);
#elif defined(FIX_CREATE_FORKS)
    /* A helper process that never ends, holding every inherited descriptor
     * (the checker's pipe too); its pid goes to $ST_FIXTURE_PID_FILE. */
    pid_t helper = fork();
    if (helper == 0) {
        volatile int forever = 1;
        while (forever)
            pause();
        _exit(0);
    }
    const char *pid_file = getenv("ST_FIXTURE_PID_FILE");
    if (helper > 0 && pid_file) {
        int fd = open(pid_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        char line[32];
        int n = snprintf(line, sizeof line, "%ld\n", (long)helper);
        if (fd >= 0) {
            (void)!write(fd, line, (size_t)n);
            close(fd);
        }
    }
    fixture *f = host->calloc(host->host, 1, sizeof *f);
    if (!f)
        return host->error(err, ST_E_NOMEM, "out of memory");
    f->host = host;
    *inst = f;
    return ST_OK;
#elif defined(FIX_CREATE_ABORTS)
    (void)host; (void)inst; (void)err;
    abort(); /* a plugin must never do this: the checker must survive it */
#else
#ifdef FIX_MISSING_DEP
    if (st_fixture_gone() != 42)
        return host->error(err, ST_E_INTERNAL, "dependency misbehaved");
#endif
    fixture *f = host->calloc(host->host, 1, sizeof *f);
    if (!f)
        return host->error(err, ST_E_NOMEM, "out of memory");
    f->host = host;
    *inst = f;
    return ST_OK;
#endif
}

static void fixture_destroy(void *inst)
{
#ifdef FIX_DESTROY_CRASHES
    /* After a good create: the report must not blame create. abort(), not
     * a SIGSEGV, so the sanitizer build sees an intended crash, not a bug. */
    abort();
#endif
    fixture *f = inst;
    if (f)
        f->host->free(f->host->host, f);
}

static st_status fixture_apply(void *inst, st_candidates *c, st_error *err)
{
    (void)err;
#ifdef FIX_APPLY_CRASHES
    abort(); /* mid-run: `stretch run` must name this plugin and op */
#endif
    size_t best = 0;
    for (size_t i = 1; i < c->size; i++)
        if (c->data[i].logit > c->data[best].logit ||
            (c->data[i].logit == c->data[best].logit && c->data[i].id < c->data[best].id))
            best = i;
    c->selected = c->size ? (int64_t)best : -1;
    ((fixture *)inst)->picks++;
    return ST_OK;
}

static void fixture_reset(void *inst, uint64_t seed)
{
    (void)seed;
    ((fixture *)inst)->picks = 0;
}

static const st_sampler_ops fixture_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = fixture_apply,
    .reset = fixture_reset,
};

ST_EXPORT const st_plugin_entry FIX_ENTRY_SYMBOL = {
    FIX_ABI_MAJOR, FIX_ABI_MINOR, FIX_STRUCT_SIZE, FIX_KIND, FIX_NAME, "0.0.1",
    "loader test fixture",
#ifdef FIX_NULL_CREATE
    NULL,
#else
    fixture_create,
#endif
    fixture_destroy, &fixture_ops, NULL};
