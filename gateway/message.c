#include "message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *checked_alloc(void *p, size_t size)
{
    if (!p) {
        fprintf(stderr, "herald-gateway: out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

struct message *message_new(const char *frame, size_t len)
{
    size_t size = sizeof(struct message) + LWS_PRE + len;
    struct message *m = checked_alloc(malloc(size), size);
    m->refs = 0;
    m->len = (uint32_t)len;
    m->published_us = 0;

    /* RFC 6455 section 5.2: FIN + text opcode, then the unmasked length in
     * 7 bits, 16 bits or 64 bits. */
    m->header[0] = 0x81;
    if (len < 126) {
        m->header[1] = (uint8_t)len;
        m->header_len = 2;
    } else if (len < 65536) {
        m->header[1] = 126;
        m->header[2] = (uint8_t)(len >> 8);
        m->header[3] = (uint8_t)len;
        m->header_len = 4;
    } else {
        m->header[1] = 127;
        for (int i = 0; i < 8; i++)
            m->header[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        m->header_len = 10;
    }
    /* The same header right in front of the payload lets a writev send
     * the whole frame from one iovec. lws_write() writes these same bytes
     * there again, so the copy stays valid. */
    memcpy(m->buf + LWS_PRE - m->header_len, m->header, m->header_len);
    memcpy(m->buf + LWS_PRE, frame, len);
    return m;
}

struct message *message_new_static(const char *frame)
{
    struct message *m = message_new(frame, strlen(frame));
    m->refs = MESSAGE_STATIC_REFS;
    return m;
}

void message_unref(struct message *m)
{
    if (m->refs == MESSAGE_STATIC_REFS)
        return;
    if (--m->refs == 0)
        free(m);
}

void message_release_if_unused(struct message *m)
{
    if (m->refs == 0)
        free(m);
}

void message_queue_push(struct message_queue *q, struct message *m)
{
    if (q->count == q->capacity) {
        uint32_t capacity = q->capacity ? q->capacity * 2 : 4;
        size_t size = capacity * sizeof *q->items;
        struct message **items = checked_alloc(malloc(size), size);
        /* Unroll the ring so the oldest entry sits at index 0. */
        for (uint32_t i = 0; i < q->count; i++)
            items[i] = q->items[(q->head + i) & (q->capacity - 1)];
        free(q->items);
        q->items = items;
        q->capacity = capacity;
        q->head = 0;
    }

    q->items[(q->head + q->count) & (q->capacity - 1)] = m;
    q->count++;
    q->bytes += m->len;
    message_ref(m);
}

struct message *message_queue_peek(const struct message_queue *q)
{
    return q->count ? q->items[q->head] : NULL;
}

/* Rings larger than this are freed when they empty, because a burst can
 * grow every connection's ring to hundreds of slots. Smaller rings are
 * kept, so steady traffic allocates nothing. */
#define QUEUE_KEEP_CAPACITY 16

void message_queue_pop(struct message_queue *q)
{
    struct message *m = q->items[q->head];
    q->head = (q->head + 1) & (q->capacity - 1);
    q->count--;
    q->bytes -= m->len;
    message_unref(m);
    if (q->count == 0 && q->capacity > QUEUE_KEEP_CAPACITY) {
        free(q->items);
        q->items = NULL;
        q->capacity = 0;
        q->head = 0;
    }
}

void message_queue_clear(struct message_queue *q)
{
    while (q->count)
        message_queue_pop(q);
    free(q->items);
    memset(q, 0, sizeof *q);
}

void message_hold_push(struct message_hold *hold, struct message *m, unsigned long long seq)
{
    if (hold->count == hold->capacity) {
        uint32_t capacity = hold->capacity ? hold->capacity * 2 : 4;
        hold->messages = checked_alloc(realloc(hold->messages, capacity * sizeof *hold->messages),
                                       capacity * sizeof *hold->messages);
        hold->seqs = checked_alloc(realloc(hold->seqs, capacity * sizeof *hold->seqs),
                                   capacity * sizeof *hold->seqs);
        hold->capacity = capacity;
    }
    message_ref(m);
    hold->messages[hold->count] = m;
    hold->seqs[hold->count] = seq;
    hold->count++;
}

void message_hold_clear(struct message_hold *hold)
{
    for (uint32_t i = 0; i < hold->count; i++)
        message_unref(hold->messages[i]);
    free(hold->messages);
    free(hold->seqs);
    memset(hold, 0, sizeof *hold);
}
