#include "utf8_stream.h"

#include <string.h>

static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

void st_utf8_stream_init(st_utf8_stream *s)
{
    s->n_pending = 0;
}

/* Length a lead byte announces; 0 for a byte that cannot lead. */
static size_t lead_length(unsigned char c)
{
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether `c` may follow the bytes in `seq[0..i)` at index i (rejects
 * overlongs, surrogates and code points past U+10FFFF, as RFC 3629 does). */
static int continues(const unsigned char *seq, size_t i, unsigned char c)
{
    if ((c & 0xC0) != 0x80)
        return 0;
    if (i == 1) {
        if (seq[0] == 0xE0 && c < 0xA0) return 0;
        if (seq[0] == 0xED && c > 0x9F) return 0;
        if (seq[0] == 0xF0 && c < 0x90) return 0;
        if (seq[0] == 0xF4 && c > 0x8F) return 0;
    }
    return 1;
}

size_t st_utf8_stream_feed(st_utf8_stream *s, const char *bytes, size_t n, char *out)
{
    size_t w = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)bytes[k];
        if (s->n_pending == 0) {
            size_t len = lead_length(c);
            if (len == 1) {
                out[w++] = (char)c;
            } else if (len == 0) {
                memcpy(out + w, replacement, 3);
                w += 3;
            } else {
                s->pending[s->n_pending++] = c;
            }
            continue;
        }
        if (!continues(s->pending, s->n_pending, c)) {
            /* The held sequence is broken: replace it, then treat this
             * byte afresh. */
            memcpy(out + w, replacement, 3);
            w += 3;
            s->n_pending = 0;
            k--;
            continue;
        }
        s->pending[s->n_pending++] = c;
        if (s->n_pending == lead_length(s->pending[0])) {
            memcpy(out + w, s->pending, s->n_pending);
            w += s->n_pending;
            s->n_pending = 0;
        }
    }
    return w;
}

size_t st_utf8_stream_flush(st_utf8_stream *s, char *out)
{
    size_t w = 0;
    if (s->n_pending) {
        memcpy(out, replacement, 3);
        w = 3;
    }
    s->n_pending = 0;
    return w;
}
