/* The ingest's own Redis connection in pub/sub mode, which PSUBSCRIBEs to
 * Laravel's channels while this relay holds the ingest lease.
 *
 * The connection is kept open whether or not the pattern is wanted, so a
 * relay that gains the lease only needs one PSUBSCRIBE. It authenticates
 * when configured (pub/sub ignores the database number) and reconnects
 * with exponential backoff (100 ms doubling to 5 s). All callbacks run on
 * the event loop given to ingest_subscriber_create. */
#ifndef HERALD_RELAY_INGEST_SUBSCRIBER_H
#define HERALD_RELAY_INGEST_SUBSCRIBER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct ingest_subscriber;

/* Called for each message of the pattern while the subscription is
 * wanted and confirmed. `channel` is the full Redis channel, prefix
 * included; both buffers are NUL-terminated and valid during the call. */
typedef void ingest_message_fn(void *arg, const char *channel, size_t channel_len,
                               const char *payload, size_t payload_len);

/* Called when the connection is lost, so the lease holder can give up its
 * lease: messages published until the next PSUBSCRIBE are lost. */
typedef void ingest_connection_lost_fn(void *arg);

/* Creates the subscriber for `pattern` (copied) and starts connecting.
 * `redis` must outlive it. Returns NULL when memory or the loop fails. */
struct ingest_subscriber *ingest_subscriber_create(struct event_base *base,
                                                   const struct redis_config *redis,
                                                   const char *pattern,
                                                   ingest_message_fn *on_message,
                                                   ingest_connection_lost_fn *on_lost,
                                                   void *arg);

/* Makes the pattern wanted: PSUBSCRIBE now, or as soon as the connection
 * is ready. */
void ingest_subscriber_subscribe(struct ingest_subscriber *sub);

/* Makes the pattern unwanted: PUNSUBSCRIBE at once. Messages that arrive
 * before Redis confirms it are dropped and counted. */
void ingest_subscriber_unsubscribe(struct ingest_subscriber *sub);

/* True while the connection is up and authenticated, so a PSUBSCRIBE can
 * be sent now. */
bool ingest_subscriber_ready(const struct ingest_subscriber *sub);

/* True while Redis has confirmed the PSUBSCRIBE and it is still wanted. */
bool ingest_subscriber_active(const struct ingest_subscriber *sub);

/* Messages dropped because they arrived while the pattern was unwanted. */
unsigned long long ingest_subscriber_dropped(const struct ingest_subscriber *sub);

/* Closes the connection; no callback runs afterwards. */
void ingest_subscriber_free(struct ingest_subscriber *sub);

#endif
