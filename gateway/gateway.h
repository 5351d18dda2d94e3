/* Process-wide state of one gateway node.
 *
 * Everything runs on one libuv loop: libwebsockets, both hiredis
 * connections and the timers, so no structure here needs a lock. */
#ifndef HERALD_GATEWAY_H
#define HERALD_GATEWAY_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "config.h"

struct gateway {
    struct herald_config config;
    uv_loop_t *loop;
    struct lws_context *lws;

    /* First half of every socket_id: random per process, so two gateways
     * practically never hand out the same id. */
    uint32_t node_number;
    char node_id[32];       /* "<hostname>-<pid>-<node_number>", for logs and Redis */
    uint64_t next_socket_serial;

    uint64_t connection_count;

    /* Per app, indexed like config.apps: this node's open connections, the
     * count it last reported to Redis, and the cluster-wide total Redis
     * returned then. The quota check uses total - reported + local. */
    uint64_t *app_connections;
    uint64_t *app_connections_reported;
    uint64_t *app_connections_cluster;
    bool draining; /* SIGTERM received: not ready, closing clients */
    bool stopping; /* tearing down the server and Redis links */
};

extern struct gateway gateway;

/* Milliseconds from the loop's monotonic clock, refreshed each iteration. */
static inline uint64_t gateway_now_ms(void)
{
    return uv_now(gateway.loop);
}

static inline size_t gateway_app_index(const struct app_config *app)
{
    return (size_t)(app - gateway.config.apps);
}

/* Microseconds since the epoch from the wall clock, as carried in
 * envelopes so latency can be measured across processes. */
static inline uint64_t gateway_wall_clock_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

/* True when Redis is connected and the gateway is not draining. */
bool gateway_ready(void);

#endif
