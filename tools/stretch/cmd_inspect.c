/*
 * tools/stretch/cmd_inspect.c - `stretch inspect [--json] [--no-check]
 * [--path DIR]... TARGET`, like gst-inspect: what the manifest declares
 * (read without running plugin code), then a load check in a child process.
 * TARGET is a plugin name ("greedy" or "sampler/greedy"), a plugin.yaml, or
 * a plugin library (its plugin.yaml is looked for beside it).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_common.h"
#include "commands.h"

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: stretch inspect [--json] [--check|--no-check] [--path DIR]... "
               "NAME|KIND/NAME|plugin.yaml|library.so\n"
               "  --json      print a JSON document\n"
               "  --check     load-check and run the conformance suite (the default)\n"
               "  --no-check  only read the manifest (never run plugin code)\n"
               "  --model F   a GGUF model backing the metadata services during the\n"
               "              load check (plugins that require a model need it)\n"
               "  --path DIR  search DIR first when TARGET is a name (repeatable)\n");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Whether TARGET is a path rather than NAME or KIND/NAME: it starts with
 * '/' or '.', or has a '/' after something that is not a plugin kind. */
static bool looks_like_path(const char *target)
{
    if (target[0] == '/' || target[0] == '.')
        return true;
    const char *slash = strchr(target, '/');
    if (!slash)
        return false;
    char kind[64];
    if ((size_t)(slash - target) >= sizeof kind || strchr(slash + 1, '/'))
        return true;
    memcpy(kind, target, (size_t)(slash - target));
    kind[slash - target] = '\0';
    return st_kind_from_name(kind) == 0;
}

/* "<dir of target>/plugin.yaml" (malloc'd), NULL on allocation failure. */
static char *yaml_beside(const char *target)
{
    const char *slash = strrchr(target, '/');
    int dir_len = slash ? (int)(slash - target) : 1;
    const char *dir = slash ? target : ".";
    size_t cap = (size_t)dir_len + sizeof "/plugin.yaml";
    char *yaml = malloc(cap);
    if (yaml)
        snprintf(yaml, cap, "%.*s/plugin.yaml", slash && dir_len == 0 ? 0 : dir_len, dir);
    return yaml;
}

/* Find the plugin TARGET names; prints one error line and sets *code when
 * there is none usable. */
static const st_plugin_info *resolve(st_plugins *reg, const char *target, int *code)
{
    st_error err = {0};
    const st_plugin_info *rec = NULL;
    if (ends_with(target, ".yaml") || ends_with(target, ".yml")) {
        if (st_plugins_add_manifest(reg, target, &rec, &err) != ST_OK) {
            st_cli_error(err.message);
            *code = ST_EXIT_MANIFEST;
            return NULL;
        }
        return rec;
    }
    if (ends_with(target, ".so") || (strchr(target, '/') && st_cli_is_file(target))) {
        char *yaml = yaml_beside(target);
        if (!yaml) {
            fprintf(stderr, "stretch: out of memory\n");
            *code = ST_EXIT_RUNTIME;
            return NULL;
        }
        if (!st_cli_is_file(yaml)) {
            fprintf(stderr, "stretch: %s: no plugin.yaml beside this library (looked for %s)\n",
                    st_cli_safe(target), st_cli_safe(yaml));
            free(yaml);
            *code = ST_EXIT_MANIFEST;
            return NULL;
        }
        st_status st = st_plugins_add_manifest(reg, yaml, &rec, &err);
        free(yaml);
        if (st != ST_OK) {
            st_cli_error(err.message);
            *code = ST_EXIT_MANIFEST;
            return NULL;
        }
        char want[PATH_MAX], have[PATH_MAX];
        bool same = realpath(target, want) && realpath(rec->library_path, have) &&
                    strcmp(want, have) == 0;
        if (!same) {
            fprintf(stderr, "stretch: %s: the plugin.yaml beside it names another "
                            "library (%s)\n", st_cli_safe(target),
                    st_cli_safe(rec->library_path));
            *code = ST_EXIT_MANIFEST;
            return NULL;
        }
        return rec;
    }
    /* A name, optionally "kind/name". */
    st_kind kind = 0;
    const char *name = target;
    const char *slash = strchr(target, '/');
    char kind_buf[64];
    if (slash && (size_t)(slash - target) < sizeof kind_buf) {
        memcpy(kind_buf, target, (size_t)(slash - target));
        kind_buf[slash - target] = '\0';
        kind = st_kind_from_name(kind_buf);
        if (!kind) {
            fprintf(stderr, "stretch: %s: no such file or directory, and '%s' is not a "
                            "plugin kind (tokenizer, positional-encoding, attention, "
                            "sampler, retriever)\n",
                    st_cli_safe(target), st_cli_safe(kind_buf));
            *code = ST_EXIT_USAGE;
            return NULL;
        }
        name = slash + 1;
    }
    if (st_plugins_find(reg, kind, name, &rec, &err) != ST_OK) {
        st_cli_error(err.message);
        *code = ST_EXIT_MANIFEST;
        return NULL;
    }
    return rec;
}

