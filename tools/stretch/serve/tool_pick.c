/*
 * tools/stretch/serve/tool_pick.c - a chat request's tools chosen on
 * libuv's thread pool before its runner takes it (tool_pick.h says why).
 */
#include "tool_pick.h"
#include "tool_calls.h"
#include "tool_ranker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct st_tool_pick {
    uv_work_t work;
    st_job *job;
    const char *query;         /* st_tool_pick_wanted's, in the job's request */
    size_t k;
    void (*then)(st_job *job);
    size_t *keep;
    float *scores;
    size_t n_keep;
    st_status status;
    st_error err;
};

bool st_tool_pick_wanted(const st_server *srv, const st_gen_request *req, const char **query,
                         size_t *k)
{
    size_t at;
    *k = req->tool_top_k >= 0 ? (size_t)req->tool_top_k : srv->cfg.tool_top_k;
    *query = req->chat ? st_gen_request_last_user(req, &at) : NULL;
    return srv->tool_ranker && req->tool_mode != ST_TOOLS_OFF && *k > 0 && *k < req->n_tools &&
           *query;
}

static void pick_work(uv_work_t *w)
{
    st_tool_pick *p = w->data;
    st_job *job = p->job;
    p->status = st_tool_ranker_pick(job->srv->tool_ranker, &job->req, p->query, p->k, p->keep,
                                    p->scores, &p->n_keep, &p->err);
}

static void pick_done(uv_work_t *w, int status)
{
    st_tool_pick *p = w->data;
    if (status != 0 && p->status == ST_OK) { /* cancelled before it ran */
        p->status = ST_E_INVALID;
        snprintf(p->err.message, sizeof p->err.message, "the choice was cancelled");
    }
    p->then(p->job);
}

bool st_tool_pick_start(st_job *job, void (*then)(st_job *job))
{
    const char *query;
    size_t k;
    if (!st_tool_pick_wanted(job->srv, &job->req, &query, &k))
        return false;
    st_tool_pick *p = calloc(1, sizeof *p);
    size_t n = job->req.n_tools;
    if (p) {
        p->keep = malloc(n * sizeof *p->keep);
        p->scores = malloc(n * sizeof *p->scores);
    }
    if (!p || !p->keep || !p->scores) {
        st_tool_pick_free(p);
        return false;
    }
    p->job = job;
    p->query = query;
    p->k = k;
    p->then = then;
    p->work.data = p;
    job->tool_pick = p;
    if (uv_queue_work(job->srv->loop, &p->work, pick_work, pick_done) != 0) {
        job->tool_pick = NULL;
        st_tool_pick_free(p);
        return false;
    }
    return true;
}

st_status st_tool_pick_take(st_job *job, const char *query, size_t k, size_t *keep,
                            float *scores, size_t *n_keep, st_error *err)
{
    const st_tool_pick *p = job->tool_pick;
    if (!p)
        return st_tool_ranker_pick(job->srv->tool_ranker, &job->req, query, k, keep, scores,
                                   n_keep, err);
    if (p->status != ST_OK) {
        *err = p->err;
        return p->status;
    }
    memcpy(keep, p->keep, p->n_keep * sizeof *keep);
    memcpy(scores, p->scores, p->n_keep * sizeof *scores);
    *n_keep = p->n_keep;
    return ST_OK;
}

void st_tool_pick_free(st_tool_pick *p)
{
    if (!p)
        return;
    free(p->keep);
    free(p->scores);
    free(p);
}
