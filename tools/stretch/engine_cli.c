#include "engine_cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"

/* The directory of the running executable, NULL when /proc cannot say. */
static const char *exe_dir(void)
{
    static char dir[2048]; /* room to append to it in a 4096-byte buffer */
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0)
        return NULL;
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return dir;
}

const char *st_cli_default_manifest(const char *given)
{
    static char buf[4096];
    if (given)
        return given;
    const char *env = getenv("STRETCH_MANIFEST");
    if (env && *env)
        return env;
    if (st_cli_is_file("manifests/default.yaml"))
        return "manifests/default.yaml";
    const char *exe = exe_dir();
    /* Build tree: <build>/bin/stretch, sources one level above <build>. */
    if (exe) {
        snprintf(buf, sizeof buf, "%s/../../manifests/default.yaml", exe);
        if (st_cli_is_file(buf))
            return buf;
        snprintf(buf, sizeof buf, "%s/../share/stretch/manifests/default.yaml", exe);
        if (st_cli_is_file(buf))
            return buf;
    }
    fprintf(stderr, "stretch: no strategy manifest given (-m FILE) and no "
                    "manifests/default.yaml found\n");
    return NULL;
}

int st_cli_exit_for(st_status st)
{
    switch (st) {
    case ST_OK: return ST_EXIT_OK;
    case ST_E_INVALID:
    case ST_E_NOT_FOUND:
    case ST_E_RANGE: return ST_EXIT_MANIFEST;
    case ST_E_ABI:
    case ST_E_PLUGIN: return ST_EXIT_LOAD;
    case ST_E_IO:
    case ST_E_FORMAT: return ST_EXIT_MODEL;
    default: return ST_EXIT_RUNTIME;
    }
}

/* A plugin that ends the process from its constructor or create() would
 * otherwise leave `stretch` exiting 0 (exit(0)) or dying silently
 * (abort()): while a library loads, these hooks name it and exit with the
 * load-refused code. Only write() and _exit() here: async-signal-safe. */
static void say_load_died(const char *what)
{
    const char *lib = st_plugin_loading();
    static const char pre[] = "stretch: ";
    static const char post[] = " (a plugin must return an error, never end the process); "
                               "`stretch check` tests it in a child process\n";
    if (write(STDERR_FILENO, pre, sizeof pre - 1) < 0 ||
        write(STDERR_FILENO, lib, strlen(lib)) < 0 ||
        write(STDERR_FILENO, what, strlen(what)) < 0 ||
        write(STDERR_FILENO, post, sizeof post - 1) < 0)
        return;
}

static void exit_during_load(void)
{
    if (!st_plugin_loading())
        return;
    say_load_died(": the plugin ended the process (exit) while it was being loaded");
    _exit(ST_EXIT_LOAD);
}

