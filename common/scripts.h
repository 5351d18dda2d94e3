/* Lua scripts that change the cluster's shared state in Redis.
 *
 * Each script changes the state and publishes the matching member event in
 * one atomic step, so every gateway receives membership changes in the same
 * order. Every presence change also increments the channel's sequence
 * number, which travels in the envelope header; a gateway that takes a
 * member snapshot discards the events its snapshot already contains.
 *
 * All scripts take the key prefix, app id and channel name as arguments
 * and build key names themselves (keys.h documents the names).
 * Webhooks: when P webhook-apps has a field for the app, holding
 * "<event type bits>:<stream max length>" (bits of enum webhook_event in
 * config.h), the scripts also append a job for each wanted event to the
 * stream P webhooks:{app}: channel_occupied and channel_vacated when the
 * cluster-wide subscription count leaves or reaches 0, member_added and
 * member_removed on the same transitions as the member events, and
 * subscription_count when one is published. Each job has the fields
 * time_ms, name, channel and, by type, user_id or subscription_count.
 *
 * NOTE: building keys inside a script works on a single Redis or a
 * Sentinel primary, not on Redis Cluster, where each key would have to be
 * declared in KEYS and the node-wide keys live in other slots. */
#ifndef HERALD_SCRIPTS_H
#define HERALD_SCRIPTS_H

/* ARGV: prefix, app, channel, socket_id, user_id, user_info JSON (or ""),
 *       node_id, max_members (0 = unlimited)
 * Returns {"ok", seq, {user_id, user_info, ...}} or {"full"}.
 * Publishes member_added (excluding socket_id) when the user's connection
 * count in the channel goes from 0 to 1. */
extern const char scripts_presence_join[];

/* ARGV: prefix, app, channel, socket_id, node_id
 * Publishes member_removed when the user's last connection leaves.
 * Returns 1 when the socket was a member, else 0. */
extern const char scripts_presence_leave[];

/* ARGV: prefix, app, channel, node_id, count[, interval_ms]
 * Records how many local subscriptions this node has on the channel and
 * keeps the app's set of occupied channels. With interval_ms > 0 it also
 * publishes pusher_internal:subscription_count when the cluster-wide
 * count changed, at most once per interval for the whole cluster. Returns
 * 0, or the milliseconds to wait before calling again because a changed
 * count could not be sent yet. */
extern const char scripts_channel_count[];

/* ARGV: prefix, node_id, ttl_ms, then entries:
 *   "p", app, channel, socket_id, user_id, user_info   (presence member)
 *   "c", app, channel, count                            (subscription count)
 * Refreshes the node's heartbeat and makes the node's recorded state equal
 * the entries: members it no longer has leave (with member_removed), and
 * members Redis lost are added again with member_added. Clients whose
 * member snapshot already lists them drop that event by its sequence
 * number; clients that took their snapshot before the re-add need it. */
extern const char scripts_node_sync[];

/* ARGV: prefix, node_id of the caller
 * Removes the state of every node whose heartbeat expired, as if each of
 * its connections had left. Returns the ids of the nodes removed. */
extern const char scripts_node_reap[];

/* ARGV: prefix, node_id, then pairs of app id and this node's connection
 * count for that app. Records the counts in P conns:{app} (one field per
 * node) and returns each app's total across the cluster, in order. */
extern const char scripts_app_connections[];

/* Watchlists: P online:{app} counts each user's signed-in connections
 * across the cluster. When a user's count goes from 0 to 1 or from 1 to 0,
 * the scripts publish pusher_internal:watchlist_events ("online" or
 * "offline") on the internal channel "#watchlist-<user_id>", which the
 * connections watching that user subscribe to. */

/* ARGV: prefix, app, user_id, socket_id, node_id, then watched user ids.
 * Records a signed-in connection and returns, per watched id, 1 when that
 * user is online and 0 when not. */
extern const char scripts_user_online[];

/* ARGV: prefix, app, user_id, socket_id, node_id
 * Forgets a signed-in connection that closed. */
extern const char scripts_user_offline[];

#endif
