/*
 * core/host_features.h - which host features (a plugin.yaml's `requires:`)
 * an engine gives a plugin. One answer for the engine, which refuses to
 * open a plugin it cannot serve, and for `stretch check`, which reports the
 * same thing before anything is loaded.
 */
#ifndef ST_CORE_HOST_FEATURES_H
#define ST_CORE_HOST_FEATURES_H

#include <stdbool.h>

#include <stretch/plugin.h>

/* Why a `kind` plugin cannot have `feature` from an engine on `backend`
 * ("cpu", "opencl...") with or without a model; NULL when it can. */
const char *st_feature_unavailable(const char *feature, st_kind kind, const char *backend,
                                   bool has_model);

#endif
