/*
 * core/plugin/load_check.c - see load_check.h. The parent keeps the last
 * report the child wrote, so a crash during create() still shows what had
 * been learned (ABI, ops) and where it stopped.
 */
#include "load_check.h"
#include "host_features.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"
#include "host_services.h"
#include "plugin_ops.h"

_Static_assert(sizeof(st_load_report) <= 4096, "report must fit PIPE_BUF");

static void emit(int fd, st_load_report *r, const char *stage)
{
    snprintf(r->stage, sizeof r->stage, "%s", stage);
    const char *p = (const char *)r;
    size_t left = sizeof *r;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        left -= (size_t)n;
    }
}

/* After an ABI/mismatch/entry refusal the loader has closed the library;
 * peek at the entry once more (we are in the throwaway child) so the report
 * can show the versions the plugin claims. */
static void peek_abi(const st_plugin_manifest *m, st_load_report *r)
{
    void *h = dlopen(m->library_path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    const st_plugin_entry *e = dlsym(h, ST_PLUGIN_ENTRY_SYMBOL);
    if (e) {
        r->has_abi = true;
        r->abi_major = e->abi_major;
        r->abi_minor = e->abi_minor;
    }
    dlclose(h);
}

/* Run the per-kind suite with the default parameters and keep a summary:
 * the failed checks first (they are what a reader needs), then the count. */
static void run_conformance(const st_plugin_manifest *m, st_library *lib,
                            st_host *host, const st_value *params, st_load_report *r)
{
    st_conformance_report *rep = calloc(1, sizeof *rep);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    st_diag diag;
    if (!rep || st_params_validate(m, params, &sb, &diag) != ST_OK ||
        msgpack_unpack_next(&u, sb.data, sb.size, &off) != MSGPACK_UNPACK_SUCCESS) {
        r->conformance_ran = true;
        snprintf(r->conformance, sizeof r->conformance,
                 "could not prepare default parameters for the suite");
    } else {
        st_status st = st_conformance_run(lib->entry, st_host_services_of(host),
                                          &u.data, rep);
        r->conformance_ran = true;
        r->conformance_ok = st == ST_OK;
        size_t used = 0;
        for (size_t i = 0; i < rep->n_checks && i < ST_CONFORMANCE_MAX_CHECKS; i++) {
            const st_conformance_check *c = &rep->checks[i];
            if (c->passed)
                continue;
            int n = snprintf(r->conformance + used, sizeof r->conformance - used,
                             "FAIL %s: %s\n", c->name, c->message);
            if (n < 0 || (size_t)n >= sizeof r->conformance - used)
                break;
            used += (size_t)n;
        }
        size_t skipped = 0;
        for (size_t i = 0; i < rep->n_checks && i < ST_CONFORMANCE_MAX_CHECKS; i++)
            skipped += rep->checks[i].skipped;
        if (used < sizeof r->conformance)
            snprintf(r->conformance + used, sizeof r->conformance - used,
                     "%zu checks, %zu failed, %zu skipped", rep->n_checks,
                     rep->n_failed, skipped);
        if (st != ST_OK && st != ST_E_PLUGIN && rep->n_failed == 0)
            snprintf(r->conformance, sizeof r->conformance,
                     "the suite could not run (status %d)", (int)st);
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    free(rep);
}

/* The first parameter that has no default, or NULL. */
static const char *required_param(const st_plugin_manifest *m)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i].required || !m->params[i].has_default)
            return m->params[i].name;
    return NULL;
}

