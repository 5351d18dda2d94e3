/* The relay's one asynchronous Redis connection, used to PUBLISH envelopes
 * and to read the channel state the gateways keep in Redis.
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

struct redisReply;

/* Called once per publisher_command that returned 0. `reply` is NULL when
 * the connection went away before Redis replied, and may be an error reply.
 * hiredis frees it after the callback returns. */
typedef void publisher_reply_fn(void *arg, const struct redisReply *reply);

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

/* Queues the command made of `argc` binary-safe arguments; they are
 * copied before returning. Same return convention as publisher_publish. An
 * error reply is logged (rate-limited) and also passed to `done`. */
int publisher_command(struct publisher *pub, int argc, const char **argv,
                      const size_t *argv_len, publisher_reply_fn *done, void *arg);

/* Number of times the connection came back after it had been ready and was
 * lost; the first connection is not counted. */
unsigned long long publisher_reconnects(const struct publisher *pub);

/* Closes the connection for good: every command still waiting for its
 * reply completes (PUBLISH_LOST, or a NULL reply) before this returns, no
 * reconnect follows and publisher_ready stays false. Must not be called
 * from a publish_done_fn or publisher_reply_fn, because hiredis would defer
 * the close until after it returns. */
void publisher_close(struct publisher *pub);

/* Closes the connection as publisher_close does and frees the publisher. */
void publisher_free(struct publisher *pub);

#endif
