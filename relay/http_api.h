/* The Pusher HTTP API served by herald-relay (libevent evhttp).
 *
 * Implemented: POST /apps/{app_id}/events and /batch_events, GET
 * /apps/{app_id}/channels, /channels/{channel_name} and
 * /channels/{channel_name}/users, POST
 * /apps/{app_id}/users/{user_id}/terminate_connections, and GET /up, /ready
 * and /metrics. A trigger gets 200 only after Redis acknowledged every
 * PUBLISH it caused. All callbacks run on the event loop given to
 * http_api_create. */
#ifndef HERALD_RELAY_HTTP_API_H
#define HERALD_RELAY_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "publisher.h"

struct event_base;
struct http_api;

/* Creates the server; `cfg` and `publisher` must outlive it. Returns NULL
 * when libevent fails to allocate. */
struct http_api *http_api_create(struct event_base *base, const struct herald_config *cfg,
                                 struct publisher *publisher);

/* Binds `host`:`port` (port 0 picks a free one). Returns 0 and writes the
 * bound address as "host:port" into `bound`, or -1 with the reason in
 * `err`. */
int http_api_listen(struct http_api *api, const char *host, int port, char *bound,
                    size_t bound_len, char *err, size_t err_len);

/* True when the server speaks HTTPS (relay_tls_cert_file is set). */
bool http_api_uses_tls(const struct http_api *api);

/* Requests received whose response is not yet written, counting those
 * waiting for Redis. */
size_t http_api_in_flight(const struct http_api *api);

/* Stops accepting connections and marks every later response
 * "Connection: close". `drained` is called once from the event loop, never
 * from inside this call, as soon as no request is in flight.
 * Limit: a request whose body is still arriving is not counted, so it is
 * cut off when the caller then frees the server. */
void http_api_drain(struct http_api *api, void (*drained)(void *arg), void *arg);

/* Closes every connection, idle keep-alive ones included, and drops any
 * response still being written. Call it after the drained callback or after
 * publisher_close has completed every PUBLISH. */
void http_api_free(struct http_api *api);

struct strbuf;

/* Appends another part of the relay's metrics to `out`. */
typedef void http_metrics_writer_fn(struct strbuf *out, void *arg);

#define HTTP_API_METRICS_WRITERS_MAX 4

/* Makes every GET /metrics response end with what `write` appends; `arg`
 * must outlive the server. Returns 0, or -1 when
 * HTTP_API_METRICS_WRITERS_MAX writers are registered already. */
int http_api_add_metrics(struct http_api *api, http_metrics_writer_fn *write, void *arg);

#endif
