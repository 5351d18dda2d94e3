/* The gateway's local channel index and its Redis topic subscriptions.
 *
 * Interest-based routing: a gateway SUBSCRIBEs a channel's topic when its
 * first local client subscribes and UNSUBSCRIBEs after the last one leaves.
 * A client's subscription_succeeded is sent only once Redis has confirmed
 * the topic, so every event published after the client saw the
 * confirmation reaches it. */
#ifndef HERALD_GATEWAY_CHANNELS_H
#define HERALD_GATEWAY_CHANNELS_H

#include <stddef.h>

#include "connection.h"
#include "presence.h"

/* Prefix of the internal channel on which a user's online and offline
 * watchlist events arrive; never visible to clients. */
#define CHANNELS_WATCHLIST_PREFIX "#watchlist-"

void channels_init(void);
void channels_shutdown(void);

/* Subscribes `conn` to `name`; the caller has checked the name and auth.
 * Sends subscription_succeeded now when the topic is already in place,
 * otherwise when Redis confirms it. For a presence channel `member` is the
 * identity to join with (ownership passes to the subscription) and the
 * confirmation waits for the join script too. Returns 0, or -1 when `conn`
 * is already subscribed (or subscribing) to that channel. */
int channels_subscribe(struct connection *conn, const char *name, struct presence_member *member);

/* Completes a presence join: sends the snapshot in `frame` and the held
 * member events it does not cover, or the error for a full channel. */
void channels_presence_joined(struct connection *conn, struct presence_member *member,
                              enum presence_join_result result, unsigned long long seq,
                              const char *frame, size_t frame_len);

/* Re-registers this node's subscriptions and presence members in Redis
 * after the command connection (re)connects, then resumes pending joins. */
void channels_sync_node_state(void);

/* Returns the subscription of `conn` to `name`, or NULL. */
struct subscription *channels_find(struct connection *conn, const char *name);

/* Removes `conn` from `name`. Returns 0, or -1 when it was not subscribed. */
int channels_unsubscribe(struct connection *conn, const char *name);

/* Removes every subscription of a closing connection. */
void channels_unsubscribe_all(struct connection *conn);

/* Makes every local presence member leave now, while its connection
 * stays open: a draining gateway's users leave the others' member lists
 * at once instead of when their connections close. */
void channels_leave_presence(void);

/* Number of channels with local subscribers, for logs and metrics. */
size_t channels_count(void);

#endif
