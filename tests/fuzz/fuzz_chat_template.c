/*
 * tests/fuzz/fuzz_chat_template.c - rendering a single-turn chat prompt
 * from a model's tokenizer.chat_template. The input is the template (any
 * bytes, NULs included: it comes from a GGUF with a length) and, after
 * ST_FUZZ_SEPARATOR, the user's message. A rendered prompt must carry the
 * message verbatim in a user turn and end by opening the assistant's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "fuzz_util.h"

static const char k_user_open[] = "<|im_start|>user\n";
static const char k_tail[] = "<|im_end|>\n<|im_start|>assistant\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    size_t n = st_fuzz_split(data, size, part, len, 2);
    /* The template is copied so a read past its length is ASan's to see. */
    char *tmpl = malloc(len[0] ? len[0] : 1);
    memcpy(tmpl, part[0], len[0]);
    size_t user_len = n > 1 ? strnlen((const char *)part[1], len[1]) : 0;
    char *user = malloc(user_len + 1);
    memcpy(user, n > 1 ? part[1] : data, user_len);
    user[user_len] = '\0';

    char *out = NULL;
    st_error err = {0};
    size_t user_at = SIZE_MAX;
    st_status st = st_chat_render(len[0] ? tmpl : NULL, len[0], user, &out, &user_at, &err);
    if (st == ST_OK) {
        size_t out_len = strlen(out);
        /* Where the renderer says the user's text is, it is, byte for byte:
         * the engine tokenizes that span as plain text (role injection). */
        if (user_at > out_len || out_len - user_at < user_len ||
            memcmp(out + user_at, user, user_len) != 0)
            st_fuzz_fail("user_at does not point at the user's text");
        size_t tail = sizeof k_tail - 1;
        if (out_len < tail || strcmp(out + out_len - tail, k_tail) != 0)
            st_fuzz_fail("the prompt does not end by opening the assistant's turn");
        size_t open_len = sizeof k_user_open - 1;
        if (out_len < tail + user_len + open_len)
            st_fuzz_fail("the prompt is shorter than the user's turn");
        const char *turn = out + out_len - tail - user_len - open_len;
        if (strncmp(turn, k_user_open, open_len) != 0 || memcmp(turn + open_len, user, user_len) != 0)
            st_fuzz_fail("the user's message is not the last turn, verbatim");
        free(out);
    } else if (!err.message[0]) {
        st_fuzz_fail("st_chat_render failed without a message");
    }
    free(user);
    free(tmpl);
    return 0;
}
