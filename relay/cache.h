/* Cache channels on the relay's side: storing the last event of each cache
 * channel (cache-, private-cache-, private-encrypted-cache-,
 * presence-cache-) and reading it back for
 * GET /apps/{app_id}/channels/{channel_name}?info=cache.
 *
 * The key <prefix>cache:{<app_id>:<channel>} (common/keys.h) contains the
 * frame exactly as clients receive it, with a TTL of cache_ttl seconds.
 * Right after subscription_succeeded a gateway sends those bytes to the
 * new subscriber unchanged, or pusher:cache_miss when the key is missing
 * (gateway/cache.c). Every event published through the relay replaces it,
 * whether or not anyone is subscribed; the socket_id exclusion does not
 * apply to it. */
#ifndef HERALD_RELAY_CACHE_H
#define HERALD_RELAY_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "publisher.h"
#include "strbuf.h"

struct redisReply;

/* True when `channel` is a cache channel, whose last event is stored. */
bool cache_channel(const char *channel);

/* Queues SET <cache key> <frame> EX <ttl_seconds>, where the frame is the
 * one inside `envelope` (the bytes just PUBLISHed to the channel's topic),
 * so the stored event is byte for byte what subscribers received. Returns
 * 0 when queued (`done` is then called exactly once with the reply), or -1
 * when the envelope cannot be decoded or the publisher is not ready. */
int cache_store(struct publisher *pub, const char *prefix, const char *app_id,
                const char *channel, const char *envelope, size_t envelope_len,
                int ttl_seconds, publisher_reply_fn *done, void *arg);

/* True when `reply` to cache_store's SET confirms the frame was stored. */
bool cache_store_succeeded(const struct redisReply *reply);

/* Queues the read of a channel's cached event: one Lua script that returns
 * the stored frame and its TTL in seconds, or nil when nothing is stored.
 * Same return convention as publisher_command. */
int cache_read(struct publisher *pub, const char *prefix, const char *app_id,
               const char *channel, publisher_reply_fn *done, void *arg);

/* Appends the "cache" attribute for the reply of cache_read to `out`:
 * "cache":{"data":"<the event's data string>","ttl":<seconds left>}.
 * Appends nothing and returns 0 when nothing is stored, as Pusher leaves
 * the attribute out while the cache is empty. Returns -1 (appending
 * nothing) when the reply or the stored frame has an unexpected shape. */
int cache_render_attribute(struct strbuf *out, const struct redisReply *reply);

#endif
