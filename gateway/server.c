/* The WebSocket side of the gateway: libwebsockets callbacks, inbound
 * message assembly and the write path. */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "admission.h"
#include "channels.h"
#include "connection.h"
#include "frame.h"
#include "gateway.h"
#include "liveness.h"
#include "log.h"
#include "protocol.h"
#include "stats.h"
#include "users.h"

/* Frames written per writable callback before yielding to other sockets:
 * one lws_write each on TLS connections, and writev batches of
 * FLUSH_MAX_FRAMES otherwise. */
#define WRITES_PER_CALLBACK 32
#define WRITEV_BATCHES_PER_CALLBACK 4

/* A closing client that never reads gets this many seconds before the
 * socket is dropped without a close handshake. */
#define CLOSE_GRACE_SECONDS 5

/* Time from accept() to a complete WebSocket handshake. libwebsockets
 * counts it once from accept(), not per read, so a client that trickles
 * its headers cannot hold a socket longer. */
#define HANDSHAKE_TIMEOUT_SECONDS 10

/* Request line and headers of a handshake. Browsers send the cookies of
 * the gateway's domain, so this leaves room for them; a larger request is
 * closed without a response. */
#define HANDSHAKE_HEADER_BYTES 8192

static bool stop_started;

/* liveness.c pings idle clients itself, so libwebsockets' own idle check
 * is turned off with zero intervals. Without a policy, libwebsockets 4.1
 * gives every connection an idle timer and re-inserts it into one sorted
 * list on each frame received, walking all connections' timers. That cost
 * 5 % of a gateway's CPU in the S4 churn benchmark. */
static const lws_retry_bo_t no_idle_checks = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

/* ---- sending ---------------------------------------------------------- */

/* Writes one frame and counts it. Returns 0, or -1 when the socket failed. */
static int write_frame(struct connection *conn, struct message *m)
{
    if (lws_write(conn->wsi, message_payload(m), m->len, LWS_WRITE_TEXT) < (int)m->len)
        return -1;
    stats.messages_sent++;
    stats.bytes_sent += m->len;
    if (m->published_us)
        stats_observe_delivery(m->published_us);
    return 0;
}

/* Frames per writev: enough to drain a burst in one call, few enough for an
 * iovec array on the stack (one entry per frame, IOV_MAX is 1024). */
#define FLUSH_MAX_FRAMES 256

/* Connections with frames queued by connection_queue(), not yet flushed. */
static struct connection *flush_list;

/* Applies the outbound bound. Returns false when the connection was closed
 * as a slow consumer instead. */
static bool within_queue_bound(struct connection *conn, struct message *m)
{
    size_t limit = (size_t)gateway.config.max_outbound_queue_bytes;
    if (conn->outbound.count > 0 && conn->outbound.bytes + m->len > limit) {
        /* The client stopped reading: drop what is queued so memory stays
         * bounded, and close with "over capacity" so pusher-js reconnects
         * after its back-off and resubscribes. */
        if (stats.slow_consumers_closed++ % 100 == 0)
            log_warn("closing slow consumer socket_id=%s app=%s queued_bytes=%u limit=%zu "
                     "(%llu closed so far)",
                     conn->socket_id, conn->app ? conn->app->id : "-", conn->outbound.bytes, limit,
                     (unsigned long long)stats.slow_consumers_closed);
        message_queue_clear(&conn->outbound);
        connection_close(conn, 4100, "Over capacity: the client did not read its messages in time");
        return false;
    }
    return true;
}

void connection_queue(struct connection *conn, struct message *m)
{
    if (conn->closing || !conn->wsi || !within_queue_bound(conn, m))
        return;
    message_queue_push(&conn->outbound, m);
    if (!conn->flush_queued) {
        conn->flush_queued = true;
        conn->flush_next = flush_list;
        flush_list = conn;
    }
}

