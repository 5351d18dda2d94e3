/* A load generator worker: one epoll loop holding a share of the
 * WebSocket connections. Worker w owns the connections whose global index
 * i satisfies i % workers == w, so channels, targets and source addresses
 * are spread evenly over the workers. Connection i subscribes to channel
 * i % channels and connects to target i % targets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"
#include "signature.h"
#include "wsframe.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define READ_BUFFER_SIZE (1024 * 1024 + LOADGEN_MAX_PAYLOAD)
#define EPOLL_BATCH 512
#define LOOP_TIMEOUT_MS 10
#define STATS_INTERVAL_NS 100000000ull
#define MAX_CONNECT_ATTEMPTS 10
#define RETRY_DELAY_NS 200000000ull
#define UPGRADE_RESPONSE_MAX 4096
#define ERRORS_PRINTED_MAX 5
#define SOCKET_ID_MAX 64
#define PRESENCE_PREFIX "presence-"

enum conn_state {
    CONN_IDLE = 0,    /* waiting in the connect queue */
    CONN_CONNECTING,  /* non-blocking connect() in progress */
    CONN_UPGRADING,   /* upgrade request sent, waiting for 101 */
    CONN_OPEN,        /* upgraded, waiting for connection_established */
    CONN_SUBSCRIBING, /* pusher:subscribe sent */
    CONN_SUBSCRIBED,
    CONN_GAVE_UP,     /* failed MAX_CONNECT_ATTEMPTS times */
    CONN_CLOSED,      /* closed by the server during the run; not reopened */
};

struct conn {
    int fd;
    uint32_t index;   /* global connection index */
    uint32_t channel;
    uint8_t state;
    uint8_t attempts;
    bool churner;
    bool have_seq;
    bool want_write;
    bool presence;      /* joins presence channel `presence_channel` after each connect */
    bool public_ok;     /* subscription_succeeded of the public channel arrived */
    bool presence_ok;   /* subscription_succeeded of the presence channel arrived */
    uint32_t presence_channel;
    /* Churn reconnections so far. A presence connection moves to the next
     * target each time, so a user's leave and its rejoin reach different
     * gateways, as after a page reload behind a load balancer. */
    uint32_t reconnects;

    /* Bytes of a frame (or of the upgrade response) not yet complete. */
    uint8_t *rx;
    uint32_t rx_len;
    /* Bytes the socket did not take yet. */
    uint8_t *tx;
    uint32_t tx_len;
    uint32_t tx_off;
    /* A fragmented message being assembled. */
    uint8_t *fragments;
    uint32_t fragments_len;

    /* Duplicate detection over the channel's event numbers: the highest
     * number seen and a bitmap of the 64 numbers up to it. */
    uint64_t max_seq;
    uint64_t window;

    uint64_t started_ns; /* connect() start of the current attempt */
    uint64_t presence_sent_ns; /* when the presence pusher:subscribe was sent */
    uint64_t retry_at_ns;
};

static struct {
    int index;
    int epoll_fd;
    struct conn *conns;
    uint32_t count;

    /* FIFO of local indices waiting to connect. A connection is pushed only
     * while it is not queued, so count + 1 slots never overflow. */
    uint32_t *queue;
    uint32_t queue_head;
    uint32_t queue_tail;
    uint32_t queue_capacity;
    uint32_t in_flight;

    uint32_t *churners; /* local indices of churning connections */
    uint32_t churner_count;
    uint32_t churn_cursor;
    uint64_t churn_done;
    uint64_t run_started_ns;

    struct worker_stats stats;
    uint32_t *channel_subscribers;
    uint64_t last_stats_ns;

    char upgrade_key[25];
    char upgrade_accept[WS_ACCEPT_LEN + 1];
    uint64_t mask_state;
    uint8_t *read_buffer;
    uint64_t read_time_ns; /* receive time of the bytes being processed */
    int errors_printed;
} worker;

static void conn_close(struct conn *c);

/* ---- helpers ---------------------------------------------------------- */

static void random_mask(uint8_t mask[4])
{
    /* xorshift64: masks only need to be unpredictable to intermediaries,
     * and there are none on loopback. */
    uint64_t x = worker.mask_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    worker.mask_state = x;
    memcpy(mask, &x, 4);
}

