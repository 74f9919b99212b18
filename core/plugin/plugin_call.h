/*
 * core/plugin_call.h - which plugin call is in progress on this thread, so
 * that a crash inside a plugin is reported as "sampler plugin 'x' crashed
 * in apply" instead of a bare "Segmentation fault".
 *
 * The engine brackets each call it makes into a plugin with enter/leave.
 * Calls nest (a plugin may ask the host to score text, which calls other
 * plugins), so enter returns the mark it replaces and leave restores it.
 * Calls made from kernel worker threads (map_positions, bias) are not
 * marked: those threads report no call.
 */
#ifndef ST_CORE_PLUGIN_CALL_H
#define ST_CORE_PLUGIN_CALL_H

#include "registry.h"

typedef struct st_plugin_call {
    const st_instance *in;
    const char *op;
} st_plugin_call;

/* Mark `op` of `in` as running on this thread; returns the previous mark. */
st_plugin_call st_plugin_call_enter(const st_instance *in, const char *op);
/* Restore the mark enter returned. */
void st_plugin_call_leave(st_plugin_call prev);

#endif