static void print_list(const char *label, const char *const *items, size_t n)
{
    printf("  %-12s ", label);
    if (n == 0)
        printf("(none)");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", st_cli_safe(items[i]));
    printf("\n");
}

static void json_list(st_json *j, const char *const *items, size_t n)
{
    st_json_begin_array(j);
    for (size_t i = 0; i < n; i++)
        st_json_string(j, items[i]);
    st_json_end_array(j);
}

/* What became of create(): a crash in destroy or in the conformance suite
 * came after create() had returned, and must not read as a failed create. */
static const char *create_text(const st_check_report *r)
{
    if (r->created)
        return "ok (default parameters)";
    if (r->create_skipped)
        return "not run: ";
    if (r->model_failed)
        return "not tried (the model could not be opened)";
    if (r->stage && strcmp(r->stage, "destroy") == 0)
        return "ok, then destroy failed";
    if (r->stage && strcmp(r->stage, "create") != 0 && strcmp(r->stage, "done") != 0)
        return "not reached";
    return "failed";
}

static void print_report(const st_check_report *r)
{
    char buf[16];
    printf("\nLoad check (in a child process):\n");
    printf("  %-12s plugin %s, host %d.%d\n", "ABI:", st_cli_abi_text(r, buf, sizeof buf),
           ST_ABI_MAJOR, ST_ABI_MINOR);
    if (r->entry_version[0])
        printf("  %-12s %s\n", "Entry:", st_cli_safe(r->entry_version));
    if (r->loaded && r->n_ops) {
        printf("  %-12s ", "Ops:");
        for (size_t i = 0; i < r->n_ops; i++)
            printf("%s%s %s%s", i ? ", " : "", r->ops[i]->name, r->ops[i]->present ? "yes" : "no",
                   r->ops[i]->required ? "" : " (optional)");
        printf("\n");
        printf("  %-12s %s%s\n", "Create:", create_text(r),
               r->create_skipped ? r->skip_reason : "");
    }
    if (r->conformance_ran) {
        printf("  %-12s %s\n", "Conformance:", r->conformance_ok ? "passed" : "FAILED");
        for (const char *line = r->conformance_summary; *line;) {
            size_t n = strcspn(line, "\n");
            char *one = strndup(line, n);
            printf("    %s\n", one ? st_cli_safe(one) : "?");
            free(one);
            line += n + (line[n] == '\n');
        }
    }
    printf("  %-12s %s\n", "Result:", st_cli_safe(r->result));
}