static void print_error(struct conn *c, const char *what, const char *detail, size_t detail_len)
{
    if (worker.errors_printed >= ERRORS_PRINTED_MAX)
        return;
    worker.errors_printed++;
    fprintf(stderr, "loadgen worker %d: connection %u: %s: %.*s\n", worker.index, c->index, what,
            (int)(detail_len > 200 ? 200 : detail_len), detail);
}

static void set_state(struct conn *c, enum conn_state state)
{
    struct worker_stats *s = &worker.stats;

    switch (c->state) {
    case CONN_CONNECTING:
    case CONN_UPGRADING:
        s->connecting--;
        break;
    case CONN_OPEN:
    case CONN_SUBSCRIBING:
        s->open--;
        break;
    case CONN_SUBSCRIBED:
        s->subscribed--;
        if (!c->churner) {
            s->stable_subscribed--;
            worker.channel_subscribers[c->channel]--;
        }
        break;
    case CONN_CLOSED:
        s->closed--;
        break;
    default:
        break;
    }

    c->state = (uint8_t)state;

    switch (state) {
    case CONN_CONNECTING:
    case CONN_UPGRADING:
        s->connecting++;
        break;
    case CONN_OPEN:
    case CONN_SUBSCRIBING:
        s->open++;
        break;
    case CONN_SUBSCRIBED:
        s->subscribed++;
        if (!c->churner) {
            s->stable_subscribed++;
            worker.channel_subscribers[c->channel]++;
        }
        break;
    case CONN_CLOSED:
        s->closed++;
        break;
    default:
        break;
    }
}

static const struct sockaddr_in *conn_target(const struct conn *c)
{
    uint32_t n = c->index + (c->presence ? c->reconnects : 0);
    return &options.targets[n % (uint32_t)options.target_count];
}

static void queue_push(uint32_t local)
{
    worker.queue[worker.queue_tail] = local;
    worker.queue_tail = (worker.queue_tail + 1) % worker.queue_capacity;
}

/* ---- writing ---------------------------------------------------------- */

static void update_epoll(struct conn *c, bool want_write)
{
    if (c->want_write == want_write)
        return;
    c->want_write = want_write;
    struct epoll_event ev = {
        .events = EPOLLIN | (want_write ? EPOLLOUT : 0),
        .data.u64 = (uint64_t)(c - worker.conns),
    };
    epoll_ctl(worker.epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes `data`, keeping whatever the socket does not take for EPOLLOUT.
 * Returns -1 when the connection failed and was closed. */
static int conn_write(struct conn *c, const void *data, size_t len)
{
    size_t written = 0;
    if (c->tx_len == 0) {
        ssize_t n = write(c->fd, data, len);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_close(c);
            return -1;
        }
        written = n > 0 ? (size_t)n : 0;
        if (written == len)
            return 0;
    }

    size_t rest = len - written;
    uint8_t *tx = realloc(c->tx, c->tx_len + rest);
    if (!tx) {
        fprintf(stderr, "loadgen worker %d: out of memory\n", worker.index);
        _exit(1);
    }
    memcpy(tx + c->tx_len, (const uint8_t *)data + written, rest);
    c->tx = tx;
    c->tx_len += (uint32_t)rest;
    update_epoll(c, true);
    return 0;
}

static void conn_flush(struct conn *c)
{
    while (c->tx_off < c->tx_len) {
        ssize_t n = write(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(c);
            return;
        }
        c->tx_off += (uint32_t)n;
    }
    free(c->tx);
    c->tx = NULL;
    c->tx_len = c->tx_off = 0;
    update_epoll(c, false);
}

/* Sends one masked frame, as RFC 6455 requires of a client. */
static int conn_send_frame(struct conn *c, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t frame[WS_HEADER_MAX + 1024];
    uint8_t mask[4];
    if (len > sizeof frame - WS_HEADER_MAX)
        return -1;

    random_mask(mask);
    size_t header_len = ws_frame_write_header(frame, opcode, len, mask);
    memcpy(frame + header_len, payload, len);
    ws_mask_payload(frame + header_len, len, mask, 0);
    return conn_write(c, frame, header_len + len);
}

/* ---- connection lifecycle --------------------------------------------- */

static void conn_reset(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
    }
    free(c->rx);
    free(c->tx);
    free(c->fragments);
    c->rx = c->tx = c->fragments = NULL;
    c->rx_len = c->tx_len = c->tx_off = c->fragments_len = 0;
    c->want_write = false;
    c->have_seq = false;
    c->max_seq = c->window = 0;
    c->public_ok = c->presence_ok = false;
    if (c->presence)
        __atomic_store_n(&shared->presence_member[c->index], 0, __ATOMIC_RELAXED);
}

