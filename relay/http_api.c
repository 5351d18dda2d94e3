/* The Pusher HTTP API server: routing, request checks and responses.
 * The endpoints themselves live in http_trigger.c, http_channels.c and
 * http_ops.c (see http_internal.h).
 *
 * evhttp rejects a body over max_request_body_bytes (413) while reading it,
 * before any other check. The rest run in the order Pusher documents: the
 * path and method (404, 405), the app id (404), the signature (400 or 401),
 * the app being enabled (403), then the endpoint's own checks (400 or 413).
 * Only a request that passed all of them touches Redis. The operations
 * endpoints /up, /ready and /metrics need no app and no signature. */
#include "http_api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>

#include "http_internal.h"
#include "log.h"
#include "signature.h"
#include "trigger.h"

/* Idle keep-alive connections are closed after this many seconds without a
 * byte. Clients then open a new connection for their next request. A
 * request being received has relay_request_timeout (http_connection.c). */
#define HTTP_API_TIMEOUT_S 60
#define HTTP_API_MAX_HEADERS_BYTES (64 * 1024)
#define HTTP_API_MESSAGE_MAX 512

#define HTTP_API_CONTENT_TYPE_JSON "application/json"
#define HTTP_API_CONTENT_TYPE_TEXT "text/plain; charset=utf-8"

/* The method each endpoint takes, for routing, the Allow header and the
 * metrics label. */
