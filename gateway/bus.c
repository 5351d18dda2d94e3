#include "bus.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "log.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000

static struct {
    const struct bus_callbacks *callbacks;
    redisAsyncContext *context;
    uv_timer_t retry_timer;
    bool connected;  /* connected and authenticated */
    bool stopping;
    bool outage_logged;
    uint64_t outage_started_ms;
    uint64_t backoff_ms;
} bus;

static void bus_connect(void);

/* ---- reconnecting ----------------------------------------------------- */

static void on_retry_timer(uv_timer_t *timer)
{
    (void)timer;
    bus_connect();
}

static void schedule_reconnect(const char *reason)
{
    if (bus.stopping)
        return;

    if (!bus.outage_logged) {
        log_warn("redis pubsub: connection to %s:%d lost or refused (%s); reconnecting with backoff",
                 gateway.config.redis.host, gateway.config.redis.port, reason);
        bus.outage_logged = true;
        bus.outage_started_ms = gateway_now_ms();
        bus.backoff_ms = BACKOFF_FIRST_MS;
    } else {
        log_debug("redis pubsub: reconnect failed (%s); next try in %llu ms", reason,
                  (unsigned long long)bus.backoff_ms);
    }

    /* Up to a quarter of jitter, so gateways that lost Redis together do
     * not all come back in the same millisecond. */
    uint64_t delay = bus.backoff_ms + (uint64_t)(rand() % (int)(bus.backoff_ms / 4 + 1));
    uv_timer_start(&bus.retry_timer, on_retry_timer, delay, 0);
    bus.backoff_ms *= 2;
    if (bus.backoff_ms > BACKOFF_MAX_MS)
        bus.backoff_ms = BACKOFF_MAX_MS;
}

static void mark_ready(void)
{
    bus.connected = true;
    if (bus.outage_logged) {
        log_info("redis pubsub: reconnected to %s:%d after %llu ms", gateway.config.redis.host,
                 gateway.config.redis.port,
                 (unsigned long long)(gateway_now_ms() - bus.outage_started_ms));
        bus.outage_logged = false;
    } else {
        log_info("redis pubsub: connected to %s:%d", gateway.config.redis.host,
                 gateway.config.redis.port);
    }
    bus.callbacks->connected();
}

/* ---- hiredis callbacks ------------------------------------------------ */

static void on_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    if (!reply)
        return; /* connection went away; the disconnect callback handles it */

    if (reply->type == REDIS_REPLY_ERROR) {
        /* Logged every time: a wrong password is a configuration error the
         * operator must see, and backoff keeps the rate low. */
        log_error("redis pubsub: AUTH failed: %s", reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    mark_ready();
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback. */
        bus.context = NULL;
        schedule_reconnect(ac->errstr);
        return;
    }

    const struct redis_config *redis = &gateway.config.redis;
    redisAsyncContext *context = (redisAsyncContext *)ac;
    if (redis->password && redis->username)
        redisAsyncCommand(context, on_auth_reply, NULL, "AUTH %s %s", redis->username,
                          redis->password);
    else if (redis->password)
        redisAsyncCommand(context, on_auth_reply, NULL, "AUTH %s", redis->password);
    else
        mark_ready();
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    bool was_connected = bus.connected;
    bus.context = NULL;
    bus.connected = false;
    if (was_connected)
        bus.callbacks->disconnected();
    if (status != REDIS_OK || !bus.stopping)
        schedule_reconnect(ac->errstr[0] ? ac->errstr : "closed by server");
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
            bus.callbacks->message(topic->str, topic->len, payload->str, payload->len);
    } else if (strcmp(kind->str, "subscribe") == 0) {
        bus.callbacks->subscribed(topic->str, topic->len);
    } else if (strcmp(kind->str, "unsubscribe") == 0) {
        bus.callbacks->unsubscribed(topic->str, topic->len);
    }
}

/* ---- public API ------------------------------------------------------- */

static void bus_connect(void)
{
    redisAsyncContext *ac = redisAsyncConnect(gateway.config.redis.host, gateway.config.redis.port);
    if (!ac) {
        schedule_reconnect("out of memory");
        return;
    }
    if (ac->err) {
        char reason[128];
        snprintf(reason, sizeof reason, "%s", ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(reason);
        return;
    }

    bus.context = ac;
    redisLibuvAttach(ac, gateway.loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

void bus_start(const struct bus_callbacks *callbacks)
{
    bus.callbacks = callbacks;
    uv_timer_init(gateway.loop, &bus.retry_timer);
    bus_connect();
}

void bus_stop(void)
{
    bus.stopping = true;
    uv_timer_stop(&bus.retry_timer);
    uv_close((uv_handle_t *)&bus.retry_timer, NULL);
    if (bus.context)
        redisAsyncDisconnect(bus.context);
}

bool bus_connected(void)
{
    return bus.connected;
}

int bus_subscribe(const char *topic, size_t len)
{
    if (!bus.connected)
        return -1;
    return redisAsyncCommand(bus.context, on_pubsub_reply, NULL, "SUBSCRIBE %b", topic, len) ==
                   REDIS_OK
               ? 0
               : -1;
}

int bus_unsubscribe(const char *topic, size_t len)
{
    if (!bus.connected)
        return -1;
    return redisAsyncCommand(bus.context, on_pubsub_reply, NULL, "UNSUBSCRIBE %b", topic, len) ==
                   REDIS_OK
               ? 0
               : -1;
}
