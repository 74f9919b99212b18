/*
 * tools/stretch/serve/http_conn.c - sockets and HTTP/1.1 framing on the
 * libuv loop: accept, feed bytes to http-parser (nodejs's parser, Debian's
 * libhttp-parser), enforce the header deadline and the body limit, write
 * responses, close. What a request means is routes.c's business.
 */
#include "server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct write_req {
    uv_write_t req;
    st_conn *conn;
    char bytes[];
} write_req;

static st_conn *conn_of(http_parser *p)
{
    return p->data;
}

static void reset_request(st_conn *c)
{
    free(c->url);
    free(c->body);
    free(c->authorization);
    c->url = c->body = c->authorization = NULL;
    c->url_len = c->body_len = 0;
    c->header_field[0] = '\0';
    c->header_field_done = false;
    c->expect_continue = false;
}

static void on_closed(uv_handle_t *h)
{
    st_conn *c = h->data;
    /* Two handles (socket, timer): free after the second closes. */
    if (++c->handles_closed == 2) {
        reset_request(c);
        free(c);
    }
}

void st_conn_close(st_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    st_server *srv = c->srv;
    for (st_conn **pp = &srv->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->job) {
        st_job_detach(c->job);
        c->job = NULL;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    st_conn *c = w->conn;
    free(w);
    c->pending_writes--;
    if (c->closing)
        return;
    if (status < 0 || (c->close_after_write && c->pending_writes == 0))
        st_conn_close(c);
}

void st_conn_write(st_conn *c, const char *bytes, size_t len)
{
    if (c->closing || len == 0)
        return;
    write_req *w = malloc(sizeof *w + len);
    if (!w) {
        st_conn_close(c);
        return;
    }
    w->conn = c;
    memcpy(w->bytes, bytes, len);
    uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)len);
    c->pending_writes++;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        c->pending_writes--;
        free(w);
        st_conn_close(c);
    }
}

void st_conn_end(st_conn *c)
{
    c->close_after_write = true;
    if (c->pending_writes == 0)
        st_conn_close(c);
}

static void on_header_timeout(uv_timer_t *t)
{
    st_conn *c = t->data;
    if (c->job)
        return;
    if (c->in_request) {
        c->refused = true;
        st_conn_send_error(c, 408, "the request did not arrive in time (--header-timeout)",
                           NULL, false);
    } else {
        st_conn_close(c); /* an idle keep-alive connection */
    }
}

static void arm_header_timer(st_conn *c)
{
    uv_timer_start(&c->timer, on_header_timeout, c->srv->cfg.header_timeout_ms, 0);
}

void st_conn_request_done(st_conn *c, bool keep_alive)
{
    c->job = NULL;
    reset_request(c);
    if (!keep_alive || c->srv->stopping) {
        st_conn_end(c);
        return;
    }
    arm_header_timer(c);
}

/* -- http-parser callbacks: collect one request -- */

static int append(char **buf, size_t *len, const char *at, size_t n)
{
    char *grown = realloc(*buf, *len + n + 1);
    if (!grown)
        return -1;
    memcpy(grown + *len, at, n);
    *len += n;
    grown[*len] = '\0';
    *buf = grown;
    return 0;
}