static const struct {
    const char *name;
    unsigned methods; /* EVHTTP_REQ_* bits */
    const char *allow;
} http_endpoints[HTTP_ENDPOINT_COUNT] = {
    [HTTP_ENDPOINT_EVENTS] = { "events", EVHTTP_REQ_POST, "POST" },
    [HTTP_ENDPOINT_BATCH_EVENTS] = { "batch_events", EVHTTP_REQ_POST, "POST" },
    [HTTP_ENDPOINT_CHANNELS] = { "channels", EVHTTP_REQ_GET, "GET" },
    [HTTP_ENDPOINT_CHANNEL] = { "channel", EVHTTP_REQ_GET, "GET" },
    [HTTP_ENDPOINT_CHANNEL_USERS] = { "channel_users", EVHTTP_REQ_GET, "GET" },
    [HTTP_ENDPOINT_TERMINATE_CONNECTIONS] = { "terminate_connections", EVHTTP_REQ_POST,
                                              "POST" },
    [HTTP_ENDPOINT_UP] = { "up", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD" },
    [HTTP_ENDPOINT_READY] = { "ready", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD" },
    [HTTP_ENDPOINT_METRICS] = { "metrics", EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "GET, HEAD" },
    [HTTP_ENDPOINT_UNKNOWN] = { "unknown", 0, NULL },
};

const char *http_endpoint_name(enum http_endpoint endpoint)
{
    return http_endpoints[endpoint].name;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
    if (exchange->connection)
        http_connection_end_exchange(exchange->connection);
    else if (exchange->conn)
        evhttp_connection_set_closecb(exchange->conn, NULL, NULL);
    http_trigger_free(exchange->trigger);
    signature_free_query(exchange->params, exchange->param_count);
    free(exchange->channel);
    free(exchange->user_id);
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

void http_exchange_on_close(struct evhttp_connection *conn, void *arg)
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
    exchange->connection = NULL;

    /* An exchange waiting for Redis ends when its last reply does. */
    if (exchange->replied || (exchange->replies_pending == 0 && !exchange->submitting))
        http_exchange_end(exchange);
}

static void http_api_record(struct http_api *api, const struct http_exchange *exchange,
                            int status)
{
    struct http_metrics *metrics = &api->metrics;
    if (status >= 200 && status < 300)
        metrics->requests[exchange->endpoint][HTTP_STATUS_CLASS_2XX]++;
    else if (status >= 400 && status < 500)
        metrics->requests[exchange->endpoint][HTTP_STATUS_CLASS_4XX]++;
    else if (status >= 500 && status < 600)
        metrics->requests[exchange->endpoint][HTTP_STATUS_CLASS_5XX]++;

    double seconds = (double)(monotonic_ns() - exchange->started_ns) / 1e9;
    metrics_histogram_observe(&metrics->request_duration, seconds);
}

void http_exchange_send(struct http_exchange *exchange, int status, const char *content_type,
                        const char *body, size_t body_len)
{
    struct http_api *api = exchange->api;
    const char *app_id = exchange->app ? exchange->app->id : "-";
    /* evhttp accepts any byte but space in a request path. */
    char path[80];
    trigger_printable(path, sizeof path, exchange->path, strlen(exchange->path));

    http_api_record(api, exchange, status);

    if (!exchange->req) {
        log_debug("http: app=%s %s %s -> %d dropped: the client closed the connection first",
                  app_id, exchange->method, path, status);
        http_exchange_end(exchange);
        return;
    }

    if (status == 200)
        log_debug("http: app=%s %s %s -> %d", app_id, exchange->method, path, status);
    else
        log_debug("http: app=%s %s %s -> %d %.*s", app_id, exchange->method, path, status,
                  (int)body_len, body);

    struct evhttp_request *req = exchange->req;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", content_type);
    /* While shutting down, make keep-alive clients open their next
     * connection to a relay that is still running. */
    if (api->draining || exchange->close_connection)
        evhttp_add_header(headers, "Connection", "close");
    evbuffer_add(evhttp_request_get_output_buffer(req), body, body_len);

    exchange->replied = true;
    evhttp_request_set_on_complete_cb(req, http_exchange_on_complete, exchange);
    evhttp_send_reply(req, status, NULL, NULL);
}

void http_exchange_reply(struct http_exchange *exchange, int status, const char *body)
{
    http_exchange_send(exchange, status,
                       status == 200 ? HTTP_API_CONTENT_TYPE_JSON : HTTP_API_CONTENT_TYPE_TEXT,
                       body, strlen(body));
}

bool http_exchange_reply_redis_failure(struct http_exchange *exchange,
                                       const struct redisReply *reply, const char *what)
{
    if (!reply) {
        http_exchange_reply(exchange, 503, "Redis unavailable, try again");
        return true;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char message[HTTP_API_MESSAGE_MAX];
        snprintf(message, sizeof message, "Redis rejected %s; the relay log has the error",
                 what);
        http_exchange_reply(exchange, 500, message);
        return true;
    }
    return false;
}

const char *http_exchange_param(const struct http_exchange *exchange, const char *key)
{
    for (int i = 0; i < exchange->param_count; i++) {
        if (strcmp(exchange->params[i].key, key) == 0)
            return exchange->params[i].value;
    }
    return NULL;
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
 * Routing and request checks
 * ------------------------------------------------------------------------ */

/* Percent-decodes `len` bytes of a path segment into a new string and
 * stores its length, which exceeds strlen() when it contains %00. Returns
 * NULL when out of memory. */
static char *http_api_decode_segment(const char *segment, size_t len, size_t *decoded_len)
{
    char *raw = strndup(segment, len);
    if (!raw)
        return NULL;
    char *decoded = evhttp_uridecode(raw, 0, decoded_len);
    free(raw);
    return decoded;
}

/* Matches the path against the endpoints and stores the decoded app id at
 * *app_id (NULL for the operations endpoints) and the decoded channel name
 * or user id in the exchange. Returns false when no endpoint matches. */
static bool http_api_route(struct http_exchange *exchange, char **app_id)
{
    const char *path = exchange->path;
    *app_id = NULL;

    if (strcmp(path, "/up") == 0)
        exchange->endpoint = HTTP_ENDPOINT_UP;
    else if (strcmp(path, "/ready") == 0)
        exchange->endpoint = HTTP_ENDPOINT_READY;
    else if (strcmp(path, "/metrics") == 0)
        exchange->endpoint = HTTP_ENDPOINT_METRICS;
    if (exchange->endpoint != HTTP_ENDPOINT_UNKNOWN)
        return true;

    static const char apps[] = "/apps/";
    if (strncmp(path, apps, sizeof apps - 1) != 0)
        return false;

    /* Up to four segments: {app_id}, then events, batch_events,
     * channels[/{channel_name}[/users]] or users/{user_id}/terminate_connections. */
    const char *segments[4];
    size_t lengths[4];
    size_t count = 0;
    const char *cursor = path + sizeof apps - 1;
    for (;;) {
        if (count == 4)
            return false;
        size_t len = strcspn(cursor, "/");
        if (len == 0)
            return false;
        segments[count] = cursor;
        lengths[count] = len;
        count++;
        if (cursor[len] == '\0')
            break;
        cursor += len + 1;
    }

#define SEGMENT_IS(i, text) \
    (lengths[i] == sizeof(text) - 1 && memcmp(segments[i], text, lengths[i]) == 0)
    const char *variable = NULL; /* the {channel_name} or {user_id} segment */
    size_t variable_len = 0;
    if (count == 2 && SEGMENT_IS(1, "events")) {
        exchange->endpoint = HTTP_ENDPOINT_EVENTS;
    } else if (count == 2 && SEGMENT_IS(1, "batch_events")) {
        exchange->endpoint = HTTP_ENDPOINT_BATCH_EVENTS;
    } else if (count == 2 && SEGMENT_IS(1, "channels")) {
        exchange->endpoint = HTTP_ENDPOINT_CHANNELS;
    } else if (count == 3 && SEGMENT_IS(1, "channels")) {
        exchange->endpoint = HTTP_ENDPOINT_CHANNEL;
        variable = segments[2];
        variable_len = lengths[2];
    } else if (count == 4 && SEGMENT_IS(1, "channels") && SEGMENT_IS(3, "users")) {
        exchange->endpoint = HTTP_ENDPOINT_CHANNEL_USERS;
        variable = segments[2];
        variable_len = lengths[2];
    } else if (count == 4 && SEGMENT_IS(1, "users") && SEGMENT_IS(3, "terminate_connections")) {
        exchange->endpoint = HTTP_ENDPOINT_TERMINATE_CONNECTIONS;
        variable = segments[2];
        variable_len = lengths[2];
    } else {
        return false;
    }
#undef SEGMENT_IS

    size_t app_id_len = 0;
    char *decoded_app_id = http_api_decode_segment(segments[0], lengths[0], &app_id_len);
    if (!decoded_app_id || strlen(decoded_app_id) != app_id_len) {
        free(decoded_app_id);
        exchange->endpoint = HTTP_ENDPOINT_UNKNOWN;
        return false;
    }

    /* A NUL in a channel name or user id is rejected by the endpoint's own
     * checks with a 400 that names the value. */
    if (variable) {
        size_t decoded_len = 0;
        char *decoded = http_api_decode_segment(variable, variable_len, &decoded_len);
        if (!decoded) {
            free(decoded_app_id);
            exchange->endpoint = HTTP_ENDPOINT_UNKNOWN;
            return false;
        }
        if (exchange->endpoint == HTTP_ENDPOINT_TERMINATE_CONNECTIONS) {
            exchange->user_id = decoded;
            exchange->user_id_len = decoded_len;
        } else {
            exchange->channel = decoded;
            exchange->channel_len = decoded_len;
        }
    }

    *app_id = decoded_app_id;
    return true;
}

/* Parses the query into the exchange and checks the signature. Returns 0
 * when the request is signed with the app's secret, else the status to
 * respond with and the message in `err`. */
static int http_exchange_check_signature(struct http_exchange *exchange, char *err,
                                         size_t err_len)
{
    struct http_api *api = exchange->api;
    const struct app_config *app = exchange->app;
    struct evhttp_request *req = exchange->req;

    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    int count = signature_parse_query(query ? query : "", &exchange->params);
    if (count < 0) {
        exchange->params = NULL;
        if (count == -2)
            snprintf(err, err_len, "Invalid query string: more than %d parameters",
                     SIGNATURE_MAX_QUERY_PARAMS);
        else
            snprintf(err, err_len, "Invalid query string: a percent-escape is malformed");
        return 400;
    }
    exchange->param_count = count;

    /* evhttp calls us only once the whole body has arrived, and responds
     * 413 itself when it is larger than max_request_body_bytes. A GET has
     * no body, so its signature has no body_md5. */
    struct evbuffer *input = evhttp_request_get_input_buffer(req);
    size_t body_len = evbuffer_get_length(input);
    const char *body = body_len ? (const char *)evbuffer_pullup(input, -1) : "";
    if (!body) {
        snprintf(err, err_len, "Out of memory");
        return 500;
    }

    const char *path = exchange->path;
    const struct query_param *params = exchange->params;
    time_t now = time(NULL);
    int status = signature_check_request(app, exchange->method, path, params, count, body,
                                         body_len, now, api->cfg->auth_timestamp_window, err,
                                         err_len);

    /* A client may have signed the decoded form of an escaped path; trying
     * it too cannot accept a request signed with another secret. */
    if (status == 401 && strchr(path, '%')) {
        char *decoded = evhttp_uridecode(path, 0, NULL);
        char retry_err[HTTP_API_MESSAGE_MAX];
        if (decoded && signature_check_request(app, exchange->method, decoded, params, count,
                                               body, body_len, now,
                                               api->cfg->auth_timestamp_window, retry_err,
                                               sizeof retry_err) == 0)
            status = 0;
        free(decoded);
    }
    return status;
}

/* Checks the app and the signature, then hands the request to its
 * endpoint's handler. */
static void http_exchange_handle_app_request(struct http_exchange *exchange)
{
    char message[HTTP_API_MESSAGE_MAX];
    int status = http_exchange_check_signature(exchange, message, sizeof message);
    if (status) {
        http_exchange_reply(exchange, status, message);
        return;
    }

    const struct app_config *app = exchange->app;
    if (!app->enabled) {
        snprintf(message, sizeof message, "App %s is disabled", app->id);
        http_exchange_reply(exchange, 403, message);
        return;
    }

    /* Counted after the signature check, so only a client that has the
     * app's secret can use up the app's rate. */
    struct http_rate_bucket *bucket = &exchange->api->rate_buckets[app - exchange->api->cfg->apps];
    int retry_after = http_rate_take(bucket, app->max_api_requests_per_second, monotonic_ns());
    if (retry_after) {
        char seconds[16];
        snprintf(seconds, sizeof seconds, "%d", retry_after);
        evhttp_add_header(evhttp_request_get_output_headers(exchange->req), "Retry-After",
                          seconds);
        snprintf(message, sizeof message,
                 "Too many requests: app %s allows %d HTTP API requests per second on each "
                 "relay; retry after %d s",
                 app->id, app->max_api_requests_per_second, retry_after);
        http_exchange_reply(exchange, 429, message);
        return;
    }

    switch (exchange->endpoint) {
    case HTTP_ENDPOINT_EVENTS:
    case HTTP_ENDPOINT_BATCH_EVENTS:
        http_trigger_handle_events(exchange);
        break;
    case HTTP_ENDPOINT_TERMINATE_CONNECTIONS:
        http_trigger_handle_terminate(exchange);
        break;
    case HTTP_ENDPOINT_CHANNELS:
    case HTTP_ENDPOINT_CHANNEL:
    case HTTP_ENDPOINT_CHANNEL_USERS:
        http_channels_handle(exchange);
        break;
    default:
        http_exchange_reply(exchange, 500, "Internal error: no handler for this endpoint");
        break;
    }
}

/* Checks how the body was framed. libevent 2.1 reads the body with the
 * first Content-Length and ignores any other, and with Transfer-Encoding
 * chunked ignores Content-Length. A proxy in front may pick the other
 * header and so split the stream into different requests (request
 * smuggling). RFC 9112 section 6.3 makes conflicting lengths an
 * unrecoverable error, and section 6.1 lets a server reject both headers
 * together, so both get 400 and the connection is closed (libevent 2.1.12
 * itself rejects that case with 400 before dispatching). A transfer
 * coding other than chunked, which libevent would read as no coding at
 * all, gets 501. Returns 0, or the status with the message in `err`. */
static int http_exchange_check_framing(struct http_exchange *exchange, char *err,
                                       size_t err_len)
{
    struct evkeyvalq *headers = evhttp_request_get_input_headers(exchange->req);
    const char *content_length = NULL;
    const char *transfer_encoding = NULL;

    for (struct evkeyval *header = headers->tqh_first; header; header = header->next.tqe_next) {
        if (strcasecmp(header->key, "Transfer-Encoding") == 0) {
            if (transfer_encoding) {
                snprintf(err, err_len,
                         "Invalid request: more than one Transfer-Encoding header; send one");
                return 400;
            }
            if (strcasecmp(header->value, "chunked") != 0) {
                char printable[40];
                trigger_printable(printable, sizeof printable, header->value,
                                  strlen(header->value));
                snprintf(err, err_len,
                         "Transfer-Encoding %s is not supported: send the body with "
                         "Content-Length or Transfer-Encoding chunked alone",
                         printable);
                return 501;
            }
            transfer_encoding = header->value;
            continue;
        }
        if (strcasecmp(header->key, "Content-Length") != 0)
            continue;
        if (content_length && strcmp(content_length, header->value) != 0) {
            char first[24];
            char second[24];
            trigger_printable(first, sizeof first, content_length, strlen(content_length));
            trigger_printable(second, sizeof second, header->value, strlen(header->value));
            snprintf(err, err_len,
                     "Invalid request: conflicting Content-Length headers %s and %s; send "
                     "exactly one",
                     first, second);
            return 400;
        }
        content_length = header->value;
    }

    if (transfer_encoding && content_length) {
        snprintf(err, err_len,
                 "Invalid request: both Transfer-Encoding and Content-Length are present; "
                 "send only one of them");
        return 400;
    }
    return 0;
}

static void http_exchange_route(struct http_exchange *exchange)
{
    struct http_api *api = exchange->api;
    struct evhttp_request *req = exchange->req;

    char framing_error[HTTP_API_MESSAGE_MAX];
    int framing_status = http_exchange_check_framing(exchange, framing_error,
                                                     sizeof framing_error);
    if (framing_status) {
        /* The next request on this connection would start at an offset
         * that the client and any proxy may disagree on. */
        exchange->close_connection = true;
        http_exchange_reply(exchange, framing_status, framing_error);
        return;
    }

    /* TODO: accept a configured path prefix in front of /apps, as a reverse
     * proxy adds it. SDKs sign the path without the prefix, so it has to be
     * stripped before routing and before the signature check. */
    char *app_id = NULL;
    if (!http_api_route(exchange, &app_id)) {
        http_exchange_reply(exchange, 404,
                            "Not found: herald-relay serves POST /apps/{app_id}/events, "
                            "POST /apps/{app_id}/batch_events, GET /apps/{app_id}/channels, "
                            "GET /apps/{app_id}/channels/{channel_name}, "
                            "GET /apps/{app_id}/channels/{channel_name}/users, "
                            "POST /apps/{app_id}/users/{user_id}/terminate_connections, "
                            "GET /up, GET /ready and GET /metrics");
        return;
    }

    unsigned methods = http_endpoints[exchange->endpoint].methods;
    if (!(evhttp_request_get_command(req) & methods)) {
        const char *allow = http_endpoints[exchange->endpoint].allow;
        char message[HTTP_API_MESSAGE_MAX];
        snprintf(message, sizeof message, "Method not allowed: use %s",
                 methods & EVHTTP_REQ_POST ? "POST" : "GET");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
        http_exchange_reply(exchange, 405, message);
        free(app_id);
        return;
    }

    if (!app_id) {
        http_ops_handle(exchange);
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

    exchange->app = app;
    http_exchange_handle_app_request(exchange);
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
    exchange->endpoint = HTTP_ENDPOINT_UNKNOWN;
    exchange->started_ns = monotonic_ns();
    api->in_flight++;

    /* The request stays valid until its response is written, unless its
     * connection is freed first: the client hung up while Redis was slow,
     * or the server is being freed at shutdown. A tracked connection's
     * close callback passes that on to the exchange. */
    exchange->connection = http_connection_begin_exchange(api, exchange);
    if (!exchange->connection)
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

    hashmap_init(&api->connection_map);
    api->http = evhttp_new(base);
    api->drained_event = evtimer_new(base, http_api_on_drained, api);
    api->rate_buckets = calloc(cfg->app_count, sizeof *api->rate_buckets);
    if (!api->http || !api->drained_event || !api->rate_buckets) {
        if (api->http)
            evhttp_free(api->http);
        if (api->drained_event)
            event_free(api->drained_event);
        free(api->rate_buckets);
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
    if (http_connections_start(api, err, err_len) != 0)
        return -1;

    api->listener = evhttp_bind_socket_with_handle(api->http, host, (ev_uint16_t)port);
    if (!api->listener) {
        snprintf(err, err_len, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        return -1;
    }
    if (http_listener_watch(api) != 0) {
        snprintf(err, err_len, "cannot watch the listener on %s:%d: out of memory or too many servers", host, port);
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

bool http_api_uses_tls(const struct http_api *api)
{
    return http_connections_tls(api);
}

size_t http_api_in_flight(const struct http_api *api)
{
    return api->in_flight;
}

void http_api_drain(struct http_api *api, void (*drained)(void *arg), void *arg)
{
    http_listener_stop(api);
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
    http_listener_stop(api);
    event_free(api->drained_event);
    api->drained_event = NULL;
    evhttp_free(api->http);
    http_connections_free(api);

    /* An exchange still waiting for Redis points at `api` and runs when its
     * last reply arrives, so `api` is left allocated rather than freed
     * under it. Closing the publisher first avoids this. */
    if (api->in_flight > 0) {
        log_error("http: server freed with %zu requests waiting for Redis", api->in_flight);
        return;
    }
    free(api->rate_buckets);
    free(api);
}
