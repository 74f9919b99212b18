/*
 * core/engine/engine_roofline.c - st_engine_roofline: the ceilings
 * (core/compute/roofline.c) measured with this engine's threads and the
 * kernels its forward pass runs, and the model's costs per token.
 */
#include "engine_internal.h"

#include <string.h>

#include "abi_sizes.h"
#include "cpu_features.h"
#include "roofline.h"

st_status st_engine_roofline(st_engine *e, st_roofline *out, st_error *err)
{
    if (!e || !out || out->struct_size < offsetof(st_roofline, weight_type) + sizeof out->weight_type)
        return st_error_set(err, ST_E_INVALID,
                            "st_engine_roofline: an engine and an st_roofline with struct_size set");
    /* The probes run the CPU kernels: on a device they would measure the
     * wrong machine. */
    if (e->backend)
        return st_error_set(err, ST_E_UNAVAILABLE,
                            "the roofline measures the CPU backend; this engine runs on %s",
                            e->backend_name);
    uint32_t caller_size = out->struct_size;
    memset(out, 0, caller_size < sizeof *out ? caller_size : sizeof *out);
    out->struct_size = caller_size < sizeof *out ? caller_size : (uint32_t)sizeof *out;
    /* The FFN's type: most of the bytes and operations of a token. */
    st_ggml_type wtype = e->model->layers[0].gate.type;
    st_roofline_ceiling ceiling;
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_roofline_measure(e->pool, st_cpu_kernels_get(st_cpu_isa_active()), wtype,
                                       &ceiling, &d);
    if (st != ST_OK)
        return st_error_from_diag(err, &d);
    out->read_bytes_per_s = ceiling.read_bytes_per_s;
    out->dot_ops_per_s = ceiling.dot_ops_per_s;
    st_roofline_model_costs(e->model, &out->weight_bytes, &out->ops_per_token);
    out->kv_bytes_per_token = (double)st_kv_bytes_per_token(e->kv);
    out->weight_type = st_ggml_type_name(wtype);
    if (out->struct_size >= ST_END_OF(st_roofline, read_median_bytes_per_s))
        out->read_median_bytes_per_s = ceiling.read_median_bytes_per_s;
    return ST_OK;
}
