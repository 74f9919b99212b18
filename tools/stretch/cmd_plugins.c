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

static const char *state_name(st_plugin_state s)
{
    switch (s) {
    case ST_PLUGIN_OK: return "ok";
    case ST_PLUGIN_BROKEN: return "broken";
    case ST_PLUGIN_SHADOWED: return "shadowed";
    case ST_PLUGIN_REFUSED: return "refused";
    }
    return "?";
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
    st_registry *reg = st_cli_registry(dirs.items, dirs.n, &code);
    st_strlist_free(&dirs);
    if (!reg)
        return code;

    size_t n = st_registry_count(reg);
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
        const st_plugin_record *rec = st_registry_at(reg, i);
        const st_plugin_manifest *m = rec->manifest;
        const char *status = state_name(rec->state);
        char reason[2400] = "";
        char abi[16] = "-";
        st_load_report rep;
        bool checked = false;
        if (rec->state != ST_PLUGIN_OK) {
            char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 8];
            snprintf(reason, sizeof reason, "%s",
                     rec->state == ST_PLUGIN_SHADOWED
                         ? rec->diag.message
                         : st_diag_format(&rec->diag, line, sizeof line));
        }
        if (check && m && rec->state == ST_PLUGIN_OK) {
            checked = true;
            if (!st_load_check(m, false, NULL, NULL, 0, &rep)) {
                status = "refused";
                st_load_report_reason(&rep, reason, sizeof reason);
            }
            st_cli_abi_text(&rep, abi, sizeof abi);
        }
        if (json) {
            st_json_begin_object(&j);
            st_json_key(&j, "kind");
            st_json_string(&j, m ? st_kind_name(m->kind) : NULL);
            st_json_key(&j, "name");
            st_json_string(&j, m ? m->name : NULL);
            st_json_key(&j, "version");
            st_json_string(&j, m ? m->version : NULL);
            st_json_key(&j, "abi");
            st_json_string(&j, checked && rep.has_abi ? abi : NULL);
            st_json_key(&j, "summary");
            st_json_string(&j, m ? m->summary : NULL);
            st_json_key(&j, "manifest");
            st_json_string(&j, rec->manifest_path);
            st_json_key(&j, "library");
            st_json_string(&j, m ? m->library_path : NULL);
            st_json_key(&j, "status");
            st_json_string(&j, status);
            st_json_key(&j, "reason");
            st_json_string(&j, reason[0] ? reason : NULL);
            st_json_key(&j, "refusal");
            st_json_string(&j, checked && rep.refusal != ST_REFUSE_NONE
                                   ? st_refusal_name(rep.refusal) : NULL);
            st_json_end_object(&j);
        } else {
            printf("%-20s %-24s %-9s %-5s %-9s %s\n", m ? st_kind_name(m->kind) : "-",
                   m ? st_cli_safe(m->name) : "-", m && m->version ? st_cli_safe(m->version) : "-",
                   abi, status, st_cli_safe(rec->manifest_path));
            if (reason[0])
                printf("    %s\n", st_cli_safe(reason));
        }
    }
    if (json) {
        st_json_end_array(&j);
        st_json_key(&j, "warnings");
        st_cli_registry_warnings_json(&j, reg);
        st_json_end_object(&j);
        st_json_end(&j);
    }
    st_registry_free(reg);
    return ST_EXIT_OK;
}
