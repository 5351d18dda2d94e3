/* The Redis connection that carries every command of the relay: the
 * PUBLISH of triggers and the reads of the channel endpoints.
 *
 * hiredis 0.14's async API has neither a connect timeout nor a reply
 * timeout, so a watchdog timer supplies both: a connection that is not
 * ready after PUBLISHER_CONNECT_TIMEOUT_MS, or that leaves commands without
 * a reply for PUBLISHER_REPLY_TIMEOUT_MS, is dropped and reconnected. While
 * the connection is down the HTTP API responds 503, so the log gets one line
 * when an outage starts and one when it ends, never one per request. */
#include "publisher.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"

#define PUBLISHER_BACKOFF_INITIAL_MS 100
#define PUBLISHER_BACKOFF_MAX_MS 5000
#define PUBLISHER_CONNECT_TIMEOUT_MS 5000
/* NOTE: a guess. Long enough that a busy Redis is not mistaken for a dead
 * one, short enough that the HTTP client (Laravel's Guzzle gives up after
 * 30 s) still gets a 503 it can act on. */
#define PUBLISHER_REPLY_TIMEOUT_MS 10000
#define PUBLISHER_WATCHDOG_INTERVAL_MS 1000
/* Redis error replies are logged at most once per interval. */
#define PUBLISHER_ERROR_LOG_INTERVAL_MS 10000

enum publisher_state {
    PUBLISHER_WAITING,    /* no connection; the retry timer is pending */
    PUBLISHER_CONNECTING, /* TCP connect, AUTH or SELECT still in progress */
    PUBLISHER_READY,
    PUBLISHER_CLOSED,     /* publisher_close was called; no reconnect */
};

struct publisher {
    struct event_base *base;
    const struct redis_config *redis;

    redisAsyncContext *ctx; /* NULL while waiting to reconnect */
    enum publisher_state state;
    unsigned setup_replies_pending; /* AUTH and SELECT sent on this connection */
    uint64_t attempt_started_ms;

    struct event *retry_timer;
    struct event *watchdog_timer;
    int backoff_ms;

    /* Outage bookkeeping, so each outage is logged once. */
    bool ever_ready;
    bool outage_logged;
    uint64_t outage_started_ms;
    char last_setup_failure[256]; /* AUTH or SELECT error already logged */

    size_t replies_pending;
    uint64_t last_progress_ms; /* last reply, or when the queue became non-empty */
    unsigned long long reconnects; /* completed reconnects after a lost connection */

    uint64_t error_log_ms;
    unsigned long errors_not_logged;
};

/* One command waiting for its reply. A PUBLISH reports its outcome
 * through `publish_done`, any other command hands its reply to
 * `reply_done`; exactly one of them is set. */
struct command_call {
    struct publisher *pub;
    char command[16]; /* command name for the log, cut to fit */
    publish_done_fn *publish_done;
    publisher_reply_fn *reply_done;
    void *arg;
};

static void publisher_connect(struct publisher *pub);

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
 * Outages: logging and reconnecting
 * ------------------------------------------------------------------------ */

static void publisher_schedule_retry(struct publisher *pub)
{
    pub->state = PUBLISHER_WAITING;
    struct timeval delay = timeval_from_ms(pub->backoff_ms);
    evtimer_add(pub->retry_timer, &delay);

    pub->backoff_ms *= 2;
    if (pub->backoff_ms > PUBLISHER_BACKOFF_MAX_MS)
        pub->backoff_ms = PUBLISHER_BACKOFF_MAX_MS;
}

/* Logs a failed connection or attempt so that an outage costs one warning
 * however long it lasts. A rejected AUTH or SELECT is a configuration error
 * rather than an outage, so each distinct one is logged as an error. */
