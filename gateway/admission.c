#include "admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "gateway.h"
#include "hashmap.h"
#include "log.h"
#include "stats.h"

/* At the limit, every closed connection lets one more in, so the pause
 * can start again many times a second. A flood from one address can cause
 * as many rejections. Each kind is logged this often at most. */
#define LOG_INTERVAL_MS 10000

/* Connections of one client address on this gateway. The map's key points
 * at `address`. */
struct peer {
    struct in6_addr address; /* IPv4 addresses in their IPv4-mapped form */
    uint32_t connections;    /* established, under the client's address */
    uint32_t sockets;        /* accepted and not yet closed, under the TCP peer */
};

/* An address block of trusted_proxies. */
struct proxy_block {
    struct in6_addr network;
    int prefix_bits; /* of the 128 */
};

static struct hashmap peers;

/* The TCP peer counted by the last accept, for the socket libwebsockets
 * creates right after it. */
static struct peer *accepted_peer;

static uint64_t socket_rejections_unlogged;
static void peer_release_if_unused(struct peer *peer);
static uint64_t last_socket_rejection_log_ms;
static bool socket_rejection_logged;
static struct proxy_block *proxies;
static size_t proxy_count;
static unsigned socket_limit;
static unsigned sockets;
static bool paused;
static uint64_t pauses_unlogged;
static uint64_t last_pause_log_ms;
static bool pause_logged;
static uint64_t rejections_unlogged;
static uint64_t last_rejection_log_ms;
static bool rejection_logged;

unsigned admission_socket_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY ||
        limit.rlim_cur < ADMISSION_RESERVED_DESCRIPTORS + ADMISSION_MIN_SOCKETS)
        return 0;
    socket_limit = (unsigned)limit.rlim_cur - ADMISSION_RESERVED_DESCRIPTORS;
    return socket_limit;
}

void admission_socket_instantiated(struct lws *wsi)
{
    /* libwebsockets sets a new wsi's opaque user data while adopting the
     * socket and keeps it from here until the wsi is destroyed. */
    if (accepted_peer) {
        lws_set_opaque_user_data(wsi, accepted_peer);
        accepted_peer = NULL;
    }
}

void admission_socket_created(void)
{
    sockets++;
    /* libwebsockets stops accepting when its socket table, which includes
     * the listening socket, is one short of the limit. */
    if (!socket_limit || paused || sockets + 2 < socket_limit)
        return;

    paused = true;
    pauses_unlogged++;
    stats.accept_pauses++;
    uint64_t now = gateway_now_ms();
    if (pause_logged && now - last_pause_log_ms < LOG_INTERVAL_MS)
        return;
    log_warn("not accepting new connections: %u sockets open, the limit is %u (open-file limit "
             "minus %d); pauses since the last message: %llu",
             sockets, socket_limit, ADMISSION_RESERVED_DESCRIPTORS,
             (unsigned long long)pauses_unlogged);
    pause_logged = true;
    pauses_unlogged = 0;
    last_pause_log_ms = now;
}

void admission_socket_destroyed(struct lws *wsi)
{
    struct peer *peer = lws_get_opaque_user_data(wsi);
    if (peer) {
        lws_set_opaque_user_data(wsi, NULL);
        peer->sockets--;
        peer_release_if_unused(peer);
    }
    if (sockets)
        sockets--;
    if (paused && sockets + 2 < socket_limit)
        paused = false;
}

/* Parses an IPv4 or IPv6 address into `out`, IPv4 in its mapped form. */
static bool parse_address(const char *text, struct in6_addr *out)
{
    struct in_addr v4;
    if (inet_pton(AF_INET, text, &v4) == 1) {
        memset(out, 0, sizeof *out);
        out->s6_addr[10] = 0xff;
        out->s6_addr[11] = 0xff;
        memcpy(&out->s6_addr[12], &v4, sizeof v4);
        return true;
    }
    return inet_pton(AF_INET6, text, out) == 1;
}

static bool is_ipv4_mapped(const struct in6_addr *address)
{
    static const unsigned char prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    return memcmp(address->s6_addr, prefix, sizeof prefix) == 0;
}

static void format_address(const struct in6_addr *address, char *out, size_t out_len)
{
    if (is_ipv4_mapped(address))
        inet_ntop(AF_INET, &address->s6_addr[12], out, (socklen_t)out_len);
    else
        inet_ntop(AF_INET6, address, out, (socklen_t)out_len);
}

