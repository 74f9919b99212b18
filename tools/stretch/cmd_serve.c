/*
 * tools/stretch/cmd_serve.c - `stretch serve`: an OpenAI-compatible HTTP
 * server on libuv (docs/server.md). This file reads the command line, sets
 * up the loop and the signals, and shuts down gracefully;
 * serve/ has the rest.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"
#include "serve/server.h"
#include "serve/tool_calls.h"
#include "serve/tool_ranker.h"

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch serve [options]\n\n"
            "  --host ADDR            address to bind (default 127.0.0.1: this machine only)\n"
            "  --port N               TCP port (default 8080; 0 picks a free one)\n"
            "  --manifests DIR        serve each DIR/*.yaml as a model named by its stem\n"
            "                         (default: manifests)\n"
            "  --parallel N           requests generating at once per model, batched as\n"
            "                         sequences of one engine (default: the manifest's\n"
            "                         `parallel:`, 1 when it has none)\n"
            "  --rpc unix:PATH|tcp:PORT  also serve msgpack-RPC there (docs/server.md)\n"
            "  --api-key KEY          require 'Authorization: Bearer KEY' (default: none;\n"
            "                         also $STRETCH_API_KEY)\n"
            "  --threads N            threads per engine (default: the manifest's)\n"
            "  --slot-save-path DIR   POST /slots/ID?action=save|restore writes and reads a\n"
            "                         slot's cached prompt as a file in DIR (llama-server's;\n"
            "                         erase works without it)\n"
            "  --embedding-model [NAME=]GGUF  serve this sentence encoder (a BERT-family\n"
            "                         GGUF, e.g. models/all-MiniLM-L6-v2.gguf) on\n"
            "                         /v1/embeddings, named NAME or by the file's stem;\n"
            "                         may be given several times\n"
            "  --embedding-cache MB   each encoder keeps the vectors of the texts it saw\n"
            "                         last, up to MB megabytes, and serves a text sent\n"
            "                         again from there (default 64; 0: no cache)\n"
            "  --tool-retriever MANIFEST  choose which of a chat request's `tools` the model\n"
            "                         is shown: this strategy's retriever (bm25, embedding,\n"
            "                         hybrid; `rerank:` re-scores with its model) ranks\n"
            "                         them for the last user message\n"
            "  --tool-top-k N         show the best N of them (default 8; a request's\n"
            "                         \"tool_top_k\" overrides, 0 shows all)\n"
            "  --tool-text name+description|description  what a tool is found by\n"
            "                         (default name+description)\n"
            "  --tool-format [MODEL=]tags|list  how tools and calls are written for every\n"
            "                         model, or for MODEL: one <tool_call> block a call\n"
            "                         (tags, the default: Hermes, Qwen), or one block with\n"
            "                         a JSON list of calls under the system prompt SmolLM2\n"
            "                         was trained with (list); may be given several times\n"
            "  --max-queue N          requests waiting for a sequence before 429 (default 64)\n"
            "  --max-body BYTES       largest request body (default 1048576)\n"
            "  --header-timeout MS    deadline for a request's headers and body (default 10000)\n"
            "  --shutdown-timeout MS  on SIGINT/SIGTERM, let running requests finish this\n"
            "                         long, then cancel them (default 5000)\n\n"
            "  Endpoints: POST /v1/chat/completions, POST /v1/completions (stream: true for\n"
            "  server-sent events), POST /v1/embeddings, POST /v1/rerank, POST /v1/score,\n"
            "  POST /apply-template, POST /tokenize, POST /detokenize, GET /props,\n"
            "  GET /v1/models, GET /health, GET /metrics.\n");
}

static void on_wake(uv_async_t *a)
{
    st_jobs_drain(a->data);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* While stopping: every 50 ms, see whether everything is answered; past
 * the deadline, cancel what still runs. */
