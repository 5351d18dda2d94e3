/* Prometheus text exposition helpers shared by the gateway and the relay.
 *
 * Each process keeps its own counters in plain integers (one loop, no
 * locks) and renders them on request; these helpers only format. */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stdint.h>

#include "strbuf.h"

/* Upper bounds of the latency buckets, in seconds; +Inf is implied. */
#define METRICS_LATENCY_BUCKETS 12

struct metrics_histogram {
    uint64_t buckets[METRICS_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
    uint64_t count;
    double sum; /* seconds */
};

void metrics_histogram_observe(struct metrics_histogram *h, double seconds);

/* Writes "# HELP", "# TYPE" and the sample line. `labels` is NULL or the
 * text between the braces, e.g. "connection=\"pubsub\"". */
void metrics_write_counter(struct strbuf *out, const char *name, const char *help,
                           const char *labels, uint64_t value);
void metrics_write_gauge(struct strbuf *out, const char *name, const char *help, double value);
void metrics_write_histogram(struct strbuf *out, const char *name, const char *help,
                             const struct metrics_histogram *h);

#endif
