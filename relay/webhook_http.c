#include "webhook_http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "strbuf.h"

#define WEBHOOK_USER_AGENT "herald-relay"
/* Bytes of a failed response's body quoted in the error, enough for a
 * framework's one-line error message. */
#define WEBHOOK_EXCERPT_MAX 120

/* Headers the relay sets itself; a configured header of the same name is
 * ignored rather than sent twice. */
static const char *const reserved_headers[] = {
    "Host", "Content-Type", "Content-Length", "Transfer-Encoding", "Connection",
    "X-Pusher-Key", "X-Pusher-Signature",
};

struct webhook_client {
    struct event_base *base;
    struct evdns_base *dns; /* NULL when evdns failed to start; evhttp then blocks to resolve */
    SSL_CTX *tls;           /* created with the first https:// POST */
    struct webhook_post *posts; /* running, or finished and waiting to report */
};

struct webhook_post {
    struct webhook_client *client;
    struct webhook_post *prev;
    struct webhook_post *next;

    struct evhttp_connection *connection;
    SSL *tls; /* owned by the connection's bufferevent; NULL for http:// */
    struct event *deadline;
    struct event *report; /* calls `done` and frees the POST, outside evhttp's callbacks */
    int timeout_seconds;
    const char *host; /* the endpoint's, for messages */
    int port;

    webhook_post_done_fn *done;
    void *arg;
    bool finished; /* the outcome below is known */
    int status;
    char error[256]; /* empty after a 2xx response */

    bool has_error_kind;
    enum evhttp_request_error error_kind;
    char excerpt[WEBHOOK_EXCERPT_MAX + 1]; /* start of the response body */
    size_t excerpt_len;
};

/* ------------------------------------------------------------------------
 * Endpoints
 * ------------------------------------------------------------------------ */

static bool header_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_headers / sizeof reserved_headers[0]; i++) {
        if (strcasecmp(name, reserved_headers[i]) == 0)
            return true;
    }
    return false;
}

static char *copy_string(const char *text)
{
    char *copy = strdup(text);
    if (!copy) {
        fprintf(stderr, "herald-relay: out of memory\n");
        abort();
    }
    return copy;
}

int webhook_endpoint_init(struct webhook_endpoint *endpoint, const struct webhook_config *config,
                          char *err, size_t err_len)
{
    memset(endpoint, 0, sizeof *endpoint);
    endpoint->config = config;

    struct evhttp_uri *uri = evhttp_uri_parse(config->url);
    const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
    const char *host = uri ? evhttp_uri_get_host(uri) : NULL;
    if (!uri || !scheme || !host || host[0] == '\0') {
        snprintf(err, err_len, "invalid URL: expected http://host[:port]/path or https://...");
        if (uri)
            evhttp_uri_free(uri);
        return -1;
    }
    if (strcasecmp(scheme, "http") == 0) {
        endpoint->https = false;
    } else if (strcasecmp(scheme, "https") == 0) {
        endpoint->https = true;
    } else {
        snprintf(err, err_len, "unsupported URL scheme \"%.16s\": use http or https", scheme);
        evhttp_uri_free(uri);
        return -1;
    }

    int default_port = endpoint->https ? 443 : 80;
    int port = evhttp_uri_get_port(uri);
    endpoint->port = port > 0 ? port : default_port;

    /* evhttp keeps the brackets of an IPv6 literal in the host. */
    size_t host_len = strlen(host);
    bool bracketed = host_len > 2 && host[0] == '[' && host[host_len - 1] == ']';
    endpoint->host = copy_string(bracketed ? host + 1 : host);
    if (bracketed)
        endpoint->host[host_len - 2] = '\0';

    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    if (!path || path[0] == '\0')
        path = "/";

    struct strbuf text;
    strbuf_init(&text);
    strbuf_append_str(&text, host);
    if (port > 0 && port != default_port)
        strbuf_appendf(&text, ":%d", port);
    endpoint->host_header = copy_string(text.data);

    strbuf_reset(&text);
    strbuf_appendf(&text, "%s://%s%s", endpoint->https ? "https" : "http",
                   endpoint->host_header, path);
    endpoint->display_url = copy_string(text.data);

    strbuf_reset(&text);
    strbuf_append_str(&text, path);
    if (query)
        strbuf_appendf(&text, "?%s", query);
    endpoint->request_target = copy_string(text.data);
    strbuf_free(&text);
    evhttp_uri_free(uri);

    for (size_t i = 0; i < config->header_count; i++) {
        if (header_reserved(config->headers[i].name))
            log_warn("webhook: url=%s: ignoring the configured header %s, because the relay "
                     "sets it itself",
                     endpoint->display_url, config->headers[i].name);
    }
    return 0;
}

