#include "redis_link.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

#include "gateway.h"
#include "log.h"
#include "redis_uv.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000

static void link_connect(struct redis_link *link);

/* ---- reconnecting ----------------------------------------------------- */

static void on_retry_timer(uv_timer_t *timer)
{
    link_connect(timer->data);
}

static void schedule_reconnect(struct redis_link *link, const char *reason)
{
    if (link->stopping)
        return;

    if (!link->outage_logged) {
        log_warn("redis %s: connection to %s:%d lost or refused (%s); reconnecting with backoff",
                 link->name, gateway.config.redis.host, gateway.config.redis.port, reason);
        link->outage_logged = true;
        link->outage_started_ms = gateway_now_ms();
        link->backoff_ms = BACKOFF_FIRST_MS;
    } else {
        log_debug("redis %s: reconnect failed (%s); next try in %llu ms", link->name, reason,
                  (unsigned long long)link->backoff_ms);
    }

    /* Up to a quarter of jitter, so gateways that lost Redis together do
     * not all come back in the same millisecond. */
    uint64_t delay = link->backoff_ms + (uint64_t)(rand() % (int)(link->backoff_ms / 4 + 1));
    uv_timer_start(&link->retry_timer, on_retry_timer, delay, 0);
    link->backoff_ms *= 2;
    if (link->backoff_ms > BACKOFF_MAX_MS)
        link->backoff_ms = BACKOFF_MAX_MS;
}

static void mark_ready(struct redis_link *link)
{
    link->connected = true;
    if (link->outage_logged) {
        link->reconnects++;
        log_info("redis %s: reconnected to %s:%d after %llu ms", link->name,
                 gateway.config.redis.host, gateway.config.redis.port,
                 (unsigned long long)(gateway_now_ms() - link->outage_started_ms));
        link->outage_logged = false;
    } else {
        log_info("redis %s: connected to %s:%d", link->name, gateway.config.redis.host,
                 gateway.config.redis.port);
    }
    link->ready(link);
}

/* ---- hiredis callbacks ------------------------------------------------ */

static void on_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_link *link = privdata;
    redisReply *reply = r;
    if (!reply)
        return; /* the disconnect callback handles a dropped connection */

    if (reply->type == REDIS_REPLY_ERROR) {
        /* Logged on every attempt: a wrong password is a configuration
         * error the operator must see, and the backoff keeps it rare. */
        log_error("redis %s: AUTH failed: %s", link->name, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    mark_ready(link);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *link = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        link->context = NULL;
        schedule_reconnect(link, ac->errstr);
        return;
    }

    const struct redis_config *redis = &gateway.config.redis;
    redisAsyncContext *context = (redisAsyncContext *)ac;
    if (redis->password && redis->username)
        redisAsyncCommand(context, on_auth_reply, link, "AUTH %s %s", redis->username,
                          redis->password);
    else if (redis->password)
        redisAsyncCommand(context, on_auth_reply, link, "AUTH %s", redis->password);
    else
        mark_ready(link);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *link = ac->data;
    bool was_connected = link->connected;
    (void)status;

    link->context = NULL;
    link->connected = false;
    if (was_connected)
        link->lost(link);
    schedule_reconnect(link, ac->errstr[0] ? ac->errstr : "closed by the server");
}

/* ---- public API ------------------------------------------------------- */

static void link_connect(struct redis_link *link)
{
    redisAsyncContext *ac = redisAsyncConnect(gateway.config.redis.host, gateway.config.redis.port);
    if (!ac) {
        schedule_reconnect(link, "out of memory");
        return;
    }
    if (ac->err) {
        char reason[128];
        snprintf(reason, sizeof reason, "%s", ac->errstr);
        redisAsyncFree(ac);
        schedule_reconnect(link, reason);
        return;
    }

    if (redis_uv_attach(ac, gateway.loop, link->after_read) != 0) {
        redisAsyncFree(ac);
        schedule_reconnect(link, "cannot watch the socket");
        return;
    }
    ac->data = link;
    link->context = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

void redis_link_start(struct redis_link *link)
{
    uv_timer_init(gateway.loop, &link->retry_timer);
    link->retry_timer.data = link;
    link_connect(link);
}

void redis_link_stop(struct redis_link *link)
{
    link->stopping = true;
    uv_timer_stop(&link->retry_timer);
    uv_close((uv_handle_t *)&link->retry_timer, NULL);
    if (link->context)
        redisAsyncDisconnect(link->context);
}

void redis_link_reset(struct redis_link *link, const char *reason)
{
    if (!link->context)
        return;
    log_warn("redis %s: dropping the connection: %s", link->name, reason);
    redisAsyncDisconnect(link->context);
}
