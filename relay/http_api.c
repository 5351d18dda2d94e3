/* The Pusher HTTP API: routing, request checks, publishing and responses.
 *
 * evhttp rejects a body over max_request_body_bytes (413) while reading it,
 * before any other check. The rest run in the order Pusher documents: the
 * path and method (404, 405), the app id (404), the signature (400 or 401),
 * the app being enabled (403), then the body itself (400 or 413). Only a
 * request that passed all of them touches Redis. */
#include "http_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "log.h"
#include "signature.h"
#include "strbuf.h"
#include "trigger.h"

/* Idle keep-alive connections and slow request reads are closed after this
 * many seconds. Clients then open a new connection for their next request. */
#define HTTP_API_TIMEOUT_S 60
#define HTTP_API_MAX_HEADERS_BYTES (64 * 1024)
#define HTTP_API_MESSAGE_MAX 512

#define HTTP_API_CONTENT_TYPE_JSON "application/json"
#define HTTP_API_CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

enum http_api_action {
    HTTP_API_EVENTS,
    HTTP_API_BATCH_EVENTS,
};

struct http_api {
    struct event_base *base;
    const struct herald_config *cfg;
    struct publisher *publisher;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;

    size_t in_flight;
    bool draining;
    void (*drained)(void *arg);
    void *drained_arg;
    struct event *drained_event; /* runs `drained` from the loop */
};

/* One request from its dispatch to us until its response is written out
 * or its connection is gone. A trigger's exchange also waits for the
 * PUBLISH replies, even when the client has gone away before them. */
struct http_exchange {
    struct http_api *api;
    struct evhttp_request *req; /* NULL once the connection is gone */
    struct evhttp_connection *conn;
    const char *method;
    char *path;         /* copy for the debug log */
    const char *app_id; /* owned by the configuration; NULL until known */
    bool replied;       /* the response is queued for writing */

    /* Trigger state while PUBLISH replies are awaited. */
    size_t total;           /* PUBLISH commands this request needs */
    size_t replies_pending;
    size_t published;       /* acknowledged by Redis */
    bool submitting;        /* still inside the loop that queues the PUBLISH */
    bool lost;              /* a PUBLISH was never acknowledged */
    bool rejected;          /* Redis replied to a PUBLISH with an error */
};

static void http_api_check_drained(struct http_api *api);

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

static const char *http_method_name(enum evhttp_cmd_type method)
{
    switch (method) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

static void http_exchange_end(struct http_exchange *exchange)
{
    struct http_api *api = exchange->api;
    if (exchange->conn)
        evhttp_connection_set_closecb(exchange->conn, NULL, NULL);
    free(exchange->path);
    free(exchange);

    api->in_flight--;
    http_api_check_drained(api);
}

/* Called by evhttp once the response is completely written. */
static void http_exchange_on_complete(struct evhttp_request *req, void *arg)
{
    (void)req;
    http_exchange_end(arg);
}

static void http_exchange_on_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct http_exchange *exchange = arg;

    /* libevent 2.1 frees a request still attached to the closing
     * connection right after this callback, but leaves one it has already
     * detached (the client hung up before the response) to its owner. */
    if (exchange->req && !evhttp_request_get_connection(exchange->req))
        evhttp_request_free(exchange->req);
    exchange->req = NULL;
    exchange->conn = NULL;

    /* A trigger waiting for Redis ends when its last PUBLISH reply does. */
    if (exchange->replied || (exchange->replies_pending == 0 && !exchange->submitting))
        http_exchange_end(exchange);
}

/* Sends `body` with `status` and logs the request at debug level. Success
 * bodies are JSON; error bodies are plain text, as Pusher sends them. The
 * exchange ends once the response is written or the connection closes. */
static void http_exchange_reply(struct http_exchange *exchange, int status, const char *body)
{
    struct http_api *api = exchange->api;
    const char *app_id = exchange->app_id ? exchange->app_id : "-";
    /* evhttp accepts any byte but space in a request path. */
    char path[80];
    trigger_printable(path, sizeof path, exchange->path, strlen(exchange->path));

    if (!exchange->req) {
        log_debug("http: app=%s %s %s -> %d dropped: the client closed the connection first",
                  app_id, exchange->method, path, status);
        http_exchange_end(exchange);
        return;
    }

    if (status == 200)
        log_debug("http: app=%s %s %s -> %d", app_id, exchange->method, path, status);
    else
        log_debug("http: app=%s %s %s -> %d %s", app_id, exchange->method, path, status, body);

    struct evhttp_request *req = exchange->req;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type",
                      status == 200 ? HTTP_API_CONTENT_TYPE_JSON : HTTP_API_CONTENT_TYPE_TEXT);
    /* While shutting down, make keep-alive clients open their next
     * connection to a relay that is still running. */
    if (api->draining)
        evhttp_add_header(headers, "Connection", "close");
    evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));

    exchange->replied = true;
    evhttp_request_set_on_complete_cb(req, http_exchange_on_complete, exchange);
    evhttp_send_reply(req, status, NULL, NULL);
}

