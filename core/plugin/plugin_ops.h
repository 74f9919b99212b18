/*
 * core/plugin_ops.h - what each kind's ops table holds, by name, so the
 * loader can refuse a table missing a required call and the inspector can
 * show which optional calls a plugin implements.
 */
#ifndef ST_CORE_PLUGIN_OPS_H
#define ST_CORE_PLUGIN_OPS_H

#include <stretch/plugin.h>

typedef struct st_op_info {
    const char *name;
    size_t offset;     /* of the function pointer within the ops struct */
    bool required;     /* the header does not mark it optional */
} st_op_info;

typedef struct st_ops_info {
    st_kind kind;
    size_t size;       /* sizeof the ops struct at ABI 1.0 */
    const st_op_info *ops;
    size_t n_ops;
} st_ops_info;

/* NULL for an unknown kind. */
const st_ops_info *st_ops_info_of(st_kind kind);

/* Whether op `i` of `info` is non-NULL in `ops` (whose struct_size is
 * honoured: a call past the table's end counts as absent). */
bool st_op_present(const st_ops_info *info, const void *ops, size_t i);

#endif