static void child_check(const st_plugin_manifest *m, bool conformance, const char *model,
                        const st_value *params, uint64_t token, int fd)
{
    st_load_report r;
    memset(&r, 0, sizeof r);
    r.token = token;
    emit(fd, &r, "open");
    st_library *lib = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    st_status st = st_library_open(m, &lib, &r.refusal, &diag);
    if (st != ST_OK) {
        r.status = st;
        st_diag_format(&diag, r.message, sizeof r.message);
        if (r.refusal == ST_REFUSE_ABI || r.refusal == ST_REFUSE_MISMATCH ||
            r.refusal == ST_REFUSE_BAD_ENTRY)
            peek_abi(m, &r);
        r.finished = true;
        emit(fd, &r, "done");
        return;
    }
    r.loaded = true;
    r.has_abi = true;
    r.abi_major = lib->entry->abi_major;
    r.abi_minor = lib->entry->abi_minor;
    snprintf(r.entry_version, sizeof r.entry_version, "%s",
             lib->entry->version ? lib->entry->version : "");
    const st_ops_info *info = st_ops_info_of(lib->entry->kind);
    for (size_t i = 0; info && i < info->n_ops && i < 32; i++)
        if (st_op_present(info, lib->entry->ops, i))
            r.ops_present |= 1u << i;
    emit(fd, &r, "create");

    st_host *host = st_host_new();
    st_gguf *gguf = NULL;
    if (model && host) {
        if (st_gguf_open(model, &gguf, &diag) != ST_OK) {
            gguf = NULL;
            r.model_failed = true;
            r.status = diag.status;
            st_diag_format(&diag, r.message, sizeof r.message);
            r.finished = true;
            emit(fd, &r, "done");
            st_host_free(host);
            st_library_close(lib);
            return;
        }
        st_host_set_model(host, gguf);
    }
    char need[96];
    const char *req = params ? NULL : required_param(m);
    if (req)
        snprintf(need, sizeof need, "parameter '%s' has no default", req);
    /* The engine's own rule (host_features.c) on what this check can give:
     * the CPU backend, and a model only when --model named one. */
    char unmet[160];
    const char *skip = NULL;
    for (size_t i = 0; !skip && i < m->n_requires; i++) {
        const char *why = st_feature_unavailable(m->requires[i], m->kind, "cpu", gguf != NULL);
        /* The vocabulary comes from the engine's tokenizer plugin, which
         * this check does not open: create runs in an engine only. */
        if (!why && strcmp(m->requires[i], "vocab") == 0)
            why = "only an engine has a tokenizer to give it";
        /* The engine's words ("the strategy names no model") are not this
         * check's: it gets a model only where one was given and readable. */
        if (why && strcmp(m->requires[i], "model") == 0)
            why = "no readable model was given";
        if (why) {
            snprintf(unmet, sizeof unmet, "requires %s: %s%s", m->requires[i], why,
                     strcmp(m->requires[i], "model") == 0
                         ? " (inspect --model FILE; check: the strategy's)"
                         : "");
            skip = unmet;
        }
    }
    /* The engine and the retriever handle run encoders for a retriever
     * (core/engine/encoder.c); this check, below them, has none to give. */
    for (size_t i = 0; !skip && i < m->n_requires; i++)
        if (strcmp(m->requires[i], "encoder") == 0)
            skip = "requires encoder: a load check runs no sentence encoder (the engine and "
                   "`stretch retrieve` do)";
    if (!skip && req)
        skip = need;
    st_instance *in = NULL;
    if (skip) {
        r.create_skipped = true;
        snprintf(r.skip_reason, sizeof r.skip_reason, "%.*s", (int)sizeof r.skip_reason - 1, skip);
        st = ST_OK;
    } else {
        st = host ? st_instance_create(lib, st_host_services_of(host), params, &in, &diag)
                  : st_diag_set(&diag, ST_E_NOMEM, NULL, 0, 0, "out of memory");
    }
    if (skip) {
        /* nothing created */
    } else if (st != ST_OK) {
        r.status = st;
        r.refusal = ST_REFUSE_CREATE_FAILED;
        st_diag_format(&diag, r.message, sizeof r.message);
    } else {
        emit(fd, &r, "destroy");
        st_instance_destroy(in);
        r.created = true;
    }
    if (conformance && r.created) {
        emit(fd, &r, "conformance");
        run_conformance(m, lib, host, params, &r);
    }
    r.finished = true;
    emit(fd, &r, "done");
    st_host_free(host);
    st_gguf_close(gguf);
    st_library_close(lib);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool st_load_report_ok(const st_load_report *r)
{
    return r->finished && r->loaded && (r->created || r->create_skipped) &&
           (!r->conformance_ran || r->conformance_ok);
}

static uint64_t random_token(void)
{
    uint64_t t = 0;
    if (getrandom(&t, sizeof t, GRND_NONBLOCK) != (ssize_t)sizeof t) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        t = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 16);
    }
    return t;
}

/* In the child: lead a process group of our own (the parent kills the
 * whole group), die with the parent, and move the report's pipe to a
 * descriptor at an unpredictable number, so a plugin writing to the first
 * free descriptors hits nothing. Returns the descriptor to write to. */
static int child_setup(pid_t parent, int write_fd, uint64_t token)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    int fd = fcntl(write_fd, F_DUPFD_CLOEXEC, 64 + (int)(token % 512));
    if (fd < 0)
        return write_fd;
    close(write_fd);
    return fd;
}

static void kill_group(pid_t pid)
{
    if (kill(-pid, SIGKILL) != 0)
        kill(pid, SIGKILL);
}

/* Whether the child has exited, without reaping it: while it is a zombie
 * its pid, and so its process group, cannot be reused. */
static bool child_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

