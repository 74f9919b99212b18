/*
 * stretch/registry.h - plugins and strategies as a program sees them:
 * what `stretch plugins`, `stretch inspect` and `stretch check` do, for any
 * host (a GUI, a notebook, a server).
 *
 *   st_plugins_open     scan plugin directories (reads plugin.yaml files,
 *                       never runs plugin code) and list every plugin with
 *                       its metadata, state and parameter schema
 *   st_plugin_check     load-check one plugin, optionally with the
 *                       conformance suite, in a child process
 *   st_strategy_resolve resolve a strategy manifest and report every
 *                       problem with its file:line:col
 *
 * Ownership: every string and struct reachable from a handle or report is
 * the library's and lives until that handle or report is freed; the caller
 * frees handles and reports with their own free function, nothing else.
 * Structs that may grow begin with `struct_size` (the size the library
 * filled in); new fields go at the end, so read a field only when
 * struct_size covers it. Arrays of growable structs are arrays of pointers
 * for that reason.
 *
 * Threading: a handle may be read from any number of threads at once, but
 * calls that change it (st_plugins_add_manifest) need the caller's lock.
 * st_plugin_check and st_strategy_resolve with a load check fork a child
 * (see st_plugin_check); call them from one thread at a time per process.
 *
 * Errors: every fallible call returns a status and fills `err` (may be
 * NULL) with one line: the file, line:col or field, and what was expected.
 */
#ifndef STRETCH_REGISTRY_H
#define STRETCH_REGISTRY_H

#include "plugin.h"  /* st_kind_name */
#include "stretch.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A plugin's state in a listing. */
typedef enum st_plugin_state {
    ST_PLUGIN_OK,        /* manifest parsed; not loaded yet or load passed */
    ST_PLUGIN_BROKEN,    /* manifest failed to parse: see reason */
    ST_PLUGIN_SHADOWED,  /* an earlier plugin has the same kind and name */
    ST_PLUGIN_REFUSED    /* loading failed: see refusal and reason */
} st_plugin_state;

/* Why a load was refused: every case distinct. */
typedef enum st_refusal {
    ST_REFUSE_NONE = 0,
    ST_REFUSE_MISSING_FILE,    /* the library file does not exist */
    ST_REFUSE_PATH_ESCAPE,     /* library: resolves outside the plugin dir */
    ST_REFUSE_NOT_A_PLUGIN,    /* dlopen failed: not a shared object / truncated */
    ST_REFUSE_DEPENDENCY,      /* dlopen failed on a missing dependency */
    ST_REFUSE_MISSING_SYMBOL,  /* no stretch_plugin_entry */
    ST_REFUSE_ABI,             /* ABI major differs or minor is newer */
    ST_REFUSE_MISMATCH,        /* kind or name differs from plugin.yaml */
    ST_REFUSE_BAD_ENTRY,       /* entry incomplete (NULL create/ops, short struct) */
    ST_REFUSE_CREATE_FAILED    /* create() returned an error */
} st_refusal;

/* "ok", "broken", "shadowed", "refused"; "?" for anything else. */
ST_API const char *st_plugin_state_name(st_plugin_state s);
/* "none", "missing-file", "abi-mismatch", ...; static strings. */
ST_API const char *st_refusal_name(st_refusal r);
/* "tokenizer" -> ST_KIND_TOKENIZER ...; 0 when unknown or NULL. */
ST_API st_kind st_kind_from_name(const char *name);
/* "int", "float", "bool", "string", "enum". */
ST_API const char *st_param_type_name(st_param_type t);
/* The built-in plugin directory beside libstretch (or the executable it is
 * linked into), NULL when there is none. Static storage. */
ST_API const char *st_builtin_plugin_dir(void);
/* The library whose constructors or create() run in this process right
 * now, else NULL: a plugin that ends the process from there (exit(),
 * abort()) leaves it set, so an atexit or signal hook can name it. Reads
 * one pointer: safe in a signal handler. */
ST_API const char *st_plugin_loading(void);
/* The plugin call the engine is making on this thread right now (since
 * 1.3): true with its kind, name and op ("apply", "plan", ...) when a
 * plugin's code runs, false otherwise. Reads thread-local pointers and
 * allocates nothing: a SIGSEGV handler uses it to name the plugin that
 * crashed. Strings are static or live as long as the engine. */
