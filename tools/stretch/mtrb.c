/*
 * tools/stretch/mtrb.c - MTRB files (JSON, read with jansson) and its
 * metrics. The gold "relevant IDs" of a query are 0-based positions in the
 * tool list (for RestBench that is not the list's own "ID" field, which
 * starts at 1); each is checked against the tool name the query gives.
 */
#include "mtrb.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "json_error_place.h"

typedef struct mtrb_files {
    const char *name;
    const char *tools;
    const char *queries;
} mtrb_files;

static const mtrb_files datasets[] = {
    {"restbench", "tmdb_tool_rewrite.json", "mtr_restbench_test.json"},
    {"metatool", "ts_metatool_api_list_rewrite.json", "mtr_metatool_test.json"},
};

void st_mtrb_free(st_mtrb *d)
{
    for (size_t i = 0; i < d->n_tools; i++) {
        free(d->tools[i].name);
        free(d->tools[i].description);
        free(d->tools[i].example);
    }
    for (size_t i = 0; i < d->n_queries; i++) {
        free(d->queries[i].text);
        free(d->queries[i].gold);
    }
    free(d->tools);
    free(d->queries);
    memset(d, 0, sizeof *d);
}

static json_t *load_json(const char *dir, const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    /* jansson's line is -1 where the file could not be read at all (its
     * text names the file and says why). */
    if (!root && jerr.line < 1)
        fprintf(stderr, "stretch: %s (docs/datasets.md says where the MTRB files come "
                        "from)\n", st_cli_safe(jerr.text));
    else if (!root)
        fprintf(stderr, "stretch: %s:%d:%d: %s\n", st_cli_safe(path), jerr.line,
                st_json_error_column(&jerr), st_cli_safe(jerr.text));
    return root;
}

static bool bad(const char *path, size_t i, const char *what)
{
    fprintf(stderr, "stretch: %s: entry %zu: expected %s\n", st_cli_safe(path), i, what);
    return false;
}

static bool add_tool(st_mtrb *d, const char *name, const char *description,
                     const char *example)
{
    st_mtrb_tool *t = &d->tools[d->n_tools];
    t->name = strdup(name);
    t->description = strdup(description);
    t->example = example ? strdup(example) : NULL;
    if (!t->name || !t->description || (example && !t->example)) {
        free(t->name);
        free(t->description);
        free(t->example);
        return false;
    }
    d->n_tools++;
    return true;
}

/* RestBench: a list of {"tool_usage", "rewrite_description", ...}; an
 * entry's "Example": {"Scenario": TEXT} is the tool's usage example (a
 * sentence of the tool documentation, not a test query), optional. */
static bool restbench_tools(json_t *root, const char *path, st_mtrb *d)
{
    if (!json_is_array(root))
        return bad(path, 0, "a JSON list of tools");
    d->tools = calloc(json_array_size(root) + 1, sizeof *d->tools);
    if (!d->tools)
        return false;
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *t = json_array_get(root, i);
        const char *usage = json_string_value(json_object_get(t, "tool_usage"));
        const char *desc = json_string_value(json_object_get(t, "rewrite_description"));
        json_t *example = json_object_get(t, "Example");
        json_t *scenario = json_object_get(example, "Scenario");
        if (!usage || !desc)
            return bad(path, i, "an object with strings \"tool_usage\" and "
                                "\"rewrite_description\"");
        if ((example && !json_is_object(example)) || (scenario && !json_is_string(scenario)))
            return bad(path, i, "\"Example\", where present, to be an object whose "
                                "\"Scenario\" is a string");
        if (!add_tool(d, usage, desc, json_string_value(scenario)))
            return false;
    }
    return true;
}

/* MetaTool: one object, tool name -> description, in list order. */
static bool metatool_tools(json_t *root, const char *path, st_mtrb *d)
{
    if (!json_is_object(root))
        return bad(path, 0, "a JSON object of tool name -> description");
    d->tools = calloc(json_object_size(root) + 1, sizeof *d->tools);
    if (!d->tools)
        return false;
    const char *name;
    json_t *v;
    size_t i = 0;
    json_object_foreach(root, name, v) {
        if (!json_is_string(v))
            return bad(path, i, "a string description");
        if (!add_tool(d, name, json_string_value(v), NULL))
            return false;
        i++;
    }
    return true;
}