/* Writes up to FLUSH_MAX_FRAMES queued frames of `conn` with one writev
 * straight to the socket, which is safe only while libwebsockets has
 * nothing buffered for it, so the stream stays in order. A frame the
 * kernel takes only in part is handed to libwebsockets as raw bytes, which
 * it buffers and sends before anything else. Returns 1 when every frame of
 * the batch went out, 0 when the socket is full, or -1 when it failed. */
static int writev_queued(struct connection *conn)
{
    struct lws *wsi = conn->wsi;
    struct message_queue *q = &conn->outbound;

    struct iovec iov[FLUSH_MAX_FRAMES];
    uint32_t frames = q->count < FLUSH_MAX_FRAMES ? q->count : FLUSH_MAX_FRAMES;
    size_t batch_len = 0;
    for (uint32_t i = 0; i < frames; i++) {
        struct message *m = q->items[(q->head + i) & (q->capacity - 1)];
        iov[i].iov_base = message_payload(m) - m->header_len;
        iov[i].iov_len = m->header_len + (size_t)m->len;
        batch_len += iov[i].iov_len;
    }

    ssize_t written = writev(lws_get_socket_fd(wsi), iov, (int)frames);
    if (written < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        return 0;
    }

    size_t left = (size_t)written;
    while (q->count && left > 0) {
        struct message *m = message_queue_peek(q);
        size_t frame_len = m->header_len + (size_t)m->len;
        if (left < frame_len) {
            if (left < m->header_len) {
                lws_write(wsi, m->header + left, m->header_len - left, LWS_WRITE_HTTP);
                lws_write(wsi, message_payload(m), m->len, LWS_WRITE_HTTP);
            } else {
                size_t sent = left - m->header_len;
                lws_write(wsi, message_payload(m) + sent, m->len - sent, LWS_WRITE_HTTP);
            }
            left = 0;
        } else {
            left -= frame_len;
        }
        stats.messages_sent++;
        stats.bytes_sent += m->len;
        if (m->published_us)
            stats_observe_delivery(m->published_us);
        message_queue_pop(q);
    }
    return (size_t)written == batch_len ? 1 : 0;
}

/* Writes the frames that connection_queue() queued for `conn`. TLS
 * connections, a pending protocol ping and bytes still buffered in
 * libwebsockets go through the writable callback instead. */
static void flush_connection(struct connection *conn)
{
    struct lws *wsi = conn->wsi;
    if (!wsi || conn->closing || !conn->outbound.count)
        return;
    if (conn->send_protocol_ping || lws_partial_buffered(wsi) || lws_is_ssl(wsi)) {
        lws_callback_on_writable(wsi);
        return;
    }

    /* Each further batch costs one writev, while arming the writable
     * callback would cost two epoll_ctl calls and a loop turn, so writing
     * goes on while the socket takes everything. After a failure,
     * libwebsockets finds the broken socket on its own write. */
    int result = 1;
    for (int i = 0; i < WRITEV_BATCHES_PER_CALLBACK && result == 1 && conn->outbound.count; i++)
        result = writev_queued(conn);
    if (result <= 0 || conn->outbound.count)
        lws_callback_on_writable(wsi);
}

void connections_flush(void)
{
    while (flush_list) {
        struct connection *conn = flush_list;
        flush_list = conn->flush_next;
        conn->flush_next = NULL;
        conn->flush_queued = false;
        flush_connection(conn);
    }
}

void connection_send(struct connection *conn, struct message *m)
{
    if (conn->closing || !conn->wsi || !within_queue_bound(conn, m))
        return;

    /* Fast path: with nothing queued here or inside libwebsockets, write
     * at once. That costs one send() instead of arming POLLOUT, waiting
     * for the writable callback and disarming it again. libwebsockets
     * keeps whatever the kernel does not take and flushes it before the
     * next writable callback, so frames stay in order. */
    if (conn->outbound.count == 0 && !conn->send_protocol_ping && !lws_partial_buffered(conn->wsi)) {
        if (write_frame(conn, m) == 0)
            return;
        /* The socket failed; the writable callback reports it to lws. */
        lws_callback_on_writable(conn->wsi);
        return;
    }

    bool was_empty = conn->outbound.count == 0;
    message_queue_push(&conn->outbound, m);
    if (was_empty)
        lws_callback_on_writable(conn->wsi);
}

