/*
 * tools/stretch/cmd_chat.c - `stretch chat [-m MANIFEST] [options]`: a
 * conversation at the terminal, llama-cli's conversation mode. Each line
 * read is a user turn; the whole conversation goes through the model's
 * chat template every turn, and the answer streams as it is made. The
 * answer runs on a sequence, whose decoded keys and values the engine
 * prefills again between turns (st_engine_idle_step), so the next turn
 * takes the last prompt and its answer from the prefix cache.
 * When the conversation outgrows the context, its oldest exchanges are
 * dropped (a system message stays), down to half of what the prompt may
 * take, and the user is told. A strategy
 * whose attention evicts (lm-infinite, streaming, sliding-window, ...)
 * drops nothing: each turn goes on from the last on the same sequence
 * (st_sequence_continue), so the conversation runs past the context and
 * the strategy chooses what the model still sees. With the manifest's
 * retriever index, each turn is looked up as `run` does.
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stretch/retrieval.h>

#include "answer_text.h"
#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_out.h"
#include "sampling_flags.h"

static void chat_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch chat [-m MANIFEST] [options]\n\n"
            "  A conversation with the model through its chat template: each line read\n"
            "  is your turn (end a line with \\ to go on to the next), the answer streams\n"
            "  back. /reset forgets the conversation, /exit (or end of input) ends it.\n"
            "  Ctrl-C stops an answer where it is. Read from a pipe, each line is a turn\n"
            "  and no prompt is shown.\n\n"
            "  -m, --manifest FILE  strategy manifest (default: manifests/default.yaml)\n"
            "  --system TEXT        the system message (default: the template's own)\n"
            "  --max-tokens N       at most N tokens an answer (default 1024)\n"
            "  --seed N             seed for the samplers (default: from the clock)\n"
            "  (llama-cli's spellings work too: -sys TEXT, -n N, -s N, -t N, -c N, and\n"
            "   -m MODEL.gguf runs that model with the default strategy)\n"
            "  --json               print each answer as one JSON line (text, why it\n"
            "                       stopped, token counts, timings, what was retrieved)\n"
            "                       instead of streaming it; a refused turn is a line\n"
            "                       with \"error\"\n"
            "  --stats              after each answer, the prompt's tokens (how many from\n"
            "                       the cache), the answer's and their speeds, on stderr\n"
            "  --no-retrieval       ignore the manifest's retriever index (with one, each\n"
            "                       turn is looked up and shown to the model through the\n"
            "                       template; --stats lists what was retrieved)\n"
            "  --threads N          worker threads (default: the manifest's, else all cores)\n"
            "  --context N          context size in tokens, 16 to 1048576 (default: the\n"
            "                       manifest's)\n"
            "  --model FILE         use this GGUF instead of the manifest's\n");
    fputs(st_cli_sampling_usage, f);
    fputs(st_cli_backend_usage, f);
}

/* The conversation: messages[0] may be the system message; then user and
 * assistant turns in order. The strings are owned. */
typedef struct conversation {
    st_chat_message *m;
    size_t n, cap;
    size_t first_turn; /* 1 with a system message, else 0 */
} conversation;

static int conv_push(conversation *c, const char *role, const char *content, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        st_chat_message *grown = realloc(c->m, cap * sizeof *grown);
        if (!grown)
            return -1;
        c->m = grown;
        c->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, content, len);
    copy[len] = '\0';
    c->m[c->n].role = role;
    c->m[c->n].content = copy;
    c->n++;
    return 0;
}

/* Drop messages [from, from + k). */
static void conv_drop(conversation *c, size_t from, size_t k)
{
    for (size_t i = from; i < from + k; i++)
        free((char *)c->m[i].content);
    memmove(c->m + from, c->m + from + k, (c->n - from - k) * sizeof *c->m);
    c->n -= k;
}

static void conv_free(conversation *c)
{
    conv_drop(c, 0, c->n);
    free(c->m);
}

/* One line of input, without its newline; a line ending in a backslash
 * goes on to the next (the backslash becomes a newline). 0 at the end of
 * the input with nothing read, -1 when out of memory. */
