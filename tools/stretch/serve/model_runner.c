/*
 * tools/stretch/serve/model_runner.c - one thread per served model. It
 * owns the model's engine with `--parallel` sequences: waiting jobs take
 * the free sequences, and every st_engine_step advances all running ones
 * at once (their new prompts prepacked, their next tokens batched), so a
 * request joins at the next step and leaves without stalling the others.
 * The engine is opened on first use, and again when the manifest file has
 * changed, once no request runs on the old one.
 */
#include "server.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct st_runner {
    st_server *srv;
    char *stem;
    uv_thread_t thread;
    uv_cond_t wake;
    st_job_queue waiting;      /* queue_lock */
    uint32_t n_running;        /* jobs on sequences (queue_lock) */
    bool reload;               /* the watcher saw the manifest change (queue_lock) */
    uint32_t parallel;         /* the engine's sequences; 0 before it opens (queue_lock) */
    char error[512];           /* why the manifest last failed to load, or "" (queue_lock) */
    struct st_runner *next;

    /* Runner thread only. */
    st_engine *engine;
    bool bounded;              /* its attention evicts (st_engine_info.bounded_cache) */
    struct timespec mtime;     /* of the manifest the engine (or the last failure) read */
    st_sequence **seqs;        /* [ST_PARALLEL_MAX] */
    st_job **jobs;             /* [ST_PARALLEL_MAX]: the job on each sequence */
    st_job_run **runs;         /* [ST_PARALLEL_MAX] */
    st_job *partial;           /* a job with answers still to start (queue_lock to write) */
    uint64_t used[ST_PARALLEL_MAX]; /* when each sequence last took an answer */
    uint64_t uses;
    bool idle_work;            /* st_engine_idle_step has work (queue_lock to read) */
} st_runner;

static void close_engine(st_runner *r)
{
    st_engine_close(r->engine); /* closes its sequences */
    r->engine = NULL;
    memset(r->seqs, 0, ST_PARALLEL_MAX * sizeof *r->seqs);
}

static void set_error(st_runner *r, const char *msg)
{
    uv_mutex_lock(&r->srv->queue_lock);
    snprintf(r->error, sizeof r->error, "%s", msg);
    uv_mutex_unlock(&r->srv->queue_lock);
}

/* Open the model's engine and its sequences from `path` (--parallel of
 * them, else the manifest's `parallel`) and say whether its attention
 * evicts; NULL with msg. */
static st_engine *open_engine(st_runner *r, const char *path, st_sequence **seqs,
                              uint32_t *parallel, bool *bounded, char *msg, size_t size)
{
    st_server *srv = r->srv;
    st_engine_options opts = {.struct_size = sizeof opts, .n_threads = srv->cfg.n_threads,
                              .parallel = srv->cfg.parallel};
    st_error err;
    memset(&err, 0, sizeof err);
    st_engine *e = NULL;
    st_status rc = st_engine_open(path, &opts, &e, &err);
    st_engine_info info = {.struct_size = sizeof info};
    if (rc == ST_OK)
        st_engine_get_info(e, &info);
    for (uint32_t i = 0; rc == ST_OK && i < info.parallel; i++)
        rc = st_sequence_open(e, &seqs[i], &err);
    if (rc == ST_OK) {
        *parallel = info.parallel;
        *bounded = info.bounded_cache;
        return e;
    }
    snprintf(msg, size, "the model '%.100s' failed to load: %.300s", r->stem, err.message);
    fprintf(stderr, "stretch serve: %s\n", msg);
    st_engine_close(e);
    return NULL;
}

/* The model's engine, (re)opened when the manifest is new or changed;
 * NULL with msg set when there is none to serve with. A changed manifest
 * that fails to load leaves the old engine serving (the failure is kept
 * for /v1/models). Called with no job running. */
