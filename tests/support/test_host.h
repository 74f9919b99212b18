/*
 * tests/support/test_host.h - a minimal st_host_services for tests: log
 * collects messages in memory, memory comes from malloc (with a live
 * allocation count so tests can check plugins free what they take), error
 * formats with vsnprintf, and every model or kernel service answers
 * ST_E_UNAVAILABLE, as a host without a model would.
 */
#ifndef ST_TEST_HOST_H
#define ST_TEST_HOST_H

#include <msgpack.h>
#include <stretch/plugin.h>

#define ST_TEST_HOST_LOG_MAX 64
#define ST_TEST_HOST_LINE_MAX 256

typedef struct st_test_host {
    st_host_services services;
    /* The last ST_TEST_HOST_LOG_MAX messages, oldest first. */
    char log[ST_TEST_HOST_LOG_MAX][ST_TEST_HOST_LINE_MAX];
    st_log_level log_level[ST_TEST_HOST_LOG_MAX];
    size_t n_log;
    /* Allocations made through alloc/calloc/realloc and not yet freed. */
    long live_allocs;
    /* Offer ST_HOST_VOCAB_V1 with the test vocabulary below, or, when
     * `pieces` is set, with exactly those n_pieces tokens then an
     * end-of-generation token. */
    bool vocab;
    const char *const *pieces;
    size_t n_pieces;
    /* Offer ST_HOST_ENCODER_V1 with the test encoder below. */
    bool encoder;
} st_test_host;

/* The test encoder (ST_HOST_ENCODER_V1 of a host with `encoder` set): any
 * model name opens it; a text's vector has ST_TEST_ENCODER_DIM dimensions,
 * a unit vector that depends only on the text's bytes (so a retriever's
 * index can be built, saved and queried without a model). */
#define ST_TEST_ENCODER_DIM 8
void st_test_encode(const char *text, size_t len, float *out);

/* The test vocabulary (ST_HOST_VOCAB_V1 of a host with `vocab` set):
 * ST_TEST_VOCAB_N tokens; id b < 256 is the single byte b, ids 256.. are
 * the multi-byte pieces of st_test_vocab_piece (JSON-ish fragments and
 * letter pairs), and the last id is the end-of-generation control token. */
#define ST_TEST_VOCAB_N 512
#define ST_TEST_VOCAB_EOS (ST_TEST_VOCAB_N - 1)
const char *st_test_vocab_piece(int32_t id, size_t *len);

/* A process-wide test host that offers the test vocabulary. */
const st_host_services *st_test_host_vocab_services(void);

/* A process-wide test host that offers the test encoder. */
const st_host_services *st_test_host_encoder_services(void);

/* Fill `th` and point its services at it. */
void st_test_host_init(st_test_host *th);

/* The services table of a process-wide test host (initialised on first use). */
const st_host_services *st_test_host_services(void);
st_test_host *st_test_host_default(void);

/* dlopen ST_TEST_PLUGIN_DIR/<kind>/<name>/<name>.so and return its entry,
 * or NULL with a reason in `why` (cap bytes). The handle is kept open for
 * the life of the process. */
const st_plugin_entry *st_test_load_plugin(const char *plugin_dir, const char *kind,
                                           const char *name, char *why, size_t cap);

/* A msgpack map object built in place (no packing), for giving plugins
 * parameters in tests. Values are added with the helpers below; the struct
 * owns all storage, so keep it alive while the object is used. */
#define ST_TEST_PARAMS_MAX 32
typedef struct st_test_params {
    msgpack_object_kv kv[ST_TEST_PARAMS_MAX];
    size_t n;
    char keys[ST_TEST_PARAMS_MAX][64];
    char strs[ST_TEST_PARAMS_MAX][128];
    msgpack_object obj;
    /* st_test_params_validated's output, freed by st_test_params_destroy */
    msgpack_sbuffer validated_buf;
    msgpack_unpacked validated;
    bool has_validated;
} st_test_params;

void st_test_params_init(st_test_params *p);
void st_test_params_int(st_test_params *p, const char *key, int64_t v);
void st_test_params_float(st_test_params *p, const char *key, double v);
void st_test_params_bool(st_test_params *p, const char *key, bool v);
void st_test_params_str(st_test_params *p, const char *key, const char *v);
/* The map object; valid until st_test_params_destroy. */
const msgpack_object *st_test_params_get(st_test_params *p);
void st_test_params_destroy(st_test_params *p);
/* The values of `src` (NULL = none) into a fresh `dst`, nothing validated. */
void st_test_params_copy(st_test_params *dst, const st_test_params *src);

/* `p` validated against the plugin's own plugin.yaml under
 * ST_TEST_PLUGIN_DIR, defaults filled: the map the host would hand
 * create(). NULL with `err` filled when the validator refuses; `p` as given
 * when the plugin has no plugin.yaml there. Valid until `p` is destroyed. */
const msgpack_object *st_test_params_validated(const st_plugin_entry *e, st_test_params *p,
                                               st_error *err);

/* Make an instance the way the host does: `p` (NULL = none given) is
 * validated against the plugin's own plugin.yaml under ST_TEST_PLUGIN_DIR
 * (range, type, defaults filled), then handed to create() in the form the
 * plugin's ABI minor expects. A refused parameter fills `err` with the
 * validator's message. `host` NULL = st_test_host_services(). A plugin
 * with no plugin.yaml there gets `p` as given. */
st_status st_test_create(const st_plugin_entry *e, const st_host_services *host,
                         st_test_params *p, void **inst, st_error *err);

#endif