static int read_turn(FILE *in, st_text_buf *line)
{
    line->n = 0;
    if (line->s)
        line->s[0] = '\0';
    bool any = false;
    char chunk[4096];
    while (fgets(chunk, sizeof chunk, in)) {
        any = true;
        size_t n = strlen(chunk);
        bool end = n > 0 && chunk[n - 1] == '\n';
        if (end)
            chunk[--n] = '\0';
        if (end && n > 0 && chunk[n - 1] == '\r')
            chunk[--n] = '\0';
        if (end && n > 0 && chunk[n - 1] == '\\') {
            chunk[n - 1] = '\n';
            if (st_text_buf_put(line, chunk, n) != 0)
                return -1;
            continue;
        }
        if (st_text_buf_put(line, chunk, n) != 0)
            return -1;
        if (end)
            break;
    }
    return any || line->n ? 1 : 0;
}

/* The answer, through the --stop texts: shown as it comes (not with
 * --json) and kept for the conversation. */
static int on_token(void *user, int32_t token, const char *text, size_t len)
{
    (void)token;
    return st_cli_answer_feed(user, text, len);
}

/* The conversation's prompt, after dropping the oldest exchanges until it
 * leaves `room` tokens of the context for the answer. ST_E_RANGE, with
 * nothing dropped, when the last user turn does not fit even alone. */
static st_status fit_prompt(st_engine *e, conversation *c, uint32_t flags, uint32_t n_ctx,
                            uint32_t room, int32_t **ids, size_t *n_ids, st_error *err)
{
    st_status st = st_engine_chat_tokenize_messages(e, c->m, c->n, flags, ids, n_ids, err);
    if (st != ST_OK || *n_ids + room <= n_ctx)
        return st; /* most turns: the conversation fits as it is */
    st_free(*ids);
    *ids = NULL;
    /* Before anything is dropped: the last user turn alone must fit. */
    st_chat_message alone[2];
    size_t k = 0;
    if (c->first_turn)
        alone[k++] = c->m[0];
    alone[k++] = c->m[c->n - 1];
    if ((st = st_engine_chat_tokenize_messages(e, alone, k, flags, ids, n_ids, err)) != ST_OK)
        return st;
    st_free(*ids);
    *ids = NULL;
    if (*n_ids + room > n_ctx) {
        snprintf(err->message, sizeof err->message,
                 "the message does not fit: in the chat template it is %zu tokens, and the "
                 "context of %u keeps %u for the answer; write less, or raise --context",
                 *n_ids, n_ctx, room);
        return ST_E_RANGE;
    }
    /* Drop down to half the room the prompt has, not just under it (as
     * llama-cli's context shift discards half): the turns after a drop
     * then add to a prompt the cache holds, where dropping one exchange
     * at a time would make every later turn drop one more and so prefill
     * the whole conversation again. */
    size_t half = (n_ctx - room) / 2, dropped = 0;
    do {
        /* The oldest user-assistant pair; the last user turn fits alone. */
        conv_drop(c, c->first_turn, 2);
        dropped += 2;
        st_free(*ids);
        *ids = NULL;
        st = st_engine_chat_tokenize_messages(e, c->m, c->n, flags, ids, n_ids, err);
    } while (st == ST_OK && c->n > c->first_turn + 1 && *n_ids > half);
    if (st == ST_OK)
        fprintf(stderr, "stretch: the conversation outgrew the context of %u tokens: the "
                        "oldest %zu messages are dropped\n",
                n_ctx, dropped);
    return st;
}

/* On a bounded cache the sequence holds the conversation as it went:
 * its prompts and the answers' tokens as the model wrote them. The next
 * turn feeds only what the template puts after the last answer (its
 * closing marker, the new user message, the assistant's opening): the
 * tail of [last user turn, answer, new turn] past [last user turn] and the
 * answer's text, rendered with the system message as the whole
 * conversation is. false when the template does not render that way
 * (the answer's text is not where it should be): then the turn starts
 * afresh. */
