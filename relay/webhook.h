/* Webhook delivery: each relay consumes the webhook job streams of the apps
 * with webhooks and POSTs the jobs to the apps' endpoints.
 *
 * Gateways append jobs to <prefix>webhooks:{<app id>}. Every relay reads
 * them through the consumer group "herald-relays" under a consumer name of
 * its own, so each job goes to one relay. A job is acknowledged (XACK) only
 * after every endpoint that wants its event type responded with 2xx.
 * Failed POSTs are retried with exponential backoff, and a job that one
 * endpoint rejected webhook_max_attempts times is copied to
 * <prefix>webhooks-parked:{<app id>} with the error and then acknowledged.
 *
 * A relay renews its claim on the jobs it has in memory. Jobs left without
 * renewal for webhook_claim_idle seconds, because their relay died, are
 * claimed by another relay with XAUTOCLAIM. Delivery is therefore at least
 * once: a job can reach an endpoint twice, for example when its relay dies
 * after the POST and before the XACK. docs/webhooks.md describes it for
 * operators.
 *
 * The dispatcher has two Redis connections of its own: one only for the
 * blocking XREADGROUP, so a blocked read never delays other commands, and
 * one for everything else. */
#ifndef HERALD_RELAY_WEBHOOK_H
#define HERALD_RELAY_WEBHOOK_H

#include "config.h"
#include "strbuf.h"

struct event_base;
struct webhook_dispatcher;

/* Starts delivering the jobs of every app in `cfg` that has webhooks. With
 * none, the dispatcher opens no connection and does nothing. `cfg` must
 * outlive the dispatcher. Returns NULL after logging the reason when memory
 * or libevent fails. */
struct webhook_dispatcher *webhook_dispatcher_create(struct event_base *base,
                                                     const struct herald_config *cfg);

/* Stops reading and claiming jobs and starting POSTs, for a shutdown. POSTs
 * in flight may still finish and be acknowledged until the dispatcher is
 * freed. */
void webhook_dispatcher_stop(struct webhook_dispatcher *dispatcher);

/* Abandons the POSTs still in flight without acknowledging their jobs, so
 * another relay delivers them, closes the Redis connections and frees the
 * dispatcher. Must not be called from a Redis or HTTP callback. */
void webhook_dispatcher_free(struct webhook_dispatcher *dispatcher);

/* Appends the webhook metrics of `dispatcher` (a struct webhook_dispatcher)
 * to `out` in Prometheus text format, nothing when no app has webhooks.
 * Its signature is http_api_add_metrics's writer. */
void webhook_write_metrics(struct strbuf *out, void *dispatcher);

#endif
