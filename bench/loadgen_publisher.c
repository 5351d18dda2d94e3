#include "loadgen_publisher.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "signature.h"

#define MAX_PUBLISHERS 64
#define IN_BUFFER_SIZE 65536
#define ERRORS_PRINTED_MAX 5

struct publisher_conn {
    int fd;
    char *out;
    size_t out_len;
    size_t out_off;
    size_t out_cap;
    char in[IN_BUFFER_SIZE];
    size_t in_len;
    /* Channels of the events whose reply is pending, oldest first. */
    uint32_t *pending;
    size_t pending_head;
    size_t pending_count;
    size_t pending_cap;
};

struct publisher_counters publisher_counters;

static struct {
    int epoll_fd;
    struct publisher_conn conns[MAX_PUBLISHERS];
    int count;
    const uint32_t *stable_subscribers;
    uint64_t next_seq;
    int next_conn; /* HTTP: where to look for an idle connection first */
    int errors_printed;
} publisher;

/* ---- buffers ---------------------------------------------------------- */

static void *checked_realloc(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (!q) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    return q;
}

static void out_append(struct publisher_conn *pc, const char *data, size_t len)
{
    if (pc->out_len + len > pc->out_cap) {
        pc->out_cap = (pc->out_len + len) * 2;
        pc->out = checked_realloc(pc->out, pc->out_cap);
    }
    memcpy(pc->out + pc->out_len, data, len);
    pc->out_len += len;
}

static void pending_push(struct publisher_conn *pc, uint32_t channel)
{
    if (pc->pending_count == pc->pending_cap) {
        size_t cap = pc->pending_cap ? pc->pending_cap * 2 : 1024;
        uint32_t *ring = checked_realloc(NULL, cap * sizeof *ring);
        for (size_t i = 0; i < pc->pending_count; i++)
            ring[i] = pc->pending[(pc->pending_head + i) % pc->pending_cap];
        free(pc->pending);
        pc->pending = ring;
        pc->pending_cap = cap;
        pc->pending_head = 0;
    }
    pc->pending[(pc->pending_head + pc->pending_count) % pc->pending_cap] = channel;
    pc->pending_count++;
}

static uint32_t pending_pop(struct publisher_conn *pc)
{
    uint32_t channel = pc->pending[pc->pending_head];
    pc->pending_head = (pc->pending_head + 1) % pc->pending_cap;
    pc->pending_count--;
    return channel;
}

static void print_failure(const char *what, const char *detail, size_t len)
{
    if (publisher.errors_printed >= ERRORS_PRINTED_MAX)
        return;
    publisher.errors_printed++;
    fprintf(stderr, "loadgen publisher: %s: %.*s\n", what, (int)(len > 300 ? 300 : len), detail);
}

static void record_reply(uint32_t channel, bool ok)
{
    if (ok) {
        publisher_counters.acked++;
        publisher_counters.expected += publisher.stable_subscribers[channel];
    } else {
        publisher_counters.failed++;
    }
}

/* ---- connections ------------------------------------------------------ */

static int connect_to(const struct sockaddr_in *address)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)address, sizeof *address) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int conn_open(struct publisher_conn *pc)
{
    const struct sockaddr_in *address =
        options.publish == PUBLISH_REDIS ? &options.redis : &options.relay;
    pc->fd = connect_to(address);
    if (pc->fd < 0)
        return -1;

    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = pc };
    epoll_ctl(publisher.epoll_fd, EPOLL_CTL_ADD, pc->fd, &ev);
    return 0;
}

/* Counts every pending event as failed and opens the connection again. */
static void conn_reopen(struct publisher_conn *pc, const char *reason)
{
    print_failure("connection lost", reason, strlen(reason));
    while (pc->pending_count)
        record_reply(pending_pop(pc), false);
    close(pc->fd);
    pc->fd = -1;
    pc->out_len = pc->out_off = 0;
    pc->in_len = 0;
    if (conn_open(pc) != 0)
        print_failure("reconnect failed", strerror(errno), strlen(strerror(errno)));
}