static void crash_during_load(int sig)
{
    if (st_plugin_loading()) {
        say_load_died(sig == SIGABRT ? ": the plugin aborted while it was being loaded"
                                     : ": the plugin crashed while it was being loaded");
        _exit(ST_EXIT_LOAD);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static const int load_signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE};
#define N_LOAD_SIGNALS (sizeof load_signals / sizeof load_signals[0])

static void put(const char *s)
{
    if (write(STDERR_FILENO, s, strlen(s)) < 0)
        return;
}

/* Once the engine is open, a crash inside a plugin's call names the plugin
 * and the call on stderr, then the process dies of the same signal (its
 * status still says what happened). Only write() and raise() here. */
static void crash_in_plugin(int sig)
{
    st_kind kind = 0;
    const char *name = NULL, *op = NULL;
    if (st_plugin_in_call(&kind, &name, &op)) {
        put("stretch: the ");
        put(st_kind_name(kind));
        put(" plugin '");
        put(name ? name : "?");
        put(sig == SIGABRT ? "' aborted" : "' crashed");
        put(" in its ");
        put(op ? op : "?");
        put(" call (");
        put(sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGILL ? "SIGILL"
            : sig == SIGFPE ? "SIGFPE" : "SIGABRT");
        put("); `stretch inspect NAME` runs its conformance checks in a child process\n");
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void name_plugin_crashes(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_in_plugin;
    sa.sa_flags = SA_RESETHAND;
    for (size_t i = 0; i < N_LOAD_SIGNALS; i++)
        sigaction(load_signals[i], &sa, NULL);
}

/* Run open(manifest, opts, out, err) with the load hooks installed and its
 * failure printed; returns the exit code. */
typedef st_status (*open_fn)(const char *manifest, const st_engine_options *opts,
                             uint32_t flags, void **out, st_error *err);

static int open_guarded(open_fn open, const char *manifest, const st_engine_options *opts,
                        uint32_t flags, void **out)
{
    static bool hooked;
    if (!hooked && atexit(exit_during_load) == 0)
        hooked = true;
    struct sigaction sa, old[N_LOAD_SIGNALS];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_during_load;
    for (size_t i = 0; i < N_LOAD_SIGNALS; i++)
        sigaction(load_signals[i], &sa, &old[i]);
    st_error err;
    memset(&err, 0, sizeof err);
    st_status st = open(manifest, opts, flags, out, &err);
    for (size_t i = 0; i < N_LOAD_SIGNALS; i++)
        sigaction(load_signals[i], &old[i], NULL);
    if (st == ST_OK) {
        name_plugin_crashes();
        return 0;
    }
    fprintf(stderr, "stretch: %s\n", st_cli_safe(err.message)); /* may quote a plugin */
    if (strstr(err.message, ".gguf") && (strstr(err.message, "No such file") ||
                                         strstr(err.message, "cannot open")))
        fprintf(stderr, "stretch: hint: tools/fetch_model.sh downloads the default model into "
                        "the checkout's models/ (where the stock strategies look, also from the "
                        "build tree); --dest DIR puts it elsewhere, such as an installed "
                        "share/stretch/models; --model FILE runs another GGUF\n");
    return st_cli_exit_for(st);
}

static st_status engine_open(const char *manifest, const st_engine_options *opts,
                             uint32_t flags, void **out, st_error *err)
{
    (void)flags;
    st_engine *e = NULL;
    st_status st = st_engine_open(manifest, opts, &e, err);
    *out = e;
    return st;
}

static st_status retriever_open(const char *manifest, const st_engine_options *opts,
                                uint32_t flags, void **out, st_error *err)
{
    st_retriever *r = NULL;
    st_status st = st_retriever_open(manifest, opts, flags, &r, err);
    *out = r;
    return st;
}

bool st_cli_is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool yes = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (f)
        fclose(f);
    return yes;
}

int st_cli_open_engine(const char *manifest, const st_engine_options *opts, st_engine **out)
{
    *out = NULL;
    /* llama.cpp's -m names the model: a GGUF given for the manifest runs
     * with the default strategy, as if given to --model. */
    st_engine_options with_model;
    if (st_cli_is_gguf(manifest)) {
        if (opts && opts->model) {
            fprintf(stderr, "stretch: %s is a GGUF model, and --model gives another (%s): -m "
                            "takes a strategy manifest, or a model to run with the default "
                            "strategy\n", st_cli_safe(manifest), st_cli_safe(opts->model));
            return ST_EXIT_USAGE;
        }
        const char *strategy = st_cli_default_manifest(NULL);
        if (!strategy)
            return ST_EXIT_USAGE;
        if (opts)
            with_model = *opts;
        else
            with_model = (st_engine_options){.struct_size = sizeof with_model};
        with_model.model = manifest;
        manifest = strategy;
        opts = &with_model;
    }
    void *e = NULL;
    int rc = open_guarded(engine_open, manifest, opts, 0, &e);
    *out = e;
    return rc;
}

int st_cli_open_retriever(const char *manifest, uint32_t flags, st_retriever **out)
{
    void *r = NULL;
    int rc = open_guarded(retriever_open, manifest, NULL, flags, &r);
    *out = r;
    return rc;
}

int st_cli_open_ranker(const char *manifest, uint32_t flags, st_retriever **out,
                       st_engine **engine)
{
    *engine = NULL;
    int rc = st_cli_open_retriever(manifest, flags, out);
    if (rc || st_retriever_rerank(*out) == 0)
        return rc;
    /* Re-ranking scores with the strategy's model: the engine's retriever. */
    st_retriever_close(*out);
    *out = NULL;
    if ((rc = st_cli_open_engine(manifest, NULL, engine)) != 0)
        return rc;
    *out = st_engine_retriever(*engine);
    return 0;
}

void st_cli_close_ranker(st_retriever *r, st_engine *engine)
{
    if (engine)
        st_engine_close(engine);
    else
        st_retriever_close(r);
}

static st_engine *volatile sigint_engine;

static void on_sigint(int sig)
{
    (void)sig;
    if (sigint_engine)
        st_engine_cancel(sigint_engine);
}

const char *st_cli_stopped_by(const st_generate_stats *s, bool by_stop_text, bool cancelled)
{
    return by_stop_text            ? "stop"
           : s->stopped_by_eos     ? "eos"
           : s->stopped_by_context ? "context"
           : cancelled             ? "cancelled"
                                   : "max_tokens";
}

void st_cli_print_stats(const st_generate_stats *s, bool cancelled)
{
    fprintf(stderr, "stretch: %u prompt tokens (%u from the cache) at %.1f tok/s, %u generated "
                    "at %.1f tok/s%s\n",
            s->n_prompt, s->n_cached,
            s->prefill_s > 0 ? (s->n_prompt - s->n_cached) / s->prefill_s : 0.0, s->n_generated,
            s->decode_s > 0 && s->n_generated > 1 ? (s->n_generated - 1) / s->decode_s : 0.0,
            cancelled ? ", stopped" : "");
}

void st_cli_cancel_on_sigint(st_engine *e)
{
    sigint_engine = e;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = e ? on_sigint : SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
}

long long st_cli_parse_count(const char *flag, const char *value, long long max)
{
    return st_cli_parse_range(flag, value, 0, max);
}

long long st_cli_parse_range(const char *flag, const char *value, long long min,
                             long long max)
{
    if (!value) {
        fprintf(stderr, "stretch: %s needs a value\n", flag);
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max) {
        fprintf(stderr, "stretch: %s: expected an integer from %lld to %lld, found '%s'\n",
                flag, min, max, value);
        return -1;
    }
    return v;
}

int st_cli_engine_option(const char *cmd, int argc, char **argv, int *i,
                         st_engine_options *opts)
{
    const char *a = argv[*i], *next = *i + 1 < argc ? argv[*i + 1] : NULL;
    long long v;
    /* With llama.cpp's spellings: -t, -c and --ctx-size. */
    if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
        if ((v = st_cli_parse_count(a, next, 1024)) < 0)
            return -1;
        opts->n_threads = (uint32_t)v;
    } else if (!strcmp(a, "--context") || !strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
        if ((v = st_cli_parse_range(a, next, ST_CONTEXT_MIN, ST_CONTEXT_MAX)) < 0)
            return -1;
        opts->context = (uint32_t)v;
    } else if (!strcmp(a, "--model") && next) {
        opts->model = next; /* this GGUF, not the manifest's */
    } else {
        return st_cli_backend_option(cmd, argc, argv, i, opts);
    }
    ++*i;
    return 1;
}

FILE *st_cli_input_open(const char *path, char *why, size_t why_size)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    struct stat sb;
    if (!f)
        snprintf(why, why_size, "%s", strerror(errno));
    else if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(why, why_size, "expected a file, found a directory");
        st_cli_input_close(f);
        f = NULL;
    }
    return f;
}