static void on_shutdown_tick(uv_timer_t *t)
{
    st_server *srv = t->data;
    if ((st_serve_now() - srv->stop_started) * 1000.0 > srv->cfg.shutdown_timeout_ms)
        st_jobs_cancel_all(srv);
    st_jobs_drain(srv);
    if (srv->jobs)
        return;
    for (st_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        st_conn_end(c);
    }
    if (!st_rpc_stop(srv, true) || srv->conns)
        return;
    close_handle((uv_handle_t *)&srv->wake);
    close_handle((uv_handle_t *)&srv->sigint);
    close_handle((uv_handle_t *)&srv->sigterm);
    close_handle((uv_handle_t *)&srv->shutdown_timer);
}

static void on_signal(uv_signal_t *s, int signum)
{
    st_server *srv = s->data;
    if (srv->stopping)
        return;
    fprintf(stderr, "stretch serve: %s: no new connections; finishing the requests in "
                    "flight\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    srv->stopping = true;
    srv->stop_started = st_serve_now();
    close_handle((uv_handle_t *)&srv->listener);
    st_rpc_stop(srv, false);
    st_watch_stop(srv);
    /* Requests still waiting for a sequence will not start: answered 503. */
    for (st_job *j = srv->jobs; j; j = j->next)
        if (!atomic_load(&j->running))
            atomic_store(&j->cancel, 1);
    /* Idle keep-alive connections close now. */
    for (st_conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (!c->job && !c->in_request)
            st_conn_end(c);
    }
    uv_timer_start(&srv->shutdown_timer, on_shutdown_tick, 0, 50);
}

/* --tool-format [MODEL=]tags|list: every model's format, or MODEL's. */
static bool parse_tool_format(const char *arg, st_server_config *cfg)
{
    const char *eq = strrchr(arg, '=');
    const char *t = eq ? eq + 1 : arg;
    int format = !strcmp(t, "list") ? ST_TOOL_FORMAT_LIST
                 : !strcmp(t, "tags") ? ST_TOOL_FORMAT_TAGS
                                      : -1;
    if (format < 0 || eq == arg) {
        fprintf(stderr, "stretch serve: --tool-format '%s': expected tags, list, or "
                        "MODEL=tags|list\n", st_cli_safe(arg));
        return false;
    }
    if (!eq) {
        cfg->tool_format = format;
        return true;
    }
    if (cfg->n_tool_formats == ST_SERVE_MAX_TOOL_FORMATS) {
        fprintf(stderr, "stretch serve: --tool-format MODEL=...: at most %d models\n",
                ST_SERVE_MAX_TOOL_FORMATS);
        return false;
    }
    /* The whole "MODEL=FORMAT" (argv outlives the server): the name is
     * what comes before its last '='. */
    cfg->tool_format_models[cfg->n_tool_formats] = arg;
    cfg->tool_format_of[cfg->n_tool_formats++] = format;
    return true;
}

/* --embedding-model may be given this many times. */
#define ST_SERVE_MAX_ENCODERS 16

static int parse_args(int argc, char **argv, st_server_config *cfg, const char **rpc)
{
    long long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_usage(stdout);
            return -2;
        } else if (!strcmp(a, "--host") && next) {
            cfg->host = argv[++i];
        } else if (!strcmp(a, "--port")) {
            if ((v = st_cli_parse_range(a, next, 0, 65535)) < 0) return -1;
            cfg->port = (int)v;
            i++;
        } else if (!strcmp(a, "--manifests") && next) {
            cfg->manifests_dir = argv[++i];
        } else if (!strcmp(a, "--parallel")) {
            if ((v = st_cli_parse_range(a, next, 1, 256)) < 0) return -1;
            cfg->parallel = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--rpc") && next) {
            *rpc = argv[++i];
        } else if (!strcmp(a, "--embedding-model") && next) {
            if (cfg->n_embedding_models == ST_SERVE_MAX_ENCODERS) {
                fprintf(stderr, "stretch serve: --embedding-model: at most %d encoders\n",
                        ST_SERVE_MAX_ENCODERS);
                return -1;
            }
            cfg->embedding_models[cfg->n_embedding_models++] = argv[++i];
        } else if (!strcmp(a, "--embedding-cache")) {
            if ((v = st_cli_parse_range(a, next, 0, 1 << 20)) < 0) return -1;
            cfg->embedding_cache_bytes = (size_t)v << 20;
            i++;
        } else if (!strcmp(a, "--tool-retriever") && next) {
            cfg->tool_retriever = argv[++i];
        } else if (!strcmp(a, "--tool-top-k")) {
            if ((v = st_cli_parse_range(a, next, 0, 4096)) < 0) return -1;
            cfg->tool_top_k = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--tool-text") && next) {
            const char *t = argv[++i];
            if (strcmp(t, "name+description") && strcmp(t, "description")) {
                fprintf(stderr, "stretch serve: --tool-text '%s': expected name+description "
                                "or description\n", st_cli_safe(t));
                return -1;
            }
            cfg->tool_text_names = strcmp(t, "description") != 0;
        } else if (!strcmp(a, "--tool-format") && next) {
            if (!parse_tool_format(argv[++i], cfg))
                return -1;
        } else if (!strcmp(a, "--api-key") && next) {
            cfg->api_key = argv[++i];
        } else if (!strcmp(a, "--slot-save-path") && next) {
            cfg->slot_save_path = argv[++i];
        } else if (!strcmp(a, "--threads")) {
            if ((v = st_cli_parse_count(a, next, 1024)) < 0) return -1;
            cfg->n_threads = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--max-queue")) {
            if ((v = st_cli_parse_count(a, next, 1 << 20)) < 0) return -1;
            cfg->max_queue = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--max-body")) {
            if ((v = st_cli_parse_range(a, next, 1024, 1LL << 30)) < 0) return -1;
            cfg->max_body = (size_t)v;
            i++;
        } else if (!strcmp(a, "--header-timeout")) {
            if ((v = st_cli_parse_range(a, next, 10, 3600000)) < 0) return -1;
            cfg->header_timeout_ms = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--shutdown-timeout")) {
            if ((v = st_cli_parse_range(a, next, 0, 3600000)) < 0) return -1;
            cfg->shutdown_timeout_ms = (uint32_t)v;
            i++;
        } else {
            fprintf(stderr, "stretch serve: unknown or incomplete option '%s'\n", a);
            serve_usage(stderr);
            return -1;
        }
    }
    return 0;
}

