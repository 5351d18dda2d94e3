/* User authentication on the gateway: the sign-in deadline of apps that
 * require it, and app-wide control messages such as terminating a user's
 * connections on every gateway. */
#ifndef HERALD_GATEWAY_USERS_H
#define HERALD_GATEWAY_USERS_H

#include <json-c/json.h>
#include <stddef.h>

#include "connection.h"

void users_start(void);
void users_stop(void);

/* Starts the sign-in deadline of a new connection when its app requires
 * user authentication. */
void users_track_unsigned(struct connection *conn);

/* Most user ids one watchlist may hold, as on Pusher. */
#define USERS_WATCHLIST_MAX 100

/* Records a successful sign-in (the caller has set conn->user_id): ends
 * the sign-in deadline and marks the user online across the cluster. For
 * a `watchlist` (user_data's array, or NULL) it subscribes the connection
 * to the watched users' online and offline events and sends their current
 * state in one pusher_internal:watchlist_events. */
void users_signed_in(struct connection *conn, json_object *watchlist);

/* Stops the sign-in deadline of a connection that is closing. */
void users_untrack(struct connection *conn);

/* Marks a closed, signed-in connection offline across the cluster. */
void users_connection_closed(struct connection *conn);

/* Subscribes the control topic of every configured app; called on every
 * pub/sub (re)connect. */
void users_subscribe_control_topics(void);

/* Handles a message on a topic that is not a channel. Returns 1 when it
 * was a control topic, else 0. */
int users_handle_control(const char *topic, size_t topic_len, const char *payload, size_t len);

#endif
