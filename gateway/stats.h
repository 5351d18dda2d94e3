/* The gateway's counters, exposed as Prometheus text on GET /metrics. */
#ifndef HERALD_GATEWAY_STATS_H
#define HERALD_GATEWAY_STATS_H

#include <stdint.h>

#include "metrics.h"
#include "strbuf.h"

struct gateway_stats {
    uint64_t connections_opened;
    uint64_t subscriptions; /* current, all channels */
    uint64_t messages_received; /* client frames */
    uint64_t messages_sent;     /* frames written to clients */
    uint64_t bytes_sent;
    uint64_t events_received;   /* envelopes from Redis for a local channel */
    uint64_t slow_consumers_closed;
    uint64_t connections_rejected_per_ip; /* over max_connections_per_ip */
    uint64_t sockets_rejected_per_ip;     /* closed at accept: too many sockets */
    uint64_t accept_pauses;               /* times the open-file limit stopped accepting */
    struct metrics_histogram event_latency; /* relay publish to gateway write */
};

extern struct gateway_stats stats;

/* Records the latency of one write of a frame published at `published_us`. */
void stats_observe_delivery(uint64_t published_us);

void stats_render(struct strbuf *out);

#endif