/* Queues a connection for another attempt, or gives up on it. */
static void conn_retry(struct conn *c)
{
    conn_reset(c);
    if (c->attempts >= MAX_CONNECT_ATTEMPTS) {
        set_state(c, CONN_GAVE_UP);
        worker.stats.gave_up++;
        return;
    }
    set_state(c, CONN_IDLE);
    c->retry_at_ns = loadgen_now_ns() + RETRY_DELAY_NS * c->attempts;
    queue_push((uint32_t)(c - worker.conns));
}

/* Handles a connection that failed or that the server closed. During
 * setup, and for churning connections, it is opened again. A stable
 * connection lost during the run stays closed, so its missing deliveries
 * count as loss. */
static void conn_close(struct conn *c)
{
    bool was_handshaking = c->state == CONN_CONNECTING || c->state == CONN_UPGRADING;
    if (was_handshaking) {
        worker.in_flight--;
        worker.stats.connect_failures++;
    } else {
        worker.stats.closed_by_server++;
    }

    if (was_handshaking || c->churner || shared->command == COMMAND_SETUP) {
        conn_retry(c);
        return;
    }
    conn_reset(c);
    set_state(c, CONN_CLOSED);
}

static uint32_t source_address(uint32_t index)
{
    return options.source_base + index / (uint32_t)options.connections_per_source;
}

static void conn_start(struct conn *c)
{
    c->attempts++;
    c->started_ns = loadgen_now_ns();

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        print_error(c, "socket() failed", strerror(errno), strlen(strerror(errno)));
        worker.stats.connect_failures++;
        conn_retry(c);
        return;
    }
    c->fd = fd;

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Let connect() pick the port for the whole 4-tuple instead of bind()
     * reserving one per source address. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);

    struct sockaddr_in source = { .sin_family = AF_INET };
    source.sin_addr.s_addr = htonl(source_address(c->index));
    const struct sockaddr_in *target = conn_target(c);

    if (bind(fd, (struct sockaddr *)&source, sizeof source) != 0 ||
        (connect(fd, (const struct sockaddr *)target, sizeof *target) != 0 &&
         errno != EINPROGRESS)) {
        print_error(c, "connect() failed", strerror(errno), strlen(strerror(errno)));
        worker.stats.connect_failures++;
        conn_retry(c);
        return;
    }

    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT,
        .data.u64 = (uint64_t)(c - worker.conns),
    };
    c->want_write = true;
    epoll_ctl(worker.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    worker.in_flight++;
    set_state(c, CONN_CONNECTING);
}

static void send_upgrade_request(struct conn *c)
{
    int so_error = 0;
    socklen_t so_len = sizeof so_error;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len);
    if (so_error != 0) {
        print_error(c, "connect() failed", strerror(so_error), strlen(strerror(so_error)));
        conn_close(c);
        return;
    }

    const struct sockaddr_in *target = conn_target(c);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &target->sin_addr, host, sizeof host);

    char request[512];
    int len = snprintf(request, sizeof request,
                       "GET /app/%s?protocol=7&client=herald-loadgen&version=1.0 HTTP/1.1\r\n"
                       "Host: %s:%d\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "\r\n",
                       options.app_key, host, ntohs(target->sin_port), worker.upgrade_key);
    set_state(c, CONN_UPGRADING);
    update_epoll(c, false);
    conn_write(c, request, (size_t)len);
}

