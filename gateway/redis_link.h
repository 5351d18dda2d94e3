/* One hiredis async connection on the gateway's loop that reconnects by
 * itself: exponential backoff with jitter, AUTH when configured, and one
 * warning per outage instead of one per failed attempt. The gateway keeps
 * two links, one in pub/sub mode and one for commands. */
#ifndef HERALD_GATEWAY_REDIS_LINK_H
#define HERALD_GATEWAY_REDIS_LINK_H

#include <hiredis/async.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct redis_link {
    const char *name; /* "pubsub" or "commands", for logs */
    void (*ready)(struct redis_link *link); /* connected and authenticated */
    void (*lost)(struct redis_link *link);  /* a ready connection went away */
    void (*after_read)(void); /* optional: runs after each batch of replies */

    redisAsyncContext *context;
    uv_timer_t retry_timer;
    bool connected;
    bool stopping;
    bool outage_logged;
    uint64_t outage_started_ms;
    uint64_t backoff_ms;
    uint64_t reconnects; /* completed reconnects after an outage */
};

/* Starts connecting; `name`, `ready` and `lost` must be set. */
void redis_link_start(struct redis_link *link);
void redis_link_stop(struct redis_link *link);

/* Drops the connection as broken, for example after a reply that shows the
 * server lost state; the link reconnects with backoff. */
void redis_link_reset(struct redis_link *link, const char *reason);

#endif
