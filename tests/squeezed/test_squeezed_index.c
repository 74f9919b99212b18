/*
 * squeezed: the persisted clustering round-trips, and a truncated, modified
 * or foreign file is refused with a message naming it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "squeezed_internal.h"

static st_sq_index_key sample_key(void)
{
    st_sq_index_key k = {
        .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8, .fixed_len = 30,
        .observation = 6, .levels = 2, .k_coarse = 0, .kmeans_iters = 10, .seed = 9,
        .cluster_fraction = 0.2, .quantile = 0.7,
    };
    int32_t toks[30];
    for (int i = 0; i < 30; i++)
        toks[i] = i * 7 + 1;
    k.token_hash = st_sq_token_hash(toks, 30);
    return k;
}

/* Cluster random keys into every layer and head, as the plugin would. */
static void fill(st_sq_index *ix)
{
    uint64_t s = 1;
    uint32_t hd = ix->key.head_dim, n = ix->key.fixed_len - ix->key.observation;
    for (uint32_t l = 0; l < ix->key.n_layers; l++) {
        for (uint32_t g = 0; g < ix->key.n_kv_heads; g++) {
            st_sq_head_index *h = &ix->layers[l].heads[g];
            float *x = malloc(sizeof(float) * n * hd);
            for (uint32_t i = 0; i < n * hd; i++)
                x[i] = (float)((st_sq_rng_next(&s) >> 40) % 1000) / 500.0f - 1.0f;
            h->n_keys = n;
            h->k = 5;
            h->kc = 3;
            h->centroids = malloc(sizeof(float) * h->k * hd);
            h->mass = malloc(sizeof(float) * h->k);
            h->assign = malloc(sizeof(uint32_t) * n);
            h->coarse_centroids = malloc(sizeof(float) * h->kc * hd);
            h->coarse_mass = calloc(h->kc, sizeof(float));
            h->parent = malloc(sizeof(uint32_t) * h->k);
            uint32_t counts[5], cc[3];
            cr_assert_eq(st_sq_kmeans(x, NULL, n, hd, h->k, 10, 3, h->centroids, h->assign,
                                      counts), ST_OK);
            for (uint32_t c = 0; c < h->k; c++)
                h->mass[c] = (float)counts[c];
            cr_assert_eq(st_sq_kmeans(h->centroids, h->mass, h->k, hd, h->kc, 10, 4,
                                      h->coarse_centroids, h->parent, cc), ST_OK);
            for (uint32_t c = 0; c < h->k; c++)
                h->coarse_mass[h->parent[c]] += h->mass[c];
            cr_assert_eq(st_sq_head_members(h), ST_OK);
            free(x);
        }
        ix->layers[l].built = true;
        ix->layers[l].calibrated = l == 0;
        ix->layers[l].thr_fine = 0.01f * (float)(l + 1);
        ix->layers[l].thr_coarse = 0.02f;
    }
}

static char path[256];

static void setup(void)
{
    snprintf(path, sizeof path, "/tmp/st_squeezed_index_%d.msgpack", (int)getpid());
}

static void teardown(void)
{
    remove(path);
}

TestSuite(squeezed_index, .init = setup, .fini = teardown);

static void write_saved(void)
{
    /* A save replaces only an index (or nothing): start from nothing, as
     * the cases below leave a damaged file behind. */
    remove(path);
    st_sq_index_key k = sample_key();
    st_sq_index ix;
    cr_assert_eq(st_sq_index_init(&ix, &k), ST_OK);
    fill(&ix);
    char msg[512] = "";
    cr_assert_eq(st_sq_index_save(&ix, path, msg, sizeof msg), ST_OK, "%s", msg);
    st_sq_index_free(&ix);
}

static st_status try_load(char *msg, size_t cap)
{
    st_sq_index_key k = sample_key();
    st_sq_index ix;
    cr_assert_eq(st_sq_index_init(&ix, &k), ST_OK);
    st_status st = st_sq_index_load(&ix, &k, path, msg, cap);
    if (st != ST_OK)
        for (uint32_t l = 0; l < k.n_layers; l++)
            cr_assert(!ix.layers[l].built && ix.layers[l].heads[0].centroids == NULL,
                      "a refused load left layer %u half-loaded", l);
    st_sq_index_free(&ix);
    return st;
}

Test(squeezed_index, save_load_round_trip)
{
    st_sq_index_key k = sample_key();
    st_sq_index a, b;
    cr_assert_eq(st_sq_index_init(&a, &k), ST_OK);
    fill(&a);
    char msg[512] = "";
    cr_assert_eq(st_sq_index_save(&a, path, msg, sizeof msg), ST_OK, "%s", msg);
    cr_assert_eq(st_sq_index_init(&b, &k), ST_OK);
    cr_assert_eq(st_sq_index_load(&b, &k, path, msg, sizeof msg), ST_OK, "%s", msg);
    for (uint32_t l = 0; l < k.n_layers; l++) {
        cr_assert(b.layers[l].built);
        cr_assert_eq(b.layers[l].calibrated, a.layers[l].calibrated);
        cr_assert_float_eq(b.layers[l].thr_fine, a.layers[l].thr_fine, 0);
        cr_assert_float_eq(b.layers[l].thr_coarse, a.layers[l].thr_coarse, 0);
        for (uint32_t g = 0; g < k.n_kv_heads; g++) {
            const st_sq_head_index *x = &a.layers[l].heads[g], *y = &b.layers[l].heads[g];
            cr_assert_eq(x->n_keys, y->n_keys);
            cr_assert_eq(x->k, y->k);
            cr_assert_eq(x->kc, y->kc);
            cr_assert_arr_eq(x->centroids, y->centroids, sizeof(float) * x->k * k.head_dim);
            cr_assert_arr_eq(x->mass, y->mass, sizeof(float) * x->k);
            cr_assert_arr_eq(x->assign, y->assign, sizeof(uint32_t) * x->n_keys);
            cr_assert_arr_eq(x->coarse_centroids, y->coarse_centroids,
                             sizeof(float) * x->kc * k.head_dim);
            cr_assert_arr_eq(x->coarse_mass, y->coarse_mass, sizeof(float) * x->kc);
            cr_assert_arr_eq(x->parent, y->parent, sizeof(uint32_t) * x->k);
            cr_assert_arr_eq(x->member_off, y->member_off, sizeof(uint32_t) * (x->k + 1));
            cr_assert_arr_eq(x->members, y->members, sizeof(uint32_t) * x->n_keys);
        }
    }
    st_sq_index_free(&a);
    st_sq_index_free(&b);
}

