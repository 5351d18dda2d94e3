#include "bus.h"

#include <hiredis/hiredis.h>
#include <string.h>

#include "redis_link.h"

static const struct bus_callbacks *callbacks;
static struct redis_link pubsub_link;

static void on_link_ready(struct redis_link *unused)
{
    (void)unused;
    callbacks->connected();
}

static void on_link_lost(struct redis_link *unused)
{
    (void)unused;
    callbacks->disconnected();
}

/* One callback serves every topic: hiredis calls it for the subscribe and
 * unsubscribe confirmations and for each message on the topic. */
static void on_pubsub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    (void)privdata;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;

    redisReply *kind = reply->element[0];
    redisReply *topic = reply->element[1];
    if (kind->type != REDIS_REPLY_STRING || topic->type != REDIS_REPLY_STRING)
        return;

    if (strcmp(kind->str, "message") == 0) {
        redisReply *payload = reply->element[2];
        if (payload->type == REDIS_REPLY_STRING)
            callbacks->message(topic->str, topic->len, payload->str, payload->len);
    } else if (strcmp(kind->str, "subscribe") == 0) {
        callbacks->subscribed(topic->str, topic->len);
    } else if (strcmp(kind->str, "unsubscribe") == 0) {
        callbacks->unsubscribed(topic->str, topic->len);
    }
}

void bus_start(const struct bus_callbacks *cbs)
{
    callbacks = cbs;
    pubsub_link.name = "pubsub";
    pubsub_link.ready = on_link_ready;
    pubsub_link.lost = on_link_lost;
    pubsub_link.after_read = cbs->batch_done;
    redis_link_start(&pubsub_link);
}

void bus_stop(void)
{
    redis_link_stop(&pubsub_link);
}

bool bus_connected(void)
{
    return pubsub_link.connected;
}

uint64_t bus_reconnects(void)
{
    return pubsub_link.reconnects;
}

int bus_subscribe(const char *topic, size_t len)
{
    if (!pubsub_link.connected)
        return -1;
    return redisAsyncCommand(pubsub_link.context, on_pubsub_reply, NULL, "SUBSCRIBE %b", topic, len) ==
                   REDIS_OK
               ? 0
               : -1;
}

int bus_unsubscribe(const char *topic, size_t len)
{
    if (!pubsub_link.connected)
        return -1;
    return redisAsyncCommand(pubsub_link.context, on_pubsub_reply, NULL, "UNSUBSCRIBE %b", topic, len) ==
                   REDIS_OK
               ? 0
               : -1;
}
