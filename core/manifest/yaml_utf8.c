/*
 * core/yaml_utf8.c - manifests must be UTF-8 before libfyaml sees them:
 * libfyaml 0.7.12 loops forever on a directive whose name holds a byte
 * that is not UTF-8 ("%\xa0", found by tests/fuzz), and a message can only
 * quote text that is valid.
 */
#include <stdint.h>

#include "yaml_manifest.h"

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when there is none
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t st_utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n)
        return 0;
    uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3fu);
    }
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

st_status st_yaml_check_utf8(const char *buf, size_t len, const char *label, st_diag *diag)
{
    const unsigned char *s = (const unsigned char *)buf;
    int line = 1, col = 1;
    for (size_t i = 0; i < len;) {
        size_t n = st_utf8_sequence(s + i, len - i);
        if (!n)
            return st_diag_set(diag, ST_E_FORMAT, label, line, col,
                               "expected UTF-8 text, found the byte 0x%02x", s[i]);
        if (s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
        i += n;
    }
    return ST_OK;
}
