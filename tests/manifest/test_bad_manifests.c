/* Every file in tests/bad/manifests/ must be refused with the exact
 * line:col and message listed in expected.tsv. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

#define BAD ST_TEST_SOURCE_DIR "/tests/bad/manifests"

typedef struct bad_row {
    char file[128], kind[16], diag_file[128], needle[512];
    int line, col;
} bad_row;

/* Validate each chosen plugin's params against fixtures/<plugin>.yaml. */
static st_status validate_all_params(const st_strategy *s, st_diag *d)
{
    const st_plugin_ref *refs[32];
    size_t n = 0;
    refs[n++] = &s->tokenizer;
    refs[n++] = &s->posenc;
    refs[n++] = &s->attention;
    for (size_t k = 0; k < s->n_samplers && n < 31; k++)
        refs[n++] = &s->samplers[k];
    if (s->retriever.plugin)
        refs[n++] = &s->retriever;
    for (size_t k = 0; k < n; k++) {
        char path[1024];
        snprintf(path, sizeof path, BAD "/fixtures/%s.yaml", refs[k]->plugin);
        st_plugin_manifest *m = NULL;
        st_status st = st_plugin_manifest_load(path, &m, d);
        cr_assert_eq(st, ST_OK, "fixture %s: %s", path, d->message);
        msgpack_sbuffer buf;
        msgpack_sbuffer_init(&buf);
        st = st_params_validate(m, refs[k]->params, &buf, d);
        msgpack_sbuffer_destroy(&buf);
        st_plugin_manifest_free(m);
        if (st != ST_OK)
            return st;
    }
    return ST_OK;
}

static void check_row(const bad_row *r)
{
    char path[1024], want_file[1024], line[2400];
    snprintf(path, sizeof path, BAD "/%s", r->file);
    snprintf(want_file, sizeof want_file, BAD "/%s",
             strcmp(r->diag_file, "=") == 0 ? r->file : r->diag_file);
    st_diag d;
    st_diag_clear(&d);
    st_status st;
    if (strcmp(r->kind, "plugin") == 0) {
        st_plugin_manifest *m = NULL;
        st = st_plugin_manifest_load(path, &m, &d);
        cr_expect_null(m, "%s: nothing half-loads", r->file);
        st_plugin_manifest_free(m);
    } else {
        st_strategy *s = NULL;
        st = st_strategy_load(path, &s, &d);
        if (strcmp(r->kind, "params") == 0) {
            cr_expect_eq(st, ST_OK, "%s: the strategy itself is fine: %s", r->file,
                         st_diag_format(&d, line, sizeof line));
            if (st == ST_OK)
                st = validate_all_params(s, &d);
        } else {
            cr_expect_null(s, "%s: nothing half-loads", r->file);
        }
        st_strategy_free(s);
    }
    st_diag_format(&d, line, sizeof line);
    cr_expect_neq(st, ST_OK, "%s: accepted", r->file);
    cr_expect_eq(d.status, st, "%s: diag status", r->file);
    cr_expect_str_eq(d.file, want_file, "%s: names %s", r->file, d.file);
    cr_expect_eq(d.line, r->line, "%s: line %d, expected %d: %s", r->file, d.line, r->line, line);
    cr_expect_eq(d.col, r->col, "%s: col %d, expected %d: %s", r->file, d.col, r->col, line);
    cr_expect(strstr(d.message, r->needle) != NULL, "%s: '%s' lacks '%s'", r->file, d.message,
              r->needle);
    cr_expect(strchr(line, '\n') == NULL, "%s: one line", r->file);
}

static size_t read_table(bad_row **out)
{
    FILE *f = fopen(BAD "/expected.tsv", "r");
    cr_assert_not_null(f, "cannot open expected.tsv");
    bad_row *rows = NULL;
    size_t n = 0;
    char text[1024];
    while (fgets(text, sizeof text, f)) {
        if (text[0] == '#' || text[0] == '\n')
            continue;
        text[strcspn(text, "\n")] = '\0';
        rows = realloc(rows, (n + 1) * sizeof *rows);
        bad_row *r = &rows[n++];
        memset(r, 0, sizeof *r);
        int got = sscanf(text, "%127[^\t]\t%15[^\t]\t%127[^\t]\t%d\t%d\t%511[^\n]", r->file,
                         r->kind, r->diag_file, &r->line, &r->col, r->needle);
        cr_assert_eq(got, 6, "malformed expected.tsv line: %s", text);
    }
    fclose(f);
    *out = rows;
    return n;
}

Test(manifest_bad, every_broken_manifest_is_refused_where_it_breaks)
{
    bad_row *rows = NULL;
    size_t n = read_table(&rows);
    cr_expect_geq(n, 30);
    for (size_t k = 0; k < n; k++)
        check_row(&rows[k]);

    /* No broken manifest may sit in the folder untested. */
    DIR *dir = opendir(BAD);
    cr_assert_not_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        bool listed = false;
        for (size_t k = 0; k < n && !listed; k++)
            listed = strcmp(rows[k].file, e->d_name) == 0;
        cr_expect(listed, "%s is not in expected.tsv", e->d_name);
    }
    closedir(dir);
    free(rows);
}
