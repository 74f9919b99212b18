/*
 * The prompt cache in a file (ABI 1.9, st_engine_save_prompt /
 * st_engine_load_prompt): another engine that loads it takes the prompt's
 * start from it, and its logits and tokens are an empty cache's, bit for
 * bit; a file made under another model, context, positional encoding or
 * kv-type is refused saying what differs, a cut, damaged or foreign file
 * too, and a refused file leaves the engine's own cache in place.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/stretch.h>

#include "tiny_model.h"

static char dir[256];
static char model_path[300];
static char other_model[340];

static void setup(void)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 256;
    spec.tied = false;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_prompt_file", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
    spec.seed = 2; /* the same shape, other weights */
    snprintf(other_model, sizeof other_model, "%s/other.gguf", dir);
    cr_assert_eq(st_gen_tiny_model(&spec, other_model, &d), ST_OK, "%s", d.message);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

TestSuite(prompt_file, .init = setup, .fini = cleanup);

/* An engine over `model` with the given manifest lines after the model's. */
static st_engine *open_with(const char *name, const char *model, const char *lines)
{
    char path[340];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "format: 1\nmodel: %s\nthreads: 2\ntokenizer: {plugin: bpe}\n"
               "samplers: [{plugin: greedy}]\n%s", model, lines);
    fclose(f);
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(path, NULL, &e, &err), ST_OK, "%s", err.message);
    return e;
}

static const char dense[] =
    "context: 256\npositional-encoding: {plugin: rope}\nattention: {plugin: dense}\n";

static char file_path[400];

static const char *cache_file(const char *name)
{
    snprintf(file_path, sizeof file_path, "%s/%s", dir, name);
    return file_path;
}

typedef struct answer {
    int32_t ids[16];
    size_t n;
    uint32_t cached;
} answer;

static int collect(void *user, int32_t token, const char *text, size_t len)
{
    (void)text;
    (void)len;
    answer *a = user;
    if (token >= 0 && a->n < 16)
        a->ids[a->n++] = token;
    return 0;
}

static void prompt_of(int32_t *p, size_t n)
{
    uint32_t x = 11;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = 32 + (int32_t)((x >> 16) % 90);
    }
}

static answer generate(st_engine *e, const int32_t *prompt, size_t n, float *first)
{
    answer a;
    memset(&a, 0, sizeof a);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 12, .ignore_eos = true,
                             .first_logits = first};
    st_generate_stats stats = {.struct_size = sizeof stats};
    st_error err = {0};
    cr_assert_eq(st_engine_generate(e, prompt, n, &gp, collect, &a, &stats, &err), ST_OK, "%s",
                 err.message);
    a.cached = stats.n_cached;
    return a;
}