void webhook_endpoint_clear(struct webhook_endpoint *endpoint)
{
    free(endpoint->display_url);
    free(endpoint->host);
    free(endpoint->host_header);
    free(endpoint->request_target);
    memset(endpoint, 0, sizeof *endpoint);
}

/* ------------------------------------------------------------------------
 * Client
 * ------------------------------------------------------------------------ */

struct webhook_client *webhook_client_create(struct event_base *base, char *err, size_t err_len)
{
    struct webhook_client *client = calloc(1, sizeof *client);
    if (!client) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    client->base = base;

    /* Without evdns, evhttp resolves host names with blocking lookups, so a
     * failure here costs only non-blocking resolution. */
    client->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (!client->dns)
        log_warn("webhook: cannot start the asynchronous DNS resolver; host names in webhook "
                 "URLs are resolved with blocking lookups");
    return client;
}

static void post_free(struct webhook_post *post)
{
    struct webhook_client *client = post->client;
    if (post->prev)
        post->prev->next = post->next;
    else
        client->posts = post->next;
    if (post->next)
        post->next->prev = post->prev;

    /* Freeing the connection also frees a request still in progress,
     * without calling its callbacks. */
    if (post->connection)
        evhttp_connection_free(post->connection);
    if (post->deadline)
        event_free(post->deadline);
    if (post->report)
        event_free(post->report);
    free(post);
}

void webhook_client_free(struct webhook_client *client)
{
    if (!client)
        return;
    while (client->posts)
        post_free(client->posts);
    if (client->dns)
        evdns_base_free(client->dns, 1);
    if (client->tls)
        SSL_CTX_free(client->tls);
    free(client);
}

void webhook_post_cancel(struct webhook_post *post)
{
    if (post)
        post_free(post);
}

/* ------------------------------------------------------------------------
 * Outcome of one POST
 * ------------------------------------------------------------------------ */

/* Records the outcome. `done` runs from the report event, never from
 * inside evhttp, because evhttp may call back before webhook_post_start
 * returns, and it still uses the connection after its callback returns. */
static void post_finish(struct webhook_post *post, int status)
{
    post->finished = true;
    post->status = status;
    evtimer_del(post->deadline);
    event_active(post->report, EV_TIMEOUT, 0);
}

static void post_on_report(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct webhook_post *post = arg;
    struct webhook_post_result result = {
        .status = post->status,
        .error = post->error[0] ? post->error : NULL,
    };
    post->done(post->arg, &result);
    post_free(post);
}

/* Describes why no response arrived, from what evhttp and OpenSSL report. */
static void describe_failure(const struct webhook_post *post, char *out, size_t out_len)
{
    if (post->tls) {
        long verify = SSL_get_verify_result(post->tls);
        if (verify != X509_V_OK) {
            snprintf(out, out_len, "TLS certificate verification failed: %s",
                     X509_verify_cert_error_string(verify));
            return;
        }
        unsigned long tls_error =
            post->connection ? bufferevent_get_openssl_error(
                                   evhttp_connection_get_bufferevent(post->connection))
                             : 0;
        if (tls_error != 0) {
            char reason[160];
            ERR_error_string_n(tls_error, reason, sizeof reason);
            snprintf(out, out_len, "TLS failed: %s", reason);
            return;
        }
    }

    if (post->has_error_kind) {
        switch (post->error_kind) {
        case EVREQ_HTTP_TIMEOUT:
            snprintf(out, out_len, "timed out after %d s", post->timeout_seconds);
            return;
        case EVREQ_HTTP_EOF:
            snprintf(out, out_len, "connection closed before a complete response");
            return;
        case EVREQ_HTTP_INVALID_HEADER:
            snprintf(out, out_len, "invalid HTTP response");
            return;
        case EVREQ_HTTP_DATA_TOO_LONG:
            snprintf(out, out_len, "response too long");
            return;
        default:
            break;
        }
    }

    /* evhttp reports a failed connect without an error kind, and by then
     * errno no longer contains the connect error. */
    snprintf(out, out_len, "cannot connect to %s port %d", post->host, post->port);
}

