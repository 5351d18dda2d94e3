/* The load generator's event publisher, run by the controller process:
 * either PUBLISH commands on one Redis connection, pipelined, or signed
 * POST /apps/{id}/events requests on keep-alive HTTP/1.1 connections to
 * the relay, one request in flight per connection. */
#ifndef HERALD_BENCH_LOADGEN_PUBLISHER_H
#define HERALD_BENCH_LOADGEN_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

struct publisher_counters {
    uint64_t issued;   /* events sent */
    uint64_t acked;    /* PUBLISH replies or HTTP 2xx responses */
    uint64_t failed;   /* Redis errors, HTTP errors and requests lost with their connection */
    uint64_t expected; /* sum over acked events of the stable subscribers of their channel */
    uint64_t redis_receivers; /* sum of PUBLISH replies: gateways that took each event */
};

extern struct publisher_counters publisher_counters;

/* Connects to Redis or to the relay. `stable_subscribers` (one entry per
 * channel) must stay valid while events are published. Returns 0, or -1
 * after printing why. */
int publisher_start(const uint32_t *stable_subscribers);

/* Sends up to `count` events now and returns how many it sent. Over HTTP
 * this is limited by the connections that have no request in flight. */
uint64_t publisher_issue(uint64_t count);

/* Waits up to `timeout_ms` for replies and handles them. */
void publisher_poll(int timeout_ms);

/* Writes the query string that signs an HTTP API request the Pusher way:
 * auth_key, auth_timestamp, auth_version, body_md5 when `body_md5` is not
 * NULL, and auth_signature, the HMAC-SHA256 with the app secret of
 * "<method>\n<path>\n<those parameters sorted by name>". */
void publisher_signed_query(const char *method, const char *path, const char *body_md5,
                            char *out, size_t size);

/* Events sent whose reply has not arrived. */
uint64_t publisher_in_flight(void);

#endif