static bool next_turn_ids(st_engine *e, const conversation *c, uint32_t flags, int32_t **ids,
                          size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    size_t n = c->n;
    if (n < c->first_turn + 3 || strcmp(c->m[n - 2].role, "assistant") != 0)
        return false;
    st_chat_message window[4];
    size_t k = 0;
    if (c->first_turn)
        window[k++] = c->m[0];
    window[k++] = c->m[n - 3];
    size_t k_before = k;
    window[k++] = c->m[n - 2];
    window[k++] = c->m[n - 1];
    st_error err;
    int32_t *all = NULL, *before = NULL, *answer_ids = NULL;
    size_t n_all = 0, n_before = 0, n_answer = 0;
    const char *answer = c->m[n - 2].content;
    bool ok = st_engine_chat_tokenize_messages(e, window, k, flags, &all, &n_all, &err) ==
                  ST_OK &&
              st_engine_chat_tokenize_messages(e, window, k_before, flags, &before, &n_before,
                                               &err) == ST_OK &&
              st_engine_tokenize(e, answer, strlen(answer), 0, &answer_ids, &n_answer, &err) ==
                  ST_OK;
    ok = ok && n_before + n_answer < n_all &&
         !memcmp(all, before, n_before * sizeof *all) &&
         !memcmp(all + n_before, answer_ids, n_answer * sizeof *all);
    if (ok) {
        *n_ids = n_all - n_before - n_answer;
        memmove(all, all + n_before + n_answer, *n_ids * sizeof *all);
        *ids = all;
    } else {
        st_free(all);
    }
    st_free(before);
    st_free(answer_ids);
    return ok;
}

/* The turn `text` looked up in the retriever and put into its template:
 * *out (st_free it); the hits in *kept when asked for (the caller frees
 * them). With `show`, the hits on stderr. */
static st_status augment(st_retriever *ret, const char *text, bool show, char **out,
                         st_retrieval **kept, st_error *err)
{
    st_retrieval *hits = NULL;
    st_status st = st_retriever_query(ret, text, strlen(text), st_retriever_top_k(ret), &hits,
                                      err);
    if (st == ST_OK)
        st = st_retriever_render(ret, text, hits, out, err);
    if (st == ST_OK && show) {
        fprintf(stderr, "stretch: retrieved");
        for (size_t i = 0; i < st_retrieval_count(hits); i++) {
            const st_retrieved *h = st_retrieval_at(hits, i);
            fprintf(stderr, "%s %s (%.3f)", i ? "," : "", st_cli_safe(h->id), h->score);
        }
        fprintf(stderr, "%s\n", st_retrieval_count(hits) ? "" : " nothing");
    }
    if (kept && st == ST_OK)
        *kept = hits;
    else
        st_retrieval_free(hits);
    return st;
}

/* --json: one line for a turn, its answer or why it was refused. */
static void print_turn_json(uint64_t turn, st_status st, const st_cli_answer *a,
                            const st_generate_stats *stats, const st_retrieval *hits,
                            const char *error)
{
    st_json j;
    st_json_init(&j, stdout, false);
    st_json_begin_object(&j);
    st_json_key(&j, "turn");
    st_json_uint(&j, turn);
    if (error) {
        st_json_key(&j, "error");
        st_json_string(&j, error);
    } else {
        st_json_key(&j, "text");
        st_json_string_n(&j, a->text.s ? a->text.s : "", a->text.n);
        st_json_key(&j, "stopped_by");
        st_json_string(&j, st_cli_stopped_by(stats, a->by_stop_text, st == ST_E_CANCELLED));
        st_json_key(&j, "prompt_tokens");
        st_json_uint(&j, stats->n_prompt);
        st_json_key(&j, "cached_tokens");
        st_json_uint(&j, stats->n_cached);
        st_json_key(&j, "generated_tokens");
        st_json_uint(&j, stats->n_generated);
        st_json_key(&j, "timings");
        st_json_begin_object(&j);
        st_json_key(&j, "prefill_s");
        st_json_double(&j, stats->prefill_s);
        st_json_key(&j, "decode_s");
        st_json_double(&j, stats->decode_s);
        st_json_end_object(&j);
    }
    if (hits) {
        st_json_key(&j, "retrieved");
        st_cli_hits_json(&j, hits);
    }
    st_json_end_object(&j);
    st_json_end(&j);
    fflush(stdout);
}

/* Ctrl-C during an answer: the loop below cancels the sequence at its
 * next step (st_sequence_cancel is for threads, not signal handlers). */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_interrupt(bool on)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? on_interrupt : SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
}

/* One answer, run on the sequence as st_engine_generate would run it and
 * stepped here (or, with go_on, after what the sequence holds): the
 * engine then has the answer's keys and values to prefill again between
 * turns (refill). */
