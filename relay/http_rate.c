/* Per-app request rate of the HTTP API: a token bucket per app and relay
 * process. Each relay counts only the requests it serves, so behind a load
 * balancer with N relays an app can send up to N times the limit. */
#include "http_rate.h"

#include <math.h>

int http_rate_take(struct http_rate_bucket *bucket, int per_second, uint64_t now_ns)
{
    double capacity = per_second > 0 ? (double)per_second : 1.0;

    if (bucket->refilled_ns == 0) {
        bucket->tokens = capacity;
    } else if (now_ns > bucket->refilled_ns) {
        double elapsed_s = (double)(now_ns - bucket->refilled_ns) / 1e9;
        bucket->tokens = fmin(capacity, bucket->tokens + elapsed_s * capacity);
    }
    bucket->refilled_ns = now_ns;

    if (bucket->tokens >= 1.0) {
        bucket->tokens -= 1.0;
        return 0;
    }

    bucket->rejected++;
    double wait_s = (1.0 - bucket->tokens) / capacity;
    int retry_after = (int)ceil(wait_s);
    return retry_after < 1 ? 1 : retry_after;
}