static void conn_flush(struct publisher_conn *pc)
{
    if (pc->fd < 0)
        return;
    while (pc->fd >= 0 && pc->out_off < pc->out_len) {
        ssize_t n = write(pc->fd, pc->out + pc->out_off, pc->out_len - pc->out_off);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_reopen(pc, strerror(errno));
                return;
            }
            break;
        }
        pc->out_off += (size_t)n;
    }

    if (pc->fd < 0)
        return;
    bool more = pc->out_off < pc->out_len;
    if (!more)
        pc->out_len = pc->out_off = 0;
    struct epoll_event ev = { .events = EPOLLIN | (more ? EPOLLOUT : 0), .data.ptr = pc };
    epoll_ctl(publisher.epoll_fd, EPOLL_CTL_MOD, pc->fd, &ev);
}

int publisher_start(const uint32_t *stable_subscribers)
{
    publisher.stable_subscribers = stable_subscribers;
    publisher.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    publisher.count = options.publish == PUBLISH_REDIS ? 1 : options.publishers;
    if (publisher.count > MAX_PUBLISHERS)
        publisher.count = MAX_PUBLISHERS;

    for (int i = 0; i < publisher.count; i++) {
        if (conn_open(&publisher.conns[i]) != 0) {
            const struct sockaddr_in *address =
                options.publish == PUBLISH_REDIS ? &options.redis : &options.relay;
            fprintf(stderr, "loadgen: connecting the publisher to %s:%d failed: %s\n",
                    inet_ntoa(address->sin_addr), ntohs(address->sin_port), strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- rendering -------------------------------------------------------- */

/* Renders the event's `data` string, escaped for embedding in a JSON string:
 * {"s":SEQ,"t":SENT_NS,"p":"xxx…"}, padded so that the unescaped string is
 * options.payload_bytes long (or longer, when the numbers alone exceed it). */
static size_t render_escaped_data(char *out, uint64_t seq, uint64_t sent_ns)
{
    char numbers[64];
    int numbers_len = snprintf(numbers, sizeof numbers, "%llu,\"t\":%llu",
                               (unsigned long long)seq, (unsigned long long)sent_ns);
    /* Unescaped: {"s": + numbers + ,"p":" + padding + "} */
    int base = 5 + numbers_len + 7 + 2;
    int padding = options.payload_bytes > base ? options.payload_bytes - base : 0;

    size_t n = (size_t)sprintf(out, "{\\\"s\\\":%llu,\\\"t\\\":%llu,\\\"p\\\":\\\"",
                               (unsigned long long)seq, (unsigned long long)sent_ns);
    memset(out + n, 'x', (size_t)padding);
    n += (size_t)padding;
    memcpy(out + n, "\\\"}", 3);
    return n + 3;
}

static void issue_redis(struct publisher_conn *pc, uint64_t seq, uint32_t channel)
{
    static char data[LOADGEN_MAX_PAYLOAD + 256];
    static char envelope[LOADGEN_MAX_PAYLOAD + 512];
    char topic[256];

    size_t data_len = render_escaped_data(data, seq, loadgen_now_ns());
    int topic_len = snprintf(topic, sizeof topic, "%sch:{%s:%s%u}", options.redis_prefix,
                             options.app_id, options.channel_prefix, channel);
    int envelope_len = snprintf(envelope, sizeof envelope,
                                "h1 - 0\n{\"event\":\"" LOADGEN_EVENT_NAME
                                "\",\"channel\":\"%s%u\",\"data\":\"%.*s\"}",
                                options.channel_prefix, channel, (int)data_len, data);

    char header[128];
    int header_len = snprintf(header, sizeof header, "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n", topic_len);
    out_append(pc, header, (size_t)header_len);
    out_append(pc, topic, (size_t)topic_len);
    header_len = snprintf(header, sizeof header, "\r\n$%d\r\n", envelope_len);
    out_append(pc, header, (size_t)header_len);
    out_append(pc, envelope, (size_t)envelope_len);
    out_append(pc, "\r\n", 2);
    pending_push(pc, channel);
}

void publisher_signed_query(const char *method, const char *path, const char *body_md5,
                            char *out, size_t size)
{
    char query[256], to_sign[640], signature[SIGNATURE_HEX_LEN + 1];
    int query_len = snprintf(query, sizeof query, "auth_key=%s&auth_timestamp=%lld&auth_version=1.0",
                             options.app_key, (long long)time(NULL));
    if (body_md5)
        snprintf(query + query_len, sizeof query - (size_t)query_len, "&body_md5=%s", body_md5);
    int to_sign_len = snprintf(to_sign, sizeof to_sign, "%s\n%s\n%s", method, path, query);
    signature_hmac_sha256_hex(options.app_secret, to_sign, (size_t)to_sign_len, signature);
    snprintf(out, size, "%s&auth_signature=%s", query, signature);
}

static void issue_http(struct publisher_conn *pc, uint64_t seq, uint32_t channel)
{
    static char data[LOADGEN_MAX_PAYLOAD + 256];
    static char body[LOADGEN_MAX_PAYLOAD + 512];
    char path[128], query[384], body_md5[33];
    char head[1024];

    size_t data_len = render_escaped_data(data, seq, loadgen_now_ns());
    int body_len = snprintf(body, sizeof body,
                            "{\"name\":\"" LOADGEN_EVENT_NAME
                            "\",\"channel\":\"%s%u\",\"data\":\"%.*s\"}",
                            options.channel_prefix, channel, (int)data_len, data);

    signature_md5_hex(body, (size_t)body_len, body_md5);
    snprintf(path, sizeof path, "/apps/%s/events", options.app_id);
    publisher_signed_query("POST", path, body_md5, query, sizeof query);

    int head_len = snprintf(head, sizeof head,
                            "POST %s?%s HTTP/1.1\r\n"
                            "Host: %s:%d\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %d\r\n"
                            "\r\n",
                            path, query, inet_ntoa(options.relay.sin_addr),
                            ntohs(options.relay.sin_port), body_len);
    out_append(pc, head, (size_t)head_len);
    out_append(pc, body, (size_t)body_len);
    pending_push(pc, channel);
}

uint64_t publisher_issue(uint64_t count)
{
    uint64_t issued = 0;
    uint32_t channels = (uint32_t)options.channels;

    if (options.publish == PUBLISH_REDIS) {
        struct publisher_conn *pc = &publisher.conns[0];
        if (pc->fd < 0)
            return 0;
        for (; issued < count; issued++) {
            uint64_t seq = publisher.next_seq++;
            issue_redis(pc, seq, (uint32_t)(seq % channels));
        }
        if (issued)
            conn_flush(pc);
    } else {
        for (int tries = 0; tries < publisher.count && issued < count; tries++) {
            struct publisher_conn *pc = &publisher.conns[publisher.next_conn];
            publisher.next_conn = (publisher.next_conn + 1) % publisher.count;
            if (pc->fd < 0 || pc->pending_count > 0)
                continue;
            uint64_t seq = publisher.next_seq++;
            issue_http(pc, seq, (uint32_t)(seq % channels));
            conn_flush(pc);
            issued++;
        }
    }

    publisher_counters.issued += issued;
    return issued;
}

/* ---- replies ---------------------------------------------------------- */

/* Consumes complete RESP replies from pc->in. Returns -1 on a reply of
 * an unexpected type. */
static int handle_redis_replies(struct publisher_conn *pc)
{
    size_t off = 0;
    while (off < pc->in_len) {
        char *line_end = memmem(pc->in + off, pc->in_len - off, "\r\n", 2);
        if (!line_end)
            break;
        size_t line_len = (size_t)(line_end - (pc->in + off));
        char type = pc->in[off];

        if (pc->pending_count == 0)
            return -1;
        if (type == ':') {
            publisher_counters.redis_receivers += strtoull(pc->in + off + 1, NULL, 10);
            record_reply(pending_pop(pc), true);
        } else if (type == '-') {
            print_failure("Redis error", pc->in + off, line_len);
            record_reply(pending_pop(pc), false);
        } else {
            return -1;
        }
        off += line_len + 2;
    }
    memmove(pc->in, pc->in + off, pc->in_len - off);
    pc->in_len -= off;
    return 0;
}

/* Returns the length of a complete chunked body at `p`, or 0 when more
 * bytes are needed. Trailers are not supported. */
static size_t chunked_body_length(const char *p, size_t len)
{
    size_t off = 0;
    for (;;) {
        const char *line_end = memmem(p + off, len - off, "\r\n", 2);
        if (!line_end)
            return 0;
        size_t chunk = strtoul(p + off, NULL, 16);
        off = (size_t)(line_end - p) + 2;
        if (chunk == 0)
            return len - off >= 2 ? off + 2 : 0;
        if (len - off < chunk + 2)
            return 0;
        off += chunk + 2;
    }
}

/* Consumes one complete HTTP response from pc->in, if there is one.
 * Returns 1 when one was handled, 0 when more bytes are needed and -1 on
 * a response it cannot parse. */
static int handle_http_response(struct publisher_conn *pc)
{
    char *header_end = memmem(pc->in, pc->in_len, "\r\n\r\n", 4);
    if (!header_end)
        return pc->in_len == sizeof pc->in ? -1 : 0;
    size_t header_len = (size_t)(header_end - pc->in) + 4;

    char header[4096];
    size_t copy = header_len < sizeof header - 1 ? header_len : sizeof header - 1;
    memcpy(header, pc->in, copy);
    header[copy] = '\0';

    int status = 0;
    if (sscanf(header, "HTTP/1.%*d %d", &status) != 1)
        return -1;

    size_t body_len;
    const char *field = strcasestr(header, "\r\nContent-Length:");
    if (field) {
        body_len = strtoul(field + strlen("\r\nContent-Length:"), NULL, 10);
        if (pc->in_len - header_len < body_len)
            return 0;
    } else if (strcasestr(header, "\r\nTransfer-Encoding: chunked")) {
        body_len = chunked_body_length(pc->in + header_len, pc->in_len - header_len);
        if (body_len == 0)
            return 0;
    } else {
        body_len = 0;
    }

    bool ok = status >= 200 && status < 300;
    if (!ok)
        print_failure("HTTP error response", pc->in, header_len + body_len);
    if (pc->pending_count == 0)
        return -1;
    record_reply(pending_pop(pc), ok);

    bool server_closes = strcasestr(header, "\r\nConnection: close") != NULL;
    memmove(pc->in, pc->in + header_len + body_len, pc->in_len - header_len - body_len);
    pc->in_len -= header_len + body_len;
    if (server_closes) {
        close(pc->fd);
        pc->fd = -1;
        pc->in_len = 0;
        if (conn_open(pc) != 0)
            print_failure("reconnect failed", strerror(errno), strlen(strerror(errno)));
    }
    return 1;
}

static void handle_readable(struct publisher_conn *pc)
{
    ssize_t n = read(pc->fd, pc->in + pc->in_len, sizeof pc->in - pc->in_len);
    if (n == 0) {
        conn_reopen(pc, "closed by the server");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_reopen(pc, strerror(errno));
        return;
    }
    pc->in_len += (size_t)n;

    int r;
    if (options.publish == PUBLISH_REDIS) {
        r = handle_redis_replies(pc);
    } else {
        while ((r = handle_http_response(pc)) == 1 && pc->fd >= 0)
            ;
    }
    if (r < 0)
        conn_reopen(pc, "unparsable reply");
}

void publisher_poll(int timeout_ms)
{
    struct epoll_event events[MAX_PUBLISHERS];
    int n = epoll_wait(publisher.epoll_fd, events, MAX_PUBLISHERS, timeout_ms);
    for (int i = 0; i < n; i++) {
        struct publisher_conn *pc = events[i].data.ptr;
        if (pc->fd < 0)
            continue;
        if (events[i].events & EPOLLOUT)
            conn_flush(pc);
        if (pc->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            handle_readable(pc);
    }
}

uint64_t publisher_in_flight(void)
{
    uint64_t pending = 0;
    for (int i = 0; i < publisher.count; i++)
        pending += publisher.conns[i].pending_count;
    return pending;
}
