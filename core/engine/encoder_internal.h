/*
 * core/engine/encoder_internal.h - the encoder behind stretch/encoder.h and
 * the host extension ST_HOST_ENCODER_V1 that retriever plugins use.
 */
#ifndef ST_CORE_ENCODER_INTERNAL_H
#define ST_CORE_ENCODER_INTERNAL_H

#include <stretch/encoder.h>

#include "host_services.h"
#include "manifest.h"
#include "registry.h"

/* Open `model` with the tokenizer plugin found in `registry` (borrowed: it
 * must outlive the encoder). */
st_status st_encoder_open_in(st_registry *registry, const char *model, uint32_t n_threads,
                             st_encoder **out, st_error *err);

/* What the host extension needs to open encoders for the plugins of one
 * host: the registry to find the tokenizer in and the directory relative
 * model paths are resolved against. */
typedef struct st_encoder_service st_encoder_service;

/* Answer ST_HOST_ENCODER_V1 on `host` for the retriever `s` names: relative
 * model paths are taken from the manifest that wrote the retriever's
 * `model` parameter. Free the service after every instance of the host. */
st_status st_encoder_service_install(st_host *host, st_registry *registry, const st_strategy *s,
                                     uint32_t n_threads, st_encoder_service **out,
                                     st_error *err);
void st_encoder_service_free(st_encoder_service *svc);

#endif
