/*
 * tools/stretch/engine_cli.h - what the model-running commands (run,
 * tokenize, eval, bench) share: finding the strategy manifest, opening an
 * engine with a one-line error, exit codes for statuses, Ctrl-C handling.
 */
#ifndef ST_CLI_ENGINE_CLI_H
#define ST_CLI_ENGINE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stretch/retrieval.h>
#include <stretch/stretch.h>

#include "json_out.h"

/* The manifest to use: `given` when set, else $STRETCH_MANIFEST, else
 * manifests/default.yaml in the working directory, the source tree or the
 * install prefix. NULL (with a message printed) when none exists. */
const char *st_cli_default_manifest(const char *given);

/* Whether the file at path begins as a GGUF model does: given for a
 * manifest (llama.cpp's -m), it is the model to run with the default
 * strategy. */
bool st_cli_is_gguf(const char *path);

/* Open an engine, printing "stretch: <message>" on failure. Returns the
 * exit code (0 on success). A GGUF model given for the manifest (what
 * llama.cpp's -m takes) runs with the default strategy, as --model. */
int st_cli_open_engine(const char *manifest, const st_engine_options *opts, st_engine **out);

/* Open only the strategy's retriever (no model), the same way; flags:
 * ST_RETRIEVER_*. */
int st_cli_open_retriever(const char *manifest, uint32_t flags, st_retriever **out);
/* The same, but when the strategy's retriever block re-ranks (`rerank:`)
 * the strategy is opened as an engine (the model scores) and *out is its
 * retriever (with the strategy's `index:` loaded, if it names one);
 * *engine is then set. Close with st_cli_close_ranker. */
int st_cli_open_ranker(const char *manifest, uint32_t flags, st_retriever **out,
                       st_engine **engine);
void st_cli_close_ranker(st_retriever *r, st_engine *engine);

/* Hits as a JSON array of {rank, doc, id, score, text} (cmd_retrieve.c). */
void st_cli_hits_json(st_json *j, const st_retrieval *hits);

/* Exit code for a status from opening an engine (or checking arguments
 * against it): manifest, load or model error. A failure once the engine is
 * open (tokenize, generate, score) is ST_EXIT_RUNTIME whatever the status:
 * a plugin failing mid-run is not a refused load. */
int st_cli_exit_for(st_status st);

/* --backend B, --device D and --no-kernel-cache, shared by the commands
 * that run a model: 1 when argv[*i] was one of them (its value consumed),
 * 0 when not, -1 (a message printed) when its value is missing. */
int st_cli_backend_option(const char *cmd, int argc, char **argv, int *i,
                          st_engine_options *opts);
/* Their lines for a command's usage. */
extern const char st_cli_backend_usage[];

/* --threads N, --context N and --model FILE, the engine options of the
 * commands that generate (run, chat, bench), then the backend options
 * above: as st_cli_backend_option (a --model without its value is 0, left
 * to the command's "incomplete option" message). */
int st_cli_engine_option(const char *cmd, int argc, char **argv, int *i,
                         st_engine_options *opts);

/* One line on stderr for `--stats`: the prompt's tokens (how many came from
 * the cache) and the rate of the rest, the generated tokens and their
 * rate (the first comes from the prefill's logits, so the decode rate
 * counts the steps after it). */
void st_cli_print_stats(const st_generate_stats *s, bool cancelled);
/* Why an answer ended, as --json says it: "stop" (a --stop text), "eos",
 * "context", "cancelled" or "max_tokens". */
const char *st_cli_stopped_by(const st_generate_stats *s, bool by_stop_text, bool cancelled);

/* Route SIGINT to st_engine_cancel(e) (NULL to restore the default). */
void st_cli_cancel_on_sigint(st_engine *e);

/* Parse a non-negative integer flag value; prints and returns -1 on error. */
long long st_cli_parse_count(const char *flag, const char *value, long long max);

/* Parse an integer flag value in min..max; prints the range and returns -1
 * when it is missing, not an integer or outside it. */
long long st_cli_parse_range(const char *flag, const char *value, long long min,
                             long long max);

/* Read a whole file into a NUL-terminated malloc'd buffer; "-" reads
 * standard input. NULL with a message printed on failure. */
char *st_cli_read_file(const char *path, size_t *len);

/* The stream a text argument names: standard input for "-", else the file
 * opened for reading. NULL with the reason in why (strerror's, or that it
 * is a directory, which fopen opens and the first read refuses). Close it
 * with st_cli_input_close, which leaves standard input open. */
FILE *st_cli_input_open(const char *path, char *why, size_t why_size);
void st_cli_input_close(FILE *f);
/* The name messages give such an argument: "standard input" for "-". */
const char *st_cli_input_name(const char *path);

/* Decode one JSON string literal (with its quotes) from `s` into a malloc'd
 * UTF-8 buffer; NULL when `s` is not a valid JSON string. */
char *st_cli_json_string_decode(const char *s, size_t len, size_t *out_len);

#endif
