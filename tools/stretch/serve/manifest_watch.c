/*
 * tools/stretch/serve/manifest_watch.c - the served directory watched with
 * libuv's fs events: a manifest added, changed or removed is handed to its
 * model's runner to reload. Events are gathered for a quarter second
 * first, so a file written in several steps is read once it is whole.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ST_WATCH_SETTLE_MS 250
#define ST_WATCH_MAX_PENDING 64

static void on_settled(uv_timer_t *t)
{
    st_server *srv = t->data;
    for (uint32_t i = 0; i < srv->n_pending_stems; i++) {
        st_runner_manifest_changed(srv, srv->pending_stems[i]);
        free(srv->pending_stems[i]);
    }
    srv->n_pending_stems = 0;
}

static void on_event(uv_fs_event_t *w, const char *filename, int events, int status)
{
    (void)events;
    st_server *srv = w->data;
    size_t n = filename ? strlen(filename) : 0;
    if (status < 0 || n <= 5 || strcmp(filename + n - 5, ".yaml") != 0 || srv->stopping)
        return;
    char *stem = strndup(filename, n - 5);
    /* Only names a request could ask for; a removed one closes its engine. */
    if (!stem || !st_models_stem_ok(stem)) {
        free(stem);
        return;
    }
    bool seen = false;
    for (uint32_t i = 0; i < srv->n_pending_stems && !seen; i++)
        seen = strcmp(srv->pending_stems[i], stem) == 0;
    if (seen || srv->n_pending_stems == ST_WATCH_MAX_PENDING)
        free(stem);
    else
        srv->pending_stems[srv->n_pending_stems++] = stem;
    uv_timer_start(&srv->watch_timer, on_settled, ST_WATCH_SETTLE_MS, 0);
}

void st_watch_start(st_server *srv)
{
    srv->pending_stems = calloc(ST_WATCH_MAX_PENDING, sizeof *srv->pending_stems);
    uv_fs_event_init(srv->loop, &srv->watcher);
    uv_timer_init(srv->loop, &srv->watch_timer);
    srv->watcher.data = srv->watch_timer.data = srv;
    if (!srv->pending_stems ||
        uv_fs_event_start(&srv->watcher, on_event, srv->cfg.manifests_dir, 0) < 0)
        fprintf(stderr, "stretch serve: warning: cannot watch %s; a changed manifest is "
                        "picked up by its next request only\n", srv->cfg.manifests_dir);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void st_watch_stop(st_server *srv)
{
    close_handle((uv_handle_t *)&srv->watcher);
    close_handle((uv_handle_t *)&srv->watch_timer);
    for (uint32_t i = 0; i < srv->n_pending_stems; i++)
        free(srv->pending_stems[i]);
    srv->n_pending_stems = 0;
    free(srv->pending_stems);
    srv->pending_stems = NULL;
}
