/* herald-baseline: the smallest fan-out server that herald-loadgen can
 * drive, as a yardstick of what the machine can do at all.
 *
 * One process, one epoll loop, no libraries beyond libc and OpenSSL's SHA-1.
 * It speaks just enough of the Pusher protocol: the WebSocket upgrade on
 * /app/{key}, pusher:connection_established, pusher:subscribe followed by
 * pusher_internal:subscription_succeeded once Redis confirms the topic, and
 * pusher:ping. Events arrive the way they reach Herald's gateways: one
 * Redis connection SUBSCRIBEs to <prefix>ch:{<app_id>:<channel>} for each
 * channel that has a subscriber, and each message is a Herald envelope
 * ("h1 <exclude socket_id or -> <flags>\n<frame>"). The frame bytes go to
 * every subscriber unchanged, with one writev per socket per loop turn.
 *
 * Not implemented, because the benchmarks do not need them: private and
 * presence channels, unsubscribe, client events, liveness pings, and
 * unsubscribing a Redis topic when its last subscriber leaves. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "wsframe.h"

#define MAX_EVENTS 1024
#define IN_BUFFER_MAX 65536
/* A client with more queued than this is closed, like Herald's default
 * max_outbound_queue_bytes (256 KiB). */
#define OUTBOUND_QUEUE_MAX (256 * 1024)
#define WRITEV_MAX 256
#define CHANNEL_TABLE_SIZE 65536 /* power of two; channels stay well below */
#define REDIS_BUFFER_MAX (64 * 1024 * 1024)

/* A frame ready to write: WebSocket header and payload, shared by every
 * recipient and freed when the last one wrote it. */
struct message {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
};

struct channel;

struct client {
    int fd;
    bool upgraded;
    bool dirty;      /* in the flush list */
    bool want_write; /* EPOLLOUT armed */
    bool closing;    /* close after the queue is written */
    char socket_id[24];

    uint8_t *in;
    size_t in_len;
    size_t in_cap;

    /* Outbound ring of messages; `first_off` bytes of the oldest are sent. */
    struct message **queue;
    uint32_t queue_head;
    uint32_t queue_count;
    uint32_t queue_cap;
    size_t first_off;
    size_t queued_bytes;

    struct channel **channels;
    uint32_t channel_count;
    uint32_t channel_cap;

    struct client *next_dirty;
};

struct channel {
    char *name;
    char *topic;
    size_t topic_len;
    bool confirmed; /* Redis acknowledged the SUBSCRIBE */
    struct client **subscribers;
    uint32_t count;
    uint32_t cap;
};

static struct {
    int epoll_fd;
    int listen_fd;
    int redis_fd;
    const char *app_id;
    const char *app_key;
    const char *prefix;
    struct sockaddr_in listen_address;
    struct sockaddr_in redis_address;

    struct channel *channels[CHANNEL_TABLE_SIZE];
    uint32_t channel_count;

    uint8_t *redis_in;
    size_t redis_in_len;
    size_t redis_in_cap;
    char *redis_out;
    size_t redis_out_len;
    size_t redis_out_cap;

    struct client *dirty;
    uint64_t next_socket_serial;
    uint64_t clients;
    uint64_t slow_closed;
} server;

static volatile sig_atomic_t stop_requested;

/* Tags for the two descriptors that are not clients. */
static int listen_tag;
static int redis_tag;

static void client_close(struct client *c);

/* ---- small helpers ---------------------------------------------------- */

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (!q) {
        fprintf(stderr, "herald-baseline: out of memory\n");
        exit(1);
    }
    return q;
}

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static struct message *message_new(const void *payload, size_t len)
{
    uint8_t header[WS_HEADER_MAX];
    size_t header_len = ws_frame_write_header(header, WS_OPCODE_TEXT, len, NULL);
    struct message *m = xrealloc(NULL, sizeof *m + header_len + len);
    m->refs = 0;
    m->len = (uint32_t)(header_len + len);
    memcpy(m->data, header, header_len);
    memcpy(m->data + header_len, payload, len);
    return m;
}