static void post_on_error(enum evhttp_request_error kind, void *arg)
{
    struct webhook_post *post = arg;
    post->has_error_kind = true;
    post->error_kind = kind;
}

/* Keeps the start of the response body for the error message and lets
 * evhttp discard the rest, so a large response costs no memory. */
static void post_on_chunk(struct evhttp_request *request, void *arg)
{
    struct webhook_post *post = arg;
    struct evbuffer *input = evhttp_request_get_input_buffer(request);
    size_t room = WEBHOOK_EXCERPT_MAX - post->excerpt_len;
    if (room > 0) {
        ev_ssize_t copied = evbuffer_copyout(input, post->excerpt + post->excerpt_len, room);
        if (copied > 0)
            post->excerpt_len += (size_t)copied;
    }
}

/* Appends the excerpt to `out` as one printable line. */
static void append_excerpt(char *out, size_t out_len, const struct webhook_post *post)
{
    size_t used = strlen(out);
    if (post->excerpt_len == 0 || used + 3 >= out_len)
        return;
    out[used++] = ':';
    out[used++] = ' ';
    for (size_t i = 0; i < post->excerpt_len && used + 1 < out_len; i++) {
        unsigned char c = (unsigned char)post->excerpt[i];
        if (c == '\r' || c == '\n')
            break;
        out[used++] = isprint(c) ? (char)c : '?';
    }
    out[used] = '\0';
}

static void post_on_response(struct evhttp_request *request, void *arg)
{
    struct webhook_post *post = arg;
    if (post->finished)
        return;

    int status = request ? evhttp_request_get_response_code(request) : 0;
    if (status >= 200 && status <= 299) {
        post->error[0] = '\0';
    } else if (status > 0) {
        const char *reason = evhttp_request_get_response_code_line(request);
        snprintf(post->error, sizeof post->error, "HTTP %d%s%s", status,
                 reason && reason[0] ? " " : "", reason ? reason : "");
        append_excerpt(post->error, sizeof post->error, post);
    } else {
        describe_failure(post, post->error, sizeof post->error);
    }
    post_finish(post, status);
}

static void post_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct webhook_post *post = arg;

    /* Outside evhttp's callbacks the connection and its request can be
     * freed right away, and no evhttp callback follows. */
    evhttp_connection_free(post->connection);
    post->connection = NULL;
    post->tls = NULL;

    snprintf(post->error, sizeof post->error, "timed out after %d s", post->timeout_seconds);
    post_finish(post, 0);
}

/* ------------------------------------------------------------------------
 * Starting a POST
 * ------------------------------------------------------------------------ */

static bool host_is_ip_address(const char *host)
{
    unsigned char address[16];
    return inet_pton(AF_INET, host, address) == 1 || inet_pton(AF_INET6, host, address) == 1;
}

static int client_prepare_tls(struct webhook_client *client, char *err, size_t err_len)
{
    if (client->tls)
        return 0;

    SSL_CTX *tls = SSL_CTX_new(TLS_client_method());
    if (!tls) {
        snprintf(err, err_len, "cannot create the TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
    SSL_CTX_set_verify(tls, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(tls) != 1)
        log_warn("webhook: cannot load the system's trusted certificates; https:// webhook "
                 "URLs will fail certificate verification");
    client->tls = tls;
    return 0;
}

/* Creates the TLS bufferevent of an https:// POST, checking the server's
 * certificate against the URL's host. */
static struct bufferevent *post_create_tls(struct webhook_post *post,
                                           const struct webhook_endpoint *endpoint, char *err,
                                           size_t err_len)
{
    struct webhook_client *client = post->client;
    if (client_prepare_tls(client, err, err_len) != 0)
        return NULL;

    SSL *tls = SSL_new(client->tls);
    if (!tls) {
        snprintf(err, err_len, "cannot create a TLS session");
        return NULL;
    }
    int checked;
    if (host_is_ip_address(endpoint->host)) {
        checked = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(tls), endpoint->host);
    } else {
        checked = SSL_set_tlsext_host_name(tls, endpoint->host) == 1 &&
                  SSL_set1_host(tls, endpoint->host) == 1;
    }
    if (!checked) {
        SSL_free(tls);
        snprintf(err, err_len, "cannot set the TLS host name");
        return NULL;
    }

    struct bufferevent *tls_event = bufferevent_openssl_socket_new(
        client->base, -1, tls, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!tls_event) {
        SSL_free(tls);
        snprintf(err, err_len, "cannot create the TLS connection");
        return NULL;
    }
    /* Many servers close without a TLS close_notify after the response. */
    bufferevent_openssl_set_allow_dirty_shutdown(tls_event, 1);
    post->tls = tls;
    return tls_event;
}

static int add_request_headers(struct evhttp_request *request,
                               const struct webhook_endpoint *endpoint, const char *app_key,
                               const char *signature)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request);
    int failed = 0;
    failed |= evhttp_add_header(headers, "Host", endpoint->host_header);
    failed |= evhttp_add_header(headers, "Content-Type", "application/json");
    failed |= evhttp_add_header(headers, "User-Agent", WEBHOOK_USER_AGENT);
    failed |= evhttp_add_header(headers, "Connection", "close");
    failed |= evhttp_add_header(headers, "X-Pusher-Key", app_key);
    failed |= evhttp_add_header(headers, "X-Pusher-Signature", signature);

    const struct webhook_config *config = endpoint->config;
    for (size_t i = 0; i < config->header_count; i++) {
        if (!header_reserved(config->headers[i].name))
            failed |= evhttp_add_header(headers, config->headers[i].name,
                                        config->headers[i].value);
    }
    return failed ? -1 : 0;
}