ST_API bool st_plugin_in_call(st_kind *kind, const char **name, const char **op);
/* `s` made safe to print on a terminal (a summary or a plugin's message may
 * hold ESC, CR or LF): C0/C1 controls and bytes that are not UTF-8 become
 * \n, \t, \xHH. Writes at most `cap` bytes (always terminated when cap > 0,
 * truncated between characters) and returns the size the whole result
 * needs, terminator included. NULL `s` is "". */
ST_API size_t st_text_safe(const char *s, char *out, size_t cap);

/* One parameter of a plugin's schema (plugin.yaml `params:`). */
typedef struct st_param_info {
    uint32_t struct_size;
    const char *name;
    st_param_type type;
    bool required;             /* no default: the strategy must give it */
    bool has_default;
    /* The default, in the field of its type (int defaults of a float
     * parameter are promoted to default_float). */
    int64_t default_int;       /* ST_PARAM_INT */
    double default_float;      /* ST_PARAM_FLOAT */
    bool default_bool;         /* ST_PARAM_BOOL */
    const char *default_string;/* ST_PARAM_STRING, ST_PARAM_ENUM; else NULL */
    bool has_min, has_max;     /* numeric types; inclusive */
    double min, max;
    const char *const *enum_values; /* ST_PARAM_ENUM: [n_enum] */
    size_t n_enum;
    const char *unit;          /* NULL when none */
    const char *doc;           /* NULL when none */
} st_param_info;

/* One plugin found by a scan or added by path. For a BROKEN plugin only
 * manifest_path, state, reason and reason_status are set (the rest NULL/0). */
typedef struct st_plugin_info {
    uint32_t struct_size;
    const char *manifest_path;  /* the plugin.yaml as found */
    st_plugin_state state;
    /* Why it is not OK, one line: for BROKEN "file:line:col: message", for
     * SHADOWED which plugin wins. NULL when OK. */
    const char *reason;
    st_status reason_status;
    const char *name;
    st_kind kind;
    const char *version;
    const char *summary;        /* may be NULL */
    const char *library_path;   /* resolved, inside the manifest's directory */
    const char *const *requires; /* host features it needs ("model", "opencl") */
    size_t n_requires;
    const char *const *optional; /* host features it uses when present */
    size_t n_optional;
    const st_param_info *const *params; /* [n_params], in plugin.yaml order */
    size_t n_params;
} st_plugin_info;

/* A set of plugins: what a scan found, and manifests added by path. */
typedef struct st_plugins st_plugins;

/* Search `dirs` (in order; each must be a directory, else ST_E_NOT_FOUND
 * naming it), then each entry of $STRETCH_PLUGIN_PATH, then the built-in
 * directory, for files named plugin.yaml, recursively. The first plugin of a
 * (kind, name) wins; later ones are SHADOWED; a manifest that fails to parse
 * is BROKEN with its reason. World-writable places are skipped and each
 * directory is read for a bounded number of entries: each such skip is a
 * warning (st_plugins_warning_at). With ST_PLUGINS_NO_SCAN nothing is
 * searched (an empty set for st_plugins_add_manifest). *out is freed with
 * st_plugins_free. */
#define ST_PLUGINS_NO_SCAN 1u
ST_API st_status st_plugins_open(const char *const *dirs, size_t n_dirs, uint32_t flags,
                                 st_plugins **out, st_error *err);
ST_API void st_plugins_free(st_plugins *p);

/* Every plugin in search order, broken and shadowed ones included. */
ST_API size_t st_plugins_count(const st_plugins *p);
ST_API const st_plugin_info *st_plugins_at(const st_plugins *p, size_t i); /* NULL past the end */

/* What the scan skipped and why, one line each ("path: message"); the first
 * few are kept, st_plugins_warnings_dropped counts the rest. */
ST_API size_t st_plugins_warning_count(const st_plugins *p);
ST_API const char *st_plugins_warning_at(const st_plugins *p, size_t i);
ST_API size_t st_plugins_warnings_dropped(const st_plugins *p);

/* The usable plugin of that kind (0 = any kind) and name. ST_E_NOT_FOUND
 * with the directories searched in `err` when there is none. */
ST_API st_status st_plugins_find(const st_plugins *p, st_kind kind, const char *name,
                                 const st_plugin_info **out, st_error *err);
/* Add one plugin.yaml by path (a manifest already in the set is returned as
 * it is). A manifest that fails to parse is added as BROKEN and its status
 * returned, with *out still set and the reason in `err`. Pointers returned
 * earlier stay valid. */