static st_engine *runner_engine(st_runner *r, char *msg, size_t size)
{
    st_server *srv = r->srv;
    char *path = st_models_resolve(srv->cfg.manifests_dir, r->stem);
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        snprintf(msg, size, "the model '%.200s' does not exist (any more)", r->stem);
        free(path);
        close_engine(r);
        set_error(r, "");
        return NULL;
    }
    bool same = r->mtime.tv_sec == st.st_mtim.tv_sec && r->mtime.tv_nsec == st.st_mtim.tv_nsec;
    if (same && r->engine) {
        free(path);
        return r->engine;
    }
    if (same && !r->engine) {
        /* This version failed before: say so again without reloading. */
        uv_mutex_lock(&srv->queue_lock);
        snprintf(msg, size, "%s", r->error);
        uv_mutex_unlock(&srv->queue_lock);
        free(path);
        if (msg[0])
            return NULL;
    }
    st_sequence **seqs = calloc(ST_PARALLEL_MAX, sizeof *seqs);
    uint32_t parallel = 0;
    bool bounded = false;
    st_engine *e = seqs ? open_engine(r, path, seqs, &parallel, &bounded, msg, size) : NULL;
    r->mtime = st.st_mtim;
    if (!e) {
        set_error(r, msg);
        free(seqs);
        free(path);
        if (r->engine)
            fprintf(stderr, "stretch serve: model '%s' keeps serving its previous manifest\n",
                    r->stem);
        return r->engine;
    }
    if (r->engine)
        fprintf(stderr, "stretch serve: %s changed: model '%s' reloaded\n", path, r->stem);
    free(path);
    close_engine(r);
    r->engine = e;
    r->bounded = bounded;
    memcpy(r->seqs, seqs, ST_PARALLEL_MAX * sizeof *seqs);
    free(seqs);
    uv_mutex_lock(&srv->queue_lock);
    r->parallel = parallel;
    uv_mutex_unlock(&srv->queue_lock);
    set_error(r, "");
    return e;
}

/* How many of a prompt's leading tokens sequence `slot` saves computing:
 * what its cache holds of the prompt (st_generate_params.fresh_cache),
 * or, where the attention evicts and so keeps no prompts, its past when
 * the prompt goes on from it (a conversation's next turn, which the
 * client sends whole): *go_on then. A request that wants its prompt's
 * log-probabilities runs it all. */
static size_t slot_saves(st_runner *r, uint32_t slot, const int32_t *ids, size_t n_ids,
                         const st_generate_params *gp, bool *go_on)
{
    *go_on = false;
    if (gp->fresh_cache)
        return 0;
    size_t k = r->bounded && !gp->on_prompt_logprobs
                   ? st_sequence_continued_prefix(r->seqs[slot], ids, n_ids)
                   : 0;
    *go_on = k > 0;
    return k ? k : st_sequence_cached_prefix(r->seqs[slot], ids, n_ids);
}

/* run's generation on sequence slot (a new answer, or one going on):
 * after the slot's past where the prompt continues it (slot_saves). */
static st_status start_on(st_runner *r, uint32_t slot, st_job_run *run, st_error *err)
{
    const int32_t *ids;
    size_t n_ids;
    const st_generate_params *gp;
    st_token_fn fn;
    void *user;
    st_job_run_args(run, &ids, &n_ids, &gp, &fn, &user);
    bool go_on;
    size_t k = slot_saves(r, slot, ids, n_ids, gp, &go_on);
    if (go_on)
        return st_sequence_continue(r->seqs[slot], ids + k, n_ids - k, gp, fn, user, err);
    return st_sequence_start(r->seqs[slot], ids, n_ids, gp, fn, user, err);
}

/* The model's tokenizer for a job that wants nothing else: ids for
 * /tokenize (as a text completion would run them, or without the BOS) and
 * msgpack-RPC's tokenize, text for /detokenize. */