struct webhook_post *webhook_post_start(struct webhook_client *client,
                                        const struct webhook_endpoint *endpoint,
                                        const char *app_key, const char *signature,
                                        const char *body, size_t body_len, int timeout_seconds,
                                        webhook_post_done_fn *done, void *arg, char *err,
                                        size_t err_len)
{
    struct webhook_post *post = calloc(1, sizeof *post);
    if (!post) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    post->client = client;
    post->done = done;
    post->arg = arg;
    post->timeout_seconds = timeout_seconds;
    post->host = endpoint->host;
    post->port = endpoint->port;
    post->next = client->posts;
    if (client->posts)
        client->posts->prev = post;
    client->posts = post;

    post->deadline = evtimer_new(client->base, post_on_deadline, post);
    post->report = evtimer_new(client->base, post_on_report, post);
    if (!post->deadline || !post->report) {
        snprintf(err, err_len, "out of memory");
        post_free(post);
        return NULL;
    }

    struct bufferevent *tls_event = NULL;
    if (endpoint->https) {
        tls_event = post_create_tls(post, endpoint, err, err_len);
        if (!tls_event) {
            post_free(post);
            return NULL;
        }
    }

    /* The connection owns the bufferevent once it exists. It fails only
     * before taking the bufferevent over (libevent 2.1). */
    post->connection = evhttp_connection_base_bufferevent_new(
        client->base, client->dns, tls_event, endpoint->host, (unsigned short)endpoint->port);
    if (!post->connection) {
        snprintf(err, err_len, "cannot create the HTTP connection");
        if (tls_event)
            bufferevent_free(tls_event);
        post->tls = NULL;
        post_free(post);
        return NULL;
    }
    evhttp_connection_set_timeout(post->connection, timeout_seconds);

    struct evhttp_request *request = evhttp_request_new(post_on_response, post);
    if (!request) {
        snprintf(err, err_len, "out of memory");
        post_free(post);
        return NULL;
    }
    evhttp_request_set_error_cb(request, post_on_error);
    evhttp_request_set_chunked_cb(request, post_on_chunk);
    if (add_request_headers(request, endpoint, app_key, signature) != 0 ||
        evbuffer_add(evhttp_request_get_output_buffer(request), body, body_len) != 0) {
        evhttp_request_free(request);
        snprintf(err, err_len, "cannot build the request");
        post_free(post);
        return NULL;
    }

    /* On failure evhttp_make_request frees the request itself. A connect
     * that fails at once reports through post_on_response before this
     * returns, and the report event defers `done`. */
    if (evhttp_make_request(post->connection, request, EVHTTP_REQ_POST,
                            endpoint->request_target) != 0) {
        snprintf(err, err_len, "cannot start the request");
        post_free(post);
        return NULL;
    }

    struct timeval deadline = { .tv_sec = timeout_seconds, .tv_usec = 0 };
    evtimer_add(post->deadline, &deadline);
    return post;
}
