/* The ingest's pub/sub connection. hiredis 0.14 runs a pattern's callback
 * for the psubscribe confirmation, each pmessage and the punsubscribe
 * confirmation. A new PSUBSCRIBE is sent only after the punsubscribe of
 * the previous one is confirmed, so the two never overlap. */
#include "ingest_subscriber.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"

#define SUBSCRIBER_BACKOFF_INITIAL_MS 100
#define SUBSCRIBER_BACKOFF_MAX_MS 5000
#define SUBSCRIBER_CONNECT_TIMEOUT_MS 5000

enum subscriber_link {
    LINK_WAITING,    /* no connection; the retry timer is pending */
    LINK_CONNECTING, /* TCP connect or AUTH still in progress */
    LINK_READY,
    LINK_CLOSED,
};

enum subscriber_pattern {
    PATTERN_NONE,
    PATTERN_SUBSCRIBING,   /* PSUBSCRIBE sent, not yet confirmed */
    PATTERN_ACTIVE,
    PATTERN_UNSUBSCRIBING, /* PUNSUBSCRIBE sent, not yet confirmed */
};

struct ingest_subscriber {
    struct event_base *base;
    const struct redis_config *redis;
    char *pattern;
    size_t pattern_len;
    ingest_message_fn *on_message;
    ingest_connection_lost_fn *on_lost;
    void *arg;

    redisAsyncContext *ctx; /* NULL while waiting to reconnect */
    enum subscriber_link link;
    enum subscriber_pattern pattern_state;
    bool wanted;
    bool auth_pending;
    uint64_t attempt_started_ms;

    struct event *retry_timer;
    struct event *connect_timer;
    int backoff_ms;
    bool outage_logged; /* one warning per outage */
    bool ever_ready;
    char last_auth_failure[256]; /* logged already; cleared once ready */

    unsigned long long dropped;
};

static void subscriber_connect(struct ingest_subscriber *sub);
static void subscriber_sync(struct ingest_subscriber *sub);

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval timeval_from_ms(int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return tv;
}

/* ------------------------------------------------------------------------
 * Losing and regaining the connection
 * ------------------------------------------------------------------------ */

/* Records that the connection or attempt is gone and schedules the next
 * attempt. The caller has detached or freed the hiredis context. */
static void subscriber_handle_loss(struct ingest_subscriber *sub, const char *reason)
{
    bool was_ready = sub->link == LINK_READY;
    sub->ctx = NULL;
    sub->pattern_state = PATTERN_NONE;
    sub->auth_pending = false;
    evtimer_del(sub->connect_timer);

    if (was_ready) {
        log_warn("ingest: pub/sub connection lost: %s; reconnecting with backoff up to %d ms",
                 reason, SUBSCRIBER_BACKOFF_MAX_MS);
        sub->outage_logged = true;
        sub->backoff_ms = SUBSCRIBER_BACKOFF_INITIAL_MS;
    } else if (!sub->outage_logged) {
        log_warn("ingest: cannot open the pub/sub connection to %s:%d: %s; retrying with "
                 "backoff up to %d ms",
                 sub->redis->host, sub->redis->port, reason, SUBSCRIBER_BACKOFF_MAX_MS);
        sub->outage_logged = true;
    } else {
        log_debug("ingest: pub/sub connect attempt failed: %s", reason);
    }

    sub->link = LINK_WAITING;
    struct timeval delay = timeval_from_ms(sub->backoff_ms);
    evtimer_add(sub->retry_timer, &delay);
    sub->backoff_ms *= 2;
    if (sub->backoff_ms > SUBSCRIBER_BACKOFF_MAX_MS)
        sub->backoff_ms = SUBSCRIBER_BACKOFF_MAX_MS;

    if (was_ready && sub->on_lost)
        sub->on_lost(sub->arg);
}

/* Drops the connection from our side. hiredis runs the pending callbacks
 * with a NULL reply before this returns; they find the context detached. */
static void subscriber_drop(struct ingest_subscriber *sub, const char *reason)
{
    redisAsyncContext *ctx = sub->ctx;
    if (!ctx)
        return;
    sub->ctx = NULL;
    redisAsyncFree(ctx);
    subscriber_handle_loss(sub, reason);
}

static void subscriber_become_ready(struct ingest_subscriber *sub)
{
    evtimer_del(sub->connect_timer);
    if (sub->ever_ready)
        log_info("ingest: pub/sub connection to %s:%d restored", sub->redis->host,
                 sub->redis->port);
    sub->link = LINK_READY;
    sub->ever_ready = true;
    sub->outage_logged = false;
    sub->last_auth_failure[0] = '\0';
    sub->backoff_ms = SUBSCRIBER_BACKOFF_INITIAL_MS;
    subscriber_sync(sub);
}

