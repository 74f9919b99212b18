/*
 * tests/constraint/gen_check.c - see gen_check.h.
 */
#include "gen_check.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "test_host.h"

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

bool gen_run(const st_plugin_entry *e, void *inst, uint64_t seed, size_t max_tokens,
             char *out, size_t cap, size_t *out_len)
{
    const st_sampler_ops *ops = e->ops;
    static st_candidate data[ST_TEST_VOCAB_N];
    uint64_t x = seed * 2654435761u + 1;
    size_t n = 0;
    ops->reset(inst, seed);
    out[0] = '\0';
    if (out_len)
        *out_len = 0;
    for (size_t t = 0; t < max_tokens; t++) {
        for (int32_t i = 0; i < ST_TEST_VOCAB_N; i++)
            data[i] = (st_candidate){i, (float)(next(&x) % 1000) / 100.0f, 0.0f};
        /* A little push toward ending, so runs finish. */
        data[ST_TEST_VOCAB_EOS].logit += (float)t * 0.05f;
        st_candidates c = {data, ST_TEST_VOCAB_N, false, -1};
        st_error err = {0};
        cr_assert_eq(ops->apply(inst, &c, &err), ST_OK, "apply at step %zu: %s", t, err.message);
        cr_assert_gt(c.size, 0);
        size_t best = 0;
        for (size_t i = 1; i < c.size; i++)
            if (c.data[i].logit > c.data[best].logit)
                best = i;
        int32_t tok = c.data[best].id;
        cr_assert_eq(ops->accept(inst, tok, false, &err), ST_OK, "accept %d: %s", tok,
                     err.message);
        if (out_len)
            *out_len = n;
        if (tok == ST_TEST_VOCAB_EOS)
            return true;
        size_t len;
        const char *p = st_test_vocab_piece(tok, &len);
        cr_assert_lt(n + len, cap, "output longer than the buffer");
        memcpy(out + n, p, len);
        n += len;
        out[n] = '\0';
        if (out_len)
            *out_len = n;
    }
    return false;
}

/* ---- an independent JSON syntax check ---- */

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static const char *value(const char *p, int depth);

static const char *string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 5;
                continue;
            }
            if (!*p || !strchr("\"\\/bfnrt", *p))
                return NULL;
        }
        p++;
    }
    return p + 1;
}

static const char *number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p;
}

static const char *value(const char *p, int depth)
{
    if (depth > 200)
        return NULL;
    p = ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        p = ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (!(p = string(ws(p))))
                    return NULL;
                p = ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            if (!(p = value(p, depth + 1)))
                return NULL;
            p = ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return string(p);
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    return number(p);
}

bool json_valid(const char *s)
{
    const char *p = value(s, 0);
    return p && *ws(p) == '\0';
}