void st_cli_input_close(FILE *f)
{
    if (f && f != stdin)
        fclose(f);
}

const char *st_cli_input_name(const char *path)
{
    return strcmp(path, "-") == 0 ? "standard input" : st_cli_safe(path);
}

char *st_cli_read_file(const char *path, size_t *len)
{
    const char *name = st_cli_input_name(path);
    char why[128];
    FILE *f = st_cli_input_open(path, why, sizeof why);
    if (!f) {
        fprintf(stderr, "stretch: %s: %s\n", name, why);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    errno = 0;
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *grown = realloc(buf, cap * 2 + 1);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int read_errno = errno;
    bool failed = ferror(f);
    st_cli_input_close(f);
    if (!buf || failed) {
        free(buf);
        fprintf(stderr, "stretch: %s: %s\n", name,
                !failed ? "out of memory" : read_errno ? strerror(read_errno) : "read error");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

char *st_cli_json_string_decode(const char *s, size_t len, size_t *out_len)
{
    while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
        len--;
    if (len < 2 || s[0] != '"' || s[len - 1] != '"')
        return NULL;
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t w = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        char c = s[i];
        if (c != '\\') {
            if ((unsigned char)c < 0x20 || c == '"')
                goto bad;
            out[w++] = c;
            continue;
        }
        if (++i + 1 > len - 1)
            goto bad;
        switch (s[i]) {
        case '"': out[w++] = '"'; break;
        case '\\': out[w++] = '\\'; break;
        case '/': out[w++] = '/'; break;
        case 'b': out[w++] = '\b'; break;
        case 'f': out[w++] = '\f'; break;
        case 'n': out[w++] = '\n'; break;
        case 'r': out[w++] = '\r'; break;
        case 't': out[w++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (i + 4 >= len || hex4(s + i + 1, &cp))
                goto bad;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < len && s[i + 1] == '\\' &&
                s[i + 2] == 'u' && hex4(s + i + 3, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            } else if (cp >= 0xD800 && cp <= 0xDFFF) {
                cp = 0xFFFD; /* a lone surrogate has no UTF-8 form */
            }
            w += put_utf8(out + w, cp);
            break;
        }
        default: goto bad;
        }
    }
    out[w] = '\0';
    *out_len = w;
    return out;
bad:
    free(out);
    return NULL;
}

const char st_cli_backend_usage[] =
    "  --backend B          cpu, opencl or opencl:PLATFORM:DEVICE (overrides the manifest)\n"
    "  --device D           OpenCL device: an index or a name substring (stretch devices)\n"
    "  --no-kernel-cache    build the OpenCL kernels afresh, without the binary cache\n";

int st_cli_backend_option(const char *cmd, int argc, char **argv, int *i,
                          st_engine_options *opts)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--no-kernel-cache")) {
        opts->no_kernel_cache = true;
        return 1;
    }
    bool backend = !strcmp(a, "--backend"), device = !strcmp(a, "--device");
    if (!backend && !device)
        return 0;
    if (*i + 1 >= argc || !argv[*i + 1][0]) {
        fprintf(stderr, "stretch %s: %s needs a value (%s)\n", cmd, a,
                backend ? "cpu, opencl or opencl:PLATFORM:DEVICE"
                        : "a device index or name substring; see stretch devices");
        return -1;
    }
    if (backend)
        opts->backend = argv[++*i];
    else
        opts->device = argv[++*i];
    return 1;
}