int st_cmd_inspect(int argc, char **argv)
{
    bool json = false, check = true;
    const char *target = NULL, *model = NULL;
    st_strlist dirs = {0};
    int code = ST_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--no-check") == 0) {
            check = false;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = true; /* the default, accepted so scripts can say so */
        } else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
            if (st_strlist_push(&dirs, argv[++i]) != 0)
                code = ST_EXIT_RUNTIME;
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            inspect_usage(stdout);
            st_strlist_free(&dirs);
            return ST_EXIT_OK;
        } else if (argv[i][0] == '-' || target) {
            fprintf(stderr, "stretch inspect: unexpected argument '%s'\n", argv[i]);
            code = ST_EXIT_USAGE;
        } else {
            target = argv[i];
        }
    }
    if (code == ST_EXIT_OK && !target) {
        fprintf(stderr, "stretch inspect: which plugin? give a name, a plugin.yaml "
                        "or a library\n");
        code = ST_EXIT_USAGE;
    }
    if (code != ST_EXIT_OK) {
        if (code == ST_EXIT_USAGE)
            inspect_usage(stderr);
        st_strlist_free(&dirs);
        return code;
    }
    /* A plugin's directory (plugins/sampler/top-k, ., /opt/p) stands for
     * its plugin.yaml; without one it is named as a directory. NAME and
     * KIND/NAME stay names even where such a directory is at hand. */
    char dir_yaml[PATH_MAX];
    struct stat sb;
    if (looks_like_path(target) && stat(target, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        int w = snprintf(dir_yaml, sizeof dir_yaml, "%s/plugin.yaml", target);
        if (w < 0 || (size_t)w >= sizeof dir_yaml || !st_cli_is_file(dir_yaml)) {
            fprintf(stderr, "stretch: %s: a directory with no plugin.yaml; give a plugin's "
                            "name (NAME or KIND/NAME), its plugin.yaml or its library\n",
                    st_cli_safe(target));
            st_strlist_free(&dirs);
            return ST_EXIT_MANIFEST;
        }
        target = dir_yaml;
    }
    bool by_name = !(ends_with(target, ".yaml") || ends_with(target, ".yml") ||
                     ends_with(target, ".so") || (strchr(target, '/') && st_cli_is_file(target)));
    st_plugins *reg = NULL;
    if (by_name) {
        reg = st_cli_registry(dirs.items, dirs.n, &code);
    } else {
        st_error err = {0};
        if (st_plugins_open(NULL, 0, ST_PLUGINS_NO_SCAN, &reg, &err) != ST_OK) {
            st_cli_error(err.message);
            code = ST_EXIT_RUNTIME;
        }
    }
    st_strlist_free(&dirs);
    if (!reg)
        return code;
    const st_plugin_info *m = resolve(reg, target, &code);
    if (!m) {
        st_plugins_free(reg);
        return code;
    }
    st_check_report *rep = NULL;
    if (check) {
        st_error err = {0};
        st_check_options o = {.struct_size = sizeof o, .conformance = true, .model = model};
        if (st_plugin_check(reg, m, &o, &rep, &err) != ST_OK) {
            st_cli_error(err.message);
            st_plugins_free(reg);
            return ST_EXIT_RUNTIME;
        }
    }

    if (json) {
        st_json j;
        st_json_init(&j, stdout, true);
        st_json_begin_object(&j);
        st_json_key(&j, "name");
        st_json_string(&j, m->name);
        st_json_key(&j, "kind");
        st_json_string(&j, st_kind_name(m->kind));
        st_json_key(&j, "version");
        st_json_string(&j, m->version);
        st_json_key(&j, "summary");
        st_json_string(&j, m->summary);
        st_json_key(&j, "manifest");
        st_json_string(&j, m->manifest_path);
        st_json_key(&j, "library");
        st_json_string(&j, m->library_path);
        st_json_key(&j, "status");
        st_json_string(&j, m->state == ST_PLUGIN_SHADOWED ? "shadowed" : "ok");
        st_json_key(&j, "requires");
        json_list(&j, m->requires, m->n_requires);
        st_json_key(&j, "optional");
        json_list(&j, m->optional, m->n_optional);
        st_json_key(&j, "params");
        st_cli_params_json(&j, m);
        st_json_key(&j, "load");
        if (rep)
            st_cli_report_json(&j, rep);
        else
            st_json_null(&j);
        st_json_end_object(&j);
        st_json_end(&j);
    } else {
        /* Everything but the kind comes from files: escaped, so a summary
         * cannot move the cursor or fake a line. */
        printf("Plugin: %s\n", st_cli_safe(m->name));
        printf("  %-12s %s\n", "Kind:", st_kind_name(m->kind));
        printf("  %-12s %s\n", "Version:", m->version ? st_cli_safe(m->version) : "-");
        printf("  %-12s %s\n", "Summary:", m->summary ? st_cli_safe(m->summary) : "-");
        printf("  %-12s %s\n", "Manifest:", st_cli_safe(m->manifest_path));
        printf("  %-12s %s\n", "Library:", st_cli_safe(m->library_path));
        if (m->state == ST_PLUGIN_SHADOWED)
            printf("  %-12s %s\n", "Note:", m->reason);
        print_list("Requires:", m->requires, m->n_requires);
        print_list("Optional:", m->optional, m->n_optional);
        printf("\nParameters:\n");
        st_cli_params_text(stdout, m, "  ");
        if (rep)
            print_report(rep);
    }
    if (rep && !rep->ok) {
        if (rep->conformance_ran && rep->created) {
            /* The first failed check, on the same one line. */
            size_t n = strcspn(rep->conformance_summary, "\n");
            char *first = strndup(rep->conformance_summary, n);
            fprintf(stderr, "stretch: %s: conformance failed: %s\n",
                    st_cli_safe(m->library_path), first ? st_cli_safe(first) : "?");
            free(first);
        } else {
            fprintf(stderr, "stretch: %s\n", st_cli_safe(rep->result));
        }
        code = st_cli_report_exit(rep);
    }
    st_check_report_free(rep);
    st_plugins_free(reg);
    return code;
}