/* ------------------------------------------------------------------------
 * Draining at shutdown
 * ------------------------------------------------------------------------ */

static void http_api_on_drained(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_api *api = arg;
    void (*drained)(void *) = api->drained;
    api->drained = NULL;
    if (drained)
        drained(api->drained_arg);
}

/* Schedules the drained callback once nothing is in flight. It runs from the
 * loop because its usual work, freeing the server, cannot happen inside an
 * evhttp or hiredis callback. */
static void http_api_check_drained(struct http_api *api)
{
    if (!api->draining || api->in_flight > 0 || !api->drained || !api->drained_event)
        return;

    struct timeval now = { 0, 0 };
    evtimer_add(api->drained_event, &now);
}

/* ------------------------------------------------------------------------
 * Triggers waiting for Redis
 * ------------------------------------------------------------------------ */

static void http_exchange_finish_trigger(struct http_exchange *exchange)
{
    char message[HTTP_API_MESSAGE_MAX];
    int status;

    if (exchange->rejected) {
        status = 500;
        snprintf(message, sizeof message,
                 "Redis rejected the PUBLISH of %zu of %zu frames; the relay log has the error",
                 exchange->total - exchange->published, exchange->total);
    } else if (exchange->lost && exchange->published == 0) {
        status = 503;
        snprintf(message, sizeof message, "Redis unavailable, try again");
    } else if (exchange->lost) {
        status = 503;
        snprintf(message, sizeof message,
                 "Redis unavailable, try again; the connection was lost after %zu of %zu "
                 "frames were published, so a retry delivers those again",
                 exchange->published, exchange->total);
    } else {
        /* TODO: support the `info` parameter (user_count,
         * subscription_count) once gateways keep cluster-wide channel
         * counts in Redis; until then every trigger gets {}. */
        status = 200;
        snprintf(message, sizeof message, "{}");
    }

    http_exchange_reply(exchange, status, message);
}

static void http_exchange_on_published(void *arg, enum publish_result result)
{
    struct http_exchange *exchange = arg;
    exchange->replies_pending--;

    switch (result) {
    case PUBLISH_OK:
        exchange->published++;
        break;
    case PUBLISH_LOST:
        exchange->lost = true;
        break;
    case PUBLISH_FAILED:
        exchange->rejected = true;
        break;
    }

    if (exchange->replies_pending == 0 && !exchange->submitting)
        http_exchange_finish_trigger(exchange);
}

/* Renders every frame of `list` once per channel and PUBLISHes it. The
 * response is sent when Redis has acknowledged all of them. */
static void http_exchange_publish(struct http_exchange *exchange, const struct app_config *app,
                                  const struct trigger_list *list)
{
    struct http_api *api = exchange->api;

    if (list->frame_count == 0) {
        http_exchange_reply(exchange, 200, "{}");
        return;
    }
    if (!publisher_ready(api->publisher)) {
        http_exchange_reply(exchange, 503, "Redis unavailable, try again");
        return;
    }

    exchange->total = list->frame_count;
    exchange->submitting = true;

    struct strbuf topic;
    struct strbuf envelope;
    strbuf_init(&topic);
    strbuf_init(&envelope);

    for (size_t i = 0; i < list->event_count && !exchange->lost; i++) {
        const struct trigger_event *event = &list->events[i];

        for (size_t c = 0; c < event->channel_count; c++) {
            strbuf_reset(&topic);
            strbuf_reset(&envelope);
            trigger_render(event, event->channels[c], api->cfg->prefix, app->id, &topic,
                           &envelope);

            exchange->replies_pending++;
            if (publisher_publish(api->publisher, topic.data, topic.len, envelope.data,
                                  envelope.len, http_exchange_on_published, exchange) != 0) {
                /* The connection is closing; every later PUBLISH would fail
                 * the same way. */
                exchange->replies_pending--;
                exchange->lost = true;
                break;
            }
        }
    }

    strbuf_free(&topic);
    strbuf_free(&envelope);

    exchange->submitting = false;
    if (exchange->replies_pending == 0)
        http_exchange_finish_trigger(exchange);
}

/* ------------------------------------------------------------------------
 * Routing and request checks
 * ------------------------------------------------------------------------ */

/* Splits "/apps/{app_id}/events" or "/apps/{app_id}/batch_events" and
 * percent-decodes the app id into a new string at *app_id. Returns false
 * for any other path. */