static st_status answer(st_engine *e, st_sequence *seq, bool go_on, const int32_t *ids,
                        size_t n_ids, const st_generate_params *gp, st_cli_answer *a,
                        st_generate_stats *stats, st_error *err)
{
    st_status st = go_on ? st_sequence_continue(seq, ids, n_ids, gp, on_token, a, err)
                         : st_sequence_start(seq, ids, n_ids, gp, on_token, a, err);
    if (st != ST_OK) {
        st_cli_answer_end(a);
        return st;
    }
    interrupted = 0;
    catch_interrupt(true);
    for (uint32_t active = 1; active;) {
        if (interrupted) {
            st_sequence_cancel(seq);
            interrupted = 0;
        }
        /* An error of the step ends the request with it: the result says. */
        if (st_engine_step(e, &active, err) != ST_OK)
            break;
    }
    catch_interrupt(false);
    st_cli_answer_end(a);
    st = st_sequence_result(seq, stats, err);
    if (st == ST_OK && a->out_of_memory) {
        st = ST_E_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory for the answer's text");
    }
    return st;
}

/* Between turns, the last answer's keys and values are prefilled again as
 * a prompt's are (st_engine_idle_step), so the next turn takes the answer
 * from the cache as well as the prompt before it. At a terminal this runs
 * while the user types and stops when a line is entered; from a pipe it
 * runs to its end. A failure only loses that head start. */
static void refill(st_engine *e, bool tty)
{
    bool more = true;
    st_error err;
    while (more) {
        struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
        if (tty && poll(&in, 1, 0) > 0)
            break;
        if (st_engine_idle_step(e, &more, &err) != ST_OK)
            break;
    }
}

static int chat(int argc, char **argv, st_cli_sampling *sampling);

int st_cmd_chat(int argc, char **argv)
{
    return st_cli_with_sampling(argc, argv, chat);
}