/* Sends the signed pusher:subscribe of the connection's presence channel,
 * as a client does with the auth its app's auth endpoint returned. The
 * signature is the HMAC-SHA256 of "<socket_id>:<channel>:<channel_data>"
 * with the app secret. */
static void send_presence_subscribe(struct conn *c, const char *socket_id)
{
    char channel[160], user_id[64], channel_data[160], escaped_data[192], to_sign[512];
    char signature[SIGNATURE_HEX_LEN + 1], message[1024];

    snprintf(channel, sizeof channel, PRESENCE_PREFIX "%s%u", options.channel_prefix,
             c->presence_channel);
    loadgen_presence_user_id(c->index, user_id, sizeof user_id);
    snprintf(channel_data, sizeof channel_data, "{\"user_id\":\"%s\",\"user_info\":{\"slot\":%u}}",
             user_id, c->index);
    /* The same text as a JSON string value; the id has no characters
     * other than the quotes that need escaping. */
    snprintf(escaped_data, sizeof escaped_data,
             "{\\\"user_id\\\":\\\"%s\\\",\\\"user_info\\\":{\\\"slot\\\":%u}}", user_id,
             c->index);
    int to_sign_len = snprintf(to_sign, sizeof to_sign, "%s:%s:%s", socket_id, channel, channel_data);
    signature_hmac_sha256_hex(options.app_secret, to_sign, (size_t)to_sign_len, signature);

    int len = snprintf(message, sizeof message,
                       "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\",\"auth\":\"%s:%s\","
                       "\"channel_data\":\"%s\"}}",
                       channel, options.app_key, signature, escaped_data);
    if (len < 0 || (size_t)len >= sizeof message) {
        worker.stats.presence_errors++;
        print_error(c, "presence subscribe message too long", channel, strlen(channel));
        return;
    }
    c->presence_sent_ns = loadgen_now_ns();
    conn_send_frame(c, WS_OPCODE_TEXT, message, (size_t)len);
}

static void send_subscribe(struct conn *c, const char *socket_id)
{
    char message[256];
    int len = snprintf(message, sizeof message,
                       "{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s%u\"}}",
                       options.channel_prefix, c->channel);
    set_state(c, CONN_SUBSCRIBING);
    if (conn_send_frame(c, WS_OPCODE_TEXT, message, (size_t)len) != 0 || c->fd < 0)
        return;
    if (c->presence)
        send_presence_subscribe(c, socket_id);
}

/* Closes a subscribed churning connection the way a browser tab does when
 * it navigates away, and queues it to connect again at once. */
static void churn_one(void)
{
    for (uint32_t tries = 0; tries < worker.churner_count; tries++) {
        struct conn *c = &worker.conns[worker.churners[worker.churn_cursor]];
        worker.churn_cursor = (worker.churn_cursor + 1) % worker.churner_count;
        if (c->state != CONN_SUBSCRIBED)
            continue;

        static const uint8_t going_away[2] = { 1000 >> 8, 1000 & 0xff };
        worker.stats.churn_closed++;
        conn_send_frame(c, WS_OPCODE_CLOSE, going_away, sizeof going_away);
        if (c->fd < 0)
            return; /* the write failed and conn_close() queued it already */
        conn_reset(c);
        c->attempts = 0;
        c->retry_at_ns = 0;
        c->reconnects++;
        set_state(c, CONN_IDLE);
        queue_push((uint32_t)(c - worker.conns));
        return;
    }
    worker.stats.churn_skipped++;
}

/* ---- receiving -------------------------------------------------------- */

/* Parses the unsigned decimal number right after `key` within [p, end). */
static bool find_number(const uint8_t *p, const uint8_t *end, const char *key, uint64_t *value)
{
    size_t key_len = strlen(key);
    const uint8_t *at = memmem(p, (size_t)(end - p), key, key_len);
    if (!at)
        return false;
    at += key_len;
    if (at >= end || *at < '0' || *at > '9')
        return false;
    uint64_t v = 0;
    while (at < end && *at >= '0' && *at <= '9')
        v = v * 10 + (uint64_t)(*at++ - '0');
    *value = v;
    return true;
}