Test(squeezed_index, missing_file_is_not_found)
{
    char msg[512] = "";
    cr_assert_eq(try_load(msg, sizeof msg), ST_E_NOT_FOUND);
    cr_assert(strstr(msg, path), "%s", msg);
}

Test(squeezed_index, corrupt_byte_is_refused)
{
    write_saved();
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    /* Flip a byte in the middle (inside the centroid arrays). */
    fseek(f, size / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, size / 2, SEEK_SET);
    fputc(c ^ 0x40, f);
    fclose(f);
    char msg[512] = "";
    cr_assert_eq(try_load(msg, sizeof msg), ST_E_FORMAT, "%s", msg);
    cr_assert(strstr(msg, path) && strstr(msg, "corrupt"), "%s", msg);
}

Test(squeezed_index, truncated_file_is_refused)
{
    write_saved();
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    long cuts[] = {size - 1, size - 9, size / 2, 10, 0};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_saved();
        cr_assert_eq(truncate(path, cuts[i]), 0);
        char msg[512] = "";
        cr_assert_eq(try_load(msg, sizeof msg), ST_E_FORMAT, "cut at %ld: %s", cuts[i], msg);
        cr_assert(strstr(msg, path), "%s", msg);
    }
}

Test(squeezed_index, other_fixed_context_is_a_mismatch)
{
    write_saved();
    st_sq_index_key k = sample_key();
    k.token_hash ^= 1;
    st_sq_index ix;
    cr_assert_eq(st_sq_index_init(&ix, &k), ST_OK);
    char msg[512] = "";
    cr_assert_eq(st_sq_index_load(&ix, &k, path, msg, sizeof msg), ST_E_STATE);
    cr_assert(strstr(msg, "another"), "%s", msg);
    st_sq_index_free(&ix);
    /* Another model shape too. */
    k = sample_key();
    k.head_dim = 16;
    cr_assert_eq(st_sq_index_init(&ix, &k), ST_OK);
    cr_assert_eq(st_sq_index_load(&ix, &k, path, msg, sizeof msg), ST_E_STATE);
    st_sq_index_free(&ix);
}

Test(squeezed_index, garbage_is_refused)
{
    FILE *f = fopen(path, "wb");
    fputs("not a msgpack index at all", f);
    fclose(f);
    char msg[512] = "";
    cr_assert_eq(try_load(msg, sizeof msg), ST_E_FORMAT, "%s", msg);
}

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    cr_assert(f, "%s", p);
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

Test(squeezed_index, save_never_replaces_a_file_that_is_not_an_index)
{
    /* index_path naming someone's notes by mistake: the load warns, and
     * the save must leave the file as it was. */
    static const char notes[] = "my notes, not a msgpack index\n";
    FILE *f = fopen(path, "wb");
    fputs(notes, f);
    fclose(f);
    cr_assert(!st_sq_index_replaceable(path));
    st_sq_index_key k = sample_key();
    st_sq_index ix;
    cr_assert_eq(st_sq_index_init(&ix, &k), ST_OK);
    fill(&ix);
    char msg[512] = "";
    cr_assert_eq(st_sq_index_save(&ix, path, msg, sizeof msg), ST_E_STATE);
    cr_assert(strstr(msg, path) && strstr(msg, "not a clustering index"), "%s", msg);
    size_t len;
    const char *now = slurp(path, &len);
    cr_assert(len == sizeof notes - 1 && memcmp(now, notes, len) == 0,
              "the file was overwritten");

    /* An index of ours, even a damaged one, or no file at all is replaced. */
    remove(path);
    cr_assert(st_sq_index_replaceable(path));
    cr_assert_eq(st_sq_index_save(&ix, path, msg, sizeof msg), ST_OK, "%s", msg);
    f = fopen(path, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    cr_assert(st_sq_index_replaceable(path));
    cr_assert_eq(st_sq_index_save(&ix, path, msg, sizeof msg), ST_OK, "%s", msg);
    st_sq_index_free(&ix);
    cr_assert_eq(try_load(msg, sizeof msg), ST_OK, "%s", msg);
}

/* Found by tests/fuzz: msgpack-c allocates a map at its declared size
 * before reading it, so six bytes asked for 64 GiB (ASan aborted). */
Test(squeezed_index, declared_count_beyond_the_file_is_refused)
{
    FILE *f = fopen(path, "wb");
    fwrite("\xdf\x7f\xff\xff\xff\x00", 1, 6, f);
    fclose(f);
    char msg[512] = "";
    cr_assert_eq(try_load(msg, sizeof msg), ST_E_FORMAT, "%s", msg);
    cr_assert(strstr(msg, path) && strstr(msg, "more elements than the file holds"), "%s", msg);
}
