/* Internals shared by the files of the relay's HTTP server: the server
 * itself, one exchange per request, and the handler of each endpoint.
 *
 *   http_api.c       server, routing, request signatures, responses, drain
 *   http_trigger.c   POST events, batch_events, terminate_connections
 *   http_channels.c  GET channels, channels/{name}, channels/{name}/users
 *   http_ops.c       GET /up, /ready, /metrics
 *
 * Everything runs on the event loop given to http_api_create. */
#ifndef HERALD_RELAY_HTTP_INTERNAL_H
#define HERALD_RELAY_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hashmap.h"
#include "http_api.h"
#include "http_rate.h"
#include "metrics.h"
#include "publisher.h"
#include "signature.h"

struct evhttp;
struct evhttp_bound_socket;
struct http_connection;
struct ssl_ctx_st;
struct evhttp_connection;
struct evhttp_request;
struct event;
struct event_base;
struct http_trigger;

enum http_endpoint {
    HTTP_ENDPOINT_EVENTS,
    HTTP_ENDPOINT_BATCH_EVENTS,
    HTTP_ENDPOINT_CHANNELS,
    HTTP_ENDPOINT_CHANNEL,
    HTTP_ENDPOINT_CHANNEL_USERS,
    HTTP_ENDPOINT_TERMINATE_CONNECTIONS,
    HTTP_ENDPOINT_UP,
    HTTP_ENDPOINT_READY,
    HTTP_ENDPOINT_METRICS,
    HTTP_ENDPOINT_UNKNOWN, /* no endpoint matched the path */
    HTTP_ENDPOINT_COUNT,
};

/* Status classes counted per endpoint: 2xx, 4xx and 5xx. The relay sends
 * no other status. */
enum http_status_class {
    HTTP_STATUS_CLASS_2XX,
    HTTP_STATUS_CLASS_4XX,
    HTTP_STATUS_CLASS_5XX,
    HTTP_STATUS_CLASS_COUNT,
};

/* Counters rendered by GET /metrics. */
struct http_metrics {
    uint64_t requests[HTTP_ENDPOINT_COUNT][HTTP_STATUS_CLASS_COUNT];
    uint64_t events_published; /* event frames Redis acknowledged */
    /* PUBLISH commands of triggers and terminations that did not succeed:
     * not sent because Redis was not connected, lost with the connection,
     * or rejected by Redis with an error reply. */
    uint64_t publish_unavailable;
    uint64_t publish_lost;
    uint64_t publish_rejected;
    /* SET commands that stored the last event of a cache channel, and
     * those that failed (lost with the connection or rejected). */
    uint64_t cache_stored;
    uint64_t cache_store_failures;
    struct metrics_histogram request_duration; /* seconds from dispatch to response */
    uint64_t request_timeouts; /* connections closed at relay_request_timeout */
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

    struct http_metrics metrics;

    /* Connections (http_connection.c), also found by their bufferevent. */
    struct http_connection *connections;
    struct hashmap connection_map;
    struct ssl_ctx_st *tls; /* SSL_CTX when relay_tls_cert_file is set, else NULL */

    /* One bucket per app, in the order of cfg->apps. */
    struct http_rate_bucket *rate_buckets;

    /* Failed accept() calls (http_listener.c). */
    struct {
        struct event *resume; /* re-enables the listener after a pause */
        uint64_t failures;    /* since the start, for /metrics */
        uint64_t unlogged;    /* since the last log line */
        uint64_t logged_ns;   /* CLOCK_MONOTONIC of the last log line; 0 before */
    } accept;

    /* Other subsystems' metrics, appended to GET /metrics. */
    struct {
        http_metrics_writer_fn *write;
        void *arg;
    } metrics_writers[HTTP_API_METRICS_WRITERS_MAX];
    size_t metrics_writer_count;
};

/* One request from its dispatch to us until its response is written out
 * or its connection is gone. An exchange waiting for Redis replies lives
 * until the last one arrives, even when the client has gone away first. */
