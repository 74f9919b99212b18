/*
 * tests/fuzz/fuzz_squeezed_index.c - the `squeezed` attention plugin's
 * saved clustering (index_io.c compiled in). The input is the msgpack map
 * of an index file; the target appends the checksum the file format ends
 * with, since a fuzzer would otherwise only ever test the checksum. It is
 * loaded against each expected clustering (squeezed_keys.h); one that loads
 * must have consistent cluster members and survive a save and reload.
 */
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "squeezed_keys.h"

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void check_members(const st_sq_index *ix)
{
    for (uint32_t l = 0; l < ix->key.n_layers; l++) {
        if (!ix->layers[l].built)
            st_fuzz_fail("layer %u loaded but not built", l);
        for (uint32_t hi = 0; hi < ix->key.n_kv_heads; hi++) {
            const st_sq_head_index *h = &ix->layers[l].heads[hi];
            if (h->member_off[0] != 0 || h->member_off[h->k] != h->n_keys)
                st_fuzz_fail("layer %u head %u: members do not cover the keys", l, hi);
            for (uint32_t c = 0; c < h->k; c++)
                for (uint32_t m = h->member_off[c]; m < h->member_off[c + 1]; m++)
                    if (h->members[m] >= h->n_keys || h->assign[h->members[m]] != c)
                        st_fuzz_fail("layer %u head %u: cluster %u lists a key it does not have",
                                     l, hi, c);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (size) /* an empty write to an empty sbuffer is NULL + 0 */
        msgpack_sbuffer_write(&sb, (const char *)data, size);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, fnv1a(data, size));
    const char *path = st_fuzz_write(0, "index.sq", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);

    char msg[1024];
    for (int which = 0; which < ST_FUZZ_SQ_N_KEYS; which++) {
        st_sq_index_key key = st_fuzz_sq_key(which);
        st_sq_index ix;
        if (st_sq_index_init(&ix, &key) != ST_OK)
            st_fuzz_fail("st_sq_index_init failed");
        msg[0] = '\0';
        st_status st = st_sq_index_load(&ix, &key, path, msg, sizeof msg);
        if (st != ST_OK) {
            if (!msg[0])
                st_fuzz_fail("a refused index without a message");
            for (uint32_t l = 0; l < key.n_layers; l++)
                if (ix.layers[l].built)
                    st_fuzz_fail("a refused index left layer %u built", l);
            st_sq_index_free(&ix);
            continue;
        }
        check_members(&ix);
        const char *saved = st_fuzz_write(1, "saved.sq", "", 0);
        if (st_sq_index_save(&ix, saved, msg, sizeof msg) != ST_OK)
            st_fuzz_fail("a loaded index cannot be saved: %s", msg);
        st_sq_index again;
        st_sq_index_init(&again, &key);
        if (st_sq_index_load(&again, &key, saved, msg, sizeof msg) != ST_OK)
            st_fuzz_fail("a saved index does not load: %s", msg);
        check_members(&again);
        st_sq_index_free(&again);
        st_sq_index_free(&ix);
    }
    return 0;
}