ST_API st_status st_plugins_add_manifest(st_plugins *p, const char *path,
                                         const st_plugin_info **out, st_error *err);

/* Options of a load check. Zero-initialise, set struct_size = sizeof. */
typedef struct st_check_options {
    uint32_t struct_size;
    bool conformance;     /* also run the conformance suite when create passed */
    const char *model;    /* a GGUF backing the model metadata services; NULL =
                             none (a plugin that requires a model is not created) */
    unsigned timeout_s;   /* 0 = $STRETCH_CHECK_TIMEOUT, else 60 */
} st_check_options;

/* One op of the plugin kind's table. */
typedef struct st_op_result {
    const char *name;
    bool present;
    bool required;        /* the header does not mark it optional */
} st_op_result;

/* One conformance check. */
typedef struct st_conformance_result {
    const char *name;     /* "tokenizer.roundtrip_ascii" */
    bool passed;
    const char *message;  /* what was found; "" when fine */
} st_conformance_result;

/* What a load check found. Allocated by the library; free it with
 * st_check_report_free (reports inside a st_strategy_report belong to it). */
typedef struct st_check_report {
    uint32_t struct_size;
    bool ok;              /* loaded, created (or create skipped), conformance
                             passed when it ran */
    /* "ok" | "refused" | "crashed" (signal set) | "hung" (timed_out). */
    const char *outcome;
    /* One line: "ok", "ok (create skipped: ...)", "conformance failed", or
     * the failure ("refused: ...", "...: crashed with SIGSEGV ..."). */
    const char *result;
    bool finished;        /* the child reached the end of the check */
    bool loaded;          /* dlopen and the entry checks passed */
    bool created;         /* create + destroy passed */
    bool create_skipped;  /* not tried: see skip_reason */
    const char *skip_reason; /* "" unless create_skipped */
    bool model_failed;    /* the options' model could not be opened */
    st_refusal refusal;
    st_status status;     /* of the first failure */
    const char *message;  /* that failure in one line; "" when none */
    bool has_abi;         /* abi_major/minor: what the plugin's entry says */
    uint16_t abi_major, abi_minor;
    const char *entry_version; /* the entry's version string; "" if unknown */
    const char *stage;    /* what the child did last: open, create, destroy,
                             conformance, done */
    int signal;           /* the child died of it; 0 = it did not */
    const char *signal_name; /* "SIGSEGV"; NULL when signal is 0 */
    bool timed_out;       /* killed after the timeout */
    const st_op_result *const *ops; /* the kind's ops table; n_ops 0 unless loaded */
    size_t n_ops;
    bool conformance_ran;
    bool conformance_ok;
    /* The suite's own summary: failed checks "FAIL name: message", one a
     * line, then "N checks, F failed, S skipped". "" when it did not run. */
    const char *conformance_summary;
    size_t n_checks_run, n_checks_failed, n_checks_skipped;
    /* The checks the child reported by name: every failed one (the child's
     * report is one pipe write, so passing checks are only counted). */
    const st_conformance_result *const *checks;
    size_t n_checks;
    /* -- ABI 1.3 -- */
    /* Loaded, but create and the conformance suite were not run because a
     * `requires:` feature was unavailable (skip_reason says which, and what
     * to give): outcome "untested", ok false, so a check that proved
     * nothing never reads as a pass. */
    bool untested;
} st_check_report;

/* Load-check `plugin` (from `set`, OK or SHADOWED) in a forked child:
 * dlopen with every ABI check, note which ops it implements, create and
 * destroy an instance with default parameters, optionally run the
 * conformance suite. The child gets a fresh close-on-exec pipe, leads its
 * own process group (killed afterwards, with whatever the plugin forked)
 * and is killed at the timeout; its report is validated (a per-check random
 * token, every field in range) before it is believed. A plugin that crashes,
 * hangs or forges a report yields a report saying so, never a crashed
 * caller. Returns ST_OK when a report was made (read report->ok),
 * ST_E_INVALID when `plugin` is not a loadable plugin of `set`, ST_E_NOMEM.
 * The caller must not have SIGCHLD set to SIG_IGN. */
ST_API st_status st_plugin_check(const st_plugins *set, const st_plugin_info *plugin,
                                 const st_check_options *opts, st_check_report **out,
                                 st_error *err);
ST_API void st_check_report_free(st_check_report *r);

