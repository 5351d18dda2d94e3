/* Token buckets that cap the HTTP API requests of one app on one relay.
 * Pure logic without I/O, so the unit tests drive it with their own clock. */
#ifndef HERALD_RELAY_HTTP_RATE_H
#define HERALD_RELAY_HTTP_RATE_H

#include <stdint.h>

/* One app's bucket. It contains at most one second of requests, so a backend
 * may send a burst of `per_second` requests after a quiet second. */
struct http_rate_bucket {
    double tokens;
    uint64_t refilled_ns; /* CLOCK_MONOTONIC of the last refill; 0 before the first request */
    uint64_t rejected;    /* requests rejected with 429 since the start */
};

/* Takes one token for a request at `now_ns` from a bucket that refills at
 * `per_second` tokens a second (at least 1). Returns 0 when the request may
 * proceed, or else the whole seconds after which one token is available
 * again (at least 1), for Retry-After. */
int http_rate_take(struct http_rate_bucket *bucket, int per_second, uint64_t now_ns);

#endif