static int on_message_begin(http_parser *p)
{
    st_conn *c = conn_of(p);
    reset_request(c);
    c->in_request = true;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    st_conn *c = conn_of(p);
    if (c->url_len + n > 8192)
        return -1;
    return append(&c->url, &c->url_len, at, n);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    st_conn *c = conn_of(p);
    if (c->header_field_done) {
        c->header_field[0] = '\0';
        c->header_field_done = false;
    }
    size_t have = strlen(c->header_field);
    for (size_t i = 0; i < n && have + 1 < sizeof c->header_field; i++)
        c->header_field[have++] = (char)tolower((unsigned char)at[i]);
    c->header_field[have] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    st_conn *c = conn_of(p);
    c->header_field_done = true;
    if (strcmp(c->header_field, "authorization") == 0) {
        size_t len = c->authorization ? strlen(c->authorization) : 0;
        if (len + n > 4096)
            return -1;
        return append(&c->authorization, &len, at, n);
    }
    if (strcmp(c->header_field, "expect") == 0 && n >= 12 &&
        strncasecmp(at, "100-continue", 12) == 0)
        c->expect_continue = true;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    st_conn *c = conn_of(p);
    if (p->content_length != ULLONG_MAX && p->content_length > c->srv->cfg.max_body) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is %llu bytes, over the limit of %zu",
                 (unsigned long long)p->content_length, c->srv->cfg.max_body);
        c->refused = true;
        st_conn_send_error(c, 413, msg, NULL, false);
        return -1;
    }
    if (c->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        st_conn_write(c, cont, sizeof cont - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    st_conn *c = conn_of(p);
    if (c->body_len + n > c->srv->cfg.max_body) {
        char msg[160];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes",
                 c->srv->cfg.max_body);
        c->refused = true;
        st_conn_send_error(c, 413, msg, NULL, false);
        return -1;
    }
    return append(&c->body, &c->body_len, at, n);
}

static int on_message_complete(http_parser *p)
{
    st_conn *c = conn_of(p);
    /* The deadline covers headers and body: a body that trickles in is
     * as much a held connection as headers that do. */
    c->in_request = false;
    uv_timer_stop(&c->timer);
    st_route_request(c);
    /* One request at a time per connection: a pipelined one waits its turn
     * in the socket (the parser stops here and resumes when this is done). */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    st_conn *c = s->data;
    if (nread < 0) {
        /* EOF or error: the client is gone; a running job is cancelled. */
        free(buf->base);
        st_conn_close(c);
        return;
    }
    if (nread == 0 || c->refused || c->closing) {
        free(buf->base);
        return;
    }
    if (c->job) {
        /* Bytes while a response is generating: a pipelined request. We do
         * not pipeline; the connection ends after the current response. */
        c->refused = true;
        free(buf->base);
        return;
    }
    http_parser_pause(&c->parser, 0);
    size_t done = http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)nread);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) {
        if (done < (size_t)nread && !c->job && !c->refused) {
            /* A second request in the same read after a quick response. */
            c->refused = true;
            st_conn_end(c);
        }
    } else if ((e != HPE_OK || done != (size_t)nread) && !c->refused) {
        char msg[200];
        snprintf(msg, sizeof msg, "malformed HTTP request: %s", http_errno_description(e));
        c->refused = true;
        st_conn_send_error(c, 400, msg, NULL, false);
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    st_server *srv = server->data;
    if (status < 0 || srv->stopping)
        return;
    st_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        uv_close((uv_handle_t *)&c->timer, on_closed);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = srv->conns;
    srv->conns = c;
    c->in_request = true; /* the deadline covers the first request's headers */
    arm_header_timer(c);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

int st_http_listen(st_server *srv)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(srv->cfg.host, srv->cfg.port, (struct sockaddr_in *)&addr);
    if (rc < 0)
        rc = uv_ip6_addr(srv->cfg.host, srv->cfg.port, (struct sockaddr_in6 *)&addr);
    if (rc < 0) {
        fprintf(stderr, "stretch serve: --host '%s' is not an IPv4 or IPv6 address\n",
                srv->cfg.host);
        return rc;
    }
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    if ((rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection)) < 0) {
        fprintf(stderr, "stretch serve: cannot listen on %s:%d: %s\n", srv->cfg.host,
                srv->cfg.port, uv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
    char name[64] = "?";
    int port = srv->cfg.port;
    if (bound.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&bound, name, sizeof name);
        port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    } else {
        uv_ip6_name((struct sockaddr_in6 *)&bound, name, sizeof name);
        port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    /* One line a supervisor (or a test) can wait for, with the real port. */
    char parallel[32] = "as each manifest says";
    if (srv->cfg.parallel)
        snprintf(parallel, sizeof parallel, "%u", srv->cfg.parallel);
    printf("stretch serve: listening on http://%s:%d (parallel: %s; models from %s)\n", name,
           port, parallel, srv->cfg.manifests_dir);
    fflush(stdout);
    return 0;
}
