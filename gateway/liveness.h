/* Server-side liveness checks.
 *
 * pusher-js only pings when it has heard nothing for activity_timeout, so a
 * client that receives a steady stream of events never sends anything. The
 * server therefore pings every connection that has been silent inbound for
 * activity_timeout, and closes it with 4201 when nothing arrives within
 * pong_timeout after that.
 *
 * Connections sit in two FIFO lists ordered by the time they entered, so
 * each timer tick looks only at the connections that are due. */
#ifndef HERALD_GATEWAY_LIVENESS_H
#define HERALD_GATEWAY_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>

#include "connection.h"

void liveness_start(void);
void liveness_stop(void);

/* Starts watching a new connection. */
void liveness_track(struct connection *conn);

/* Records inbound traffic: any frame proves the client is alive. */
void liveness_touch(struct connection *conn);

/* Stops watching a connection that is closing. */
void liveness_untrack(struct connection *conn);

/* Returns a connection that is open and not closing, or NULL when none
 * is left. Closing it removes it from the lists, so repeated calls walk
 * every connection. */
struct connection *liveness_any(void);

/* Stores up to `max` open, not closing connections for which `match`
 * returns true; returns how many were stored. Walks every connection, so
 * it is for rare administrative actions, never per event. */
size_t liveness_find(bool (*match)(struct connection *conn, void *arg), void *arg,
                     struct connection **out, size_t max);

#endif
