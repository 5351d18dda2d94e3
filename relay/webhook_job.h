/* Webhook jobs: the entries that gateways append to the Redis stream
 * <prefix>webhooks:{<app id>}, and the JSON body a relay POSTs for them.
 *
 * An entry's fields are time_ms, name and channel, and by event type:
 *   member_added, member_removed   user_id
 *   client_event                   event, data, socket_id, user_id ("" when
 *                                  the channel is not a presence channel)
 *   subscription_count             subscription_count (decimal)
 * The body is Pusher's webhook envelope:
 *   {"time_ms":<ms>,"events":[{"name":...,"channel":...}, ...]}
 * These functions do no I/O, so the unit tests run them directly. */
#ifndef HERALD_RELAY_WEBHOOK_JOB_H
#define HERALD_RELAY_WEBHOOK_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* The fields of one job. Strings point into the field values the event was
 * parsed from, are NUL-terminated and are NULL when the job has none. */
struct webhook_job_event {
    unsigned type; /* one bit of enum webhook_event (config.h) */
    const char *channel;
    const char *user_id;
    const char *event;
    const char *data;
    size_t data_len;
    const char *socket_id;
    long long subscription_count; /* only for WEBHOOK_SUBSCRIPTION_COUNT */
};

/* Parses a stream entry given as `count` strings alternating field name and
 * value. `lengths` gives each string's length, and each string must also be
 * NUL-terminated. Fields the job type does not use are ignored, and an
 * empty user_id counts as absent. Returns 0, or -1 with the reason in `err`
 * (for example "missing field user_id for member_added"). */
int webhook_job_event_parse(struct webhook_job_event *event, char *const *strings,
                            const size_t *lengths, size_t count, char *err, size_t err_len);

/* Appends the webhook body for `count` events, sent at `time_ms`
 * (milliseconds since the Unix epoch), to `out`. */
void webhook_job_render_body(struct strbuf *out, uint64_t time_ms,
                             const struct webhook_job_event *const *events, size_t count);

#endif