/* Records one bench event: latency, and whether it is new, duplicated or
 * out of order on this connection. */
static void handle_delivery(struct conn *c, const uint8_t *p, size_t len)
{
    struct worker_stats *s = &worker.stats;
    const uint8_t *end = p + len;
    uint64_t channel, seq, sent_ns;

    const uint8_t *channel_at = memmem(p, len, "\"channel\":\"", 11);
    const uint8_t *data_at = memmem(p, len, "\"data\":\"", 8);
    size_t prefix_len = strlen(options.channel_prefix);
    if (!channel_at || !data_at || (size_t)(end - channel_at) < 11 + prefix_len ||
        memcmp(channel_at + 11, options.channel_prefix, prefix_len) != 0 ||
        !find_number(channel_at + 11, end, options.channel_prefix, &channel) ||
        !find_number(data_at, end, "\\\"s\\\":", &seq) ||
        !find_number(data_at, end, "\\\"t\\\":", &sent_ns)) {
        s->protocol_errors++;
        print_error(c, "unparsable event", (const char *)p, len);
        return;
    }

    s->deliveries++;
    uint64_t latency_ns = worker.read_time_ns > sent_ns ? worker.read_time_ns - sent_ns : 0;
    histogram_record(&s->latency_us, latency_ns / 1000);

    uint32_t channels = (uint32_t)options.channels;
    if (channel != c->channel || seq % channels != c->channel) {
        s->misrouted++;
        return;
    }

    /* Events of channel c carry the global numbers c, c + K, c + 2K, ...,
     * so seq / K numbers them 0, 1, 2, ... within the channel. */
    uint64_t n = seq / channels;
    bool unique;
    if (!c->have_seq) {
        c->have_seq = true;
        c->max_seq = n;
        c->window = 1;
        unique = true;
    } else if (n > c->max_seq) {
        uint64_t shift = n - c->max_seq;
        c->window = shift >= 64 ? 1 : (c->window << shift) | 1;
        c->max_seq = n;
        unique = true;
    } else {
        uint64_t back = c->max_seq - n;
        if (back >= 64) {
            s->too_late++;
            unique = false;
        } else if (c->window & (UINT64_C(1) << back)) {
            s->duplicates++;
            unique = false;
        } else {
            c->window |= UINT64_C(1) << back;
            s->reordered++;
            unique = true;
        }
    }

    if (c->churner)
        s->churn_deliveries++;
    else if (unique)
        s->stable_unique++;
}

static bool has_prefix(const uint8_t *p, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(p, prefix, n) == 0;
}

/* Copies the socket_id out of the escaped data string of
 * pusher:connection_established. Returns false when there is none. */
static bool find_socket_id(const uint8_t *p, size_t len, char out[SOCKET_ID_MAX + 1])
{
    static const char key[] = "socket_id\\\":\\\"";
    const uint8_t *at = memmem(p, len, key, sizeof key - 1);
    if (!at)
        return false;
    at += sizeof key - 1;
    size_t n = 0;
    while (at + n < p + len && n < SOCKET_ID_MAX &&
           ((at[n] >= '0' && at[n] <= '9') || at[n] == '.'))
        n++;
    memcpy(out, at, n);
    out[n] = '\0';
    return n > 0;
}

static bool names_presence_channel(const uint8_t *p, size_t len)
{
    static const char key[] = "\"channel\":\"" PRESENCE_PREFIX;
    return memmem(p, len, key, sizeof key - 1) != NULL;
}

/* Records a subscription_succeeded, and marks the connection subscribed
 * once every channel it asked for is confirmed. */
static void handle_subscription_succeeded(struct conn *c, const uint8_t *p, size_t len)
{
    if (c->state != CONN_SUBSCRIBING)
        return;

    uint64_t now = loadgen_now_ns();
    if (c->presence && names_presence_channel(p, len)) {
        c->presence_ok = true;
        worker.stats.presence_joins++;
        histogram_record(&worker.stats.presence_join_us, (now - c->presence_sent_ns) / 1000);
        __atomic_store_n(&shared->presence_member[c->index], 1, __ATOMIC_RELAXED);
    } else {
        c->public_ok = true;
        histogram_record(&worker.stats.subscribe_us, (now - c->started_ns) / 1000);
    }

    if (c->public_ok && (!c->presence || c->presence_ok))
        set_state(c, CONN_SUBSCRIBED);
}