static bool read_queries(json_t *root, const char *path, st_mtrb *d)
{
    if (!json_is_array(root))
        return bad(path, 0, "a JSON list of queries");
    d->queries = calloc(json_array_size(root) + 1, sizeof *d->queries);
    if (!d->queries)
        return false;
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *q = json_array_get(root, i);
        const char *text = json_string_value(json_object_get(q, "query"));
        json_t *ids = json_object_get(q, "relevant IDs");
        json_t *names = json_object_get(q, "relevant Tools");
        if (!text || !json_is_array(ids) || !json_is_array(names) || !json_array_size(ids) ||
            json_array_size(ids) != json_array_size(names))
            return bad(path, i, "{\"query\": text, \"relevant IDs\": [...], \"relevant "
                                "Tools\": [...]} with as many ids as tools, at least one");
        st_mtrb_query *out = &d->queries[d->n_queries];
        out->text = strdup(text);
        out->gold = calloc(json_array_size(ids), sizeof *out->gold);
        if (!out->text || !out->gold) {
            free(out->text);
            free(out->gold);
            return false;
        }
        d->n_queries++;
        for (size_t g = 0; g < json_array_size(ids); g++) {
            json_t *id = json_array_get(ids, g);
            const char *name = json_string_value(json_array_get(names, g));
            json_int_t at = json_is_integer(id) ? json_integer_value(id) : -1;
            if (at < 0 || (size_t)at >= d->n_tools || !name ||
                strcmp(d->tools[at].name, name) != 0) {
                fprintf(stderr, "stretch: %s: query %zu: relevant ID %lld should be the "
                                "position of tool '%s' in the tool list (0-based), but it %s\n",
                        st_cli_safe(path), i, (long long)at, st_cli_safe(name ? name : "?"),
                        at < 0 || (size_t)at >= d->n_tools ? "is out of range"
                                                           : "names another tool");
                return false;
            }
            out->gold[out->n_gold++] = (size_t)at;
        }
    }
    return true;
}

bool st_mtrb_load(const char *dataset, const char *dir, st_mtrb *out)
{
    memset(out, 0, sizeof *out);
    const mtrb_files *f = NULL;
    for (size_t i = 0; i < sizeof datasets / sizeof datasets[0]; i++)
        if (!strcmp(dataset, datasets[i].name))
            f = &datasets[i];
    if (!f) {
        fprintf(stderr, "stretch: --dataset: expected restbench or metatool, found '%s'\n",
                st_cli_safe(dataset));
        return false;
    }
    char path[4096];
    json_t *tools = load_json(dir, f->tools, path, sizeof path);
    bool ok = tools && (f == &datasets[0] ? restbench_tools(tools, path, out)
                                          : metatool_tools(tools, path, out));
    json_decref(tools);
    json_t *queries = ok ? load_json(dir, f->queries, path, sizeof path) : NULL;
    ok = ok && queries && read_queries(queries, path, out);
    json_decref(queries);
    if (!ok)
        st_mtrb_free(out);
    return ok;
}

static bool among(const size_t *ranked, size_t n, size_t doc)
{
    for (size_t i = 0; i < n; i++)
        if (ranked[i] == doc)
            return true;
    return false;
}

bool st_mtrb_sufficient(const size_t *ranked, size_t n, const size_t *gold, size_t n_gold,
                        size_t k)
{
    size_t top = n < k ? n : k;
    for (size_t g = 0; g < n_gold; g++)
        if (!among(ranked, top, gold[g]))
            return false;
    return true;
}

double st_mtrb_ndcg(const size_t *ranked, size_t n, const size_t *gold, size_t n_gold,
                    size_t k)
{
    size_t top = n < k ? n : k;
    double dcg = 0, ideal = 0;
    for (size_t i = 0; i < top; i++)
        if (among(gold, n_gold, ranked[i]))
            dcg += 1.0 / log2((double)i + 2.0);
    for (size_t i = 0; i < n_gold && i < k; i++)
        ideal += 1.0 / log2((double)i + 2.0);
    return ideal > 0 ? dcg / ideal : 0.0;
}
