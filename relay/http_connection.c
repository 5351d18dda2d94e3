/* The relay's HTTP connections: HTTPS, and the time a client has to send
 * a whole request.
 *
 * evhttp's own timeout (evhttp_set_timeout) restarts with every read, so a
 * client that sends one byte a second keeps a connection, and its file
 * descriptor, for as long as it likes (slowloris). The relay therefore
 * tracks each connection and gives each request relay_request_timeout
 * seconds from its first byte to its last. The first request's time starts
 * at accept(), so it also covers the TLS handshake. A connection idle
 * between two requests is left to evhttp's idle timeout.
 *
 * evhttp creates each connection's bufferevent through our callback, but
 * hands back its evhttp_connection only with a request. A connection is
 * therefore attached in two steps: the bufferevent when it is created, and
 * the evhttp_connection from the event loop right after accept(), or with
 * its first request if that comes first. */
#include <errno.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_internal.h"
#include "log.h"

struct http_connection {
    struct http_api *api;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until attached */
    /* Fires at once to attach the connection, then at the deadline of the
     * request being received. */
    struct event *timer;
    struct evbuffer_cb_entry *input_watch; /* notices the first byte of a request */
    struct http_exchange *exchange;        /* request being handled, or NULL */
    bool closing;
    struct http_connection *prev, *next; /* in api->connections */
};

/* ------------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------------ */

static void http_connection_free(struct http_connection *conn)
{
    struct http_api *api = conn->api;
    hashmap_remove(&api->connection_map, (const char *)&conn->bev, sizeof conn->bev);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        api->connections = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;

    if (conn->input_watch)
        evbuffer_remove_cb_entry(bufferevent_get_input(conn->bev), conn->input_watch);
    event_free(conn->timer);
    free(conn);
}

/* Called by evhttp just before it frees the connection. */
static void http_connection_on_close(struct evhttp_connection *evcon, void *arg)
{
    struct http_connection *conn = arg;
    conn->closing = true;
    if (conn->exchange)
        http_exchange_on_close(evcon, conn->exchange);
    http_connection_free(conn);
}

static void http_connection_start_deadline(struct http_connection *conn)
{
    struct timeval deadline = { conn->api->cfg->relay_request_timeout, 0 };
    evtimer_add(conn->timer, &deadline);
}

/* Takes over the connection's close callback. The bufferevent reference
 * taken at accept() is dropped, because evhttp's own now keeps it alive. */
static void http_connection_attach(struct http_connection *conn,
                                   struct evhttp_connection *evcon)
{
    conn->evcon = evcon;
    evhttp_connection_set_closecb(evcon, http_connection_on_close, conn);
    evtimer_del(conn->timer);
    bufferevent_decref(conn->bev);
}

/* ------------------------------------------------------------------------
 * Request deadline
 * ------------------------------------------------------------------------ */

static void http_connection_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_connection *conn = arg;

    if (!conn->evcon) {
        /* NOTE: this relies on evhttp (libevent 2.1) passing its
         * evhttp_connection as the bufferevent's callback argument, and on
         * bufferevent_free clearing the callbacks, which leaves NULL when
         * evhttp has already closed the connection. */
        void *evcon = NULL;
        bufferevent_getcb(conn->bev, NULL, NULL, NULL, &evcon);
        if (!evcon) {
            struct bufferevent *bev = conn->bev;
            http_connection_free(conn);
            bufferevent_decref(bev);
            return;
        }
        http_connection_attach(conn, evcon);
        http_connection_start_deadline(conn);
        return;
    }

    if (conn->exchange)
        return;

    conn->api->metrics.request_timeouts++;
    log_debug("http: closing a connection: no complete request within %d s",
              conn->api->cfg->relay_request_timeout);
    /* Runs http_connection_on_close, which frees `conn`. */
    evhttp_connection_free(conn->evcon);
}

static void http_connection_on_input(struct evbuffer *input, const struct evbuffer_cb_info *info,
                                     void *arg)
{
    (void)input;
    struct http_connection *conn = arg;
    if (info->n_added == 0 || !conn->evcon || conn->exchange || conn->closing)
        return;
    if (!evtimer_pending(conn->timer, NULL))
        http_connection_start_deadline(conn);
}

/* ------------------------------------------------------------------------
 * Accepting connections
 * ------------------------------------------------------------------------ */

/* evhttp's bufferevent callback: creates the bufferevent of a connection
 * that accept() returned, with TLS when configured. evhttp sets its file
 * descriptor afterwards. */
static struct bufferevent *http_connection_on_accept(struct event_base *base, void *arg)
{
    struct http_api *api = arg;
    struct bufferevent *bev = NULL;