static void handle_message(struct conn *c, const uint8_t *p, size_t len)
{
    static const char bench_prefix[] = "{\"event\":\"" LOADGEN_EVENT_NAME "\"";
    if (has_prefix(p, len, bench_prefix)) {
        handle_delivery(c, p, len);
        return;
    }

    const uint8_t *event = memmem(p, len, "\"event\":\"", 9);
    if (!event) {
        worker.stats.protocol_errors++;
        print_error(c, "message without an event", (const char *)p, len);
        return;
    }
    event += 9;
    size_t rest = (size_t)(p + len - event);

    if (has_prefix(event, rest, LOADGEN_EVENT_NAME "\"")) {
        handle_delivery(c, p, len);
    } else if (has_prefix(event, rest, "pusher:connection_established\"")) {
        char socket_id[SOCKET_ID_MAX + 1] = "";
        if (c->state != CONN_OPEN)
            return;
        if (c->presence && !find_socket_id(p, len, socket_id)) {
            worker.stats.protocol_errors++;
            print_error(c, "connection_established without a socket_id", (const char *)p, len);
            return;
        }
        send_subscribe(c, socket_id);
    } else if (has_prefix(event, rest, "pusher_internal:subscription_succeeded\"")) {
        handle_subscription_succeeded(c, p, len);
    } else if (has_prefix(event, rest, "pusher_internal:member_added\"")) {
        worker.stats.members_added++;
    } else if (has_prefix(event, rest, "pusher_internal:member_removed\"")) {
        worker.stats.members_removed++;
    } else if (c->presence && has_prefix(event, rest, "pusher:subscription_error\"") &&
               names_presence_channel(p, len)) {
        worker.stats.presence_errors++;
        print_error(c, "presence subscription failed", (const char *)p, len);
    } else if (has_prefix(event, rest, "pusher:ping\"")) {
        static const char pong[] = "{\"event\":\"pusher:pong\",\"data\":{}}";
        conn_send_frame(c, WS_OPCODE_TEXT, pong, sizeof pong - 1);
    } else if (has_prefix(event, rest, "pusher:error\"")) {
        worker.stats.pusher_errors++;
        print_error(c, "pusher:error", (const char *)p, len);
    } else {
        worker.stats.protocol_errors++;
        print_error(c, "unexpected message", (const char *)p, len);
    }
}

/* Handles the complete frames in buf[0, len) and returns the number of
 * bytes consumed, or -1 after closing the connection. */
static ssize_t handle_frames(struct conn *c, uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        struct ws_frame f;
        int r = ws_frame_parse_header(buf + off, len - off, &f);
        if (r == 0)
            break;
        if (r < 0 || f.masked || f.payload_len > LOADGEN_MAX_PAYLOAD * 2) {
            worker.stats.protocol_errors++;
            print_error(c, "invalid frame header", "", 0);
            conn_close(c);
            return -1;
        }
        if (len - off - f.header_len < f.payload_len)
            break;

        uint8_t *payload = buf + off + f.header_len;
        size_t payload_len = (size_t)f.payload_len;
        off += f.header_len + payload_len;

        switch (f.opcode) {
        case WS_OPCODE_TEXT:
        case WS_OPCODE_BINARY:
        case WS_OPCODE_CONTINUATION:
            if (f.fin && f.opcode != WS_OPCODE_CONTINUATION && !c->fragments) {
                handle_message(c, payload, payload_len);
                break;
            }
            uint8_t *joined = realloc(c->fragments, c->fragments_len + payload_len + 1);
            if (!joined)
                _exit(1);
            memcpy(joined + c->fragments_len, payload, payload_len);
            c->fragments = joined;
            c->fragments_len += (uint32_t)payload_len;
            if (f.fin) {
                handle_message(c, c->fragments, c->fragments_len);
                free(c->fragments);
                c->fragments = NULL;
                c->fragments_len = 0;
            }
            break;
        case WS_OPCODE_PING:
            conn_send_frame(c, WS_OPCODE_PONG, payload, payload_len);
            break;
        case WS_OPCODE_PONG:
            break;
        case WS_OPCODE_CLOSE: {
            unsigned code = payload_len >= 2 ? (unsigned)(payload[0] << 8 | payload[1]) : 0;
            char detail[160];
            int n = snprintf(detail, sizeof detail, "code %u %.*s", code,
                             (int)(payload_len > 2 ? payload_len - 2 : 0), payload + 2);
            print_error(c, "closed by the server", detail, (size_t)n);
            conn_close(c);
            return -1;
        }
        default:
            worker.stats.protocol_errors++;
            conn_close(c);
            return -1;
        }
        /* A handler may have closed the connection after a failed write. */
        if (c->fd < 0)
            return -1;
    }
    return (ssize_t)off;
}