void connection_send_frame(struct connection *conn, const char *frame, size_t len)
{
    struct message *m = message_new(frame, len);
    connection_send(conn, m);
    message_release_if_unused(m);
}

void connection_send_error(struct connection *conn, int code, const char *message)
{
    struct strbuf frame;
    strbuf_init(&frame);
    frame_render_error(&frame, code, message);
    connection_send_frame(conn, frame.data, frame.len);
    strbuf_free(&frame);
}

void connection_close(struct connection *conn, int code, const char *reason)
{
    if (conn->closing)
        return;
    conn->closing = true;
    conn->close_code = (uint16_t)code;
    /* RFC 6455 caps a close frame's reason at 123 bytes, and it must be
     * UTF-8, so a cut backs off to the start of a character. */
    size_t reason_len = strlen(reason);
    if (reason_len > 123) {
        reason_len = 123;
        while (reason_len && ((unsigned char)reason[reason_len] & 0xc0) == 0x80)
            reason_len--;
    }
    conn->close_reason = malloc(reason_len + 1);
    if (conn->close_reason) {
        memcpy(conn->close_reason, reason, reason_len);
        conn->close_reason[reason_len] = '\0';
    }
    liveness_untrack(conn);
    users_untrack(conn);
    lws_set_timeout(conn->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_GRACE_SECONDS);
    lws_callback_on_writable(conn->wsi);
}

void connection_close_with_error(struct connection *conn, int code, const char *message)
{
    connection_send_error(conn, code, message);
    connection_close(conn, code, message);
}

/* Opcode value of a close frame for lws_write(). libwebsockets 4.1 leaves it
 * out of the public enum and offers lws_close_reason() instead, but a
 * connection closed by returning -1 from a writable callback is treated as
 * broken and gets no close frame at all, and clients need the code. */
#define LWS_WRITE_CLOSE_FRAME ((enum lws_write_protocol)4)

/* Sends the close frame with the connection's code and reason, then returns
 * -1 so libwebsockets drops the connection. */
static int write_close_frame(struct connection *conn)
{
    unsigned char frame[LWS_PRE + 2 + 123];
    const char *reason = conn->close_reason ? conn->close_reason : "";
    size_t reason_len = strlen(reason);

    unsigned char *payload = frame + LWS_PRE;
    payload[0] = (unsigned char)(conn->close_code >> 8);
    payload[1] = (unsigned char)(conn->close_code & 0xff);
    memcpy(payload + 2, reason, reason_len);
    lws_write(conn->wsi, payload, 2 + reason_len, LWS_WRITE_CLOSE_FRAME);
    return -1;
}

/* Writes queued frames while the socket takes them. Returns -1 to make
 * libwebsockets close the connection. */
