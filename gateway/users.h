/* User authentication on the gateway: the sign-in deadline of apps that
 * require it, and app-wide control messages such as terminating a user's
 * connections on every gateway. */
#ifndef HERALD_GATEWAY_USERS_H
#define HERALD_GATEWAY_USERS_H

#include <stddef.h>

#include "connection.h"

void users_start(void);
void users_stop(void);

/* Starts the sign-in deadline of a new connection when its app requires
 * user authentication. */
void users_track_unsigned(struct connection *conn);

/* Records a successful sign-in; the caller has set conn->user_id. */
void users_signed_in(struct connection *conn);

/* Forgets a closing connection. */
void users_untrack(struct connection *conn);

/* Subscribes the control topic of every configured app; called on every
 * pub/sub (re)connect. */
void users_subscribe_control_topics(void);

/* Handles a message on a topic that is not a channel. Returns 1 when it
 * was a control topic, else 0. */
int users_handle_control(const char *topic, size_t topic_len, const char *payload, size_t len);

#endif
