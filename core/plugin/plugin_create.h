/*
 * core/plugin_create.h - call a plugin's create() with its parameters in
 * the form its ABI minor expects: the st_params view (1.2 and later) or
 * the msgpack map (1.0-1.1). Every caller of create() goes through here.
 */
#ifndef ST_CORE_PLUGIN_CREATE_H
#define ST_CORE_PLUGIN_CREATE_H

#include <msgpack.h>
#include <stretch/plugin.h>

/* What a plugin asked of its parameter view that plugin.yaml does not
 * declare (the conformance suite reports it). */
typedef struct st_param_reads {
    unsigned n_undeclared;
    char first_undeclared[64];
} st_param_reads;

/* `map` is the validated parameter map (st_params_validate's output,
 * unpacked); NULL means no parameters. `reads` may be NULL. */
st_status st_plugin_create(const st_plugin_entry *e, const st_host_services *host,
                           const msgpack_object *map, void **inst, st_error *err,
                           st_param_reads *reads);

#endif