static int chat(int argc, char **argv, st_cli_sampling *sampling)
{
    const char *manifest = NULL, *system = NULL;
    long long max_tokens = 1024, seed = -1, v;
    bool stats_lines = false, retrieval = true, json = false;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            chat_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if ((!strcmp(a, "--system") || !strcmp(a, "-sys") ||
                    !strcmp(a, "--system-prompt")) && next) {
            system = argv[++i];
        } else if (!strcmp(a, "--max-tokens") || !strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if ((max_tokens = st_cli_parse_range(a, next, 1, 1 << 24)) < 0)
                return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--seed") || !strcmp(a, "-s")) {
            if ((seed = st_cli_parse_count(a, next, INT64_MAX)) < 0)
                return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--stats")) {
            stats_lines = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-retrieval")) {
            retrieval = false;
        } else if ((v = st_cli_engine_option("chat", argc, argv, &i, &opts)) != 0) {
            if (v < 0)
                return ST_EXIT_USAGE;
        } else if ((v = st_cli_sampling_option("chat", argc, argv, &i, sampling)) != 0) {
            if (v < 0)
                return (int)-v;
        } else {
            fprintf(stderr, "stretch chat: unknown or incomplete option '%s'\n", a);
            chat_usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    if (seed < 0)
        seed = (long long)time(NULL);
    st_engine *e = NULL;
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc)
        return rc;
    if ((rc = st_cli_sampling_check(e, sampling)) != 0) {
        st_engine_close(e);
        return rc;
    }
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    uint32_t flags = info.add_bos ? ST_ENCODE_ADD_BOS : 0;
    st_retriever *retriever = retrieval ? st_engine_retriever(e) : NULL;
    if (retriever && !st_retriever_index_path(retriever))
        retriever = NULL;
    /* Room kept for an answer: its cap, but never more than half the
     * context, so a long conversation is not cut to nothing for it. */
    uint32_t room = (uint32_t)max_tokens < info.n_ctx / 2 ? (uint32_t)max_tokens : info.n_ctx / 2;
    bool tty = isatty(STDIN_FILENO);
    /* Whether turns go on from the last on the sequence (a bounded cache)
     * and whether the sequence holds the conversation so far. */
    bool bounded = info.bounded_cache, held = false;
    st_sequence *seq = NULL;
    st_error open_err = {0};
    if (st_sequence_open(e, &seq, &open_err) != ST_OK) {
        fprintf(stderr, "stretch: %s\n", st_cli_safe(open_err.message));
        st_engine_close(e);
        return ST_EXIT_RUNTIME;
    }
    conversation c = {0};
    if (system) {
        if (conv_push(&c, "system", system, strlen(system)) != 0) {
            st_engine_close(e);
            return ST_EXIT_RUNTIME;
        }
        c.first_turn = 1;
    }
    if (tty)
        fprintf(stderr, "stretch: chatting with %s; /exit or Ctrl-D ends, /reset forgets, "
                        "Ctrl-C stops an answer\n",
                st_cli_safe(info.model_path ? info.model_path : manifest));
    st_text_buf line = {0};
    int failures = 0;
    uint64_t asked = 0; /* user turns so far, numbering --json's lines */
    for (uint64_t turn = 0;; turn++) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        if (turn)
            refill(e, tty);
        int got = read_turn(stdin, &line);
        if (got < 0) {
            rc = ST_EXIT_RUNTIME;
            break;
        }
        if (got == 0) {
            if (tty)
                fputc('\n', stdout);
            break;
        }
        if (!strcmp(line.s, "/exit") || !strcmp(line.s, "/quit") || !strcmp(line.s, "/bye"))
            break;
        if (!strcmp(line.s, "/reset")) {
            conv_drop(&c, c.first_turn, c.n - c.first_turn);
            held = false;
            fprintf(stderr, "stretch: the conversation is forgotten\n");
            continue;
        }
        if (line.n == 0)
            continue;
        if (conv_push(&c, "user", line.s, line.n) != 0) {
            rc = ST_EXIT_RUNTIME;
            break;
        }
        asked++;
        st_error err = {0};
        int32_t *ids = NULL;
        size_t n_ids = 0;
        /* With the manifest's retriever index, the new turn is looked up
         * and shown to the model through the template, as the server does
         * with a chat's last user message; the conversation keeps what was
         * typed, so later turns are not weighed down by old documents. */
        char *augmented = NULL;
        st_retrieval *hits = NULL;
        st_status st = retriever ? augment(retriever, line.s, stats_lines, &augmented,
                                           json ? &hits : NULL, &err)
                                 : ST_OK;
        const char *typed = c.m[c.n - 1].content;
        if (augmented)
            c.m[c.n - 1].content = augmented;
        bool go_on = st == ST_OK && bounded && held && next_turn_ids(e, &c, flags, &ids, &n_ids);
        /* A bounded cache takes a conversation of any length, a message
         * longer than the context too: nothing is dropped. */
        if (st == ST_OK && !go_on)
            st = bounded ? st_engine_chat_tokenize_messages(e, c.m, c.n, flags, &ids, &n_ids, &err)
                         : fit_prompt(e, &c, flags, info.n_ctx, room, &ids, &n_ids, &err);
        c.m[c.n - 1].content = typed;
        st_free(augmented);
        st_cli_answer a;
        st_cli_answer_init(&a, sampling->stops, sampling->n_stops, !json, true);
        st_generate_stats stats = {.struct_size = sizeof stats};
        bool ran = st == ST_OK;
        if (ran) {
            st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = (uint32_t)max_tokens,
                                     .seed = (uint64_t)seed + turn};
            st_cli_sampling_apply(sampling, &gp);
            st = answer(e, seq, go_on, ids, n_ids, &gp, &a, &stats, &err);
            if (!json) {
                fputc('\n', stdout);
                fflush(stdout);
            }
        }
        if (json)
            print_turn_json(asked, st, &a, &stats, hits,
                            st == ST_OK || st == ST_E_CANCELLED ? NULL : err.message);
        st_retrieval_free(hits);
        st_free(ids);
        /* A turn refused before it ran leaves the sequence as it was. */
        if (ran)
            held = st == ST_OK || st == ST_E_CANCELLED;
        if (st == ST_OK || st == ST_E_CANCELLED) {
            /* A stopped answer is kept as far as it went, as it was shown. */
            if (conv_push(&c, "assistant", a.text.s ? a.text.s : "", a.text.n) != 0) {
                free(a.text.s);
                rc = ST_EXIT_RUNTIME;
                break;
            }
            if (stats.stopped_by_context)
                fprintf(stderr, "stretch: warning: the context of %u tokens filled during the "
                                "answer; the next turn drops the oldest messages\n",
                        info.n_ctx);
            if (stats_lines)
                st_cli_print_stats(&stats, st == ST_E_CANCELLED);
        } else {
            /* The turn did not happen: the conversation goes on without it. */
            fprintf(stderr, "stretch: %s\n", st_cli_safe(err.message));
            conv_drop(&c, c.n - 1, 1);
            failures++;
        }
        free(a.text.s);
    }
    free(line.s);
    conv_free(&c);
    st_sequence_close(seq);
    st_engine_close(e);
    /* Read from a pipe, a turn that failed is the run's failure. */
    return rc ? rc : failures && !tty ? ST_EXIT_RUNTIME : ST_EXIT_OK;
}
