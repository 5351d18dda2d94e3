/* The HTTP client that POSTs webhook bodies, on libevent's evhttp.
 *
 * Each POST opens its own connection ("Connection: close"), so POSTs to one
 * endpoint never wait for each other. https:// URLs use OpenSSL through
 * bufferevent_openssl: the server's certificate must chain to the system's
 * trusted roots (SSL_CERT_FILE and SSL_CERT_DIR select others) and match
 * the URL's host name or IP address. Host names are resolved with evdns,
 * which reads /etc/resolv.conf and /etc/hosts, so a slow DNS server never
 * stalls the event loop. All callbacks run on the client's event loop. */
#ifndef HERALD_RELAY_WEBHOOK_HTTP_H
#define HERALD_RELAY_WEBHOOK_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct webhook_client;
struct webhook_post;

/* One endpoint's URL, split for connecting and for the request line. */
struct webhook_endpoint {
    const struct webhook_config *config;
    char *display_url;    /* scheme://host[:port]/path, without user info or query */
    bool https;
    char *host;           /* name or IP address, IPv6 without brackets */
    int port;
    char *host_header;    /* value of the Host header */
    char *request_target; /* path and query of the request line */
};

/* Splits `config->url`. Returns 0, or -1 with the reason in `err` (the
 * message never contains the URL's query or user info, which may carry
 * tokens). Logs a warning for each configured header that the relay sets
 * itself and therefore ignores. */
int webhook_endpoint_init(struct webhook_endpoint *endpoint, const struct webhook_config *config,
                          char *err, size_t err_len);
void webhook_endpoint_clear(struct webhook_endpoint *endpoint);

/* Outcome of one POST. `error` is NULL exactly when the endpoint responded
 * with a 2xx status. Otherwise it describes the failure for logs, such as
 * "HTTP 500 Internal Server Error: <start of the body>" or "timed out after
 * 5 s". */
struct webhook_post_result {
    int status; /* HTTP status, 0 when no response arrived */
    const char *error;
};

typedef void webhook_post_done_fn(void *arg, const struct webhook_post_result *result);

/* Creates the client. Returns NULL with the reason in `err` when libevent
 * or OpenSSL cannot be set up. */
struct webhook_client *webhook_client_create(struct event_base *base, char *err, size_t err_len);

/* Cancels every POST still running, without calling their callbacks, and
 * frees the client. Must not be called from a webhook_post_done_fn. */
void webhook_client_free(struct webhook_client *client);

/* Starts POST `body` to `endpoint` with Content-Type application/json,
 * X-Pusher-Key `app_key`, X-Pusher-Signature `signature` and the endpoint's
 * configured headers, and gives up after `timeout_seconds`. `body` is
 * copied. Returns the POST, whose `done` is then called exactly once from
 * the event loop unless it is cancelled first, or NULL with the reason in
 * `err`. */
struct webhook_post *webhook_post_start(struct webhook_client *client,
                                        const struct webhook_endpoint *endpoint,
                                        const char *app_key, const char *signature,
                                        const char *body, size_t body_len, int timeout_seconds,
                                        webhook_post_done_fn *done, void *arg, char *err,
                                        size_t err_len);

/* Aborts a POST whose `done` has not been called yet; `done` never runs. */
void webhook_post_cancel(struct webhook_post *post);

#endif
