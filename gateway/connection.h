/* One client WebSocket connection.
 *
 * libwebsockets allocates this as the per-session data of each wsi, zeroed,
 * so a connection costs no allocation of its own until it subscribes or
 * queues frames. */
#ifndef HERALD_GATEWAY_CONNECTION_H
#define HERALD_GATEWAY_CONNECTION_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "message.h"

struct cache_fetch;
struct channel;
struct watchlist_request;
struct presence_member;
struct peer;

enum subscription_state {
    SUBSCRIPTION_PENDING = 0, /* waiting for Redis to confirm the topic */
    SUBSCRIPTION_JOINING,     /* presence: topic in place, join script in flight */
    SUBSCRIPTION_CACHING,     /* cache channel: succeeded sent, fetching the last event */
    SUBSCRIPTION_ACTIVE,      /* subscription_succeeded was sent */
};

/* One channel this connection subscribed to; `slot` is its index in the
 * channel's subscriber array, kept current when that array is compacted. */
struct subscription {
    struct channel *channel;
    struct presence_member *member; /* presence channels only, else NULL */
    struct cache_fetch *cache;      /* while SUBSCRIPTION_CACHING, else NULL */
    uint32_t slot;
    uint8_t state;
};

enum liveness_list {
    LIVENESS_NONE = 0,
    LIVENESS_IDLE,   /* waiting for inbound traffic */
    LIVENESS_PINGED, /* server ping sent, waiting for any frame */
};

/* "<node number>.<serial>": up to 10 digits, a dot and 16 digits of a
 * per-process serial, which no gateway reaches, and the NUL. */
#define SOCKET_ID_MAX 28

/* Fields are ordered by size so that the compiler adds no padding between
 * them: libwebsockets allocates this for every connection, and 16 bytes
 * here are 16 bytes of every idle connection's memory. */
struct connection {
    struct lws *wsi;
    const struct app_config *app;

    struct message_queue outbound;

    struct subscription *subscriptions;

    /* Inbound message assembly, used only for messages that arrive in
     * several fragments. */
    char *rx_buffer;

    /* Liveness: intrusive doubly linked list, ordered by `liveness_since`. */
    struct connection *liveness_prev;
    struct connection *liveness_next;
    uint64_t liveness_since;

    /* User authentication: set by a successful pusher:signin. */
    char *user_id;
    char *user_info; /* JSON text, or "" */
    struct watchlist_request *watchlist; /* initial watchlist state in flight */

    /* Sign-in deadline list, for apps that require user authentication:
     * intrusive FIFO ordered by connection time. */
    struct connection *signin_prev;
    struct connection *signin_next;
    uint64_t signin_since;

    struct connection *flush_next; /* in the list of connections to flush */
    struct peer *peer;    /* the address admission.c counted this under, or NULL */
    char *close_reason; /* allocated when closing starts; most connections never need one */

    uint32_t subscription_count;
    uint32_t subscription_capacity;
    uint32_t rx_length;

    /* Client event rate limit: events counted in the current one-second
     * window, which started at the low 32 bits of the loop clock. Unsigned
     * subtraction keeps the window right across the wrap. */
    uint32_t client_event_window_ms;
    uint32_t client_event_count;

    char socket_id[SOCKET_ID_MAX];
    uint16_t close_code;
    uint8_t liveness_list;
    bool send_protocol_ping;
    bool rx_oversize; /* dropping the rest of an over-long message */
    bool signin_pending;
    bool flush_queued;
    bool established; /* connection_established was queued */
    bool counted;     /* included in gateway.app_connections */
    bool origin_rejected; /* Origin header not allowed by the app */
    bool peer_rejected;   /* over max_connections_per_ip */
    bool closing;     /* close after the queue drains */
};

/* Queues `m` for this connection and requests a writable callback. A client
 * whose queue would exceed max_outbound_queue_bytes is closed instead. */
void connection_send(struct connection *conn, struct message *m);

/* Queues `m` without writing; connections_flush() writes every queued
 * connection's frames with one writev each. For the broadcast path, which
 * runs inside a batch of Redis messages. */
void connection_queue(struct connection *conn, struct message *m);

/* Writes what connection_queue() queued since the last flush. */
void connections_flush(void);

/* Renders nothing; copies `frame` into a new message for this connection only. */
void connection_send_frame(struct connection *conn, const char *frame, size_t len);

/* Sends pusher:error with `code` (or null when code < 0) and keeps the connection. */
void connection_send_error(struct connection *conn, int code, const char *message);

/* Sends pusher:error with `code`, then closes with the same code once
 * everything queued before it is written. */
void connection_close_with_error(struct connection *conn, int code, const char *message);

/* Closes with `code` after the queue drains, without a pusher:error frame. */
void connection_close(struct connection *conn, int code, const char *reason);

#endif
