/*
 * tools/stretch/eval_common.h - what the long evaluations share: a progress
 * line with rate and ETA, comma-separated number lists from the command
 * line, and a points file that makes a run resumable (each finished point
 * is appended as one line and flushed; a rerun skips the points present).
 */
#ifndef ST_CLI_EVAL_COMMON_H
#define ST_CLI_EVAL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct st_progress {
    double t0;
    size_t done, total;   /* work units (tokens, unless `unit` says otherwise) */
    size_t skipped;       /* units resumed from a previous run */
    bool tty;
    bool lines;           /* not a tty: print a line at most every second (--progress) */
    double last_line;     /* when the last such line was printed */
    const char *label;
    const char *unit;     /* "tok" (the default) or "B" (shown in kB or MB) */
} st_progress;

double st_now_s(void);
void st_progress_start(st_progress *p, const char *label, size_t total);
/* Print "\r[####   ] label done/total  rate/s  ETA" to stderr when a tty;
 * otherwise, with p->lines set, the same as a line of its own, at most one
 * a second (a long run's log shows it is alive and how far it got). */
void st_progress_show(st_progress *p);
void st_progress_end(const st_progress *p);

/* Progress inside one document read chunk by chunk (st_read_params's
 * callback, bytes read so far): `units` work units spread over `bytes`
 * bytes, counted from `base`. p->done is left inside the document: the
 * caller sets it back to `base` (then adds the document's units) or to the
 * total when the read ends. */
typedef struct st_progress_read {
    st_progress *p;
    size_t base, units;
    uint64_t bytes;
} st_progress_read;
int st_progress_on_read(void *user, size_t bytes_done, size_t unused);

/* "1024,2048,4096" -> values; returns the count, or -1 (message printed). */
int st_parse_list(const char *flag, const char *s, long long *out, int cap, long long min,
                  long long max);

/* What a points file was computed from: `n` fields (model, manifest, ...)
 * written as its first line, {"points":TASK,"KEY":"VALUE",...}. */
typedef struct st_points_field {
    const char *key;
    char value[128];
} st_points_field;

/* Open DIR/name for appending finished points (creating DIR). A new (or
 * --fresh) file starts with the header; an existing one is resumed only
 * when its first line is that header, else the field that differs is
 * named and NULL returned (--fresh or another --out is the way out). The
 * lines already there are returned through *existing (malloc'd text, may
 * be NULL) for the caller to parse. NULL + message on failure. */
FILE *st_points_open(const char *dir, const char *name, bool fresh, const char *task,
                     const st_points_field *fields, size_t n, char **existing,
                     size_t *existing_len);

/* mkdir -p DIR; 0 on success, -1 with errno set. */
int st_make_dirs(const char *dir);

/* 1-based line number of `at` within `text`. */
size_t st_points_line(const char *text, const char *at);

/* FNV-1a 64 (eight bytes a step), to fingerprint what a run depends on. */
#define ST_EVAL_HASH_INIT 0xcbf29ce484222325ull
uint64_t st_eval_hash(uint64_t h, const void *data, size_t n);
/* A file's contents; false when it cannot be read. */
bool st_eval_hash_file(const char *path, uint64_t *out);
/* Every manifest file of a strategy's extends chain. */
bool st_eval_hash_manifest(const char *path, uint64_t *out);
/* The header fields every evaluation shares: f[0] "model" and f[1]
 * "manifest", their hashes; false when either cannot be read. */
bool st_eval_input_fields(const char *model, const char *manifest, st_points_field f[2]);

/* All of a generated text, grown as it comes (st_text_buf_on_token, an
 * st_engine_generate token callback; it stops generation when memory
 * runs out). The caller frees s. */
typedef struct st_text_buf {
    char *s;
    size_t n, cap;
} st_text_buf;
int st_text_buf_on_token(void *user, int32_t token, const char *text, size_t len);
/* Append len bytes (kept NUL-terminated); -1 when out of memory. */
int st_text_buf_put(st_text_buf *t, const char *text, size_t len);

/* The first 255 bytes of a generated answer, collected by
 * st_answer_on_token (an st_engine_generate token callback). */
typedef struct st_answer {
    char text[256];
    size_t len;
} st_answer;
int st_answer_on_token(void *user, int32_t token, const char *text, size_t len);
/* The first integer in `s`, -1 when it holds no digit. */
long st_first_integer(const char *s);

/* An accuracy table by length (rows) and a second axis (columns: passkey
 * depth, number of facts), as the retrieval evaluations write it. */
#define ST_EVAL_AXIS_MAX 32
typedef struct st_accuracy_grid {
    const char *column;              /* the second axis's CSV name: "depth", "facts" */
    const long long *lengths;
    int n_lengths;
    const long long *columns;
    int n_columns;
    long long samples;               /* per cell */
    double (*acc)[ST_EVAL_AXIS_MAX]; /* [length][column], 0..1 */
} st_accuracy_grid;
/* length,COLUMN,samples,accuracy rows into `path`; false (message printed)
 * when it cannot be written. */
bool st_accuracy_csv(const char *path, const st_accuracy_grid *g);
/* {"manifest", "samples", "rows": [{"length", "accuracy": [...]}]} on stdout. */
void st_accuracy_json(const char *manifest, const st_accuracy_grid *g);

#endif
