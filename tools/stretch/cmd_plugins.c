/*
 * tools/stretch/cmd_plugins.c - `stretch plugins [--json] [--check]
 * [--path DIR]...`: every plugin found, broken and shadowed ones included.
 * Listing reads manifests only; --check load-checks each plugin in a child.
 */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"

static void plugins_usage(FILE *f)
{
    fprintf(f, "usage: stretch plugins [--json] [--check] [--path DIR]...\n"
               "  --json      print a JSON document instead of a table\n"
               "  --check     load-check every plugin (in a child process) and show\n"
               "              its ABI and whether it loads\n"
               "  --path DIR  search DIR first (repeatable), then STRETCH_PLUGIN_PATH,\n"
               "              then the built-in plugin directory\n");
}

int st_cmd_plugins(int argc, char **argv)
{
    bool json = false, check = false;
    st_strlist dirs = {0};
    int code = ST_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
            if (st_strlist_push(&dirs, argv[++i]) != 0) {
                st_strlist_free(&dirs);
                return ST_EXIT_RUNTIME;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            plugins_usage(stdout);
            st_strlist_free(&dirs);
            return ST_EXIT_OK;
        } else {
            fprintf(stderr, "stretch plugins: unexpected argument '%s'\n", argv[i]);
            plugins_usage(stderr);
            st_strlist_free(&dirs);
            return ST_EXIT_USAGE;
        }
    }
    st_plugins *reg = st_cli_registry(dirs.items, dirs.n, &code);
    st_strlist_free(&dirs);
    if (!reg)
        return code;

    size_t n = st_plugins_count(reg);
    st_json j;
    st_json_init(&j, stdout, true);
    if (json) {
        st_json_begin_object(&j);
        st_json_key(&j, "plugins");
        st_json_begin_array(&j);
    } else if (n == 0) {
        printf("no plugins found (use --path DIR or set STRETCH_PLUGIN_PATH)\n");
    } else {
        printf("%-20s %-24s %-9s %-5s %-9s %s\n", "KIND", "NAME", "VERSION", "ABI",
               "STATUS", "MANIFEST");
    }
    for (size_t i = 0; i < n; i++) {
        const st_plugin_info *m = st_plugins_at(reg, i);
        bool has = m->state != ST_PLUGIN_BROKEN; /* the manifest parsed */
        const char *status = st_plugin_state_name(m->state);
        const char *reason = m->reason;
        char abi[16] = "-";
        st_check_report *rep = NULL;
        if (check && m->state == ST_PLUGIN_OK) {
            st_error err = {0};
            if (st_plugin_check(reg, m, &(st_check_options){.struct_size = sizeof(st_check_options)},
                                &rep, &err) != ST_OK) {
                fprintf(stderr, "stretch: %s\n", err.message);
                st_plugins_free(reg);
                return ST_EXIT_RUNTIME;
            }
            if (!rep->ok) {
                status = rep->untested ? "untested" : "refused";
                reason = rep->result;
            }
            st_cli_abi_text(rep, abi, sizeof abi);
        }
        if (json) {
            st_json_begin_object(&j);
            st_json_key(&j, "kind");
            st_json_string(&j, has ? st_kind_name(m->kind) : NULL);
            st_json_key(&j, "name");
            st_json_string(&j, m->name);
            st_json_key(&j, "version");
            st_json_string(&j, m->version);
            st_json_key(&j, "abi");
            st_json_string(&j, rep && rep->has_abi ? abi : NULL);
            st_json_key(&j, "summary");
            st_json_string(&j, m->summary);
            st_json_key(&j, "manifest");
            st_json_string(&j, m->manifest_path);
            st_json_key(&j, "library");
            st_json_string(&j, m->library_path);
            st_json_key(&j, "status");
            st_json_string(&j, status);
            st_json_key(&j, "reason");
            st_json_string(&j, reason && reason[0] ? reason : NULL);
            st_json_key(&j, "refusal");
            st_json_string(&j, rep && rep->refusal != ST_REFUSE_NONE
                                   ? st_refusal_name(rep->refusal) : NULL);
            st_json_end_object(&j);
        } else {
            printf("%-20s %-24s %-9s %-5s %-9s %s\n", has ? st_kind_name(m->kind) : "-",
                   has ? st_cli_safe(m->name) : "-", has && m->version ? st_cli_safe(m->version) : "-",
                   abi, status, st_cli_safe(m->manifest_path));
            if (reason && reason[0])
                printf("    %s\n", st_cli_safe(reason));
        }
        st_check_report_free(rep);
    }
    if (json) {
        st_json_end_array(&j);
        st_json_key(&j, "warnings");
        st_json_begin_array(&j);
        for (size_t w = 0; w < st_plugins_warning_count(reg); w++)
            st_json_string(&j, st_plugins_warning_at(reg, w));
        st_json_end_array(&j);
        st_json_end_object(&j);
        st_json_end(&j);
    }
    st_plugins_free(reg);
    return ST_EXIT_OK;
}
