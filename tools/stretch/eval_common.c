#include "eval_common.h"

#include "json_out.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double st_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void st_progress_start(st_progress *p, const char *label, size_t total)
{
    p->t0 = st_now_s();
    p->done = 0;
    p->skipped = 0;
    p->total = total;
    p->tty = isatty(2);
    p->lines = false;
    p->last_line = -1.0;
    p->label = label;
    p->unit = "tok";
}

void st_progress_show(st_progress *p)
{
    if ((!p->tty && !p->lines) || p->total == 0)
        return;
    double now = st_now_s(), dt = now - p->t0;
    if (!p->tty) {
        if (p->last_line >= 0 && now - p->last_line < 1.0 && p->done < p->total)
            return;
        p->last_line = now;
    }
    size_t fresh = p->done > p->skipped ? p->done - p->skipped : 0;
    double rate = dt > 0 ? fresh / dt : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    int width = 24, fill = (int)(width * (double)p->done / (double)p->total);
    if (fill > width)
        fill = width;
    char amount[96];
    if (strcmp(p->unit, "B") == 0) {
        bool mb = p->total >= 1000000;
        double scale = mb ? 1e6 : 1e3;
        snprintf(amount, sizeof amount, "%.1f/%.1f %s  %.1f %s/s", p->done / scale,
                 p->total / scale, mb ? "MB" : "kB", rate / scale, mb ? "MB" : "kB");
    } else {
        snprintf(amount, sizeof amount, "%zu/%zu  %.0f %s/s", p->done, p->total, rate,
                 p->unit);
    }
    fprintf(stderr, "%s[%.*s%*s] %s %s  ETA %dm%02ds%s", p->tty ? "\r" : "", fill,
            "########################", width - fill, "", p->label, amount, (int)eta / 60,
            (int)eta % 60, p->tty ? " " : "\n");
    fflush(stderr);
}

void st_progress_end(const st_progress *p)
{
    if (p->tty)
        fputc('\n', stderr);
}

int st_progress_on_read(void *user, size_t bytes_done, size_t unused)
{
    st_progress_read *r = user;
    (void)unused;
    double part = r->bytes ? (double)bytes_done / (double)r->bytes : 1.0;
    if (part > 1.0)
        part = 1.0;
    r->p->done = r->base + (size_t)((double)r->units * part);
    st_progress_show(r->p);
    return 0;
}

int st_parse_list(const char *flag, const char *s, long long *out, int cap, long long min,
                  long long max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < min || v > max || n == cap || (*end && *end != ',')) {
            fprintf(stderr, "stretch: %s: expected up to %d comma-separated integers from "
                            "%lld to %lld, found '%s'\n", flag, cap, min, max, s);
            return -1;
        }
        out[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (n == 0)
        fprintf(stderr, "stretch: %s: empty list\n", flag);
    return n ? n : -1;
}

/* mkdir -p: an --out like out/ppl-32768/yarn works on a fresh checkout. */
int st_make_dirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return -1;
        path[i] = c;
    }
    return 0;
}

