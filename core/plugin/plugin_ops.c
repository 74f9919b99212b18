/*
 * core/plugin_ops.c - the per-kind ops descriptions (see plugin_ops.h).
 * `required` follows the kind headers: calls marked "Optional" there are
 * optional. Attention's `reset` is treated as optional (a stateless plan
 * has nothing to forget; the engine checks it); a sampler's `reset` is
 * required, as the conformance suite requires it.
 */
#include "abi_sizes.h"
#include "plugin_ops.h"

#include <string.h>

#define OP(type, field, req) {#field, offsetof(type, field), req}

static const st_op_info tokenizer_ops[] = {
    OP(st_tokenizer_ops, encode, true),
    OP(st_tokenizer_ops, decode, true),
    OP(st_tokenizer_ops, piece, true),
    OP(st_tokenizer_ops, vocab_size, true),
    OP(st_tokenizer_ops, special, true),
    OP(st_tokenizer_ops, is_special, true),
};

static const st_op_info posenc_ops[] = {
    OP(st_posenc_ops, configure, true),
    OP(st_posenc_ops, update, false),
    OP(st_posenc_ops, map_positions, false),
    OP(st_posenc_ops, bias, false),
    OP(st_posenc_ops, stretch_table, false),
};

static const st_op_info attention_ops[] = {
    OP(st_attention_ops, configure, true),
    OP(st_attention_ops, cache_budget, true),
    OP(st_attention_ops, plan, true),
    OP(st_attention_ops, retain, false),
    OP(st_attention_ops, on_entropy, false),
    OP(st_attention_ops, on_attention, false),
    OP(st_attention_ops, reset, false),
    OP(st_attention_ops, configure_kv, false),
    OP(st_attention_ops, on_attention_stats, false),
    OP(st_attention_ops, retain_heads, false),
};

static const st_op_info sampler_ops[] = {
    OP(st_sampler_ops, apply, true),
    OP(st_sampler_ops, accept, false),
    OP(st_sampler_ops, reset, true),
};

static const st_op_info retriever_ops[] = {
    OP(st_retriever_ops, add, true),
    OP(st_retriever_ops, query, true),
    OP(st_retriever_ops, doc_id, true),
    OP(st_retriever_ops, count, true),
    OP(st_retriever_ops, save, true),
    OP(st_retriever_ops, load, true),
    OP(st_retriever_ops, clear, true),
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const st_ops_info infos[] = {
    {ST_KIND_TOKENIZER, ST_TOKENIZER_OPS_SIZE_1_0, tokenizer_ops, N(tokenizer_ops)},
    {ST_KIND_POSENC, ST_POSENC_OPS_SIZE_1_0, posenc_ops, N(posenc_ops)},
    {ST_KIND_ATTENTION, ST_ATTENTION_OPS_SIZE_1_0, attention_ops, N(attention_ops)},
    {ST_KIND_SAMPLER, ST_SAMPLER_OPS_SIZE_1_0, sampler_ops, N(sampler_ops)},
    {ST_KIND_RETRIEVER, ST_RETRIEVER_OPS_SIZE_1_0, retriever_ops, N(retriever_ops)},
};

const st_ops_info *st_ops_info_of(st_kind kind)
{
    for (size_t i = 0; i < N(infos); i++)
        if (infos[i].kind == kind)
            return &infos[i];
    return NULL;
}

bool st_op_present(const st_ops_info *info, const void *ops, size_t i)
{
    if (!info || !ops || i >= info->n_ops)
        return false;
    uint32_t size;
    memcpy(&size, ops, sizeof size); /* every ops table starts with struct_size */
    size_t off = info->ops[i].offset;
    if (off + sizeof(void (*)(void)) > size)
        return false;
    void (*fn)(void);
    memcpy(&fn, (const char *)ops + off, sizeof fn);
    return fn != NULL;
}