int st_cmd_serve(int argc, char **argv)
{
    st_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ST_EXIT_RUNTIME;
    st_server_config *cfg = &srv->cfg;
    *cfg = (st_server_config){
        .host = "127.0.0.1", .port = 8080, .manifests_dir = "manifests", .parallel = 0,
        .api_key = getenv("STRETCH_API_KEY"), .max_body = 1 << 20, .max_queue = 64,
        .header_timeout_ms = 10000, .shutdown_timeout_ms = 5000, .tool_top_k = 8,
        .tool_text_names = true, .embedding_cache_bytes = (size_t)64 << 20,
    };
    const char *rpc = NULL;
    const char *encoders[ST_SERVE_MAX_ENCODERS];
    cfg->embedding_models = encoders;
    int rc = parse_args(argc, argv, cfg, &rpc);
    if (rc) {
        free(srv);
        return rc == -2 ? ST_EXIT_OK : ST_EXIT_USAGE;
    }
    if (cfg->api_key && !cfg->api_key[0])
        cfg->api_key = NULL;
    size_t n_models = 0;
    char **stems = st_models_list(cfg->manifests_dir, &n_models);
    st_models_free(stems, n_models);
    /* Sentence encoders alone may be served from a directory with no
     * manifest yet (one added later is picked up); it must still be one. */
    DIR *dir = opendir(cfg->manifests_dir);
    if (dir)
        closedir(dir);
    if (!dir || (n_models == 0 && cfg->n_embedding_models == 0)) {
        if (!dir)
            fprintf(stderr, "stretch serve: --manifests %s: not a readable directory of "
                            "strategy manifests (*.yaml)\n", st_cli_safe(cfg->manifests_dir));
        else
            fprintf(stderr, "stretch serve: --manifests %s: no strategy manifest (*.yaml) in "
                            "it, and no --embedding-model: nothing to serve\n",
                    st_cli_safe(cfg->manifests_dir));
        free(srv);
        return ST_EXIT_USAGE;
    }
    struct stat slot_dir;
    if (cfg->slot_save_path && (stat(cfg->slot_save_path, &slot_dir) != 0 ||
                                !S_ISDIR(slot_dir.st_mode) ||
                                access(cfg->slot_save_path, W_OK | X_OK) != 0)) {
        fprintf(stderr, "stretch serve: --slot-save-path %s: expected a directory the server "
                        "can write to\n", st_cli_safe(cfg->slot_save_path));
        free(srv);
        return ST_EXIT_USAGE;
    }
    /* A client that vanishes mid-write must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    srv->loop = uv_default_loop();
    uv_mutex_init(&srv->queue_lock);
    /* The encoders and the tool retriever open before anything listens: a
     * wrong file stops here. */
    char why[512];
    if (cfg->tool_retriever &&
        !(srv->tool_ranker = st_tool_ranker_open(cfg->tool_retriever, cfg->tool_text_names,
                                                 cfg->n_threads, why, sizeof why)))
        fprintf(stderr, "stretch serve: --tool-retriever %s: %s\n",
                st_cli_safe(cfg->tool_retriever), why);
    if ((cfg->tool_retriever && !srv->tool_ranker) || !st_embedders_open(srv)) {
        st_tool_ranker_close(srv->tool_ranker);
        st_embedders_stop(srv);
        uv_mutex_destroy(&srv->queue_lock);
        free(srv);
        return ST_EXIT_USAGE;
    }
    uv_async_init(srv->loop, &srv->wake, on_wake);
    srv->wake.data = srv;
    uv_signal_init(srv->loop, &srv->sigint);
    uv_signal_init(srv->loop, &srv->sigterm);
    srv->sigint.data = srv->sigterm.data = srv;
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_timer_init(srv->loop, &srv->shutdown_timer);
    srv->shutdown_timer.data = srv;
    /* Manifests added, changed or removed are picked up without a restart. */
    st_watch_start(srv);

    rc = st_http_listen(srv) != 0 || (rpc && st_rpc_listen(srv, rpc) != 0) ? ST_EXIT_USAGE
                                                                           : ST_EXIT_OK;
    if (rc != ST_EXIT_OK) {
        st_watch_stop(srv);
        st_rpc_stop(srv, true);
        close_handle((uv_handle_t *)&srv->listener);
        close_handle((uv_handle_t *)&srv->wake);
        close_handle((uv_handle_t *)&srv->sigint);
        close_handle((uv_handle_t *)&srv->sigterm);
        close_handle((uv_handle_t *)&srv->shutdown_timer);
    }
    uv_run(srv->loop, UV_RUN_DEFAULT);
    st_runners_stop(srv);
    st_embedders_stop(srv);
    st_tool_ranker_close(srv->tool_ranker);
    /* Answers that runners finished after the loop stopped have no reader. */
    for (st_job *j = srv->jobs, *next; j; j = next) {
        next = j->next;
        st_job_free(j);
    }
    uv_loop_close(srv->loop);
    uv_mutex_destroy(&srv->queue_lock);
    free(srv);
    if (rc == ST_EXIT_OK)
        fprintf(stderr, "stretch serve: stopped\n");
    return rc;
}