/* ------------------------------------------------------------------------
 * hiredis callbacks
 * ------------------------------------------------------------------------ */

static void subscriber_on_connect(const redisAsyncContext *ac, int status)
{
    struct ingest_subscriber *sub = ac->data;
    if (sub->ctx != ac)
        return;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        subscriber_handle_loss(sub, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }

    /* Probes a peer that vanished without closing the connection, such as
     * a Redis host that lost power, which would otherwise look idle. */
    redisEnableKeepAlive((redisContext *)&ac->c);
    if (!sub->auth_pending)
        subscriber_become_ready(sub);
}

static void subscriber_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct ingest_subscriber *sub = ac->data;
    if (sub->ctx != ac)
        return;
    subscriber_handle_loss(sub, status != REDIS_OK && ac->errstr[0] ? ac->errstr
                                                                     : "closed by the server");
}

static void subscriber_on_auth(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    (void)privdata;
    struct ingest_subscriber *sub = ac->data;
    redisReply *reply = reply_ptr;
    if (!reply || sub->ctx != ac)
        return;

    sub->auth_pending = false;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* A wrong password is a configuration error: logged once, not at
         * every retry. */
        if (strcmp(sub->last_auth_failure, reply->str) != 0) {
            log_error("ingest: AUTH on the pub/sub connection failed: %s", reply->str);
            snprintf(sub->last_auth_failure, sizeof sub->last_auth_failure, "%s", reply->str);
        }
        /* Detached first, so the disconnect callback leaves the state alone. */
        sub->ctx = NULL;
        redisAsyncDisconnect(ac);
        subscriber_handle_loss(sub, "AUTH failed");
        return;
    }
    /* The reply comes after the connect callback, which left the setup
     * to this one. */
    subscriber_become_ready(sub);
}

/* Runs for the psubscribe and punsubscribe confirmations and each pmessage. */
static void subscriber_on_pattern(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    (void)privdata;
    struct ingest_subscriber *sub = ac->data;
    redisReply *reply = reply_ptr;
    if (!reply || sub->ctx != ac)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;

    const char *kind = reply->element[0]->str;
    if (strcasecmp(kind, "pmessage") == 0 && reply->elements == 4) {
        const redisReply *channel = reply->element[2];
        const redisReply *payload = reply->element[3];
        if (channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING)
            return;
        if (sub->pattern_state != PATTERN_ACTIVE || !sub->wanted) {
            sub->dropped++;
            return;
        }
        sub->on_message(sub->arg, channel->str, channel->len, payload->str, payload->len);
        return;
    }

    if (strcasecmp(kind, "psubscribe") == 0) {
        if (sub->pattern_state == PATTERN_SUBSCRIBING) {
            sub->pattern_state = PATTERN_ACTIVE;
            log_info("ingest: subscribed to the Redis channels matching \"%s\"", sub->pattern);
        }
        return;
    }

    if (strcasecmp(kind, "punsubscribe") == 0) {
        sub->pattern_state = PATTERN_NONE;
        log_info("ingest: unsubscribed from the Redis channels matching \"%s\"", sub->pattern);
        subscriber_sync(sub);
    }
}

/* ------------------------------------------------------------------------
 * Subscribing
 * ------------------------------------------------------------------------ */

/* Brings the subscription in line with `wanted`, when the connection is
 * ready and no confirmation is outstanding. */
static void subscriber_sync(struct ingest_subscriber *sub)
{
    if (sub->link != LINK_READY)
        return;

    if (sub->wanted && sub->pattern_state == PATTERN_NONE) {
        if (redisAsyncCommand(sub->ctx, subscriber_on_pattern, NULL, "PSUBSCRIBE %b",
                              sub->pattern, sub->pattern_len) == REDIS_OK)
            sub->pattern_state = PATTERN_SUBSCRIBING;
        else
            subscriber_drop(sub, "cannot queue PSUBSCRIBE");
        return;
    }

    if (!sub->wanted &&
        (sub->pattern_state == PATTERN_SUBSCRIBING || sub->pattern_state == PATTERN_ACTIVE)) {
        if (redisAsyncCommand(sub->ctx, NULL, NULL, "PUNSUBSCRIBE %b", sub->pattern,
                              sub->pattern_len) == REDIS_OK)
            sub->pattern_state = PATTERN_UNSUBSCRIBING;
        else
            subscriber_drop(sub, "cannot queue PUNSUBSCRIBE");
    }
}

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