/* Options of a strategy resolution. Zero-initialise, set struct_size. */
typedef struct st_resolve_options {
    uint32_t struct_size;
    /* Searched after the strategy's plugin-dirs (and before
     * $STRETCH_PLUGIN_PATH and the built-in directory). Borrowed. */
    const char *const *plugin_dirs;
    size_t n_plugin_dirs;
    uint32_t flags;       /* ST_RESOLVE_* */
    unsigned timeout_s;   /* per load check; 0 = as st_check_options */
} st_resolve_options;
/* Load-check each chosen plugin in a child (with its validated parameters
 * and the strategy's model). */
#define ST_RESOLVE_LOAD_CHECK 1u
/* Only read the strategy and its extends chain: no plugin lookups. */
#define ST_RESOLVE_PARSE_ONLY 2u
/* With ST_RESOLVE_LOAD_CHECK: run the conformance suite on each plugin too
 * (since 1.3). */
#define ST_RESOLVE_CONFORMANCE 4u

/* Where a problem belongs, for a caller that maps problems to outcomes. */
typedef enum st_problem_kind {
    ST_PROBLEM_MANIFEST = 0, /* the strategy, a plugin it names, parameters, requires */
    ST_PROBLEM_DIR = 1,      /* a directory of the options' plugin_dirs */
    ST_PROBLEM_MODEL = 2,    /* the strategy's model cannot be read */
    ST_PROBLEM_LOAD = 3,     /* a load check failed: see report */
    ST_PROBLEM_RUNTIME = 4   /* the host failed (out of memory, a scan error) */
} st_problem_kind;

typedef struct st_problem {
    uint32_t struct_size;
    st_problem_kind kind;
    st_status status;
    const char *file;     /* NULL when it belongs to no file */
    int line, col;        /* 1-based; 0 = not applicable */
    const char *message;
    const char *text;     /* "file:line:col: message", as one line */
    const st_check_report *report; /* ST_PROBLEM_LOAD: the failed check */
} st_problem;

/* A validated parameter of a chosen plugin (defaults filled). */
typedef struct st_resolved_param {
    const char *name;
    st_param_type type;   /* INT, FLOAT, BOOL or STRING (enum values too) */
    int64_t i;
    double f;
    bool b;
    const char *s;
} st_resolved_param;

/* One plugin a strategy chooses. */
typedef struct st_resolved_plugin {
    uint32_t struct_size;
    st_kind kind;
    const char *name;      /* as the strategy names it */
    const char *file;      /* where it is chosen */
    int line, col;
    const st_plugin_info *plugin; /* NULL when not found */
    bool params_ok;        /* params below are valid */
    const st_resolved_param *const *params; /* [n_params] */
    size_t n_params;
    const st_check_report *load; /* NULL unless load-checked */
} st_resolved_plugin;

/* Everything `stretch check` knows about a strategy. */
typedef struct st_strategy_report {
    uint32_t struct_size;
    bool ok;               /* no problem */
    bool parsed;           /* the strategy itself loaded: the fields below it
                              up to plugins are set */
    const char *path;
    const char *const *files; /* the strategy, then the extends chain */
    size_t n_files;
    const char *model;     /* resolved path or NULL */
    const char *backend;   /* "cpu" by default */
    uint32_t context;
    uint32_t threads;      /* 0 = all cores */
    const char *kv_type;   /* "f16", "q8_0", "f32" */
    const st_resolved_plugin *const *plugins; /* tokenizer, positional-encoding,
                                               attention, samplers in order, retriever */
    size_t n_plugins;
    const st_problem *const *problems; /* every one, in the order found */
    size_t n_problems;
    size_t n_problems_dropped; /* beyond the first 64 */
    const char *const *warnings; /* what the plugin scan skipped */
    size_t n_warnings;
    size_t n_warnings_dropped;
} st_strategy_report;

/* Resolve the strategy at `path` the way st_engine_open would, without
 * opening a model: extends chain, each chosen plugin found (strategy
 * plugin-dirs, options, $STRETCH_PLUGIN_PATH, built-in), its requires met
 * by the strategy's backend and model, its parameters validated, the model
 * readable; every problem is recorded with its file:line:col, not only the
 * first. Returns ST_OK when a report was made, problems or not (read
 * report->ok); ST_E_INVALID for NULL arguments, ST_E_NOMEM. */
ST_API st_status st_strategy_resolve(const char *path, const st_resolve_options *opts,
                                     st_strategy_report **out, st_error *err);
ST_API void st_strategy_report_free(st_strategy_report *r);

#ifdef __cplusplus
}
#endif
#endif