size_t st_points_line(const char *text, const char *at)
{
    size_t line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

static void format_header(char *buf, size_t cap, const char *task, const st_points_field *fields,
                          size_t n)
{
    size_t w = (size_t)snprintf(buf, cap, "{\"points\":\"%s\",\"version\":1", task);
    for (size_t i = 0; i < n && w < cap; i++)
        w += (size_t)snprintf(buf + w, cap - w, ",\"%s\":\"%s\"", fields[i].key,
                              fields[i].value);
    if (w < cap)
        snprintf(buf + w, cap - w, "}");
}

/* Whether the first line of `text` is `header`; else what differs. */
static bool header_matches(const char *text, const char *header, const char *task,
                           const st_points_field *fields, size_t n, char *why, size_t cap)
{
    size_t line = strcspn(text, "\n");
    if (line == strlen(header) && memcmp(text, header, line) == 0)
        return true;
    char want[256];
    snprintf(want, sizeof want, "{\"points\":\"%s\",\"version\":1", task);
    if (strncmp(text, want, strlen(want)) != 0) {
        snprintf(why, cap, "its first line is not a %s points header (expected %s...)", task,
                 want);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(want, sizeof want, "\"%s\":\"%s\"", fields[i].key, fields[i].value);
        const char *at = strstr(text, want);
        if (!at || at > text + line) {
            snprintf(why, cap, "it was computed with another %s (expected %s)", fields[i].key,
                     want);
            return false;
        }
    }
    snprintf(why, cap, "its header differs (expected %s)", header);
    return false;
}

FILE *st_points_open(const char *dir, const char *name, bool fresh, const char *task,
                     const st_points_field *fields, size_t n, char **existing,
                     size_t *existing_len)
{
    *existing = NULL;
    *existing_len = 0;
    if (st_make_dirs(dir) != 0) {
        fprintf(stderr, "stretch: cannot create output directory %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    char path[4096], header[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    format_header(header, sizeof header, task, fields, n);
    if (!fresh) {
        FILE *r = fopen(path, "r");
        if (r) {
            fseek(r, 0, SEEK_END);
            long len = ftell(r);
            fseek(r, 0, SEEK_SET);
            char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
            if (buf && fread(buf, 1, (size_t)len, r) == (size_t)len) {
                buf[len] = '\0';
                *existing = buf;
                *existing_len = (size_t)len;
            } else {
                free(buf);
            }
            fclose(r);
            if (!*existing) {
                fprintf(stderr, "stretch: %s: cannot read it to resume\n", path);
                return NULL;
            }
        }
    }
    /* Points of another model, strategy, input or settings must not be
     * mixed into this run's totals: refuse, keeping the file as it is. */
    char why[sizeof header + 128]; /* the reason quotes the whole header */
    if (*existing_len && !header_matches(*existing, header, task, fields, n, why, sizeof why)) {
        fprintf(stderr, "stretch: %s:1: cannot resume: %s; rerun with --fresh to discard "
                        "its points, or choose another --out\n", path, why);
        free(*existing);
        *existing = NULL;
        return NULL;
    }
    /* A last line a kill tore (no line end) is cut off: its point is
     * computed again, and the new line must not run into it. (The header
     * matched, so the file is this evaluation's own; a torn header alone
     * is written again.) */
    size_t keep = *existing_len;
    while (keep && (*existing)[keep - 1] != '\n')
        keep--;
    if (keep < *existing_len) {
        if (keep && truncate(path, (off_t)keep) != 0) {
            fprintf(stderr, "stretch: %s: cannot cut its torn last line: %s\n", path,
                    strerror(errno));
            free(*existing);
            *existing = NULL;
            return NULL;
        }
        (*existing)[keep] = '\0';
        *existing_len = keep;
    }
    bool start = !*existing_len;
    FILE *f = fopen(path, start ? "w" : "a");
    if (!f) {
        fprintf(stderr, "stretch: %s: %s\n", path, strerror(errno));
        free(*existing);
        *existing = NULL;
        return NULL;
    }
    if (start) {
        fprintf(f, "%s\n", header);
        fflush(f);
    }
    return f;
}

bool st_accuracy_csv(const char *path, const st_accuracy_grid *g)
{
    FILE *csv = fopen(path, "w");
    if (csv) {
        fprintf(csv, "length,%s,samples,accuracy\n", g->column);
        for (int l = 0; l < g->n_lengths; l++)
            for (int c = 0; c < g->n_columns; c++)
                fprintf(csv, "%lld,%lld,%lld,%.4f\n", g->lengths[l], g->columns[c], g->samples,
                        g->acc[l][c]);
    }
    if (!csv || (ferror(csv) | fclose(csv))) {
        fprintf(stderr, "stretch: %s: cannot write\n", path);
        return false;
    }
    return true;
}

void st_accuracy_json(const char *manifest, const st_accuracy_grid *g)
{
    st_json j;
    st_json_init(&j, stdout, false);
    st_json_begin_object(&j);
    st_json_key(&j, "manifest");
    st_json_string(&j, manifest);
    st_json_key(&j, "samples");
    st_json_int(&j, g->samples);
    st_json_key(&j, "rows");
    st_json_begin_array(&j);
    for (int l = 0; l < g->n_lengths; l++) {
        st_json_begin_object(&j);
        st_json_key(&j, "length");
        st_json_int(&j, g->lengths[l]);
        st_json_key(&j, "accuracy");
        st_json_begin_array(&j);
        for (int c = 0; c < g->n_columns; c++)
            st_json_double(&j, g->acc[l][c]);
        st_json_end_array(&j);
        st_json_end_object(&j);
    }
    st_json_end_array(&j);
    st_json_end_object(&j);
    st_json_end(&j);
}

int st_answer_on_token(void *user, int32_t token, const char *text, size_t len)
{
    st_answer *a = user;
    (void)token;
    if (a->len + len < sizeof a->text) {
        memcpy(a->text + a->len, text, len);
        a->len += len;
        a->text[a->len] = '\0';
    }
    return 0;
}

long st_first_integer(const char *s)
{
    while (*s && !isdigit((unsigned char)*s))
        s++;
    return *s ? strtol(s, NULL, 10) : -1;
}

int st_text_buf_put(st_text_buf *t, const char *text, size_t len)
{
    if (t->n + len + 1 > t->cap) {
        size_t cap = (t->cap + len + 1) * 2;
        char *s = realloc(t->s, cap);
        if (!s)
            return -1;
        t->s = s;
        t->cap = cap;
    }
    memcpy(t->s + t->n, text, len);
    t->n += len;
    t->s[t->n] = '\0';
    return 0;
}

int st_text_buf_on_token(void *user, int32_t token, const char *text, size_t len)
{
    (void)token;
    return st_text_buf_put(user, text, len) != 0;
}
