/*
 * core/host_features.c - see host_features.h. The answers follow what the
 * engine does today: the model is mapped before any plugin is created,
 * the OpenCL backend serves kernels where the build has it and the
 * strategy runs on it, model_score serves every plugin once the model is
 * mapped (the engine scores in a scratch cache), and token entropy and
 * attention weights are handed to the attention plugin alone
 * (engine_forward.c).
 */
#include "host_features.h"

#include <string.h>

const char *st_feature_unavailable(const char *feature, st_kind kind, const char *backend,
                                   bool has_model)
{
    if (strcmp(feature, "model") == 0)
        return has_model ? NULL : "the strategy names no model (model:)";
    if (strcmp(feature, "opencl") == 0) {
        if (!backend || strncmp(backend, "opencl", 6) != 0)
            return "the backend is not opencl";
#ifdef ST_HAVE_OPENCL
        return NULL;
#else
        return "this build has no OpenCL backend (configure with -DST_OPENCL=ON and the "
               "OpenCL headers and ICD loader installed)";
#endif
    }
    /* The engine offers its tokenizer's bytes (ST_HOST_VOCAB_V1) to every
     * plugin it creates after the tokenizer, which needs a model. */
    if (strcmp(feature, "vocab") == 0)
        return has_model ? NULL : "the strategy names no model (model:), so no vocabulary";
    if (strcmp(feature, "model-scoring") == 0)
        return has_model ? NULL : "the strategy names no model (model:) to score with";
    if (strcmp(feature, "attention-weights") == 0 || strcmp(feature, "token-entropy") == 0)
        return kind == ST_KIND_ATTENTION ? NULL
                                         : "the host gives it to the attention plugin only";
    if (strcmp(feature, "encoder") == 0)
        return kind == ST_KIND_RETRIEVER ? NULL
                                         : "the host gives sentence encoders to retrievers only";
    return "this host does not know the feature";
}
