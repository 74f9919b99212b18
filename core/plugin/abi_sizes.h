/*
 * core/abi_sizes.h - the sizes of the ABI's growable structs as ABI 1.0
 * shipped them. A plugin of any 1.x minor has at least these; later minors
 * only append, and the host reads an appended field only after checking
 * the struct_size the plugin gave. Comparing against sizeof(today's
 * struct) instead would refuse every older plugin the day a field is
 * appended, breaking the append-only promise of stretch/common.h.
 */
#ifndef ST_CORE_ABI_SIZES_H
#define ST_CORE_ABI_SIZES_H

#include <stdbool.h>
#include <stddef.h>
#include <stretch/plugin.h>
#include <stretch/reader.h>
#include <stretch/services.h>
#include <stretch/stretch.h>

#define ST_END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

#define ST_ENTRY_SIZE_1_0 ST_END_OF(st_plugin_entry, get_extension)
#define ST_TOKENIZER_OPS_SIZE_1_0 ST_END_OF(st_tokenizer_ops, is_special)
#define ST_POSENC_OPS_SIZE_1_0 ST_END_OF(st_posenc_ops, stretch_table)
#define ST_ATTENTION_OPS_SIZE_1_0 ST_END_OF(st_attention_ops, reset)
#define ST_SAMPLER_OPS_SIZE_1_0 ST_END_OF(st_sampler_ops, reset)
#define ST_RETRIEVER_OPS_SIZE_1_0 ST_END_OF(st_retriever_ops, clear)
/* ABI 1.3's structs, at the size 1.3 shipped them (reader.h, stretch.h). */
#define ST_READER_V1_SIZE_1_3 ST_END_OF(st_reader_v1, select)
#define ST_READ_PARAMS_SIZE_1_3 ST_END_OF(st_read_params, progress_user)
/* What a plugin hands the host's model_score (services.h). */
#define ST_SCORE_REQUEST_SIZE_1_0 ST_END_OF(st_score_request, attn_weights)
#define ST_SCORE_REQUEST_SIZE_1_4 ST_END_OF(st_score_request, score_from)
/* Caller-filled structs of the host API (stretch.h). */
#define ST_ENGINE_OPTIONS_SIZE_1_0 ST_END_OF(st_engine_options, model)
#define ST_GENERATE_PARAMS_SIZE_1_0 ST_END_OF(st_generate_params, first_logits)
/* Host-filled structs: written up to the caller's struct_size (0 = 1.0's). */
#define ST_GENERATE_STATS_SIZE_1_0 ST_END_OF(st_generate_stats, cancelled)
#define ST_ENGINE_INFO_SIZE_1_0 ST_END_OF(st_engine_info, plugin_names)

/* A caller's struct of `given` bytes (its struct_size) read into `full`
 * (full_size bytes, zeroed first): fields the caller does not know keep
 * their zero defaults and nothing past its struct is read. False, with
 * nothing copied, when `given` is below the struct's 1.0 size `min`. */
bool st_sized_read(void *full, size_t full_size, const void *caller, uint32_t given,
                   size_t min);

/* `full` written to a caller's struct: no more bytes than its struct_size
 * says it has (0 = the 1.0 size `min_1_0`), and its struct_size set to what
 * was written. */
void st_sized_write(void *caller, const void *full, size_t full_size, size_t min_1_0);

#endif