static void subscriber_connect(struct ingest_subscriber *sub)
{
    sub->link = LINK_CONNECTING;
    sub->attempt_started_ms = monotonic_ms();
    sub->auth_pending = false;

    /* Limit: like the publisher's, this resolves a host name with a
     * blocking getaddrinfo. */
    redisAsyncContext *ctx = redisAsyncConnect(sub->redis->host, sub->redis->port);
    if (!ctx) {
        subscriber_handle_loss(sub, "out of memory");
        return;
    }
    if (ctx->err) {
        char reason[sizeof ctx->errstr];
        snprintf(reason, sizeof reason, "%s", ctx->errstr);
        redisAsyncFree(ctx);
        subscriber_handle_loss(sub, reason);
        return;
    }

    ctx->data = sub;
    sub->ctx = ctx;
    if (redisLibeventAttach(ctx, sub->base) != REDIS_OK) {
        subscriber_drop(sub, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ctx, subscriber_on_connect);
    redisAsyncSetDisconnectCallback(ctx, subscriber_on_disconnect);

    const struct redis_config *redis = sub->redis;
    if (redis->password) {
        int rc = redis->username
                     ? redisAsyncCommand(ctx, subscriber_on_auth, NULL, "AUTH %s %s",
                                         redis->username, redis->password)
                     : redisAsyncCommand(ctx, subscriber_on_auth, NULL, "AUTH %s",
                                         redis->password);
        sub->auth_pending = rc == REDIS_OK;
    }

    struct timeval timeout = timeval_from_ms(SUBSCRIBER_CONNECT_TIMEOUT_MS);
    evtimer_add(sub->connect_timer, &timeout);
}

static void subscriber_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    subscriber_connect(arg);
}

/* hiredis 0.14 has no connect timeout of its own. */
static void subscriber_on_connect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ingest_subscriber *sub = arg;
    if (sub->link == LINK_CONNECTING)
        subscriber_drop(sub, "connect timed out");
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

struct ingest_subscriber *ingest_subscriber_create(struct event_base *base,
                                                   const struct redis_config *redis,
                                                   const char *pattern,
                                                   ingest_message_fn *on_message,
                                                   ingest_connection_lost_fn *on_lost,
                                                   void *arg)
{
    struct ingest_subscriber *sub = calloc(1, sizeof *sub);
    if (!sub)
        return NULL;

    sub->base = base;
    sub->redis = redis;
    sub->on_message = on_message;
    sub->on_lost = on_lost;
    sub->arg = arg;
    sub->backoff_ms = SUBSCRIBER_BACKOFF_INITIAL_MS;
    sub->pattern = strdup(pattern);
    sub->retry_timer = evtimer_new(base, subscriber_on_retry_timer, sub);
    sub->connect_timer = evtimer_new(base, subscriber_on_connect_timer, sub);
    if (!sub->pattern || !sub->retry_timer || !sub->connect_timer) {
        ingest_subscriber_free(sub);
        return NULL;
    }
    sub->pattern_len = strlen(pattern);

    subscriber_connect(sub);
    return sub;
}

void ingest_subscriber_subscribe(struct ingest_subscriber *sub)
{
    sub->wanted = true;
    subscriber_sync(sub);
}

void ingest_subscriber_unsubscribe(struct ingest_subscriber *sub)
{
    sub->wanted = false;
    subscriber_sync(sub);
}

bool ingest_subscriber_ready(const struct ingest_subscriber *sub)
{
    return sub->link == LINK_READY;
}

bool ingest_subscriber_active(const struct ingest_subscriber *sub)
{
    return sub->wanted && sub->pattern_state == PATTERN_ACTIVE;
}

unsigned long long ingest_subscriber_dropped(const struct ingest_subscriber *sub)
{
    return sub->dropped;
}

void ingest_subscriber_free(struct ingest_subscriber *sub)
{
    if (!sub)
        return;

    sub->link = LINK_CLOSED;
    if (sub->ctx) {
        redisAsyncContext *ctx = sub->ctx;
        sub->ctx = NULL;
        redisAsyncFree(ctx);
    }
    if (sub->retry_timer)
        event_free(sub->retry_timer);
    if (sub->connect_timer)
        event_free(sub->connect_timer);
    free(sub->pattern);
    free(sub);
}
