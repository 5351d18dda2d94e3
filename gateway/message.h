/* Outbound frames shared by every recipient, and the per-connection queue.
 *
 * A broadcast frame is copied once per gateway into a `message` and then
 * referenced, not copied, by each subscriber's queue. Only the unsent rest
 * of a partly written frame is copied, into libwebsockets' own buffer.
 *
 * The buffer carries LWS_PRE bytes of headroom in front of the payload
 * because lws_write() builds the WebSocket header there. Every recipient
 * gets the same header (server frames are never masked), so rewriting the
 * shared headroom for each write is harmless, and all writes happen on the
 * one loop thread. message_new() puts the same header there too, so the
 * writev path sends header and payload as one span. */
#ifndef HERALD_GATEWAY_MESSAGE_H
#define HERALD_GATEWAY_MESSAGE_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#define MESSAGE_STATIC_REFS UINT32_MAX

struct message {
    uint32_t refs; /* MESSAGE_STATIC_REFS for messages that are never freed */
    uint32_t len;
    uint64_t published_us; /* publisher's wall clock, 0 when unknown */
    /* The WebSocket frame header of this payload as a final text frame,
     * for writing frames without libwebsockets (see connections_flush). */
    uint8_t header[10];
    uint8_t header_len;
    unsigned char buf[]; /* LWS_PRE headroom, then `len` payload bytes */
};

/* Allocates a message holding a copy of `frame`, with no references yet. */
struct message *message_new(const char *frame, size_t len);

static inline unsigned char *message_payload(struct message *m)
{
    return m->buf + LWS_PRE;
}

static inline void message_ref(struct message *m)
{
    if (m->refs != MESSAGE_STATIC_REFS)
        m->refs++;
}

/* Allocates a message that is never freed, for fixed frames such as
 * pusher:pong that every connection may share. */
struct message *message_new_static(const char *frame);

/* Drops one reference and frees the message when none remain. */
void message_unref(struct message *m);

/* Frees a message that was never queued anywhere (refs still 0). */
void message_release_if_unused(struct message *m);

/* FIFO ring of message references, grown by doubling. A ring of up to 16
 * slots is kept when it empties, so a steady stream of deliveries
 * allocates nothing. A larger one, grown by a burst, is freed then. A
 * connection that only ever got frames written at once never allocates it.
 * `bytes` is the payload still to be written. */
struct message_queue {
    struct message **items;
    uint32_t head;
    uint32_t count;
    uint32_t capacity;
    /* Queued bytes, at most max_outbound_queue_bytes (an int) plus one
     * frame, which the relay's body limit keeps far below 4 GiB. */
    uint32_t bytes;
};

void message_queue_push(struct message_queue *q, struct message *m);
struct message *message_queue_peek(const struct message_queue *q);
void message_queue_pop(struct message_queue *q);

/* Unreferences everything still queued and frees the ring. */
void message_queue_clear(struct message_queue *q);

/* Messages held back while a subscription waits for Redis, in arrival
 * order, each with the member event sequence number it carried (0 for
 * other events). */
struct message_hold {
    struct message **messages;
    unsigned long long *seqs;
    uint32_t count;
    uint32_t capacity;
};

void message_hold_push(struct message_hold *hold, struct message *m, unsigned long long seq);

/* Unreferences every held message and frees the arrays. */
void message_hold_clear(struct message_hold *hold);

#endif
