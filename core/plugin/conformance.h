/*
 * core/conformance.h - exercise a plugin through its ABI and record what it
 * gets right: entry fields, create/destroy with the given parameters, and a
 * per-kind behavioural contract (tokenizer round trips and buffer sizing,
 * posenc descriptions, attention plans and cache budgets, sampler array
 * validity and determinism, retriever ranking and persistence).
 *
 * The checks guard every pointer and size a plugin returns, but a plugin
 * can still crash its host: `stretch inspect --check` runs this in a forked
 * child for that reason.
 *
 * Checks (names as recorded in the report):
 *   all         entry.abi, entry.struct_size, entry.fields, entry.ops_size,
 *               create (skipped when a service is ST_E_UNAVAILABLE),
 *               params.declared (create read only names plugin.yaml declares),
 *               entry.get_extension (NULL for an id it does not implement),
 *               destroy
 *   tokenizer   tokenizer.{ops,vocab_size,special,encode,roundtrip_ascii,
 *               encode_range,decode_range,encode_empty,add_bos,piece_all,
 *               piece_out_of_range,decode_out_of_range}: decode(encode(x)) == x
 *               for ASCII text, a buffer one short gives ST_E_RANGE and the
 *               exact need, piece() works for every id < min(vocab, 4096)
 *   posenc      posenc.{ops,configure,desc,map_positions,bias,update} on a
 *               SmolLM2-like shape: n_freq == rope_dims/2 when ROTARY, finite
 *               non-negative frequencies, positive scale and temperature
 *   attention   attention.{ops,configure,needs,cache_budget,retain} and, for
 *               the scenarios prefill / decode / block / compacted,
 *               attention.{plan,no_double,own_key,causal}.<scenario>: ranges
 *               inside [0, n_slots), no (head, query, key) pair twice, every
 *               query sees its own key, no key after the query; decoding past
 *               the budget keeps the cache within it and the newest slot
 *   sampler     sampler.{ops,apply,valid,deterministic,accept,
 *               valid_after_accept,masked,sorted_input,empty}: size never
 *               grows, ids unique and from the input, `sorted` true only when
 *               it is, a pick never masked, reset(seed) + apply repeatable
 *   retriever   retriever.{ops,add,count,query,ranking,finds_something,doc_id,
 *               query_k0,save,roundtrip,load_truncated,load_garbage,
 *               load_message,load_missing,clear}: <= k hits best first with
 *               ties by doc index, save/load answers identically, a bad file
 *               is refused with a message and the index kept
 */
#ifndef ST_CORE_CONFORMANCE_H
#define ST_CORE_CONFORMANCE_H

#include <msgpack.h>
#include <stretch/plugin.h>

#define ST_CONFORMANCE_MAX_CHECKS 64
#define ST_CONFORMANCE_NAME_MAX 48
#define ST_CONFORMANCE_MESSAGE_MAX 256

typedef struct st_conformance_check {
    char name[ST_CONFORMANCE_NAME_MAX];       /* e.g. "tokenizer.roundtrip_ascii" */
    bool passed;
    bool skipped;  /* not run: a service it needs is unavailable (passed is true) */
    char message[ST_CONFORMANCE_MESSAGE_MAX]; /* what was found; empty when fine */
} st_conformance_check;

typedef struct st_conformance_report {
    char plugin[128];       /* "<kind>/<name>" */
    st_kind kind;
    size_t n_checks;
    size_t n_failed;
    size_t n_dropped;       /* checks beyond ST_CONFORMANCE_MAX_CHECKS (their
                               failures still count in n_failed) */
    st_conformance_check checks[ST_CONFORMANCE_MAX_CHECKS];
} st_conformance_report;

/* Run every check that applies to `entry`'s kind. `params` is the validated
 * parameter map create() receives (NULL or an empty map lets the plugin use
 * its defaults). The retriever checks write temporary files under $TMPDIR
 * (else /tmp) and remove them. Returns ST_OK when every check passed,
 * ST_E_PLUGIN when one failed (see rep), ST_E_INVALID for NULL arguments. */
st_status st_conformance_run(const st_plugin_entry *entry, const st_host_services *host,
                             const msgpack_object *params, st_conformance_report *rep);

#endif
