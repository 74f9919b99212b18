/*
 * core/instance.c - make a plugin instance: validate the strategy's
 * parameters against the manifest, hand them to create() (as a view, or as
 * msgpack for ABI 1.1 plugins), and
 * turn a failed create() into a diagnostic that carries the plugin's words.
 */
#include "registry.h"
#include "plugin_create.h"

#include <stdlib.h>
#include <string.h>

st_status st_instance_create(st_library *lib, const st_host_services *host,
                             const st_value *params, st_instance **out,
                             st_diag *diag)
{
    *out = NULL;
    const st_plugin_manifest *m = lib->manifest;
    const st_plugin_entry *e = lib->entry;

    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    st_status st = st_params_validate(m, params, &sbuf, diag);
    if (st != ST_OK) {
        msgpack_sbuffer_destroy(&sbuf);
        return st;
    }

    /* The object tree lives in `unpacked`'s zone, valid only during
     * create() as plugin.h promises. */
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t off = 0;
    msgpack_unpack_return ur = msgpack_unpack_next(&unpacked, sbuf.data, sbuf.size, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || unpacked.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&unpacked);
        msgpack_sbuffer_destroy(&sbuf);
        return st_diag_set(diag, ST_E_INTERNAL, m->path, 0, 0,
                           "validated parameters did not unpack to a map "
                           "(a bug in stretch)");
    }

    st_error err;
    memset(&err, 0, sizeof err);
    void *inst = NULL;
    st_library_set_loading(m->library_path);
    st = st_plugin_create(e, host, &unpacked.data, &inst, &err, NULL);
    st_library_set_loading(NULL);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&sbuf);
    if (st != ST_OK) {
        err.message[sizeof err.message - 1] = '\0';
        return st_diag_set(diag, st < 0 ? st : ST_E_PLUGIN, m->library_path, 0, 0,
                           "refused (%s): %s plugin '%s' create() failed with "
                           "status %d: %s",
                           st_refusal_name(ST_REFUSE_CREATE_FAILED),
                           st_kind_name(m->kind), m->name, (int)st,
                           err.message[0] ? err.message : "(no message)");
    }

    st_instance *in = calloc(1, sizeof *in);
    if (!in) {
        e->destroy(inst);
        return st_diag_set(diag, ST_E_NOMEM, m->path, 0, 0, "out of memory");
    }
    in->lib = lib;
    in->inst = inst;
    in->ops = e->ops;
    *out = in;
    return ST_OK;
}

void st_instance_destroy(st_instance *in)
{
    if (!in)
        return;
    in->lib->entry->destroy(in->inst);
    free(in);
}
