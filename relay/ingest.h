/* Ingest of Laravel's redis broadcaster (BROADCAST_CONNECTION=redis).
 *
 * Every relay with laravel_ingest on competes for one lease in Redis,
 * <prefix>lease:ingest, whose value is the relay's instance id. Only the
 * holder PSUBSCRIBEs to <laravel_redis_prefix>*, turns each message into
 * a Pusher event of laravel_app_id (ingest_payload.h) and publishes it
 * like a trigger of the HTTP API: the same envelope on the channel's
 * topic, and the same SET for cache channels.
 *
 * The holder renews the lease every third of ingest_lease_ms. It gives
 * the lease up, and PUNSUBSCRIBEs at once, when a renewal fails, when
 * either Redis connection drops, or when the lease's local deadline
 * passes without a confirmed renewal. Each message is delivered only while
 * that deadline holds, so two relays never both deliver one message; a
 * paused holder loses messages instead (docs/architecture.md). */
#ifndef HERALD_RELAY_INGEST_H
#define HERALD_RELAY_INGEST_H

#include "config.h"
#include "publisher.h"
#include "strbuf.h"

struct event_base;
struct ingest;

/* Creates the ingest and starts competing for the lease. `cfg` and
 * `publisher` must outlive it. Returns NULL when memory or the loop
 * fails. */
struct ingest *ingest_create(struct event_base *base, const struct herald_config *cfg,
                             struct publisher *publisher);

/* Gives the lease up for a shutdown: PUNSUBSCRIBEs, stops competing and
 * deletes the lease if it still carries this relay's id, so another relay
 * takes over without waiting for it to expire. `done` is called exactly
 * once from the event loop, when Redis replied or could not. */
void ingest_release(struct ingest *ingest, void (*done)(void *arg), void *arg);

/* Closes the pub/sub connection and stops the timers. Call it before
 * publisher_free, and ingest_free after it, because replies the publisher
 * completes while closing still reach the ingest. */
void ingest_close(struct ingest *ingest);
void ingest_free(struct ingest *ingest);

/* Appends the ingest's Prometheus metrics; `arg` is the struct ingest. */
void ingest_write_metrics(struct strbuf *out, void *arg);

#endif
