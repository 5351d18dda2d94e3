#include "admission.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
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
    uint32_t address; /* IPv4, network byte order */
    uint32_t connections;
};

static struct hashmap peers;
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

void admission_socket_destroyed(void)
{
    if (sockets)
        sockets--;
    if (paused && sockets + 2 < socket_limit)
        paused = false;
}

/* Returns the peer's IPv4 address in network byte order, or 0 when the
 * socket has none (the gateway listens on IPv4 only). */
static uint32_t peer_address(struct lws *wsi)
{
    struct sockaddr_in address;
    socklen_t len = sizeof address;
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&address, &len) != 0 ||
        address.sin_family != AF_INET)
        return 0;
    return address.sin_addr.s_addr;
}

bool admission_connection_opened(struct connection *conn)
{
    int limit = gateway.config.max_connections_per_ip;
    if (limit <= 0)
        return true;

    uint32_t address = peer_address(conn->wsi);
    if (!address)
        return true;

    struct peer *peer = hashmap_get(&peers, (const char *)&address, sizeof address);
    if (peer && peer->connections >= (uint32_t)limit) {
        rejections_unlogged++;
        stats.connections_rejected_per_ip++;
        uint64_t now = gateway_now_ms();
        if (!rejection_logged || now - last_rejection_log_ms >= LOG_INTERVAL_MS) {
            char text[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &address, text, sizeof text);
            log_warn("rejected a connection from %s: %u connections from this address, the "
                     "limit is %d; rejections since the last message: %llu",
                     text, peer->connections, limit, (unsigned long long)rejections_unlogged);
            rejection_logged = true;
            rejections_unlogged = 0;
            last_rejection_log_ms = now;
        }
        return false;
    }
    if (!peer) {
        peer = calloc(1, sizeof *peer);
        if (!peer) {
            log_error("out of memory counting connections per address");
            abort();
        }
        peer->address = address;
        hashmap_put(&peers, (const char *)&peer->address, sizeof peer->address, peer);
    }
    peer->connections++;
    conn->peer_address = address;
    return true;
}

void admission_connection_closed(struct connection *conn)
{
    if (!conn->peer_address)
        return;

    uint32_t address = conn->peer_address;
    conn->peer_address = 0;
    struct peer *peer = hashmap_get(&peers, (const char *)&address, sizeof address);
    if (!peer)
        return;
    if (--peer->connections == 0) {
        hashmap_remove(&peers, (const char *)&address, sizeof address);
        free(peer);
    }
}

void admission_free(void)
{
    size_t cursor = 0;
    struct hashmap_entry *entry;
    while ((entry = hashmap_next(&peers, &cursor)))
        free(entry->value);
    hashmap_free(&peers);
}