static void publisher_log_failure(struct publisher *pub, bool was_ready, const char *reason,
                                  bool setup_failure)
{
    if (was_ready) {
        log_warn("redis: connection lost: %s; reconnecting with backoff up to %d ms", reason,
                 PUBLISHER_BACKOFF_MAX_MS);
        pub->outage_logged = true;
    } else if (setup_failure && strcmp(pub->last_setup_failure, reason) != 0) {
        log_error("redis: %s", reason);
        snprintf(pub->last_setup_failure, sizeof pub->last_setup_failure, "%s", reason);
        pub->outage_logged = true;
    } else if (!pub->outage_logged) {
        log_warn("redis: cannot connect to %s:%d: %s; retrying with backoff up to %d ms",
                 pub->redis->host, pub->redis->port, reason, PUBLISHER_BACKOFF_MAX_MS);
        pub->outage_logged = true;
    } else {
        log_debug("redis: connect attempt failed: %s", reason);
    }
}

/* Records that the current connection or attempt is gone and schedules the
 * next attempt. The caller has already freed the hiredis context or hiredis
 * frees it right after the calling callback returns. */
static void publisher_handle_loss(struct publisher *pub, const char *reason, bool setup_failure)
{
    bool was_ready = pub->state == PUBLISHER_READY;
    pub->ctx = NULL;
    pub->setup_replies_pending = 0;

    if (was_ready) {
        pub->outage_started_ms = monotonic_ms();
        pub->backoff_ms = PUBLISHER_BACKOFF_INITIAL_MS;
    }
    publisher_log_failure(pub, was_ready, reason, setup_failure);
    publisher_schedule_retry(pub);
}

/* Drops the connection from our side (timeouts). hiredis runs the pending
 * reply callbacks with a NULL reply before this returns. */
static void publisher_drop(struct publisher *pub, const char *reason)
{
    redisAsyncContext *ctx = pub->ctx;
    if (!ctx)
        return;

    /* Detach first, so the disconnect callback that redisAsyncFree may run
     * finds a context that is no longer ours and leaves the state alone. */
    pub->ctx = NULL;
    redisAsyncFree(ctx);
    publisher_handle_loss(pub, reason, false);
}

static void publisher_become_ready(struct publisher *pub)
{
    uint64_t now = monotonic_ms();
    unsigned long long outage_ms = (unsigned long long)(now - pub->outage_started_ms);

    if (pub->ever_ready) {
        log_info("redis: reconnected after %llu ms", outage_ms);
        pub->reconnects++;
    }
    else if (pub->outage_logged)
        log_info("redis: connected to %s:%d after %llu ms", pub->redis->host,
                 pub->redis->port, outage_ms);
    else
        log_info("redis: connected to %s:%d", pub->redis->host, pub->redis->port);

    pub->state = PUBLISHER_READY;
    pub->ever_ready = true;
    pub->outage_logged = false;
    pub->last_setup_failure[0] = '\0';
    pub->backoff_ms = PUBLISHER_BACKOFF_INITIAL_MS;
    pub->last_progress_ms = now;
}

/* ------------------------------------------------------------------------
 * hiredis callbacks for the connection itself
 * ------------------------------------------------------------------------ */

static void publisher_on_connect(const redisAsyncContext *ac, int status)
{
    struct publisher *pub = ac->data;
    if (pub->ctx != ac)
        return;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        publisher_handle_loss(pub, ac->errstr[0] ? ac->errstr : "connect failed", false);
        return;
    }

    if (pub->setup_replies_pending == 0)
        publisher_become_ready(pub);
}

static void publisher_on_disconnect(const redisAsyncContext *ac, int status)
{
    struct publisher *pub = ac->data;
    if (pub->ctx != ac)
        return;

    const char *reason = "closed by the server";
    if (status != REDIS_OK && ac->errstr[0])
        reason = ac->errstr;
    publisher_handle_loss(pub, reason, false);
}

/* Reply to AUTH or SELECT, sent right after connecting. */
static void publisher_on_setup_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    struct publisher *pub = ac->data;
    const char *command = privdata;
    redisReply *reply = reply_ptr;

    /* A NULL reply means the connection is already going away; the
     * connect or disconnect callback reports why. */
    if (!reply || pub->ctx != ac)
        return;

    if (reply->type == REDIS_REPLY_ERROR) {
        char failure[sizeof pub->last_setup_failure];
        snprintf(failure, sizeof failure, "%s failed: %s", command, reply->str);

        /* hiredis defers a disconnect requested inside a reply callback
         * until the callback returns. Detaching the context first keeps
         * publisher_on_disconnect from reporting the loss a second time. */
        pub->ctx = NULL;
        redisAsyncDisconnect(ac);
        publisher_handle_loss(pub, failure, true);
        return;
    }

    if (--pub->setup_replies_pending == 0)
        publisher_become_ready(pub);
}

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

