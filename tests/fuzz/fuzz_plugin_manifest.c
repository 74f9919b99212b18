/*
 * tests/fuzz/fuzz_plugin_manifest.c - plugin.yaml. The input is written as
 * plugin/plugin.yaml in the temporary tree and loaded; a manifest that
 * loads must keep the loader's promises (a plugin name, a known kind, the
 * library inside the plugin's directory, defaults of the declared type and
 * inside their range), and validating no parameters against it must pack a
 * map exactly when every parameter has a default.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "manifest.h"
#include "yaml_manifest.h"

static void check_param(const st_param_schema *p)
{
    if (p->has_min && p->has_max && p->min > p->max)
        st_fuzz_fail("parameter '%s': min %g > max %g accepted", p->name, p->min, p->max);
    if (p->required == p->has_default)
        st_fuzz_fail("parameter '%s': required and has_default disagree", p->name);
    if (!p->has_default)
        return;
    const st_value *d = p->default_value;
    if (!d)
        st_fuzz_fail("parameter '%s': has_default without a value", p->name);
    if (p->type == ST_PARAM_ENUM) {
        size_t k = 0;
        while (k < p->n_enum && strcmp(p->enum_values[k], d->s ? d->s : "") != 0)
            k++;
        if (k == p->n_enum)
            st_fuzz_fail("parameter '%s': enum default not among the values", p->name);
    }
    if (p->type == ST_PARAM_INT || p->type == ST_PARAM_FLOAT) {
        double x = d->type == ST_VALUE_INT ? (double)d->i : d->f;
        if ((p->has_min && x < p->min) || (p->has_max && x > p->max))
            st_fuzz_fail("parameter '%s': default %g outside its range", p->name, x);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = st_fuzz_write(0, "plugin/plugin.yaml", data, size);
    st_plugin_manifest *m = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    if (st_plugin_manifest_load(path, &m, &diag) != ST_OK) {
        if (m)
            st_fuzz_fail("st_plugin_manifest_load failed but returned a manifest");
        if (!diag.message[0])
            st_fuzz_fail("st_plugin_manifest_load failed without a message");
        return 0;
    }
    if (!st_yaml_is_plugin_name(m->name))
        st_fuzz_fail("plugin name '%s' accepted", m->name);
    if (m->kind < 1 || m->kind > ST_KIND_COUNT)
        st_fuzz_fail("kind %d accepted", (int)m->kind);
    char *dir = st_yaml_path_canonical(m->dir);
    if (!m->library_path || !dir || !st_yaml_path_is_beneath(m->library_path, dir))
        st_fuzz_fail("library '%s' outside the plugin directory accepted", m->library);
    free(dir);
    bool all_defaults = true;
    for (size_t k = 0; k < m->n_params; k++) {
        check_param(&m->params[k]);
        if (st_plugin_manifest_param(m, m->params[k].name) != &m->params[k])
            st_fuzz_fail("parameter '%s' declared twice", m->params[k].name);
        all_defaults = all_defaults && m->params[k].has_default;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    st_status st = st_params_validate(m, NULL, &sb, &diag);
    if ((st == ST_OK) != all_defaults)
        st_fuzz_fail("validating no parameters: %s, but every parameter %s a default",
                     st == ST_OK ? "accepted" : diag.message, all_defaults ? "has" : "does not have");
    msgpack_sbuffer_destroy(&sb);
    st_plugin_manifest_free(m);
    return 0;
}
