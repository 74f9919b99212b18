/* The host pieces the engine is built from: UTF-8 streaming of token
 * pieces, the chat template renderer, and how an echoed prompt is cut. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "engine_internal.h"
#include "logprobs.h"
#include "utf8_stream.h"

static size_t feed_all(const char *const *pieces, size_t n, char *out)
{
    st_utf8_stream s;
    st_utf8_stream_init(&s);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        w += st_utf8_stream_feed(&s, pieces[i], strlen(pieces[i]), out + w);
    w += st_utf8_stream_flush(&s, out + w);
    out[w] = '\0';
    return w;
}

Test(utf8_stream, holds_a_split_character_until_complete)
{
    st_utf8_stream s;
    st_utf8_stream_init(&s);
    char out[64];
    /* 世 = E4 B8 96 arriving as three one-byte tokens */
    cr_assert_eq(st_utf8_stream_feed(&s, "\xE4", 1, out), 0);
    cr_assert_eq(st_utf8_stream_feed(&s, "\xB8", 1, out), 0);
    cr_assert_eq(st_utf8_stream_feed(&s, "\x96", 1, out), 3);
    cr_assert_arr_eq(out, "\xE4\xB8\x96", 3);
    cr_assert_eq(st_utf8_stream_flush(&s, out), 0);
}

Test(utf8_stream, replaces_what_can_never_be_valid)
{
    char out[128];
    const char *pieces[] = {"a\xFF", "b\xE4\xB8", "c", "\xF0\x9F\x98\x80", "\xC3"};
    size_t n = feed_all(pieces, 5, out);
    const char *want = "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c" "\xF0\x9F\x98\x80" "\xEF\xBF\xBD";
    cr_assert_eq(n, strlen(want));
    cr_assert_str_eq(out, want);
}

Test(utf8_stream, refuses_overlongs_and_surrogates)
{
    char out[64];
    const char *overlong[] = {"\xC0\xAF"};
    feed_all(overlong, 1, out);
    cr_assert_str_eq(out, "\xEF\xBF\xBD\xEF\xBF\xBD");
    const char *surrogate[] = {"\xED\xA0\x80"};
    feed_all(surrogate, 1, out);
    cr_assert_eq(strncmp(out, "\xEF\xBF\xBD", 3), 0);
    cr_assert_null(strstr(out, "\xED"));
}

static const char chatml[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

Test(chat_template, chatml_with_the_default_system_message)
{
    char *out = NULL;
    st_error err = {0};
    cr_assert_eq(st_chat_render(chatml, strlen(chatml), "What is 2+2?", &out, NULL, &err), ST_OK);
    cr_assert_str_eq(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                          "trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is "
                          "2+2?<|im_end|>\n<|im_start|>assistant\n");
    free(out);
}

Test(chat_template, chatml_without_a_default_system_message)
{
    const char *t = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] "
                    "+ '<|im_end|>\n'}}{% endfor %}";
    char *out = NULL;
    cr_assert_eq(st_chat_render(t, strlen(t), "hi", &out, NULL, NULL), ST_OK);
    cr_assert_str_eq(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    free(out);
}

Test(chat_template, unknown_or_missing_templates_are_refused)
{
    char *out = NULL;
    st_error err = {0};
    const char *llama2 = "[INST] {{ message }} [/INST]";
    cr_assert_eq(st_chat_render(llama2, strlen(llama2), "hi", &out, NULL, &err), ST_E_UNAVAILABLE);
    cr_assert(strstr(err.message, "ChatML"));
    cr_assert_eq(st_chat_render(NULL, 0, "hi", &out, NULL, &err), ST_E_UNAVAILABLE);
    cr_assert(strstr(err.message, "chat_template"));
    cr_assert_null(out);
}

/* ---- the pieces an echoed prompt is prefilled in (st_prefill_piece) ---- */

/* Every prompt length and engine block: the pieces cover the prompt in
 * order, stay inside the engine's blocks, hold at most
 * ST_PROMPT_LOGPROBS_BLOCK rows, and none has under 8 rows unless the
 * engine's own block has (a piece that short would take the other
 * attention path and change the logits). */
Test(engine_parts, prompt_logprobs_pieces_keep_the_blocks_attention_path)
{
    static const size_t blocks[] = {16, 64, 100, 128, 512};
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
        for (size_t n = 1; n <= 1100; n++) {
            size_t block = blocks[b];
            for (size_t done = 0; done < n;) {
                size_t piece = st_prefill_piece(done, n, block, ST_PROMPT_LOGPROBS_BLOCK);
                size_t start = done - done % block;
                size_t block_rows = n - start < block ? n - start : block;
                cr_assert(piece >= 1 && piece <= ST_PROMPT_LOGPROBS_BLOCK,
                          "n %zu block %zu at %zu: a piece of %zu", n, block, done, piece);
                cr_assert((done + piece - 1) / block == done / block,
                          "n %zu block %zu at %zu: %zu rows cross a block", n, block, done,
                          piece);
                cr_assert(piece >= 8 || piece == block_rows,
                          "n %zu block %zu at %zu: %zu rows in a block of %zu", n, block,
                          done, piece, block_rows);
                done += piece;
            }
        }
}