/* Checks the 101 response. Returns the bytes it took, 0 when incomplete,
 * or -1 after closing the connection. */
static ssize_t handle_upgrade_response(struct conn *c, uint8_t *buf, size_t len)
{
    const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end) {
        if (len > UPGRADE_RESPONSE_MAX) {
            print_error(c, "upgrade response too long", (const char *)buf, len);
            conn_close(c);
            return -1;
        }
        return 0;
    }
    size_t header_len = (size_t)(end - buf) + 4;

    bool ok = has_prefix(buf, header_len, "HTTP/1.1 101");
    if (ok) {
        /* Header names are case-insensitive. */
        char header[UPGRADE_RESPONSE_MAX + 1];
        size_t n = header_len < UPGRADE_RESPONSE_MAX ? header_len : UPGRADE_RESPONSE_MAX;
        memcpy(header, buf, n);
        header[n] = '\0';
        const char *accept = strcasestr(header, "\r\nSec-WebSocket-Accept:");
        if (accept) {
            accept += strlen("\r\nSec-WebSocket-Accept:");
            while (*accept == ' ')
                accept++;
        }
        ok = accept && strncmp(accept, worker.upgrade_accept, WS_ACCEPT_LEN) == 0;
    }
    if (!ok) {
        print_error(c, "upgrade rejected", (const char *)buf, header_len);
        conn_close(c);
        return -1;
    }

    worker.in_flight--;
    set_state(c, CONN_OPEN);
    return (ssize_t)header_len;
}

static void handle_readable(struct conn *c)
{
    uint8_t *buf = worker.read_buffer;
    size_t have = c->rx_len;
    if (have) {
        memcpy(buf, c->rx, have);
        free(c->rx);
        c->rx = NULL;
        c->rx_len = 0;
    }

    ssize_t n = read(c->fd, buf + have, READ_BUFFER_SIZE - have);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n > 0) {
        have += (size_t)n;
        worker.stats.bytes_received += (uint64_t)n;
    }
    worker.read_time_ns = loadgen_now_ns();

    size_t off = 0;
    if (c->state == CONN_UPGRADING) {
        ssize_t used = handle_upgrade_response(c, buf, have);
        if (used < 0)
            return;
        off = (size_t)used;
        if (used == 0)
            goto keep_rest;
    }

    ssize_t used = handle_frames(c, buf + off, have - off);
    if (used < 0)
        return;
    off += (size_t)used;

keep_rest:
    if (off < have) {
        c->rx_len = (uint32_t)(have - off);
        c->rx = malloc(c->rx_len);
        if (!c->rx)
            _exit(1);
        memcpy(c->rx, buf + off, c->rx_len);
    }
}

/* ---- the loop --------------------------------------------------------- */

static void start_due_connections(uint64_t now)
{
    uint32_t scanned = 0;
    uint32_t waiting = (worker.queue_tail + worker.queue_capacity - worker.queue_head) %
                       worker.queue_capacity;

    while (scanned < waiting && worker.in_flight < (uint32_t)options.connect_concurrency) {
        uint32_t local = worker.queue[worker.queue_head];
        worker.queue_head = (worker.queue_head + 1) % worker.queue_capacity;
        scanned++;

        struct conn *c = &worker.conns[local];
        if (c->retry_at_ns > now) {
            queue_push(local);
            continue;
        }
        conn_start(c);
    }
}