static bool http_api_route(const char *path, char **app_id, enum http_api_action *action)
{
    static const char apps[] = "/apps/";
    if (strncmp(path, apps, sizeof apps - 1) != 0)
        return false;

    const char *segment = path + sizeof apps - 1;
    const char *slash = strchr(segment, '/');
    if (!slash || slash == segment)
        return false;

    if (strcmp(slash + 1, "events") == 0)
        *action = HTTP_API_EVENTS;
    else if (strcmp(slash + 1, "batch_events") == 0)
        *action = HTTP_API_BATCH_EVENTS;
    else
        return false;

    char *raw = strndup(segment, (size_t)(slash - segment));
    if (!raw)
        return false;
    size_t decoded_len = 0;
    char *decoded = evhttp_uridecode(raw, 0, &decoded_len);
    free(raw);
    if (!decoded)
        return false;
    if (strlen(decoded) != decoded_len) {
        free(decoded);
        return false;
    }

    *app_id = decoded;
    return true;
}

/* Returns 0 when the request is signed with the app's secret, else the
 * status to respond with and the message in `err`. */
static int http_api_check_signature(const struct http_api *api, const struct app_config *app,
                                    struct evhttp_request *req, const char *path,
                                    const char *body, size_t body_len, char *err,
                                    size_t err_len)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct query_param *params = NULL;
    int count = signature_parse_query(query ? query : "", &params);
    if (count < 0) {
        snprintf(err, err_len, "Invalid query string: a percent-escape is malformed");
        return 400;
    }

    time_t now = time(NULL);
    int status = signature_check_request(app, "POST", path, params, count, body, body_len, now,
                                         api->cfg->auth_timestamp_window, err, err_len);

    /* A client may have signed the decoded form of an escaped path; trying
     * it too cannot accept a request signed with another secret. */
    if (status == 401 && strchr(path, '%')) {
        char *decoded = evhttp_uridecode(path, 0, NULL);
        char retry_err[HTTP_API_MESSAGE_MAX];
        if (decoded && signature_check_request(app, "POST", decoded, params, count, body,
                                               body_len, now, api->cfg->auth_timestamp_window,
                                               retry_err, sizeof retry_err) == 0)
            status = 0;
        free(decoded);
    }

    signature_free_query(params, count);
    return status;
}

static void http_exchange_handle_trigger(struct http_exchange *exchange,
                                         const struct app_config *app,
                                         enum http_api_action action)
{
    struct http_api *api = exchange->api;
    struct evhttp_request *req = exchange->req;
    exchange->app_id = app->id;

    /* evhttp calls us only once the whole body has arrived, and responds
     * 413 itself when it is larger than max_request_body_bytes. */
    struct evbuffer *input = evhttp_request_get_input_buffer(req);
    size_t body_len = evbuffer_get_length(input);
    const char *body = body_len ? (const char *)evbuffer_pullup(input, -1) : "";
    if (!body) {
        http_exchange_reply(exchange, 500, "Out of memory");
        return;
    }

    char message[HTTP_API_MESSAGE_MAX];
    int status = http_api_check_signature(api, app, req, exchange->path, body, body_len,
                                          message, sizeof message);
    if (status) {
        http_exchange_reply(exchange, status, message);
        return;
    }

    if (!app->enabled) {
        snprintf(message, sizeof message, "App %s is disabled", app->id);
        http_exchange_reply(exchange, 403, message);
        return;
    }

    struct trigger_list list;
    if (action == HTTP_API_EVENTS)
        status = trigger_parse_event(&list, app, body, body_len, message, sizeof message);
    else
        status = trigger_parse_batch(&list, app, body, body_len, message, sizeof message);
    if (status) {
        http_exchange_reply(exchange, status, message);
        return;
    }

    http_exchange_publish(exchange, app, &list);
    trigger_list_free(&list);
}

static void http_exchange_route(struct http_exchange *exchange)
{
    struct http_api *api = exchange->api;
    struct evhttp_request *req = exchange->req;

    /* TODO: accept a configured path prefix in front of /apps, as a reverse
     * proxy adds it. SDKs sign the path without the prefix, so it has to be
     * stripped before routing and before the signature check. */
    char *app_id = NULL;
    enum http_api_action action;
    if (!http_api_route(exchange->path, &app_id, &action)) {
        http_exchange_reply(exchange, 404,
                            "Not found: herald-relay serves POST /apps/{app_id}/events and "
                            "POST /apps/{app_id}/batch_events");
        return;
    }

    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        http_exchange_reply(exchange, 405, "Method not allowed: use POST");
        free(app_id);
        return;
    }

    const struct app_config *app = config_find_app_by_id(api->cfg, app_id);
    if (!app) {
        char printable_id[80];
        char message[HTTP_API_MESSAGE_MAX];
        trigger_printable(printable_id, sizeof printable_id, app_id, strlen(app_id));
        snprintf(message, sizeof message, "Unknown app id %s", printable_id);
        http_exchange_reply(exchange, 404, message);
        free(app_id);
        return;
    }
    free(app_id);

    http_exchange_handle_trigger(exchange, app, action);
}