int admission_start(void)
{
    const char *list = gateway.config.trusted_proxies;
    if (!list || !list[0])
        return 0;

    char *copy = strdup(list);
    if (!copy) {
        log_error("out of memory reading trusted_proxies");
        return -1;
    }
    size_t capacity = 1;
    for (const char *p = list; *p; p++)
        capacity += *p == ',';
    proxies = calloc(capacity, sizeof *proxies);
    if (!proxies) {
        free(copy);
        log_error("out of memory reading trusted_proxies");
        return -1;
    }

    int result = 0;
    char *saved;
    for (char *item = strtok_r(copy, ", ", &saved); item; item = strtok_r(NULL, ", ", &saved)) {
        struct proxy_block *block = &proxies[proxy_count];
        char *slash = strchr(item, '/');
        if (slash)
            *slash = '\0';
        if (!parse_address(item, &block->network)) {
            log_error("config: trusted_proxies (HERALD_TRUSTED_PROXIES): invalid entry \"%s\": "
                      "expected an IPv4 or IPv6 address or CIDR block, such as 10.0.0.0/8",
                      item);
            result = -1;
            break;
        }
        int offset = is_ipv4_mapped(&block->network) ? 96 : 0;
        block->prefix_bits = 128;
        if (slash) {
            char *end;
            long bits = strtol(slash + 1, &end, 10);
            if (*end || end == slash + 1 || bits < 0 || bits > 128 - offset) {
                log_error("config: trusted_proxies (HERALD_TRUSTED_PROXIES): invalid entry "
                          "\"%s/%s\": the prefix length must be 0 to %d",
                          item, slash + 1, 128 - offset);
                result = -1;
                break;
            }
            block->prefix_bits = offset + (int)bits;
        }
        proxy_count++;
    }
    free(copy);
    return result;
}

static bool in_block(const struct in6_addr *address, const struct proxy_block *block)
{
    int bits = block->prefix_bits;
    int whole = bits / 8;
    if (memcmp(address->s6_addr, block->network.s6_addr, (size_t)whole) != 0)
        return false;
    if (bits % 8 == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
    return (address->s6_addr[whole] & mask) == (block->network.s6_addr[whole] & mask);
}

static bool is_trusted_proxy(const struct in6_addr *address)
{
    for (size_t i = 0; i < proxy_count; i++) {
        if (in_block(address, &proxies[i]))
            return true;
    }
    return false;
}

/* Returns `address` as counted: IPv6 addresses by their /64, because one
 * host usually has a whole /64 to choose from. */
static struct in6_addr group_address(const struct in6_addr *address)
{
    struct in6_addr grouped = *address;
    if (!is_ipv4_mapped(&grouped))
        memset(&grouped.s6_addr[8], 0, 8);
    return grouped;
}

/* Reads the TCP peer's address of socket `fd`. */
static bool tcp_peer_address(int fd, struct in6_addr *out)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&peer, &len) != 0)
        return false;
    if (peer.ss_family == AF_INET) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, text, sizeof text);
        return parse_address(text, out);
    }
    if (peer.ss_family == AF_INET6) {
        *out = group_address(&((struct sockaddr_in6 *)&peer)->sin6_addr);
        return true;
    }
    return false;
}

/* Parses one X-Forwarded-For entry: an address, "IPv4:port" or
 * "[IPv6]:port", as some proxies append. */
static bool parse_forwarded_entry(char *entry, struct in6_addr *out)
{
    if (entry[0] == '[') {
        char *close = strchr(entry, ']');
        if (!close)
            return false;
        *close = '\0';
        return inet_pton(AF_INET6, entry + 1, out) == 1;
    }
    char *colon = strchr(entry, ':');
    if (colon && !strchr(colon + 1, ':'))
        *colon = '\0'; /* one colon: IPv4 with a port; more: IPv6 */
    return parse_address(entry, out);
}

/* Finds the client's address: the TCP peer, or for a trusted proxy the
 * last entry of X-Forwarded-For, which that proxy appended. A trusted
 * proxy's connection whose last entry is not an address counts under the
 * proxy itself, so a malformed header cannot escape the limit. Returns
 * false when there is nothing to count: a trusted proxy without the header
 * (a health check, say). */
static bool client_address(struct lws *wsi, struct in6_addr *out)
{
    if (!tcp_peer_address(lws_get_socket_fd(wsi), out))
        return false;
    if (!proxy_count || !is_trusted_proxy(out))
        return true;

    /* The whole header is read, however long, because a client may send
     * its own X-Forwarded-For, which the proxy appends to. Skipping a long
     * one would let that client escape the limit. */
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR);
    if (total <= 0)
        return false;
    char *forwarded = malloc((size_t)total + 1);
    if (!forwarded) {
        log_error("out of memory reading X-Forwarded-For");
        abort();
    }
    if (lws_hdr_copy(wsi, forwarded, total + 1, WSI_TOKEN_X_FORWARDED_FOR) > 0) {
        char *last = strrchr(forwarded, ',');
        last = last ? last + 1 : forwarded;
        while (*last == ' ')
            last++;
        size_t end = strlen(last);
        while (end && last[end - 1] == ' ')
            last[--end] = '\0';
        struct in6_addr client;
        if (parse_forwarded_entry(last, &client))
            *out = group_address(&client);
    }
    free(forwarded);
    return true;
}