static int write_queued(struct connection *conn)
{
    struct lws *wsi = conn->wsi;

    if (conn->send_protocol_ping) {
        /* A non-empty payload, because libwebsockets 4.1 does not report a
         * pong with an empty payload to the callback, and the client's
         * automatic pong would then not count as a sign of life. */
        unsigned char ping[LWS_PRE + 4];
        memcpy(ping + LWS_PRE, "ping", 4);
        conn->send_protocol_ping = false;
        if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
            return -1;
        if (lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }

    if (!lws_is_ssl(wsi)) {
        if (lws_partial_buffered(wsi)) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        /* The same writev batches as a flush. A client that fell behind
         * catches up with many frames per system call, not one, so a
         * gateway under overload spends less per frame, not more. */
        for (int i = 0; i < WRITEV_BATCHES_PER_CALLBACK && conn->outbound.count; i++) {
            int result = writev_queued(conn);
            if (result < 0)
                return -1;
            if (result == 0)
                break;
        }
    } else {
        for (int i = 0; i < WRITES_PER_CALLBACK; i++) {
            struct message *m = message_queue_peek(&conn->outbound);
            if (!m)
                break;
            /* lws keeps any part the kernel did not take and sends it
             * before the next frame, so a short write is never seen here. */
            if (write_frame(conn, m) != 0)
                return -1;
            message_queue_pop(&conn->outbound);
            if (lws_partial_buffered(wsi))
                break;
        }
    }

    if (conn->outbound.count) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (conn->closing)
        return write_close_frame(conn);
    return 0;
}

/* ---- receiving -------------------------------------------------------- */

static void handle_receive(struct connection *conn, const char *in, size_t len)
{
    struct lws *wsi = conn->wsi;
    size_t limit = (size_t)gateway.config.max_message_bytes;
    bool complete = lws_is_final_fragment(wsi);

    liveness_touch(conn);
    if (conn->closing)
        return;

    if (lws_frame_is_binary(wsi)) {
        if (complete)
            connection_send_error(conn, -1,
                                  "Binary frames are not supported: send JSON in text frames");
        return;
    }

    /* Fast path: the whole message arrived in one piece. */
    if (lws_is_first_fragment(wsi) && complete && !conn->rx_buffer && !conn->rx_oversize) {
        if (len > limit) {
            char message[128];
            snprintf(message, sizeof message,
                     "Message too large: %zu bytes; the limit is %zu bytes", len, limit);
            connection_send_error(conn, -1, message);
            return;
        }
        stats.messages_received++;
        protocol_handle_message(conn, in, len);
        return;
    }

    if (!conn->rx_oversize) {
        if (conn->rx_length + len > limit) {
            conn->rx_oversize = true;
            free(conn->rx_buffer);
            conn->rx_buffer = NULL;
            conn->rx_length = 0;
        } else {
            char *buffer = realloc(conn->rx_buffer, conn->rx_length + len + 1);
            if (!buffer) {
                log_error("out of memory assembling a message socket_id=%s", conn->socket_id);
                abort();
            }
            memcpy(buffer + conn->rx_length, in, len);
            conn->rx_buffer = buffer;
            conn->rx_length += (uint32_t)len;
        }
    }

    if (!complete)
        return;

    if (conn->rx_oversize) {
        char message[128];
        snprintf(message, sizeof message, "Message too large: the limit is %zu bytes", limit);
        connection_send_error(conn, -1, message);
    } else {
        stats.messages_received++;
        protocol_handle_message(conn, conn->rx_buffer, conn->rx_length);
    }
    free(conn->rx_buffer);
    conn->rx_buffer = NULL;
    conn->rx_length = 0;
    conn->rx_oversize = false;
}

/* ---- connection lifecycle --------------------------------------------- */

static void handle_established(struct connection *conn, struct lws *wsi)
{
    char path[256];
    char argument[128];
    char protocol[sizeof argument] = "";
    int has_protocol = 0;

    conn->wsi = wsi;
    gateway.connection_count++;
    stats.connections_opened++;
    liveness_track(conn);

    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0)
        path[0] = '\0';

    /* lws_hdr_copy returns 0 without an Origin header, which is allowed,
     * and -1 for one too long for the buffer, which matches no pattern. */
    char origin[256];
    int origin_len = lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN);
    const struct app_config *app =
        strncmp(path, "/app/", 5) == 0 ? config_find_app_by_key(&gateway.config, path + 5) : NULL;
    conn->origin_rejected = app && app->allowed_origins && origin_len != 0 &&
                            (origin_len < 0 || !config_origin_allowed(app, origin));
    conn->peer_rejected = !admission_connection_opened(conn);

    for (int i = 0; lws_hdr_copy_fragment(wsi, argument, sizeof argument,
                                          WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
        if (strncmp(argument, "protocol=", 9) == 0) {
            has_protocol = 1;
            memcpy(protocol, argument + 9, strlen(argument + 9) + 1);
        }
    }

    protocol_handle_open(conn, path, protocol, has_protocol);
}