static void http_api_on_request(struct evhttp_request *req, void *arg)
{
    struct http_api *api = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path || !path[0])
        path = "/";

    struct http_exchange *exchange = calloc(1, sizeof *exchange);
    char *path_copy = strdup(path);
    if (!exchange || !path_copy) {
        free(exchange);
        free(path_copy);
        evhttp_send_error(req, 500, "Out of memory");
        return;
    }
    exchange->api = api;
    exchange->req = req;
    exchange->conn = evhttp_request_get_connection(req);
    exchange->method = http_method_name(evhttp_request_get_command(req));
    exchange->path = path_copy;
    api->in_flight++;

    /* The request stays valid until its response is written, unless its
     * connection is freed first: the client hung up while Redis was slow,
     * or the server is being freed at shutdown. */
    evhttp_connection_set_closecb(exchange->conn, http_exchange_on_close, exchange);

    http_exchange_route(exchange);
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

struct http_api *http_api_create(struct event_base *base, const struct herald_config *cfg,
                                 struct publisher *publisher)
{
    struct http_api *api = calloc(1, sizeof *api);
    if (!api)
        return NULL;
    api->base = base;
    api->cfg = cfg;
    api->publisher = publisher;

    api->http = evhttp_new(base);
    api->drained_event = evtimer_new(base, http_api_on_drained, api);
    if (!api->http || !api->drained_event) {
        if (api->http)
            evhttp_free(api->http);
        if (api->drained_event)
            event_free(api->drained_event);
        free(api);
        return NULL;
    }

    evhttp_set_gencb(api->http, http_api_on_request, api);
    /* Every method reaches the router, so a wrong one gets 405 and not
     * evhttp's 501. */
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                              EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(api->http, cfg->max_request_body_bytes);
    evhttp_set_max_headers_size(api->http, HTTP_API_MAX_HEADERS_BYTES);
    evhttp_set_timeout(api->http, HTTP_API_TIMEOUT_S);
    /* Read and discard an oversized body before responding 413, so a client
     * that sends its whole body first sees the 413 and not a reset. */
    evhttp_set_flags(api->http, EVHTTP_SERVER_LINGERING_CLOSE);
    return api;
}

int http_api_listen(struct http_api *api, const char *host, int port, char *bound,
                    size_t bound_len, char *err, size_t err_len)
{
    api->listener = evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)port);
    if (!api->listener) {
        snprintf(err, err_len, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        return -1;
    }

    struct sockaddr_storage address;
    socklen_t address_len = sizeof address;
    int fd = evhttp_bound_socket_get_fd(api->listener);
    if (getsockname(fd, (struct sockaddr *)&address, &address_len) != 0) {
        snprintf(bound, bound_len, "%s:%d", host, port);
        return 0;
    }

    char text[INET6_ADDRSTRLEN];
    if (address.ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&address;
        inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
        snprintf(bound, bound_len, "[%s]:%u", text, (unsigned)ntohs(v6->sin6_port));
    } else {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)&address;
        inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
        snprintf(bound, bound_len, "%s:%u", text, (unsigned)ntohs(v4->sin_port));
    }
    return 0;
}

size_t http_api_in_flight(const struct http_api *api)
{
    return api->in_flight;
}

void http_api_drain(struct http_api *api, void (*drained)(void *arg), void *arg)
{
    if (api->listener) {
        evhttp_del_accept_socket(api->http, api->listener);
        api->listener = NULL;
    }
    api->draining = true;
    api->drained = drained;
    api->drained_arg = arg;
    http_api_check_drained(api);
}

void http_api_free(struct http_api *api)
{
    if (!api)
        return;

    /* Freeing the connections ends every exchange whose response is still
     * being written; none of them may schedule the drained callback. */
    api->drained = NULL;
    event_free(api->drained_event);
    api->drained_event = NULL;
    evhttp_free(api->http);

    /* A trigger still waiting for Redis points at `api` and runs when its
     * last PUBLISH reply arrives, so `api` is left allocated rather than
     * freed under it. Closing the publisher first avoids this. */
    if (api->in_flight > 0) {
        log_error("http: server freed with %zu requests waiting for Redis", api->in_flight);
        return;
    }
    free(api);
}