static struct peer *peer_get(const struct in6_addr *address)
{
    struct peer *peer = hashmap_get(&peers, (const char *)address, sizeof *address);
    if (peer)
        return peer;
    peer = calloc(1, sizeof *peer);
    if (!peer) {
        log_error("out of memory counting connections per address");
        abort();
    }
    peer->address = *address;
    hashmap_put(&peers, (const char *)&peer->address, sizeof peer->address, peer);
    return peer;
}

static void peer_release_if_unused(struct peer *peer)
{
    if (peer->connections || peer->sockets || peer == accepted_peer)
        return;
    hashmap_remove(&peers, (const char *)&peer->address, sizeof peer->address);
    free(peer);
}

/* Sockets one address may hold at any stage, handshakes included: the
 * connection limit plus a tenth of it, at least 16, for handshakes that
 * are about to be rejected with 4100 or replace a closing connection. */
static uint32_t socket_limit_per_address(void)
{
    uint32_t limit = (uint32_t)gateway.config.max_connections_per_ip;
    uint32_t slack = limit / 10 > 16 ? limit / 10 : 16;
    return limit + slack;
}

bool admission_socket_accepted(int fd)
{
    if (accepted_peer) {
        /* The socket of the previous accept was never created. */
        struct peer *unused = accepted_peer;
        accepted_peer = NULL;
        unused->sockets--;
        peer_release_if_unused(unused);
    }
    if (gateway.config.max_connections_per_ip <= 0)
        return true;

    struct in6_addr address;
    if (!tcp_peer_address(fd, &address) || is_trusted_proxy(&address))
        return true;

    struct peer *peer = peer_get(&address);
    if (peer->sockets >= socket_limit_per_address()) {
        socket_rejections_unlogged++;
        stats.sockets_rejected_per_ip++;
        uint64_t now = gateway_now_ms();
        if (!socket_rejection_logged || now - last_socket_rejection_log_ms >= LOG_INTERVAL_MS) {
            char text[INET6_ADDRSTRLEN];
            format_address(&address, text, sizeof text);
            log_warn("closed a socket from %s at once: %u sockets from this address, the limit "
                     "is %u; closed since the last message: %llu",
                     text, peer->sockets, socket_limit_per_address(),
                     (unsigned long long)socket_rejections_unlogged);
            socket_rejection_logged = true;
            socket_rejections_unlogged = 0;
            last_socket_rejection_log_ms = now;
        }
        peer_release_if_unused(peer);
        return false;
    }
    peer->sockets++;
    accepted_peer = peer;
    return true;
}

bool admission_connection_opened(struct connection *conn)
{
    int limit = gateway.config.max_connections_per_ip;
    if (limit <= 0)
        return true;

    struct in6_addr address;
    if (!client_address(conn->wsi, &address))
        return true;

    struct peer *peer = hashmap_get(&peers, (const char *)&address, sizeof address);
    if (peer && peer->connections >= (uint32_t)limit) {
        rejections_unlogged++;
        stats.connections_rejected_per_ip++;
        uint64_t now = gateway_now_ms();
        if (!rejection_logged || now - last_rejection_log_ms >= LOG_INTERVAL_MS) {
            char text[INET6_ADDRSTRLEN];
            format_address(&address, text, sizeof text);
            log_warn("rejected a connection from %s: %u connections from this address, the "
                     "limit is %d; rejections since the last message: %llu",
                     text, peer->connections, limit, (unsigned long long)rejections_unlogged);
            rejection_logged = true;
            rejections_unlogged = 0;
            last_rejection_log_ms = now;
        }
        return false;
    }
    if (!peer)
        peer = peer_get(&address);
    peer->connections++;
    conn->peer = peer;
    return true;
}

void admission_connection_closed(struct connection *conn)
{
    struct peer *peer = conn->peer;
    if (!peer)
        return;

    conn->peer = NULL;
    peer->connections--;
    peer_release_if_unused(peer);
}

void admission_free(void)
{
    size_t cursor = 0;
    struct hashmap_entry *entry;
    while ((entry = hashmap_next(&peers, &cursor)))
        free(entry->value);
    hashmap_free(&peers);
    accepted_peer = NULL;
    free(proxies);
    proxies = NULL;
    proxy_count = 0;
}