static void handle_closed(struct connection *conn)
{
    if (!conn->wsi)
        return;

    /* Flushes run right after each Redis read batch, before libwebsockets
     * can close anything, so this is a safety net, not a normal path. */
    if (conn->flush_queued) {
        struct connection **link = &flush_list;
        while (*link && *link != conn)
            link = &(*link)->flush_next;
        if (*link)
            *link = conn->flush_next;
        conn->flush_queued = false;
    }
    liveness_untrack(conn);
    admission_connection_closed(conn);
    users_untrack(conn);
    users_connection_closed(conn);
    channels_unsubscribe_all(conn);
    message_queue_clear(&conn->outbound);
    free(conn->rx_buffer);
    conn->rx_buffer = NULL;
    free(conn->user_id);
    free(conn->user_info);
    free(conn->close_reason);
    conn->user_id = conn->user_info = conn->close_reason = NULL;
    if (conn->counted)
        gateway.app_connections[gateway_app_index(conn->app)]--;
    gateway.connection_count--;
    log_debug("connection closed socket_id=%s app=%s", conn->socket_id,
              conn->app ? conn->app->id : "-");
    conn->wsi = NULL;
}

/* ---- operations endpoints --------------------------------------------- */

static int write_http_response(struct lws *wsi, unsigned int status, const char *content_type,
                               const char *body, size_t body_len)
{
    unsigned char headers[LWS_PRE + 512];
    unsigned char *start = headers + LWS_PRE, *p = start, *end = headers + sizeof headers;
    if (lws_add_http_common_headers(wsi, status, content_type, body_len, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;

    unsigned char *buffer = malloc(LWS_PRE + body_len + 1);
    if (!buffer)
        return -1;
    memcpy(buffer + LWS_PRE, body, body_len);
    int written = lws_write(wsi, buffer + LWS_PRE, body_len, LWS_WRITE_HTTP_FINAL);
    free(buffer);
    if (written < (int)body_len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int write_text_response(struct lws *wsi, unsigned int status, const char *text)
{
    return write_http_response(wsi, status, "text/plain", text, strlen(text));
}

/* Plain HTTP on the WebSocket port serves liveness, readiness and metrics
 * for orchestrators and Prometheus. Load balancers route only /app/ here,
 * so these paths stay internal unless an operator exposes them. */
static int serve_http(struct lws *wsi, const char *path)
{
    if (strcmp(path, "/up") == 0)
        return write_text_response(wsi, HTTP_STATUS_OK, "OK\n");

    if (strcmp(path, "/ready") == 0) {
        if (gateway_ready())
            return write_text_response(wsi, HTTP_STATUS_OK, "ready\n");
        return write_text_response(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE,
                                   gateway.draining ? "draining\n" : "redis unavailable\n");
    }

    if (strcmp(path, "/metrics") == 0) {
        struct strbuf body;
        strbuf_init(&body);
        stats_render(&body);
        int result = write_http_response(wsi, HTTP_STATUS_OK, "text/plain; version=0.0.4",
                                         body.data, body.len);
        strbuf_free(&body);
        return result;
    }

    return write_text_response(wsi, HTTP_STATUS_NOT_FOUND,
                               "not found: WebSocket clients connect to /app/{app_key}\n");
}

static int callback_pusher(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                           void *in, size_t len)
{
    struct connection *conn = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return serve_http(wsi, in);

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A draining gateway refuses new WebSocket handshakes before the
         * upgrade, so a load balancer can retry them on another gateway
         * instead of the client being accepted and closed again. */
        return gateway.draining ? 1 : 0;

    case LWS_CALLBACK_ESTABLISHED:
        handle_established(conn, wsi);
        return 0;

    case LWS_CALLBACK_RECEIVE:
        handle_receive(conn, in, len);
        return 0;

    case LWS_CALLBACK_RECEIVE_PONG:
        liveness_touch(conn);
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return write_queued(conn);

    case LWS_CALLBACK_CLOSED:
        handle_closed(conn);
        return 0;

    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return admission_socket_accepted((int)(intptr_t)in) ? 0 : 1;

    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        admission_socket_instantiated(wsi);
        return 0;

    case LWS_CALLBACK_WSI_CREATE:
        admission_socket_created();
        return 0;

    case LWS_CALLBACK_WSI_DESTROY:
        admission_socket_destroyed(wsi);
        return 0;

    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {
        .name = "pusher",
        .callback = callback_pusher,
        .per_session_data_size = sizeof(struct connection),
        /* libwebsockets allocates this per connection. Client frames are
         * small; larger messages arrive in pieces and are assembled in
         * handle_receive, so a small buffer saves memory on every idle
         * connection. */
        .rx_buffer_size = 128,
        /* Without this libwebsockets caps every send() at rx_buffer_size
         * and would split each outgoing frame into several writes. */
        .tx_packet_size = 256 * 1024,
    },
    { .name = NULL, .callback = NULL },
};

/* ---- setup ------------------------------------------------------------ */

static void emit_lws_log(int level, const char *line)
{
    static uint64_t errors_logged;
    size_t len = strlen(line);
    while (len && line[len - 1] == '\n')
        len--;
    if (!(level & LLL_ERR)) {
        log_debug("libwebsockets: %.*s", (int)len, line);
        return;
    }
    /* Out of file descriptors, libwebsockets reports every failed accept;
     * keep the first and every 1000th so a flood cannot fill the disk. */
    if (errors_logged++ % 1000 == 0)
        log_error("libwebsockets: %.*s (%llu errors so far)", (int)len, line,
                  (unsigned long long)errors_logged);
}

int server_start(void)
{
    lws_set_log_level(LLL_ERR | (log_get_level() <= LOG_LEVEL_DEBUG ? LLL_WARN : 0),
                      emit_lws_log);

    static void *foreign_loops[1];
    foreign_loops[0] = gateway.loop;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = gateway.config.gateway_port;
    info.iface = gateway.config.gateway_host;
    info.protocols = protocols;
    /* The vhost is created separately because libwebsockets 4.1 returns a
     * context even when its default vhost cannot bind, and the gateway
     * would then run without listening. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign_loops;
    info.gid = -1;
    info.uid = -1;
    /* Below the open-file limit, libwebsockets stops polling the listening
     * socket instead of failing accept() with EMFILE on every turn. */
    info.fd_limit_per_thread = admission_socket_limit();
    info.timeout_secs = HANDSHAKE_TIMEOUT_SECONDS;
    info.max_http_header_data = HANDSHAKE_HEADER_BYTES;
    info.retry_and_idle_policy = &no_idle_checks;

    bool tls = gateway.config.tls_cert_file && gateway.config.tls_cert_file[0];
    if (tls) {
        /* wss:// served by the gateway itself, with OpenSSL. */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = gateway.config.tls_cert_file;
        info.ssl_private_key_filepath = gateway.config.tls_key_file;
    }

    gateway.lws = lws_create_context(&info);
    if (!gateway.lws) {
        log_error("failed to start libwebsockets (is the libuv event plugin "
                  "libwebsockets-evlib-uv installed?)");
        return -1;
    }
    if (!lws_create_vhost(gateway.lws, &info)) {
        if (tls)
            log_error("cannot listen on %s:%d: the address is in use, or the certificate %s "
                      "or its key cannot be loaded",
                      gateway.config.gateway_host, gateway.config.gateway_port,
                      gateway.config.tls_cert_file);
        else
            log_error("cannot listen on %s:%d: the address is in use or not available",
                      gateway.config.gateway_host, gateway.config.gateway_port);
        return -1;
    }
    return 0;
}

void server_stop(void)
{
    if (gateway.lws && !stop_started) {
        stop_started = true;
        lws_context_destroy(gateway.lws);
    }
}

void server_free(void)
{
    /* On a foreign loop, the first lws_context_destroy() only starts
     * closing lws's libuv handles. Once the loop has run them to
     * completion, a second call frees the context itself. */
    if (gateway.lws) {
        lws_context_destroy(gateway.lws);
        gateway.lws = NULL;
    }
}
