/*
 * tools/stretch/serve/http_response.c - whole HTTP responses and the
 * OpenAI-style error body every refusal carries.
 */
#include "server.h"
#include "utf8_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *st_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

char *st_http_response(int status, const char *content_type, const char *body,
                       size_t body_len, bool keep_alive, const char *extra_headers,
                       size_t *out_len)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n%s\r\n",
                     status, st_http_reason(status), content_type, body_len,
                     keep_alive ? "keep-alive" : "close", extra_headers ? extra_headers : "");
    if (n < 0 || (size_t)n >= sizeof head)
        return NULL;
    char *out = malloc((size_t)n + body_len + 1);
    if (!out)
        return NULL;
    memcpy(out, head, (size_t)n);
    memcpy(out + n, body, body_len);
    out[n + body_len] = '\0';
    *out_len = (size_t)n + body_len;
    return out;
}

static const char *error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

char *st_http_error(int status, const char *message, const char *param, bool keep_alive,
                    const char *extra_headers, size_t *out_len)
{
    /* A message may quote the client (a path, cut to a length): jansson
     * refuses what is not UTF-8, and the refusal would go unanswered. */
    size_t size = strlen(message) + 1;
    char *clean = malloc(size);
    if (!clean)
        return NULL;
    st_utf8_clean(message, clean, size);
    json_t *err = json_pack("{s:{s:s, s:s, s:o, s:i}}", "error", "message", clean, "type",
                            error_type(status), "param",
                            param ? json_string(param) : json_null(), "code", status);
    free(clean);
    char *body = err ? json_dumps(err, JSON_COMPACT) : NULL;
    json_decref(err);
    if (!body)
        return NULL;
    char *out = st_http_response(status, "application/json", body, strlen(body), keep_alive,
                                 extra_headers, out_len);
    free(body);
    return out;
}

void st_conn_send_error(st_conn *c, int status, const char *message, const char *param,
                        bool keep_alive)
{
    atomic_fetch_add(&c->srv->metrics.errors, 1);
    const char *extra = status == 429 ? "Retry-After: 1\r\n"
                        : status == 401 ? "WWW-Authenticate: Bearer\r\n"
                                        : NULL;
    size_t len = 0;
    char *resp = st_http_error(status, message, param, keep_alive, extra, &len);
    if (resp)
        st_conn_write(c, resp, len);
    free(resp);
    st_conn_request_done(c, keep_alive && resp);
}
