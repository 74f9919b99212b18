/*
 * core/plugin/plugin_call.c - the per-thread mark of the plugin call in
 * progress (see plugin_call.h), and its public reader for crash handlers.
 */
#include "plugin_call.h"

#include <stretch/registry.h>

/* Thread-local: each thread reports its own call. Written before and after
 * the call, read by a signal handler on the same thread. */
static _Thread_local st_plugin_call current;

st_plugin_call st_plugin_call_enter(const st_instance *in, const char *op)
{
    st_plugin_call prev = current;
    current.in = in;
    current.op = op;
    return prev;
}

void st_plugin_call_leave(st_plugin_call prev) { current = prev; }

bool st_plugin_in_call(st_kind *kind, const char **name, const char **op)
{
    const st_instance *in = current.in;
    if (!in || !in->lib || !in->lib->manifest)
        return false;
    if (kind)
        *kind = in->lib->manifest->kind;
    if (name)
        *name = in->lib->manifest->name;
    if (op)
        *op = current.op;
    return true;
}