static void message_release(struct message *m)
{
    if (--m->refs == 0)
        free(m);
}

/* ---- channels --------------------------------------------------------- */

static struct channel **channel_slot(const char *topic, size_t len)
{
    uint32_t i = hash_bytes(topic, len) & (CHANNEL_TABLE_SIZE - 1);
    while (server.channels[i]) {
        struct channel *ch = server.channels[i];
        if (ch->topic_len == len && memcmp(ch->topic, topic, len) == 0)
            break;
        i = (i + 1) & (CHANNEL_TABLE_SIZE - 1);
    }
    return &server.channels[i];
}

static void redis_send_subscribe(const struct channel *ch)
{
    char header[64];
    int header_len = snprintf(header, sizeof header, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n",
                              ch->topic_len);
    size_t need = server.redis_out_len + (size_t)header_len + ch->topic_len + 2;
    if (need > server.redis_out_cap) {
        server.redis_out_cap = need * 2;
        server.redis_out = xrealloc(server.redis_out, server.redis_out_cap);
    }
    memcpy(server.redis_out + server.redis_out_len, header, (size_t)header_len);
    server.redis_out_len += (size_t)header_len;
    memcpy(server.redis_out + server.redis_out_len, ch->topic, ch->topic_len);
    server.redis_out_len += ch->topic_len;
    memcpy(server.redis_out + server.redis_out_len, "\r\n", 2);
    server.redis_out_len += 2;
}

static struct channel *channel_get_or_create(const char *name, size_t name_len)
{
    char topic[512];
    int topic_len = snprintf(topic, sizeof topic, "%sch:{%s:%.*s}", server.prefix, server.app_id,
                             (int)name_len, name);
    struct channel **slot = channel_slot(topic, (size_t)topic_len);
    if (*slot)
        return *slot;
    if (server.channel_count >= CHANNEL_TABLE_SIZE / 2)
        return NULL;

    struct channel *ch = xrealloc(NULL, sizeof *ch);
    memset(ch, 0, sizeof *ch);
    ch->name = strndup(name, name_len);
    ch->topic = strndup(topic, (size_t)topic_len);
    ch->topic_len = (size_t)topic_len;
    *slot = ch;
    server.channel_count++;
    redis_send_subscribe(ch);
    return ch;
}

/* ---- client output ---------------------------------------------------- */

static void mark_dirty(struct client *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->next_dirty = server.dirty;
    server.dirty = c;
}

static void client_enqueue(struct client *c, struct message *m)
{
    if (c->fd < 0 || c->closing)
        return;
    if (c->queued_bytes + m->len > OUTBOUND_QUEUE_MAX && c->queue_count > 0) {
        if (server.slow_closed++ % 100 == 0)
            fprintf(stderr, "herald-baseline: closing slow consumer socket_id=%s queued_bytes=%zu "
                            "(%llu closed so far)\n",
                    c->socket_id, c->queued_bytes, (unsigned long long)server.slow_closed);
        client_close(c);
        return;
    }
    if (c->queue_count == c->queue_cap) {
        uint32_t cap = c->queue_cap ? c->queue_cap * 2 : 8;
        struct message **ring = xrealloc(NULL, cap * sizeof *ring);
        for (uint32_t i = 0; i < c->queue_count; i++)
            ring[i] = c->queue[(c->queue_head + i) % c->queue_cap];
        free(c->queue);
        c->queue = ring;
        c->queue_cap = cap;
        c->queue_head = 0;
    }
    c->queue[(c->queue_head + c->queue_count) % c->queue_cap] = m;
    c->queue_count++;
    c->queued_bytes += m->len;
    m->refs++;
    mark_dirty(c);
}

static void client_send_text(struct client *c, const char *text, size_t len)
{
    struct message *m = message_new(text, len);
    m->refs = 1; /* held here until enqueued */
    client_enqueue(c, m);
    message_release(m);
}