bool st_load_check(const st_plugin_manifest *m, bool conformance, const char *model,
                   const st_value *params, unsigned timeout_s, st_load_report *out)
{
    memset(out, 0, sizeof *out);
    if (timeout_s == 0) {
        const char *env = getenv("STRETCH_CHECK_TIMEOUT");
        long v = env ? strtol(env, NULL, 10) : 0;
        timeout_s = v > 0 && v < 86400 ? (unsigned)v : 60;
    }
    uint64_t token = random_token();
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(out->message, sizeof out->message, "cannot create a pipe: %s",
                 strerror(errno));
        out->status = ST_E_IO;
        return false;
    }
    fflush(NULL); /* the child must not flush our buffered output again */
    /* Orphans of the checker become ours while it runs, so what a plugin
     * forked is reaped below, not only signalled. */
    int was_subreaper = 0;
    prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        if (!was_subreaper)
            prctl(PR_SET_CHILD_SUBREAPER, 0);
        snprintf(out->message, sizeof out->message, "cannot fork: %s", strerror(errno));
        out->status = ST_E_IO;
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        int fd = child_setup(parent, fds[1], token);
        child_check(m, conformance, model, params, token, fd);
        close(fd);
        _exit(0);
    }
    setpgid(pid, pid); /* as the child does: whichever runs first */
    close(fds[1]);

    const st_ops_info *info = st_ops_info_of(m->kind);
    size_t n_ops = info ? info->n_ops : 32;
    st_load_report buf;
    size_t have = 0;
    bool exited = false, untrusted = false;
    char why[128] = "";
    double deadline = now_s() + timeout_s;
    for (;;) {
        /* A process the plugin forked may hold the pipe open: the end of
         * the child, not EOF, ends the check (after what it left unread). */
        if (!exited)
            exited = child_exited(pid);
        int wait_ms = exited ? 0 : (int)((deadline - now_s()) * 1000);
        if (!exited && wait_ms <= 0) {
            out->timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&pfd, 1, wait_ms > 100 ? 100 : wait_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            if (exited)
                break;
            continue; /* re-check the child and the deadline */
        }
        ssize_t n = read(fds[0], (char *)&buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EOF: every writer is gone */
        have += (size_t)n;
        if (have == sizeof buf) {
            have = 0;
            if (out->finished) {
                snprintf(why, sizeof why, "more was written after the final report");
                untrusted = true;
                break;
            }
            if (!st_load_report_valid(&buf, token, n_ops, why, sizeof why)) {
                untrusted = true;
                break;
            }
            *out = buf;
        }
    }
    if (!untrusted && have != 0) {
        snprintf(why, sizeof why, "%zu stray bytes after the last report", have);
        untrusted = true;
    }
    close(fds[0]);
    /* Wait for a child that closed the pipe and is still exiting, up to the
     * deadline; then the group goes, with whatever the plugin forked. */
    if (untrusted || out->timed_out)
        kill_group(pid);
    while (!untrusted && !out->timed_out && !child_exited(pid)) {
        if (now_s() >= deadline) {
            out->timed_out = true;
            kill_group(pid);
            break;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    kill_group(pid);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    while (waitpid(-pid, NULL, 0) > 0 || errno == EINTR)
        ; /* the group's orphans, reparented to us */
    if (!was_subreaper)
        prctl(PR_SET_CHILD_SUBREAPER, 0);
    if (untrusted) {
        snprintf(out->message, sizeof out->message,
                 "%s: the load check's report cannot be trusted (%s) after stage %s: "
                 "the plugin wrote into the checker's pipe or corrupted it",
                 m->library_path, why, out->stage[0] ? out->stage : "start");
        out->status = ST_E_PLUGIN;
        out->finished = false;
        out->created = false;
        out->conformance_ok = false;
    } else if (out->timed_out) {
        snprintf(out->message, sizeof out->message,
                 "%s: killed after %u s without finishing (stage: %s)",
                 m->library_path, timeout_s, out->stage[0] ? out->stage : "start");
        out->status = ST_E_PLUGIN;
        out->finished = false;
    } else if (WIFSIGNALED(wstatus) || !out->finished) {
        int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
        out->signal = sig;
        out->finished = false;
        if (sig)
            snprintf(out->message, sizeof out->message,
                     "%s: crashed with SIG%s (%s) during %s", m->library_path,
                     sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", strsignal(sig),
                     out->stage[0] ? out->stage : "start");
        else
            snprintf(out->message, sizeof out->message,
                     "%s: checker exited with status %d during %s", m->library_path,
                     WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
                     out->stage[0] ? out->stage : "start");
        /* `created` stays as the child last reported it: a crash in the
         * conformance suite came after a good create, and the report says
         * so (stage names where it died). */
        out->status = ST_E_PLUGIN;
    }
    return st_load_report_ok(out);
}

const char *st_load_report_reason(const st_load_report *r, char *buf, size_t cap)
{
    if (st_load_report_ok(r) && r->create_skipped)
        snprintf(buf, cap, "untested: loaded, but create and conformance were not run (%s)",
                 r->skip_reason);
    else if (st_load_report_ok(r))
        snprintf(buf, cap, "ok");
    else if (r->finished && r->created && r->conformance_ran)
        snprintf(buf, cap, "conformance failed");
    else /* the message already says refused / crashed / killed, and where */
        snprintf(buf, cap, "%s", r->message);
    return buf;
}