    if (api->tls) {
        SSL *ssl = SSL_new(api->tls);
        if (ssl)
            bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            /* NOTE: evhttp then creates a plain bufferevent itself, so under
             * memory exhaustion a connection may be served without TLS. */
            SSL_free(ssl);
            log_error("http: cannot create a TLS connection: out of memory");
            return NULL;
        }
        /* Clients such as Node.js close without a TLS close_notify. */
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
            return NULL;
    }

    struct http_connection *conn = calloc(1, sizeof *conn);
    if (conn)
        conn->timer = evtimer_new(base, http_connection_on_timer, conn);
    if (!conn || !conn->timer) {
        /* Served without a request deadline. */
        free(conn);
        return bev;
    }
    conn->api = api;
    conn->bev = bev;
    conn->input_watch = evbuffer_add_cb(bufferevent_get_input(bev), http_connection_on_input,
                                        conn);
    hashmap_put(&api->connection_map, (const char *)&conn->bev, sizeof conn->bev, conn);
    conn->next = api->connections;
    if (api->connections)
        api->connections->prev = conn;
    api->connections = conn;

    /* Keeps the bufferevent allocated until the attach step has run, even
     * when the client is gone before it. */
    bufferevent_incref(bev);
    event_active(conn->timer, EV_TIMEOUT, 0);
    return bev;
}

/* ------------------------------------------------------------------------
 * TLS
 * ------------------------------------------------------------------------ */

/* Writes the oldest OpenSSL error of this thread into `out`. */
static void http_connection_tls_error(char *out, size_t out_len)
{
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, out, out_len);
    else
        snprintf(out, out_len, "%s", strerror(errno));
    ERR_clear_error();
}

static int http_connection_load_tls(struct http_api *api, char *err, size_t err_len)
{
    const char *cert = api->cfg->relay_tls_cert_file;
    const char *key = api->cfg->relay_tls_key_file;
    char reason[256];

    api->tls = SSL_CTX_new(TLS_server_method());
    if (!api->tls) {
        http_connection_tls_error(reason, sizeof reason);
        snprintf(err, err_len, "cannot create the TLS context: %s", reason);
        return -1;
    }
    SSL_CTX_set_min_proto_version(api->tls, TLS1_2_VERSION);

    if (SSL_CTX_use_certificate_chain_file(api->tls, cert) != 1) {
        http_connection_tls_error(reason, sizeof reason);
        snprintf(err, err_len, "relay_tls_cert_file %s: cannot load the certificate chain: %s",
                 cert, reason);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(api->tls, key, SSL_FILETYPE_PEM) != 1) {
        http_connection_tls_error(reason, sizeof reason);
        snprintf(err, err_len, "relay_tls_key_file %s: cannot load the private key: %s", key,
                 reason);
        return -1;
    }
    if (SSL_CTX_check_private_key(api->tls) != 1) {
        http_connection_tls_error(reason, sizeof reason);
        snprintf(err, err_len,
                 "relay_tls_key_file %s does not match the certificate in "
                 "relay_tls_cert_file %s: %s",
                 key, cert, reason);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Interface for http_api.c
 * ------------------------------------------------------------------------ */

int http_connections_start(struct http_api *api, char *err, size_t err_len)
{
    const char *cert = api->cfg->relay_tls_cert_file;
    if (cert && cert[0] && !api->tls && http_connection_load_tls(api, err, err_len) != 0)
        return -1;
    evhttp_set_bevcb(api->http, http_connection_on_accept, api);
    return 0;
}

struct http_connection *http_connection_begin_exchange(struct http_api *api,
                                                       struct http_exchange *exchange)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(exchange->req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    struct http_connection *conn =
        bev ? hashmap_get(&api->connection_map, (const char *)&bev, sizeof bev) : NULL;
    if (!conn)
        return NULL;

    if (!conn->evcon)
        http_connection_attach(conn, evcon);
    evtimer_del(conn->timer);
    conn->exchange = exchange;
    return conn;
}

void http_connection_end_exchange(struct http_connection *conn)
{
    conn->exchange = NULL;
    /* A pipelined request may already be waiting in the input buffer. */
    if (!conn->closing && evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
        http_connection_start_deadline(conn);
}

bool http_connections_tls(const struct http_api *api)
{
    return api->tls != NULL;
}

void http_connections_free(struct http_api *api)
{
    /* evhttp_free has closed every attached connection; what is left waits
     * for its attach step and holds the last bufferevent reference. */
    while (api->connections) {
        struct http_connection *conn = api->connections;
        struct bufferevent *bev = conn->bev;
        bool attached = conn->evcon != NULL;
        http_connection_free(conn);
        if (!attached)
            bufferevent_decref(bev);
    }
    hashmap_free(&api->connection_map);
    if (api->tls) {
        SSL_CTX_free(api->tls);
        api->tls = NULL;
    }
}
