/* Admission of new connections: the open-file limit and the number of
 * connections per client IP address.
 *
 * libwebsockets stops polling the listening socket once its own sockets
 * reach the per-thread descriptor limit, which the gateway sets below the
 * process's open-file limit. So accept() does not fail with EMFILE on
 * every loop turn while the listening socket stays readable.
 * This module picks that limit, counts sockets to log when accepting
 * pauses, and counts established connections per client address. */
#ifndef HERALD_GATEWAY_ADMISSION_H
#define HERALD_GATEWAY_ADMISSION_H

#include <libwebsockets.h>
#include <stdbool.h>

#include "connection.h"

/* Descriptors kept for everything but client sockets: Redis links, the
 * event loop, libwebsockets' own pipes, log output. NOTE: an estimate; a
 * gateway uses about 16 of them at start. */
#define ADMISSION_RESERVED_DESCRIPTORS 32

/* Below this many client sockets the limit is left to libwebsockets. */
#define ADMISSION_MIN_SOCKETS 16

/* Reads trusted_proxies. Returns -1, after logging why, when an entry is
 * invalid. */
int admission_start(void);

/* Returns the socket limit for libwebsockets' fd_limit_per_thread, from the
 * open-file limit minus the reserve, or 0 to keep libwebsockets' default. */
unsigned admission_socket_limit(void);

/* Checks a socket just accepted, before libwebsockets creates its wsi.
 * Returns false when its TCP peer (unless a trusted proxy) already has
 * max_connections_per_ip plus a tenth, at least 16, sockets at any stage,
 * and libwebsockets then closes the socket without a response. This bounds
 * unfinished handshakes, which the connection count does not include. */
bool admission_socket_accepted(int fd);

/* Counts a socket that libwebsockets created or destroyed, and logs when
 * the gateway stops and starts accepting connections at the limit. */
void admission_socket_created(void);
void admission_socket_destroyed(struct lws *wsi);

/* Attaches the peer that admission_socket_accepted() counted to the wsi
 * libwebsockets made of that socket, so its destroy releases the count. */
void admission_socket_instantiated(struct lws *wsi);

/* Records an established connection under its client's address: the TCP
 * peer, or the last X-Forwarded-For entry when the peer is a trusted proxy.
 * Returns false, without recording it, when that address already has
 * max_connections_per_ip connections on this gateway. */
bool admission_connection_opened(struct connection *conn);

/* Releases what admission_connection_opened() recorded; safe to call for a
 * connection it rejected or never saw. */
void admission_connection_closed(struct connection *conn);

/* Frees the per-address table at shutdown. */
void admission_free(void);

#endif
