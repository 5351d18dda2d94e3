/* Presence channels: the member side of one presence subscription, and
 * the Redis scripts that join and leave.
 *
 * The member list lives only in Redis (scripts.h). Per presence
 * subscription, a gateway keeps the member identity it joined with and,
 * while the join is in flight, the member events that arrive before the
 * snapshot. */
#ifndef HERALD_GATEWAY_PRESENCE_H
#define HERALD_GATEWAY_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "connection.h"
#include "message.h"

struct presence_join;

struct presence_member {
    char *user_id;   /* canonical string form; a numeric id becomes its digits */
    char *user_info; /* JSON text, or "" when channel_data had none */
    struct presence_join *join; /* the join script in flight, or NULL */
    bool joined;     /* Redis lists this socket as a member */

    /* Sequence number of the last member event this subscriber has seen,
     * starting at its snapshot's. The snapshot reply and the events travel
     * on different Redis connections, so an event the snapshot already
     * contains can arrive after it and must be dropped. */
    unsigned long long last_seq;

    /* Member events received while the join was in flight; delivered
     * after the snapshot unless it already contains them. */
    struct message_hold held;
};

enum presence_join_result {
    PRESENCE_JOINED,
    PRESENCE_FULL,     /* the app's member limit is reached */
    PRESENCE_RETRY,    /* Redis went away; join again after the reconnect */
};

struct presence_member *presence_member_new(const char *user_id, const char *user_info);

/* Frees the member and whatever it holds; cancels a join in flight. */
void presence_member_free(struct presence_member *member);

void presence_hold(struct presence_member *member, struct message *m, unsigned long long seq);

/* Runs the join script for `conn` on `channel`; the outcome arrives through
 * channels_presence_joined(). Returns -1 when Redis is not connected. */
int presence_send_join(struct connection *conn, const char *channel,
                       struct presence_member *member);

/* Runs the leave script; the result is not needed. */
void presence_send_leave(struct connection *conn, const char *channel);

#endif
