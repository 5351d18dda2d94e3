/* Cache channels (cache-, private-cache-, presence-cache-,
 * private-encrypted-cache-): right after subscription_succeeded a new
 * subscriber gets the channel's last event, kept in Redis by the relay, or
 * pusher:cache_miss when there is none. Events that arrive while the
 * cached one is being fetched are held and sent after it, so the client
 * sees them in publication order. */
#ifndef HERALD_GATEWAY_CACHE_H
#define HERALD_GATEWAY_CACHE_H

#include "connection.h"

/* Fetches the last event for a subscription that has just been confirmed
 * and puts it in SUBSCRIPTION_CACHING. */
void cache_fetch_start(struct connection *conn, struct subscription *sub, const char *channel);

/* Holds an event that arrived during the fetch. */
void cache_fetch_hold(struct cache_fetch *fetch, struct message *m, unsigned long long seq,
                      bool member_event);

/* Frees the fetch of a subscription that is going away; the reply, when
 * it comes, is ignored. */
void cache_fetch_cancel(struct cache_fetch *fetch);

#endif
