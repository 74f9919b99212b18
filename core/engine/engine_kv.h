/*
 * core/engine_kv.h - what an open engine's KV cache stores, for reports
 * (stretch bench, run --json). Internal: the CLI links the core archive.
 */
#ifndef ST_CORE_ENGINE_KV_H
#define ST_CORE_ENGINE_KV_H

#include <stddef.h>
#include <stretch/stretch.h>

/* The element type ("f16", "q8_0", "f32") and the bytes one token takes
 * (keys and values of every layer). */
void st_engine_kv_info(const st_engine *e, const char **type, size_t *bytes_per_token);

#endif