static void publisher_send_setup(struct publisher *pub)
{
    const struct redis_config *redis = pub->redis;

    /* Commands queued before the connection is up are sent in order once
     * it is, and Redis replies in the same order. PUBLISH is not queued
     * until these replies arrive, so it never runs unauthenticated. */
    if (redis->password) {
        int rc;
        if (redis->username)
            rc = redisAsyncCommand(pub->ctx, publisher_on_setup_reply, "AUTH", "AUTH %s %s",
                                   redis->username, redis->password);
        else
            rc = redisAsyncCommand(pub->ctx, publisher_on_setup_reply, "AUTH", "AUTH %s",
                                   redis->password);
        if (rc == REDIS_OK)
            pub->setup_replies_pending++;
    }

    if (redis->database != 0) {
        if (redisAsyncCommand(pub->ctx, publisher_on_setup_reply, "SELECT", "SELECT %d",
                              redis->database) == REDIS_OK)
            pub->setup_replies_pending++;
    }
}

static void publisher_connect(struct publisher *pub)
{
    pub->state = PUBLISHER_CONNECTING;
    pub->attempt_started_ms = monotonic_ms();
    pub->setup_replies_pending = 0;

    /* Limit: hiredis resolves a host name with a blocking getaddrinfo, so a
     * slow DNS server stalls the loop. An IP address or an /etc/hosts entry
     * avoids that. */
    redisAsyncContext *ctx = redisAsyncConnect(pub->redis->host, pub->redis->port);
    if (!ctx) {
        publisher_handle_loss(pub, "out of memory", false);
        return;
    }
    if (ctx->err) {
        char reason[sizeof ctx->errstr];
        snprintf(reason, sizeof reason, "%s", ctx->errstr);
        redisAsyncFree(ctx);
        publisher_handle_loss(pub, reason, false);
        return;
    }

    ctx->data = pub;
    pub->ctx = ctx;
    if (redisLibeventAttach(ctx, pub->base) != REDIS_OK) {
        publisher_drop(pub, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ctx, publisher_on_connect);
    redisAsyncSetDisconnectCallback(ctx, publisher_on_disconnect);
    publisher_send_setup(pub);
}

static void publisher_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    publisher_connect(arg);
}

/* Enforces the connect and reply timeouts that hiredis 0.14 lacks. */
static void publisher_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct publisher *pub = arg;
    uint64_t now = monotonic_ms();

    if (pub->state == PUBLISHER_CONNECTING &&
        now - pub->attempt_started_ms > PUBLISHER_CONNECT_TIMEOUT_MS) {
        publisher_drop(pub, "connect timed out");
        return;
    }

    if (pub->state == PUBLISHER_READY && pub->replies_pending > 0 &&
        now - pub->last_progress_ms > PUBLISHER_REPLY_TIMEOUT_MS) {
        char reason[128];
        snprintf(reason, sizeof reason, "no reply for %d ms with %zu commands waiting",
                 PUBLISHER_REPLY_TIMEOUT_MS, pub->replies_pending);
        publisher_drop(pub, reason);
    }
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

struct publisher *publisher_create(struct event_base *base, const struct redis_config *redis)
{
    struct publisher *pub = calloc(1, sizeof *pub);
    if (!pub)
        return NULL;

    pub->base = base;
    pub->redis = redis;
    pub->backoff_ms = PUBLISHER_BACKOFF_INITIAL_MS;
    pub->retry_timer = evtimer_new(base, publisher_on_retry_timer, pub);
    pub->watchdog_timer = event_new(base, -1, EV_PERSIST, publisher_on_watchdog, pub);
    if (!pub->retry_timer || !pub->watchdog_timer) {
        publisher_free(pub);
        return NULL;
    }

    struct timeval interval = timeval_from_ms(PUBLISHER_WATCHDOG_INTERVAL_MS);
    event_add(pub->watchdog_timer, &interval);

    pub->outage_started_ms = monotonic_ms();
    publisher_connect(pub);
    return pub;
}