static void set_want_write(struct client *c, bool want)
{
    if (c->want_write == want)
        return;
    c->want_write = want;
    struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(server.epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes as much of the queue as the socket takes, in one writev. */
static void client_flush(struct client *c)
{
    if (c->fd < 0 || c->queue_count == 0)
        return;

    struct iovec iov[WRITEV_MAX];
    int n = 0;
    for (uint32_t i = 0; i < c->queue_count && n < WRITEV_MAX; i++, n++) {
        struct message *m = c->queue[(c->queue_head + i) % c->queue_cap];
        size_t skip = i == 0 ? c->first_off : 0;
        iov[n].iov_base = m->data + skip;
        iov[n].iov_len = m->len - skip;
    }

    ssize_t written = writev(c->fd, iov, n);
    if (written < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            set_want_write(c, true);
            return;
        }
        client_close(c);
        return;
    }

    size_t left = (size_t)written;
    while (left > 0) {
        struct message *m = c->queue[c->queue_head];
        size_t rest = m->len - c->first_off;
        if (left < rest) {
            c->first_off += left;
            break;
        }
        left -= rest;
        c->first_off = 0;
        c->queued_bytes -= m->len;
        c->queue_head = (c->queue_head + 1) % c->queue_cap;
        c->queue_count--;
        message_release(m);
    }

    set_want_write(c, c->queue_count > 0);
    if (c->queue_count == 0 && c->closing)
        client_close(c);
}

/* ---- client lifecycle ------------------------------------------------- */

static void remove_subscriber(struct channel *ch, struct client *c)
{
    for (uint32_t i = 0; i < ch->count; i++) {
        if (ch->subscribers[i] == c) {
            ch->subscribers[i] = ch->subscribers[--ch->count];
            return;
        }
    }
}

/* Closes the socket now. The struct stays allocated until the flush list
 * no longer refers to it, so it is freed from flush_dirty(). */
static void client_close(struct client *c)
{
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    server.clients--;

    for (uint32_t i = 0; i < c->channel_count; i++)
        remove_subscriber(c->channels[i], c);
    free(c->channels);
    c->channels = NULL;
    c->channel_count = 0;

    while (c->queue_count) {
        message_release(c->queue[c->queue_head]);
        c->queue_head = (c->queue_head + 1) % c->queue_cap;
        c->queue_count--;
    }
    free(c->queue);
    c->queue = NULL;
    free(c->in);
    c->in = NULL;
    mark_dirty(c);
}

static void flush_dirty(void)
{
    struct client *c = server.dirty;
    server.dirty = NULL;
    while (c) {
        struct client *next = c->next_dirty;
        c->dirty = false;
        c->next_dirty = NULL;
        client_flush(c);
        /* client_flush may have closed it, which lists it again. */
        if (c->fd < 0 && !c->dirty)
            free(c);
        c = next;
    }
}

static void accept_clients(void)
{
    for (;;) {
        int fd = accept4(server.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                fprintf(stderr, "herald-baseline: accept failed: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

        struct client *c = xrealloc(NULL, sizeof *c);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        snprintf(c->socket_id, sizeof c->socket_id, "1.%llu",
                 (unsigned long long)++server.next_socket_serial);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(server.epoll_fd, EPOLL_CTL_ADD, fd, &ev);
        server.clients++;
    }
}

/* ---- client input ----------------------------------------------------- */

static void send_subscription_succeeded(struct client *c, const struct channel *ch)
{
    char frame[512];
    int len = snprintf(frame, sizeof frame,
                       "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":\"%s\","
                       "\"data\":\"{}\"}",
                       ch->name);
    client_send_text(c, frame, (size_t)len);
}

static void handle_subscribe(struct client *c, const uint8_t *p, size_t len)
{
    const uint8_t *at = memmem(p, len, "\"channel\":\"", 11);
    if (!at)
        return;
    const char *name = (const char *)at + 11;
    const char *end = memchr(name, '"', (size_t)((const char *)p + len - name));
    if (!end || end == name || end - name > 200)
        return;

    struct channel *ch = channel_get_or_create(name, (size_t)(end - name));
    if (!ch) {
        static const char full[] =
            "{\"event\":\"pusher:error\",\"data\":{\"code\":null,\"message\":\"too many channels\"}}";
        client_send_text(c, full, sizeof full - 1);
        return;
    }
    for (uint32_t i = 0; i < c->channel_count; i++) {
        if (c->channels[i] == ch)
            return;
    }

    if (ch->count == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->subscribers = xrealloc(ch->subscribers, ch->cap * sizeof *ch->subscribers);
    }
    ch->subscribers[ch->count++] = c;
    if (c->channel_count == c->channel_cap) {
        c->channel_cap = c->channel_cap ? c->channel_cap * 2 : 2;
        c->channels = xrealloc(c->channels, c->channel_cap * sizeof *c->channels);
    }
    c->channels[c->channel_count++] = ch;

    /* Before the confirmation, on_redis_subscribed() sends it to every
     * subscriber at once. */
    if (ch->confirmed)
        send_subscription_succeeded(c, ch);
}

static void handle_text(struct client *c, const uint8_t *p, size_t len)
{
    if (memmem(p, len, "\"pusher:subscribe\"", 18)) {
        handle_subscribe(c, p, len);
    } else if (memmem(p, len, "\"pusher:ping\"", 13)) {
        static const char pong[] = "{\"event\":\"pusher:pong\",\"data\":\"{}\"}";
        client_send_text(c, pong, sizeof pong - 1);
    }
}

/* Handles the upgrade request. Returns the bytes used, 0 when incomplete,
 * or -1 when the client was closed. */
static ssize_t handle_upgrade(struct client *c)
{
    uint8_t *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len > 8192 ? (client_close(c), -1) : 0;
    size_t header_len = (size_t)(end - c->in) + 4;

    char header[8193];
    size_t n = header_len < sizeof header - 1 ? header_len : sizeof header - 1;
    memcpy(header, c->in, n);
    header[n] = '\0';

    char path[300];
    snprintf(path, sizeof path, "GET /app/%s", server.app_key);
    const char *key = strcasestr(header, "\r\nSec-WebSocket-Key:");
    if (strncmp(header, path, strlen(path)) != 0 || !key) {
        static const char not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        ssize_t ignored = write(c->fd, not_found, sizeof not_found - 1);
        (void)ignored;
        client_close(c);
        return -1;
    }
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ')
        key++;
    size_t key_len = strcspn(key, "\r ");

    char accept[WS_ACCEPT_LEN + 1];
    ws_accept_for_key(key, key_len, accept);
    char response[256];
    int response_len = snprintf(response, sizeof response,
                                "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: %s\r\n"
                                "\r\n",
                                accept);
    /* The handshake goes out with the first frames in one writev. */
    struct message *raw = xrealloc(NULL, sizeof *raw + (size_t)response_len);
    raw->refs = 1;
    raw->len = (uint32_t)response_len;
    memcpy(raw->data, response, (size_t)response_len);
    client_enqueue(c, raw);
    message_release(raw);

    char established[256];
    int established_len = snprintf(established, sizeof established,
                                   "{\"event\":\"pusher:connection_established\",\"data\":"
                                   "\"{\\\"socket_id\\\":\\\"%s\\\",\\\"activity_timeout\\\":120}\"}",
                                   c->socket_id);
    client_send_text(c, established, (size_t)established_len);
    c->upgraded = true;
    return (ssize_t)header_len;
}

/* Handles the complete client frames in c->in. Returns the bytes used, or
 * -1 when the client was closed. */
static ssize_t handle_frames(struct client *c, size_t off)
{
    while (off < c->in_len) {
        struct ws_frame f;
        int r = ws_frame_parse_header(c->in + off, c->in_len - off, &f);
        if (r == 0)
            break;
        if (r < 0 || !f.masked || f.payload_len > IN_BUFFER_MAX) {
            client_close(c);
            return -1;
        }
        if (c->in_len - off - f.header_len < f.payload_len)
            break;

        uint8_t *payload = c->in + off + f.header_len;
        size_t len = (size_t)f.payload_len;
        ws_mask_payload(payload, len, f.mask, 0);
        off += f.header_len + len;

        if (f.opcode == WS_OPCODE_TEXT && f.fin) {
            handle_text(c, payload, len);
        } else if (f.opcode == WS_OPCODE_PING) {
            uint8_t header[WS_HEADER_MAX];
            size_t header_len = ws_frame_write_header(header, WS_OPCODE_PONG, len, NULL);
            struct message *m = xrealloc(NULL, sizeof *m + header_len + len);
            m->refs = 1;
            m->len = (uint32_t)(header_len + len);
            memcpy(m->data, header, header_len);
            memcpy(m->data + header_len, payload, len);
            client_enqueue(c, m);
            message_release(m);
        } else if (f.opcode == WS_OPCODE_CLOSE) {
            client_close(c);
            return -1;
        }
        /* Fragmented messages, binary frames and pongs are ignored. */
        if (c->fd < 0)
            return -1;
    }
    return (ssize_t)off;
}

static void client_readable(struct client *c)
{
    if (c->in_cap - c->in_len < 4096) {
        c->in_cap = c->in_cap ? c->in_cap * 2 : 4096;
        if (c->in_cap > IN_BUFFER_MAX * 2) {
            client_close(c);
            return;
        }
        c->in = xrealloc(c->in, c->in_cap);
    }

    ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        client_close(c);
        return;
    }
    if (n < 0)
        return;
    c->in_len += (size_t)n;

    size_t off = 0;
    if (!c->upgraded) {
        ssize_t used = handle_upgrade(c);
        if (used <= 0)
            return;
        off = (size_t)used;
    }
    ssize_t used = handle_frames(c, off);
    if (used < 0)
        return;
    memmove(c->in, c->in + used, c->in_len - (size_t)used);
    c->in_len -= (size_t)used;
    if (c->in_len == 0) {
        /* Most clients are idle: give the buffer back. */
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* ---- Redis ------------------------------------------------------------ */

static void on_redis_subscribed(const char *topic, size_t len)
{
    struct channel *ch = *channel_slot(topic, len);
    if (!ch || ch->confirmed)
        return;
    ch->confirmed = true;
    for (uint32_t i = 0; i < ch->count; i++)
        send_subscription_succeeded(ch->subscribers[i], ch);
}

/* Delivers the frame in a Herald envelope to every subscriber of the
 * topic except the excluded socket_id. */
static void on_redis_message(const char *topic, size_t topic_len, const char *payload, size_t len)
{
    struct channel *ch = *channel_slot(topic, topic_len);
    if (!ch || !ch->confirmed || ch->count == 0)
        return;

    const char *newline = memchr(payload, '\n', len);
    if (!newline || len < 3 || memcmp(payload, "h1 ", 3) != 0)
        return;
    const char *exclude = payload + 3;
    const char *space = memchr(exclude, ' ', (size_t)(newline - exclude));
    if (!space)
        return;
    size_t exclude_len = (size_t)(space - exclude);
    if (exclude_len == 1 && exclude[0] == '-')
        exclude_len = 0;

    const char *frame = newline + 1;
    struct message *m = message_new(frame, (size_t)(payload + len - frame));
    m->refs = 1;
    for (uint32_t i = 0; i < ch->count; i++) {
        struct client *c = ch->subscribers[i];
        if (exclude_len && strlen(c->socket_id) == exclude_len &&
            memcmp(c->socket_id, exclude, exclude_len) == 0)
            continue;
        client_enqueue(c, m);
        /* client_enqueue may close a slow client, which swaps the last
         * subscriber into slot i. */
        if (i < ch->count && ch->subscribers[i] != c)
            i--;
    }
    message_release(m);
}

/* Parses "$<len>\r\n<bytes>\r\n" at *p. Returns false when incomplete. */
static bool parse_bulk(const uint8_t **p, const uint8_t *end, const char **s, size_t *len)
{
    const uint8_t *q = *p;
    if (q >= end || *q != '$')
        return false;
    const uint8_t *line_end = memmem(q, (size_t)(end - q), "\r\n", 2);
    if (!line_end)
        return false;
    size_t n = strtoul((const char *)q + 1, NULL, 10);
    q = line_end + 2;
    if ((size_t)(end - q) < n + 2)
        return false;
    *s = (const char *)q;
    *len = n;
    *p = q + n + 2;
    return true;
}

/* Handles every complete pub/sub reply in the Redis input buffer. */
static void handle_redis_replies(void)
{
    const uint8_t *p = server.redis_in;
    const uint8_t *end = p + server.redis_in_len;

    while (p < end) {
        const uint8_t *start = p;
        if (*p != '*') {
            fprintf(stderr, "herald-baseline: unexpected Redis reply %.40s\n", (const char *)p);
            exit(1);
        }
        const uint8_t *line_end = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!line_end)
            break;
        p = line_end + 2;

        const char *kind, *topic, *payload;
        size_t kind_len, topic_len, payload_len = 0;
        if (!parse_bulk(&p, end, &kind, &kind_len) || !parse_bulk(&p, end, &topic, &topic_len)) {
            p = start;
            break;
        }
        if (kind_len == 7 && memcmp(kind, "message", 7) == 0) {
            if (!parse_bulk(&p, end, &payload, &payload_len)) {
                p = start;
                break;
            }
            on_redis_message(topic, topic_len, payload, payload_len);
        } else {
            /* subscribe / unsubscribe confirmations end with ":<count>". */
            const uint8_t *count_end = memmem(p, (size_t)(end - p), "\r\n", 2);
            if (!count_end) {
                p = start;
                break;
            }
            p = count_end + 2;
            if (kind_len == 9 && memcmp(kind, "subscribe", 9) == 0)
                on_redis_subscribed(topic, topic_len);
        }
    }

    size_t used = (size_t)(p - server.redis_in);
    memmove(server.redis_in, server.redis_in + used, server.redis_in_len - used);
    server.redis_in_len -= used;
}

static void redis_readable(void)
{
    for (;;) {
        if (server.redis_in_cap - server.redis_in_len < 65536) {
            server.redis_in_cap = server.redis_in_cap ? server.redis_in_cap * 2 : 262144;
            if (server.redis_in_cap > REDIS_BUFFER_MAX) {
                fprintf(stderr, "herald-baseline: Redis reply larger than %d bytes\n",
                        REDIS_BUFFER_MAX);
                exit(1);
            }
            server.redis_in = xrealloc(server.redis_in, server.redis_in_cap);
        }
        ssize_t n = read(server.redis_fd, server.redis_in + server.redis_in_len,
                         server.redis_in_cap - server.redis_in_len);
        if (n == 0) {
            fprintf(stderr, "herald-baseline: Redis closed the connection; stopping\n");
            exit(1);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            fprintf(stderr, "herald-baseline: reading from Redis failed: %s\n", strerror(errno));
            exit(1);
        }
        server.redis_in_len += (size_t)n;
        handle_redis_replies();
        if ((size_t)n < 65536)
            break;
    }
}

static void redis_flush(void)
{
    size_t off = 0;
    while (off < server.redis_out_len) {
        ssize_t n = write(server.redis_fd, server.redis_out + off, server.redis_out_len - off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fprintf(stderr, "herald-baseline: writing to Redis failed: %s\n", strerror(errno));
            exit(1);
        }
        off += (size_t)n;
    }
    memmove(server.redis_out, server.redis_out + off, server.redis_out_len - off);
    server.redis_out_len -= off;

    struct epoll_event ev = {
        .events = EPOLLIN | (server.redis_out_len ? EPOLLOUT : 0),
        .data.ptr = &redis_tag,
    };
    epoll_ctl(server.epoll_fd, EPOLL_CTL_MOD, server.redis_fd, &ev);
}

/* ---- setup and loop --------------------------------------------------- */

static void parse_address(const char *text, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) {
        fprintf(stderr, "herald-baseline: invalid address %s: expected HOST:PORT\n", text);
        exit(2);
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1 || out->sin_port == 0 ||
        (ntohl(out->sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "herald-baseline: invalid address %s: expected a loopback IPv4 HOST:PORT\n",
                text);
        exit(2);
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: herald-baseline [--listen HOST:PORT] [--redis HOST:PORT] [--prefix P]\n"
            "                       [--app-id ID] [--app-key KEY]\n"
            "\n"
            "  --listen HOST:PORT  WebSocket address (default 127.0.0.1:6101)\n"
            "  --redis HOST:PORT   Redis to SUBSCRIBE on (default 127.0.0.1:6379)\n"
            "  --prefix P          topic prefix (default herald:)\n"
            "  --app-id ID         app id in topic names (default app-1)\n"
            "  --app-key KEY       app key in the /app/{key} path (default app-key)\n"
            "Stops on SIGINT or SIGTERM.\n");
}

static void on_stop_signal(int signum)
{
    (void)signum;
    stop_requested = 1;
}

static void start(void)
{
    server.epoll_fd = epoll_create1(EPOLL_CLOEXEC);

    server.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(server.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(server.listen_fd, (struct sockaddr *)&server.listen_address,
             sizeof server.listen_address) != 0 ||
        listen(server.listen_fd, 4096) != 0) {
        fprintf(stderr, "herald-baseline: listening on %s:%d failed: %s\n",
                inet_ntoa(server.listen_address.sin_addr), ntohs(server.listen_address.sin_port),
                strerror(errno));
        exit(1);
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listen_tag };
    epoll_ctl(server.epoll_fd, EPOLL_CTL_ADD, server.listen_fd, &ev);

    server.redis_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(server.redis_fd, (struct sockaddr *)&server.redis_address,
                sizeof server.redis_address) != 0) {
        fprintf(stderr, "herald-baseline: connecting to Redis at %s:%d failed: %s\n",
                inet_ntoa(server.redis_address.sin_addr), ntohs(server.redis_address.sin_port),
                strerror(errno));
        exit(1);
    }
    fcntl(server.redis_fd, F_SETFL, fcntl(server.redis_fd, F_GETFL) | O_NONBLOCK);
    ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &redis_tag };
    epoll_ctl(server.epoll_fd, EPOLL_CTL_ADD, server.redis_fd, &ev);
}

int main(int argc, char **argv)
{
    server.app_id = "app-1";
    server.app_key = "app-key";
    server.prefix = "herald:";
    parse_address("127.0.0.1:6101", &server.listen_address);
    parse_address("127.0.0.1:6379", &server.redis_address);

    /* Every option takes a value, so each step consumes two arguments. */
    for (int i = 1; i < argc; i += 2) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--listen") == 0 && value) {
            parse_address(value, &server.listen_address);
        } else if (strcmp(argv[i], "--redis") == 0 && value) {
            parse_address(value, &server.redis_address);
        } else if (strcmp(argv[i], "--prefix") == 0 && value) {
            server.prefix = value;
        } else if (strcmp(argv[i], "--app-id") == 0 && value) {
            server.app_id = value;
        } else if (strcmp(argv[i], "--app-key") == 0 && value) {
            server.app_key = value;
        } else {
            fprintf(stderr, "herald-baseline: unknown or incomplete option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = on_stop_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    start();
    fprintf(stderr, "herald-baseline: listening on ws://%s:%d/app/%s\n",
            inet_ntoa(server.listen_address.sin_addr), ntohs(server.listen_address.sin_port),
            server.app_key);

    struct epoll_event events[MAX_EVENTS];
    while (!stop_requested) {
        int n = epoll_wait(server.epoll_fd, events, MAX_EVENTS, 1000);
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &listen_tag) {
                accept_clients();
            } else if (tag == &redis_tag) {
                if (events[i].events & EPOLLOUT)
                    redis_flush();
                if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    redis_readable();
            } else {
                struct client *c = tag;
                if (c->fd < 0)
                    continue;
                if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    client_readable(c);
                if (c->fd >= 0 && (events[i].events & EPOLLOUT))
                    mark_dirty(c);
            }
        }
        if (server.redis_out_len)
            redis_flush();
        flush_dirty();
    }

    fprintf(stderr, "herald-baseline: stopping with %llu clients, %llu slow consumers closed\n",
            (unsigned long long)server.clients, (unsigned long long)server.slow_closed);
    return 0;
}
