/* Handling of the Pusher frames a client sends. */
#ifndef HERALD_GATEWAY_PROTOCOL_H
#define HERALD_GATEWAY_PROTOCOL_H

#include <stddef.h>

#include "connection.h"

/* Handles one complete text message from `conn`. Bad input is answered
 * with pusher:error or pusher:subscription_error; the connection stays. */
void protocol_handle_message(struct connection *conn, const char *data, size_t len);

/* Parses the handshake path and query and sends connection_established,
 * or closes with the protocol's code. */
void protocol_handle_open(struct connection *conn, const char *path, const char *query_protocol,
                          int has_protocol);

#endif