Test(prompt_file, a_saved_prompt_is_taken_by_another_engine_bit_for_bit)
{
    int32_t prompt[150];
    prompt_of(prompt, 150);
    st_engine *writer = open_with("w.yaml", model_path, dense);
    st_error err = {0};
    generate(writer, prompt, 120, NULL);
    uint32_t saved = 0;
    cr_assert_eq(st_engine_save_prompt(writer, cache_file("p.bin"), &saved, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(saved, 120);
    st_engine_close(writer);

    st_engine_info info = {.struct_size = sizeof info};
    st_engine *fresh = open_with("f.yaml", model_path, dense);
    st_engine_get_info(fresh, &info);
    cr_assert(info.prefix_cache);
    float *want = malloc(info.n_vocab * sizeof *want), *got = malloc(info.n_vocab * sizeof *got);
    /* The saved prompt and more: the file gives its 120 tokens. */
    answer a = generate(fresh, prompt, 150, want);
    cr_assert_eq(a.cached, 0);
    st_engine *reader = open_with("r.yaml", model_path, dense);
    uint32_t loaded = 0;
    cr_assert_eq(st_engine_load_prompt(reader, cache_file("p.bin"), &loaded, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(loaded, 120);
    answer b = generate(reader, prompt, 150, got);
    cr_assert_eq(b.cached, 120);
    cr_assert(memcmp(want, got, info.n_vocab * sizeof *want) == 0, "the logits differ");
    cr_assert_eq(b.n, a.n);
    cr_assert_arr_eq(b.ids, a.ids, a.n * sizeof a.ids[0]);
    /* A prompt that leaves the file's after 60 tokens takes those 60. */
    cr_assert_eq(st_engine_load_prompt(reader, cache_file("p.bin"), NULL, &err), ST_OK, "%s",
                 err.message);
    int32_t turn[100];
    memcpy(turn, prompt, sizeof turn);
    turn[60] ^= 1;
    a = generate(fresh, turn, 100, want);
    b = generate(reader, turn, 100, got);
    cr_assert_eq(b.cached, 60);
    cr_assert(memcmp(want, got, info.n_vocab * sizeof *want) == 0, "the logits differ");
    cr_assert_arr_eq(b.ids, a.ids, a.n * sizeof a.ids[0]);
    free(want);
    free(got);
    st_engine_close(fresh);
    st_engine_close(reader);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*n);
    cr_assert_eq(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* A load that should be refused with `status` and a message holding
 * `says`, leaving the engine's own prompt in its cache. */
static void refused(st_engine *e, const char *path, st_status status, const char *says)
{
    int32_t prompt[100];
    prompt_of(prompt, 100);
    generate(e, prompt, 100, NULL);
    st_error err = {0};
    uint32_t loaded = 7;
    cr_assert_eq(st_engine_load_prompt(e, path, &loaded, &err), status, "%s: %s", path,
                 err.message);
    cr_assert(strstr(err.message, says), "%s, expected '%s'", err.message, says);
    cr_assert_eq(loaded, 0);
    cr_assert_eq(generate(e, prompt, 100, NULL).cached, 92, "the engine's own cache was lost");
}

/* A 100-token prompt of e's saved to p.bin: the file's path. */
static const char *save_100(st_engine *e)
{
    int32_t prompt[100];
    prompt_of(prompt, 100);
    generate(e, prompt, 100, NULL);
    st_error err = {0};
    cr_assert_eq(st_engine_save_prompt(e, cache_file("p.bin"), NULL, &err), ST_OK, "%s",
                 err.message);
    return file_path;
}

Test(prompt_file, another_model_or_strategy_is_refused_by_what_differs)
{
    st_engine *writer = open_with("w.yaml", model_path, dense);
    const char *p = save_100(writer);
    st_engine_close(writer);

    st_engine *e = open_with("o.yaml", other_model, dense);
    refused(e, p, ST_E_INVALID, "another model file");
    st_engine_close(e);
    e = open_with("c.yaml", model_path,
                  "context: 200\npositional-encoding: {plugin: rope}\nattention: {plugin: dense}\n");
    refused(e, p, ST_E_INVALID, "a context of 256 tokens, this engine has 200");
    st_engine_close(e);
    e = open_with("pe.yaml", model_path,
                  "context: 256\npositional-encoding: {plugin: rope, params: {base: 50000}}\n"
                  "attention: {plugin: dense}\n");
    refused(e, p, ST_E_INVALID, "another positional encoding");
    st_engine_close(e);
    e = open_with("kv.yaml", model_path, "kv-type: f32\ncontext: 256\npositional-encoding: "
                                        "{plugin: rope}\nattention: {plugin: dense}\n");
    refused(e, p, ST_E_INVALID, "does not fit this engine");
    st_engine_close(e);
}

Test(prompt_file, a_cut_damaged_or_foreign_file_is_refused)
{
    st_engine *e = open_with("w.yaml", model_path, dense);
    st_error err = {0};
    size_t n = 0;
    unsigned char *bytes = read_bytes(save_100(e), &n);
    char path[400];
    snprintf(path, sizeof path, "%s/cut.bin", dir);
    write_bytes(path, bytes, n - 100);
    refused(e, path, ST_E_FORMAT, "cut short");
    write_bytes(path, bytes, 20);
    refused(e, path, ST_E_FORMAT, "cut short in its header");
    bytes[n / 2] ^= 0x10;
    snprintf(path, sizeof path, "%s/flip.bin", dir);
    write_bytes(path, bytes, n);
    refused(e, path, ST_E_FORMAT, "checksum does not match");
    bytes[n / 2] ^= 0x10;
    /* Header fields read before the checksum: the version (at byte 8) and
     * the slot count (at 120), which bounds what is read. */
    uint32_t field, kept;
    memcpy(&kept, bytes + 8, 4);
    field = 2;
    memcpy(bytes + 8, &field, 4);
    write_bytes(path, bytes, n);
    refused(e, path, ST_E_FORMAT, "another version");
    memcpy(bytes + 8, &kept, 4);
    memcpy(&kept, bytes + 120, 4);
    cr_assert_eq(kept, 100, "the slot count is where the test expects it");
    field = 0x7fffffff;
    memcpy(bytes + 120, &field, 4);
    write_bytes(path, bytes, n);
    refused(e, path, ST_E_INVALID, "2147483647 slots");
    memcpy(bytes + 120, &kept, 4);
    bytes[0] = 'X';
    write_bytes(path, bytes, n);
    refused(e, path, ST_E_FORMAT, "not a stretch prompt cache");
    snprintf(path, sizeof path, "%s/none.bin", dir);
    refused(e, path, ST_E_NOT_FOUND, "none.bin");
    refused(e, dir, ST_E_IO, "expected a prompt cache file, found a directory");
    /* A write that fails names the file and keeps the one there. */
    snprintf(path, sizeof path, "%s/p.bin/under", dir);
    cr_assert_eq(st_engine_save_prompt(e, path, NULL, &err), ST_E_IO);
    cr_assert(strstr(err.message, "p.bin/under"), "%s", err.message);
    free(bytes);
    st_engine_close(e);
}

Test(prompt_file, a_strategy_that_drops_slots_has_no_prompt_to_keep)
{
    st_engine *e = open_with("sw.yaml", model_path,
                             "context: 256\npositional-encoding: {plugin: rope}\n"
                             "attention: {plugin: sliding-window, params: {window: 32}}\n");
    st_error err = {0};
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    cr_assert(!info.prefix_cache, "st_engine_info says whether a prompt can be kept");
    cr_assert_eq(st_engine_save_prompt(e, cache_file("sw.bin"), NULL, &err), ST_E_UNAVAILABLE);
    cr_assert(strstr(err.message, "sliding-window"), "%s", err.message);
    cr_assert_eq(st_engine_load_prompt(e, cache_file("sw.bin"), NULL, &err), ST_E_UNAVAILABLE);
    st_engine_close(e);
}

/* The same for a sequence (llama-server's slot save, restore and erase):
 * one sequence's prompt, saved, is offered to another's next request. */
static answer on_sequence(st_engine *e, st_sequence *s, const int32_t *prompt, size_t n)
{
    answer a;
    memset(&a, 0, sizeof a);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 12, .ignore_eos = true};
    st_error err = {0};
    cr_assert_eq(st_sequence_start(s, prompt, n, &gp, collect, &a, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(st_sequence_save_prompt(s, cache_file("busy.bin"), NULL, &err), ST_E_STATE);
    uint32_t active = 1;
    while (active)
        cr_assert_eq(st_engine_step(e, &active, &err), ST_OK, "%s", err.message);
    st_generate_stats stats = {.struct_size = sizeof stats};
    cr_assert_eq(st_sequence_result(s, &stats, &err), ST_OK, "%s", err.message);
    a.cached = stats.n_cached;
    return a;
}

Test(prompt_file, a_sequence_saves_restores_and_forgets_its_prompt)
{
    int32_t prompt[120];
    prompt_of(prompt, 120);
    st_engine *e = open_with("seq.yaml", model_path, "context: 256\nparallel: 2\n"
                             "positional-encoding: {plugin: rope}\nattention: {plugin: dense}\n");
    st_error err = {0};
    answer fresh = generate(e, prompt, 120, NULL);
    st_sequence *a = NULL, *b = NULL;
    cr_assert_eq(st_sequence_open(e, &a, &err), ST_OK, "%s", err.message);
    on_sequence(e, a, prompt, 100);
    uint32_t n = 0;
    cr_assert_eq(st_sequence_save_prompt(a, cache_file("slot.bin"), &n, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(n, 100);
    cr_assert_eq(st_sequence_forget(a, &n, &err), ST_OK, "%s", err.message);
    cr_assert(n >= 100, "it held %u slots", n);
    cr_assert_eq(st_sequence_cached_prefix(a, prompt, 120), 0);
    st_sequence_close(a);
    cr_assert_eq(st_sequence_open(e, &b, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_sequence_load_prompt(b, cache_file("slot.bin"), &n, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(n, 100);
    cr_assert_eq(st_sequence_cached_prefix(b, prompt, 120), 100);
    answer got = on_sequence(e, b, prompt, 120);
    cr_assert_eq(got.cached, 100);
    cr_assert_eq(got.n, fresh.n);
    cr_assert_arr_eq(got.ids, fresh.ids, fresh.n * sizeof fresh.ids[0]);
    st_sequence_close(b);
    st_engine_close(e);
}
