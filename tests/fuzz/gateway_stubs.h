/* A stand-in for the parts of herald-gateway around gateway/protocol.c, so
 * the client frame parser runs without libwebsockets sockets or Redis.
 *
 * gateway_stubs.c defines the `gateway` global and replaces the sending
 * and closing functions of server.c, the channel index of channels.c, the
 * Redis calls of store.c and bus.c, and the connection lists of
 * liveness.c. Every frame
 * the code under test sends is checked as it is sent (see
 * gateway_stubs.c), and a failed check aborts. */
#ifndef HERALD_FUZZ_GATEWAY_STUBS_H
#define HERALD_FUZZ_GATEWAY_STUBS_H

#include <stdbool.h>

#include "connection.h"

/* Key and secret of the app that every fuzzed connection uses. */
#define FUZZ_APP_KEY "app-key"
#define FUZZ_APP_SECRET "app-secret"

/* The client frame harness gives its connections this socket_id, so seeds
 * can carry real signatures made for it. */
#define FUZZ_SOCKET_ID "1234.5678"

/* A channel or sign-in `auth` of "app-key:<this>" counts as correctly
 * signed, because a fuzzer cannot forge an HMAC and the code behind the
 * signature check would otherwise stay out of reach. The real check still
 * runs first on every `auth`. */
#define FUZZ_SIGNATURE_PLACEHOLDER "fuzz-signature"

/* Loads the apps of `config_json` into the gateway global and prepares a
 * libuv loop for the clock. Call once, before any connection.
 *
 * Frames published to other clients are always checked for valid UTF-8;
 * frames and close reasons sent back to the connection itself only when
 * the environment variable HERALD_FUZZ_STRICT_UTF8 is 1. NOTE: protocol.c
 * can cut a UTF-8 sequence in two when it quotes client input up to a
 * length limit (see docs/fuzzing.md), so that check stays opt-in until it
 * is fixed. */
void fuzz_gateway_init(const char *config_json);

/* Allocates a connection and opens it as the gateway does for a new
 * WebSocket: protocol_handle_open runs for `path` and the ?protocol=
 * value (NULL for none). */
struct connection *fuzz_connection_open(const char *path, const char *protocol);

/* Subscribes an open connection to `channel` directly, as if the client
 * had subscribed and Redis had confirmed it. On a presence channel the
 * connection joins as its signed-in user. */
void fuzz_connection_subscribe(struct connection *conn, const char *channel);

/* Hands one complete text message to protocol_handle_message, unless the
 * connection is closing, as server.c does. Script replies stay pending
 * until fuzz_gateway_deliver_replies. */
void fuzz_connection_receive(struct connection *conn, const char *data, size_t len);

/* Delivers every pending Redis script reply, as the loop does once the
 * replies arrive. */
void fuzz_gateway_deliver_replies(void);

/* Closes the connection as server.c does when its socket closes, and
 * frees it. Replies still pending for it arrive afterwards, if delivered. */
void fuzz_connection_close(struct connection *conn);

#endif
