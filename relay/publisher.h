/* The relay's one asynchronous Redis connection, used to PUBLISH envelopes.
 *
 * The publisher connects at start, authenticates and selects the database
 * when configured, and reconnects with exponential backoff (100 ms doubling
 * to 5 s) whenever the connection fails or Redis stops replying. All
 * callbacks run on the event loop given to publisher_create. */
#ifndef HERALD_RELAY_PUBLISHER_H
#define HERALD_RELAY_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct publisher;

enum publish_result {
    PUBLISH_OK = 0,
    PUBLISH_LOST,   /* the connection went away before Redis replied */
    PUBLISH_FAILED, /* Redis replied with an error */
};

/* Called once per publisher_publish that returned 0, with the outcome. */
typedef void publish_done_fn(void *arg, enum publish_result result);

/* Creates the publisher and starts the first connection attempt. `redis`
 * must outlive the publisher. Returns NULL only when memory or the event
 * loop fails. */
struct publisher *publisher_create(struct event_base *base, const struct redis_config *redis);

/* True while the connection is up, authenticated and on the configured
 * database, so a PUBLISH issued now is expected to be acknowledged. */
bool publisher_ready(const struct publisher *pub);

/* Queues PUBLISH `topic` `message`; both are copied before returning.
 * Returns 0 when queued (`done` will be called exactly once, never before
 * this function returns), or -1 when the publisher is not ready. */
int publisher_publish(struct publisher *pub, const char *topic, size_t topic_len,
                      const char *message, size_t message_len, publish_done_fn *done,
                      void *arg);

/* Closes the connection for good: every PUBLISH still waiting for its
 * reply completes with PUBLISH_LOST before this returns, no reconnect
 * follows and publisher_ready stays false. Must not be called from a
 * publish_done_fn, because hiredis would defer the close until after it
 * returns. */
void publisher_close(struct publisher *pub);

/* Closes the connection as publisher_close does and frees the publisher. */
void publisher_free(struct publisher *pub);

#endif