bool publisher_ready(const struct publisher *pub)
{
    return pub->state == PUBLISHER_READY;
}

unsigned long long publisher_reconnects(const struct publisher *pub)
{
    return pub->reconnects;
}

static void publisher_log_error_reply(struct publisher *pub, const char *command,
                                      const char *message)
{
    uint64_t now = monotonic_ms();
    if (pub->error_log_ms != 0 && now - pub->error_log_ms < PUBLISHER_ERROR_LOG_INTERVAL_MS) {
        pub->errors_not_logged++;
        return;
    }

    if (pub->errors_not_logged > 0)
        log_error("redis: %s failed: %s (%lu more failures since the last report)", command,
                  message, pub->errors_not_logged);
    else
        log_error("redis: %s failed: %s", command, message);
    pub->error_log_ms = now;
    pub->errors_not_logged = 0;
}

static void publisher_on_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    (void)ac;
    struct command_call *call = privdata;
    struct publisher *pub = call->pub;
    redisReply *reply = reply_ptr;

    pub->replies_pending--;
    pub->last_progress_ms = monotonic_ms();

    if (reply && reply->type == REDIS_REPLY_ERROR)
        publisher_log_error_reply(pub, call->command, reply->str);

    if (call->reply_done) {
        call->reply_done(call->arg, reply);
    } else {
        enum publish_result result = PUBLISH_OK;
        if (!reply)
            result = PUBLISH_LOST;
        else if (reply->type == REDIS_REPLY_ERROR)
            result = PUBLISH_FAILED;
        call->publish_done(call->arg, result);
    }
    free(call);
}

/* Queues `argc` arguments as one command with `call` as its reply context. */
static int publisher_send(struct publisher *pub, struct command_call *call, int argc,
                          const char **argv, const size_t *argv_len)
{
    if (pub->state != PUBLISHER_READY) {
        free(call);
        return -1;
    }

    if (redisAsyncCommandArgv(pub->ctx, publisher_on_reply, call, argc, argv, argv_len) !=
        REDIS_OK) {
        free(call);
        return -1;
    }

    if (pub->replies_pending++ == 0)
        pub->last_progress_ms = monotonic_ms();
    return 0;
}

int publisher_publish(struct publisher *pub, const char *topic, size_t topic_len,
                      const char *message, size_t message_len, publish_done_fn *done,
                      void *arg)
{
    struct command_call *call = calloc(1, sizeof *call);
    if (!call)
        return -1;
    call->pub = pub;
    snprintf(call->command, sizeof call->command, "PUBLISH");
    call->publish_done = done;
    call->arg = arg;

    const char *argv[] = { "PUBLISH", topic, message };
    const size_t argv_len[] = { 7, topic_len, message_len };
    return publisher_send(pub, call, 3, argv, argv_len);
}

int publisher_command(struct publisher *pub, int argc, const char **argv,
                      const size_t *argv_len, publisher_reply_fn *done, void *arg)
{
    struct command_call *call = calloc(1, sizeof *call);
    if (!call)
        return -1;
    call->pub = pub;
    snprintf(call->command, sizeof call->command, "%.*s",
             (int)(argv_len[0] < sizeof call->command ? argv_len[0] : sizeof call->command - 1),
             argv[0]);
    call->reply_done = done;
    call->arg = arg;
    return publisher_send(pub, call, argc, argv, argv_len);
}

void publisher_close(struct publisher *pub)
{
    pub->state = PUBLISHER_CLOSED;
    if (pub->retry_timer)
        evtimer_del(pub->retry_timer);
    if (pub->watchdog_timer)
        event_del(pub->watchdog_timer);

    /* Detached first, like publisher_drop, so that no callback hiredis
     * runs while freeing the context changes the state again. */
    if (pub->ctx) {
        redisAsyncContext *ctx = pub->ctx;
        pub->ctx = NULL;
        redisAsyncFree(ctx);
    }
}

void publisher_free(struct publisher *pub)
{
    if (!pub)
        return;

    publisher_close(pub);
    if (pub->retry_timer)
        event_free(pub->retry_timer);
    if (pub->watchdog_timer)
        event_free(pub->watchdog_timer);
    free(pub);
}