struct http_exchange {
    struct http_api *api;
    struct evhttp_request *req; /* NULL once the connection is gone */
    struct evhttp_connection *conn;
    /* The tracked connection, or NULL when it could not be tracked or is
     * gone (then `conn` is NULL too). */
    struct http_connection *connection;
    const char *method;
    char *path; /* as received, still percent-encoded */
    enum http_endpoint endpoint;
    uint64_t started_ns; /* CLOCK_MONOTONIC */
    bool replied;        /* the response is queued for writing */
    bool close_connection; /* respond with "Connection: close" */

    /* Known once the request is routed and signed; NULL and 0 before. */
    const struct app_config *app;
    char *channel; /* percent-decoded {channel_name} of the path */
    size_t channel_len;
    char *user_id; /* percent-decoded {user_id} of the path */
    size_t user_id_len;
    struct query_param *params; /* decoded query, keys lowercased */
    int param_count;

    size_t replies_pending; /* Redis replies this exchange waits for */
    bool submitting;        /* still inside the loop that queues commands */

    struct http_trigger *trigger; /* state of a trigger or termination */
};

/* ---- http_api.c ------------------------------------------------------- */

/* Sends `body` with `status`: JSON for 200, plain text otherwise, as Pusher
 * sends its errors. Records the metrics and logs the request at debug
 * level. The exchange ends once the response is written or the connection
 * closes, so the caller must not touch it afterwards. */
void http_exchange_reply(struct http_exchange *exchange, int status, const char *body);

/* Like http_exchange_reply, with an explicit content type and length. */
void http_exchange_send(struct http_exchange *exchange, int status, const char *content_type,
                        const char *body, size_t body_len);

/* Sends what a Redis reply that is NULL (503) or an error (500) calls for
 * and returns true, or returns false for any other reply. */
bool http_exchange_reply_redis_failure(struct http_exchange *exchange,
                                       const struct redisReply *reply, const char *what);

/* Value of query parameter `key` (lowercase), or NULL. */
const char *http_exchange_param(const struct http_exchange *exchange, const char *key);

/* Label of `endpoint` in metrics and logs, such as "batch_events". */
const char *http_endpoint_name(enum http_endpoint endpoint);

/* Called when the connection of a request closes: ends the exchange, or
 * leaves it to end with its last Redis reply. */
void http_exchange_on_close(struct evhttp_connection *conn, void *exchange);

/* ---- http_connection.c ------------------------------------------------ */

/* Loads the TLS certificate when configured and makes evhttp create every
 * connection through http_connection.c. Returns 0, or -1 with the reason
 * in `err`. */
int http_connections_start(struct http_api *api, char *err, size_t err_len);

/* Marks the request's connection busy, which stops its request deadline.
 * Returns the connection, or NULL when it is not tracked. */
struct http_connection *http_connection_begin_exchange(struct http_api *api,
                                                       struct http_exchange *exchange);

/* Marks the connection idle again once its exchange has ended. */
void http_connection_end_exchange(struct http_connection *conn);

/* True when the relay serves HTTPS. */
bool http_connections_tls(const struct http_api *api);

/* Frees what evhttp_free left: connections not yet attached and the TLS
 * context. Call it after evhttp_free. */
void http_connections_free(struct http_api *api);

/* ---- http_listener.c -------------------------------------------------- */

/* Makes a failed accept() on api->listener pause the listener briefly and
 * log at most once per interval, instead of libevent's warning per call.
 * Returns 0, or -1 when the pause timer cannot be allocated or every slot
 * of http_listener.c's small server table is in use. */
int http_listener_watch(struct http_api *api);

/* Stops watching; call it before the listener or the server is freed. */
void http_listener_stop(struct http_api *api);

/* ---- endpoint handlers -------------------------------------------------- */

/* Each handler runs after the route, method, app, signature and enabled
 * checks passed, and replies exactly once, now or after Redis replies. */
void http_trigger_handle_events(struct http_exchange *exchange);
void http_trigger_handle_terminate(struct http_exchange *exchange);
void http_trigger_free(struct http_trigger *trigger);

void http_channels_handle(struct http_exchange *exchange);

/* Serves /up, /ready and /metrics; these need no app and no signature. */
void http_ops_handle(struct http_exchange *exchange);

#endif