static void run_churn(uint64_t now)
{
    if (options.churn_rate <= 0 || worker.churner_count == 0 || shared->command != COMMAND_RUN)
        return;
    if (!worker.run_started_ns)
        worker.run_started_ns = now;

    double rate = options.churn_rate / options.workers;
    uint64_t due = (uint64_t)(rate * (double)(now - worker.run_started_ns) / 1e9);
    while (worker.churn_done < due) {
        churn_one();
        worker.churn_done++;
    }
}

static void init_worker(int index)
{
    worker.index = index;
    worker.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    worker.read_buffer = malloc(READ_BUFFER_SIZE);
    worker.channel_subscribers = calloc((size_t)options.channels, sizeof(uint32_t));

    uint8_t key_bytes[16];
    if (getrandom(key_bytes, sizeof key_bytes, 0) != (ssize_t)sizeof key_bytes ||
        getrandom(&worker.mask_state, sizeof worker.mask_state, 0) !=
            (ssize_t)sizeof worker.mask_state)
        worker.mask_state = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    worker.mask_state |= 1;
    /* NOTE: every connection of a worker sends the same Sec-WebSocket-Key,
     * so the expected accept value is computed once. Servers do not check
     * keys for uniqueness. */
    EVP_EncodeBlock((unsigned char *)worker.upgrade_key, key_bytes, sizeof key_bytes);
    ws_accept_for_key(worker.upgrade_key, 24, worker.upgrade_accept);

    uint32_t workers = (uint32_t)options.workers;
    uint32_t total = (uint32_t)options.connections;
    worker.count = total / workers + ((uint32_t)index < total % workers ? 1 : 0);
    worker.conns = calloc(worker.count ? worker.count : 1, sizeof *worker.conns);
    worker.queue_capacity = worker.count + 1;
    worker.queue = calloc(worker.queue_capacity, sizeof *worker.queue);
    worker.churners = calloc(worker.count ? worker.count : 1, sizeof *worker.churners);
    if (!worker.read_buffer || !worker.channel_subscribers || !worker.conns || !worker.queue ||
        !worker.churners) {
        fprintf(stderr, "loadgen worker %d: out of memory\n", index);
        _exit(1);
    }

    for (uint32_t local = 0; local < worker.count; local++) {
        struct conn *c = &worker.conns[local];
        c->fd = -1;
        c->index = local * workers + (uint32_t)index;
        c->channel = c->index % (uint32_t)options.channels;
        c->churner = c->index < (uint32_t)options.churn_pool;
        c->presence = loadgen_presence_slot(c->index, &c->presence_channel);
        if (c->churner)
            worker.churners[worker.churner_count++] = local;
        queue_push(local);
    }
}

void worker_main(int index)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    /* The controller enforces the hard timeout; this is the backstop if it
     * is stopped without being killed. */
    alarm((unsigned)options.hard_timeout_s + 10);

    init_worker(index);

    struct epoll_event events[EPOLL_BATCH];
    for (;;) {
        int n = epoll_wait(worker.epoll_fd, events, EPOLL_BATCH, LOOP_TIMEOUT_MS);
        for (int i = 0; i < n; i++) {
            struct conn *c = &worker.conns[events[i].data.u64];
            if (c->fd < 0)
                continue;
            if (c->state == CONN_CONNECTING) {
                if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    send_upgrade_request(c);
                continue;
            }
            if (events[i].events & EPOLLOUT)
                conn_flush(c);
            if (c->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                handle_readable(c);
        }

        uint64_t now = loadgen_now_ns();
        start_due_connections(now);
        run_churn(now);

        int command = shared->command;
        if (command == COMMAND_STOP) {
            worker_publish_stats(index, &worker.stats, worker.channel_subscribers);
            shared->workers[index].final = true;
            _exit(0);
        }
        if (now - worker.last_stats_ns >= STATS_INTERVAL_NS) {
            worker_publish_stats(index, &worker.stats, worker.channel_subscribers);
            worker.last_stats_ns = now;
        }
    }
}