static void tokenizer_job(st_runner *r, st_job *job)
{
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(r->engine, &info);
    st_error err;
    memset(&err, 0, sizeof err);
    if (job->detokenize_only) {
        const st_req_prompt *t = &job->req.prompts[0];
        size_t i = st_first_bad_token(t->ids, t->n_ids, info.n_vocab);
        if (i != SIZE_MAX) {
            char msg[256];
            snprintf(msg, sizeof msg, "tokens[%zu] is %d, outside the vocabulary of model "
                     "'%.100s' (%u tokens)", i, t->ids[i], job->req.model, info.n_vocab);
            st_job_fail(job, 400, msg, "tokens");
            return;
        }
        char *text = NULL;
        size_t len = 0;
        if (st_engine_detokenize(r->engine, t->ids, t->n_ids, &text,
                                 &len, &err) == ST_OK)
            st_job_detokenized(job, text, len);
        else
            st_job_fail(job, 400, err.message, "tokens");
        st_free(text);
        return;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    uint32_t flags = (job->tokenize_special ? ST_ENCODE_PARSE_SPECIAL : 0) |
                     (job->tokenize_bos && info.add_bos ? ST_ENCODE_ADD_BOS : 0);
    const char *text = job->req.prompts[0].text;
    if (st_engine_tokenize(r->engine, text, strlen(text), flags, &ids,
                           &n, &err) == ST_OK)
        st_job_tokens(job, ids, n, info.n_ctx);
    else
        st_job_fail(job, 400, err.message, job->is_rpc ? "text" : "prompt");
    st_free(ids);
}

/* A token's piece as JSON text (made valid UTF-8), or null for -1. */
static json_t *piece_json(st_engine *e, int32_t id)
{
    const char *bytes = NULL;
    size_t len = 0;
    st_error err;
    memset(&err, 0, sizeof err);
    if (id < 0 || st_engine_token_piece(e, id, &bytes, &len, &err) != ST_OK)
        return json_null();
    return st_json_clean(bytes, len);
}

/* GET /props (llama-server's): what a client needs to know of the model
 * before it sends a request, in llama-server's fields where it has them
 * (the context, the slots, the special tokens), and the strategy. */
static void props_job(st_runner *r, st_job *job)
{
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(r->engine, &info);
    json_t *samplers = json_array();
    for (uint32_t i = 0; samplers && i < info.n_samplers; i++)
        json_array_append_new(samplers, json_string(info.sampler_names[i]));
    const char *const *k = info.plugin_names;
    json_t *strategy = json_pack(
        "{s:s?, s:s?, s:s?, s:s?, s:o?, s:s?, s:b, s:s?, s:i}", "tokenizer",
        k[ST_KIND_TOKENIZER - 1], "posenc", k[ST_KIND_POSENC - 1], "attention",
        k[ST_KIND_ATTENTION - 1], "retriever", k[ST_KIND_RETRIEVER - 1], "samplers", samplers,
        "kv_type", info.kv_type, "prefix_cache", info.prefix_cache, "backend", info.backend,
        "threads", (int)info.n_threads);
    json_t *root = json_pack(
        "{s:s, s:s?, s:i, s:{s:i}, s:i, s:i, s:o?, s:o?, s:o?, s:{s:b, s:b}, s:s, s:i, s:o?}",
        "model", job->req.model, "model_path", info.model_path, "total_slots",
        (int)r->parallel, "default_generation_settings", "n_ctx", (int)info.n_ctx,
        "n_ctx_train", (int)info.n_ctx_train, "n_vocab", (int)info.n_vocab, "bos_token",
        piece_json(r->engine, info.bos), "eos_token", piece_json(r->engine, info.eos),
        "eot_token", piece_json(r->engine, info.eot), "modalities", "vision", false, "audio",
        false, "build_info", st_version(), "abi", (int)st_abi_version(), "strategy",
        strategy);
    st_job_respond_value(job, root);
}

/* POST /slots/ID: save, restore or erase sequence ID's cached prompt,
 * answered as llama-server answers (its id_slot, counts and timings). */
static void slot_job(st_runner *r, st_job *job)
{
    uint32_t id = job->slot_id;
    char msg[640];
    if (id >= r->parallel) {
        snprintf(msg, sizeof msg, "slot %u does not exist: model '%.100s' has %u (0 to %u)", id,
                 job->req.model, r->parallel, r->parallel - 1);
        st_job_fail(job, 404, msg, NULL);
        return;
    }
    if (r->jobs[id]) {
        snprintf(msg, sizeof msg, "slot %u is running a request: try again when it has ended",
                 id);
        st_job_fail(job, 409, msg, NULL);
        return;
    }
    st_sequence *seq = r->seqs[id];
    st_error err;
    memset(&err, 0, sizeof err);
    uint32_t n = 0;
    double t0 = st_serve_now();
    st_status st = job->slot_action == ST_SLOT_SAVE
                       ? st_sequence_save_prompt(seq, job->slot_file, &n, &err)
                   : job->slot_action == ST_SLOT_RESTORE
                       ? st_sequence_load_prompt(seq, job->slot_file, &n, &err)
                       : st_sequence_forget(seq, &n, &err);
    double ms = (st_serve_now() - t0) * 1e3;
    if (st != ST_OK) {
        int status = st == ST_E_NOT_FOUND ? 404 : st == ST_E_STATE ? 409
                     : st == ST_E_INVALID || st == ST_E_FORMAT || st == ST_E_UNAVAILABLE ? 400
                                                                                          : 500;
        /* The message names the file by the name the client gave. */
        const char *name = job->slot_file ? strrchr(job->slot_file, '/') + 1 : NULL;
        const char *text = err.message;
        if (name && !strncmp(text, job->slot_file, strlen(job->slot_file)))
            snprintf(msg, sizeof msg, "slot file '%s'%s", name, text + strlen(job->slot_file));
        else
            snprintf(msg, sizeof msg, "%s", text);
        st_job_fail(job, status, msg, st == ST_E_NOT_FOUND ? "filename" : NULL);
        return;
    }
    json_t *out = json_pack("{s:I}", "id_slot", (json_int_t)id);
    if (out && job->slot_action == ST_SLOT_ERASE) {
        json_object_set_new(out, "n_erased", json_integer(n));
    } else if (out) {
        struct stat sb;
        json_int_t bytes = stat(job->slot_file, &sb) == 0 ? (json_int_t)sb.st_size : 0;
        bool save = job->slot_action == ST_SLOT_SAVE;
        json_object_set_new(out, "filename", json_string(strrchr(job->slot_file, '/') + 1));
        json_object_set_new(out, save ? "n_saved" : "n_restored", json_integer(n));
        json_object_set_new(out, save ? "n_written" : "n_read", json_integer(bytes));
        json_object_set_new(out, "timings", json_pack("{s:f}", save ? "save_ms" : "restore_ms",
                                                      ms));
    }
    st_job_respond_value(job, out);
}

/* Give waiting jobs the free sequences (runner thread). */
static void admit(st_runner *r, uint32_t running)
{
    st_server *srv = r->srv;
    for (;;) {
        uv_mutex_lock(&srv->queue_lock);
        st_job *job = NULL;
        uint32_t slot = 0;
        /* Before the engine opens, one job goes in to open it. */
        uint32_t P = r->parallel ? r->parallel : 1;
        while (slot < P && r->jobs[slot])
            slot++;
        /* A job whose answers did not all find a sequence goes first. */
        if (slot < P && r->partial)
            job = r->partial;
        else if (slot < P && (job = st_job_queue_pop(&r->waiting)))
            srv->queue_len--;
        if (job) {
            r->n_running++;
            srv->running++;
        }
        uv_mutex_unlock(&srv->queue_lock);
        if (!job)
            return;
        /* A job answered here (refused, tokenized) is done: the loop may
         * free it at once, so it is not read again. */
        bool fresh = job != r->partial, started = false, prepared = !fresh;
        char msg[512];
        st_engine *e = NULL;
        if (!fresh) {
            /* its answers were prepared against the engine, which stays */
        } else if (atomic_load(&job->cancel)) {
            st_job_fail(job, 503, "the request was cancelled before it started", NULL);
        } else if (running == 0 && !(e = runner_engine(r, msg, sizeof msg))) {
            st_job_fail(job, 500, msg, "model");
        } else if (job->tokenize_only || job->detokenize_only) {
            /* /tokenize, /detokenize and msgpack-RPC's tokenize: the
             * model's tokenizer, no sequence. */
            tokenizer_job(r, job);
        } else if (job->slot_action) {
            slot_job(r, job);
        } else if (job->template_only) {
            st_job_template(job, r->engine);
        } else if (job->props_only) {
            props_job(r, job);
        } else {
            prepared = st_job_prepare(job, r->engine);
        }
        st_job_run *run = NULL;
        bool more = false;
        if (prepared && atomic_load(&job->cancel)) {
            st_job_abandon(job); /* ends the job when none of its answers runs */
        } else if (prepared) {
            run = st_job_next_run(job);
            more = job->next_choice < job->n_choices;
        }
        if (run) {
            const int32_t *ids;
            size_t n_ids;
            const st_generate_params *gp;
            st_token_fn fn;
            void *user;
            st_job_run_args(run, &ids, &n_ids, &gp, &fn, &user);
            /* Of the free sequences, the one whose cache holds the most of
             * this prompt (a conversation's next turn, a shared system
             * prompt) saves the most prefill; among equals, the one used
             * least recently, so that other prompts' caches live longer.
             * (A prefix another sequence holds is copied from there when
             * the request starts: st_generate_params.fresh_cache.) */
            bool go_on;
            size_t best = slot_saves(r, slot, ids, n_ids, gp, &go_on);
            for (uint32_t i = slot + 1; i < r->parallel; i++) {
                if (r->jobs[i])
                    continue;
                size_t have = slot_saves(r, i, ids, n_ids, gp, &go_on);
                if (have > best || (have == best && r->used[i] < r->used[slot])) {
                    best = have;
                    slot = i;
                }
            }
            r->used[slot] = ++r->uses;
            st_error err;
            memset(&err, 0, sizeof err);
            st_status st = start_on(r, slot, run, &err);
            if (st == ST_OK) {
                r->jobs[slot] = job;
                r->runs[slot] = run;
                running++;
                started = true;
            } else {
                st_generate_stats none = {.struct_size = sizeof none};
                st_job_run_end(run, st, &none, &err);
            }
        }
        /* The job's next answers wait for the next free sequence (while
         * some wait, the job is not done, whatever ended above). */
        uv_mutex_lock(&srv->queue_lock);
        r->partial = more ? job : NULL;
        if (!started) {
            r->n_running--;
            srv->running--;
        }
        uv_mutex_unlock(&srv->queue_lock);
    }
}

/* Answer every job whose sequence has finished (runner thread). */
static uint32_t collect(st_runner *r)
{
    st_server *srv = r->srv;
    uint32_t running = 0;
    for (uint32_t i = 0; i < ST_PARALLEL_MAX; i++) {
        st_job *job = r->jobs[i];
        if (!job)
            continue;
        if (st_sequence_busy(r->seqs[i])) {
            /* A client that left stops its sequence at the next step. */
            if (atomic_load(&job->cancel))
                st_sequence_cancel(r->seqs[i]);
            running++;
            continue;
        }
        st_generate_stats stats = {.struct_size = sizeof stats};
        st_error err;
        memset(&err, 0, sizeof err);
        st_status st = st_sequence_result(r->seqs[i], &stats, &err);
        /* An answer with tool calls goes on, on the same sequence: text
         * that opened a call, a call's JSON, the choice of another call
         * (st_job_run_continues). */
        if (st == ST_OK && st_job_run_continues(r->runs[i], r->engine, &stats)) {
            st = start_on(r, i, r->runs[i], &err);
            if (st == ST_OK) {
                running++;
                continue;
            }
        }
        /* Its answer may be prefilled again (st_engine_idle_step); said
         * before the answer goes out, so /metrics never shows a client
         * that has its answer an engine with nothing left to do. */
        uv_mutex_lock(&srv->queue_lock);
        r->idle_work = true;
        uv_mutex_unlock(&srv->queue_lock);
        st_job_run_end(r->runs[i], st, &stats, &err);
        r->jobs[i] = NULL;
        r->runs[i] = NULL;
        uv_mutex_lock(&srv->queue_lock);
        r->n_running--;
        srv->running--;
        uv_mutex_unlock(&srv->queue_lock);
    }
    return running;
}

static void runner_main(void *arg)
{
    st_runner *r = arg;
    st_server *srv = r->srv;
    uint32_t running = 0;
    for (;;) {
        uv_mutex_lock(&srv->queue_lock);
        while (!srv->quit && !r->waiting.head && !r->partial && running == 0 && !r->reload &&
               !r->idle_work)
            uv_cond_wait(&r->wake, &srv->queue_lock);
        bool quit = srv->quit && !r->waiting.head && !r->partial && running == 0;
        /* Not while a job's answers wait: they were prepared on this engine. */
        bool reload = r->reload && running == 0 && !r->partial;
        if (reload)
            r->reload = false;
        uv_mutex_unlock(&srv->queue_lock);
        if (quit)
            break;
        if (reload && !srv->quit) {
            char msg[512];
            runner_engine(r, msg, sizeof msg);
        }
        admit(r, running);
        running = collect(r);
        if (running == 0) {
            /* Idle: prefill the answers just given again, a block at a
             * time, so that a conversation's next turn finds them in the
             * cache; a request that arrives meanwhile goes first. */
            bool more = false;
            st_error err;
            memset(&err, 0, sizeof err);
            if (r->engine && r->idle_work &&
                st_engine_idle_step(r->engine, &more, &err) != ST_OK)
                fprintf(stderr, "stretch serve: model '%s': refreshing the cache: %s\n", r->stem,
                        err.message);
            uv_mutex_lock(&srv->queue_lock);
            r->idle_work = more;
            uv_mutex_unlock(&srv->queue_lock);
            continue;
        }
        st_error err;
        memset(&err, 0, sizeof err);
        uint32_t active = 0;
        if (st_engine_step(r->engine, &active, &err) != ST_OK)
            fprintf(stderr, "stretch serve: model '%s': %s\n", r->stem, err.message);
        running = collect(r);
    }
    close_engine(r);
}

static st_runner *runner_new(st_server *srv, const char *stem)
{
    st_runner *r = calloc(1, sizeof *r);
    uint32_t P = ST_PARALLEL_MAX;
    if (!r || !(r->stem = strdup(stem)) || !(r->seqs = calloc(P, sizeof *r->seqs)) ||
        !(r->jobs = calloc(P, sizeof *r->jobs)) || !(r->runs = calloc(P, sizeof *r->runs)) ||
        uv_cond_init(&r->wake) != 0)
        goto fail;
    r->srv = srv;
    if (uv_thread_create(&r->thread, runner_main, r) != 0) {
        uv_cond_destroy(&r->wake);
        goto fail;
    }
    return r;
fail:
    if (r) {
        free(r->stem);
        free(r->seqs);
        free(r->jobs);
        free(r->runs);
    }
    free(r);
    return NULL;
}

/* The runner of `stem`, started if need be (queue_lock held). */
static st_runner *runner_of(st_server *srv, const char *stem)
{
    st_runner *r = srv->runners;
    while (r && strcmp(r->stem, stem) != 0)
        r = r->next;
    if (!r && (r = runner_new(srv, stem))) {
        r->next = srv->runners;
        srv->runners = r;
    }
    return r;
}

void st_runner_manifest_changed(st_server *srv, const char *stem)
{
    uv_mutex_lock(&srv->queue_lock);
    st_runner *r = srv->quit ? NULL : runner_of(srv, stem);
    if (r) {
        r->reload = true;
        uv_cond_signal(&r->wake);
    }
    uv_mutex_unlock(&srv->queue_lock);
}

void st_runners_errors(st_server *srv, void *json_array)
{
    uv_mutex_lock(&srv->queue_lock);
    for (st_runner *r = srv->runners; r; r = r->next)
        if (r->error[0])
            json_array_append_new(json_array, json_pack("{s:s, s:s}", "model", r->stem,
                                                        "message", r->error));
    uv_mutex_unlock(&srv->queue_lock);
}

uint32_t st_runners_idle_work(st_server *srv)
{
    uint32_t n = 0;
    uv_mutex_lock(&srv->queue_lock);
    for (st_runner *r = srv->runners; r; r = r->next)
        n += r->idle_work;
    uv_mutex_unlock(&srv->queue_lock);
    return n;
}

bool st_job_enqueue(st_server *srv, st_job *job)
{
    uv_mutex_lock(&srv->queue_lock);
    st_runner *r = runner_of(srv, job->req.model);
    if (!r) {
        uv_mutex_unlock(&srv->queue_lock);
        return false;
    }
    /* A job waits when its model's sequences are all taken; past
     * --max-queue waiting jobs, it is refused. */
    bool has_free = r->waiting.n + r->n_running < (r->parallel ? r->parallel : 1);
    if (!has_free && srv->queue_len >= srv->cfg.max_queue) {
        uv_mutex_unlock(&srv->queue_lock);
        return false;
    }
    st_job_queue_push(&r->waiting, job);
    srv->queue_len++;
    uv_cond_signal(&r->wake);
    uv_mutex_unlock(&srv->queue_lock);
    st_jobs_track(srv, job);
    return true;
}

void st_runners_stop(st_server *srv)
{
    uv_mutex_lock(&srv->queue_lock);
    srv->quit = true;
    for (st_runner *r = srv->runners; r; r = r->next)
        uv_cond_signal(&r->wake);
    uv_mutex_unlock(&srv->queue_lock);
    for (st_runner *r = srv->runners, *next; r; r = next) {
        next = r->next;
        uv_thread_join(&r->thread);
        uv_cond_destroy(&r->wake);
        free(r->stem);
        free(r->seqs);
        free(r->jobs);
        free(r->runs);
        free(r);
    }
    srv->runners = NULL;
}
