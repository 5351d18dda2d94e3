/* Ingest of Laravel's redis broadcaster: the lease, and the delivery of
 * each message while this relay holds it.
 *
 * Why a message is never delivered twice: the holder records when it sent
 * the command that set or renewed the lease. Redis keeps the lease at
 * least ingest_lease_ms after executing that command, so until the local
 * deadline (send time plus the lease, minus a margin for clock drift) no
 * other relay can hold it, and no other relay has PSUBSCRIBEd. A message
 * delivered before the deadline therefore reached only this relay. Past
 * the deadline the holder drops messages, even those still buffered from
 * before, so a holder that was paused loses them rather than delivering
 * them a second time. */
#include "ingest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "cache.h"
#include "ingest_payload.h"
#include "ingest_subscriber.h"
#include "log.h"
#include "metrics.h"
#include "trigger.h"

#define INGEST_INSTANCE_ID_MAX 96
/* Skipped messages are logged at debug level each, and at warn level at
 * most once per interval with their count. */
#define INGEST_SKIP_WARN_INTERVAL_MS 60000

/* Runs SET NX PX for a relay that does not hold the lease, and renews it
 * (compare-and-set: PEXPIRE only while the value is this relay's id) for
 * the holder. KEYS[1] is the lease key, ARGV the instance id and the
 * lease in milliseconds. Returns -1 when the caller holds the lease
 * afterwards, else the milliseconds left on the other holder's lease (0
 * when that key has no TTL). */
static const char ingest_script_lease[] =
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return -1\n"
    "end\n"
    "local left = redis.call('PTTL', KEYS[1])\n"
    "if left < 0 then return 0 end\n"
    "return left\n";

/* Deletes the lease only while it carries the caller's id. */
static const char ingest_script_release[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* Outcomes of the messages the pub/sub connection passed on. */
struct ingest_metrics {
    uint64_t skipped[INGEST_SKIP_COUNT]; /* [INGEST_DELIVER] unused */
    uint64_t not_lease_holder; /* arrived after the lease's local deadline */
    uint64_t app_disabled;
    uint64_t unavailable;      /* Redis not connected for the PUBLISH */
    uint64_t published;        /* PUBLISH acknowledged */
    uint64_t publish_failed;   /* PUBLISH lost with the connection or rejected */
    uint64_t cache_stored;
    uint64_t cache_store_failures;
    uint64_t lease_acquired;
    uint64_t lease_lost;
};

/* One lease command waiting for its reply. `ingest` is NULL once the
 * ingest no longer wants the reply. */
struct lease_call {
    struct ingest *ingest;
    struct event_base *base;
    uint64_t sent_ms;
    bool release;
    void (*released)(void *arg); /* release only */
    void *released_arg;
};

struct ingest {
    struct event_base *base;
    const struct herald_config *cfg;
    const struct app_config *app;
    struct publisher *publisher;
    struct ingest_subscriber *subscriber;

    char instance_id[INGEST_INSTANCE_ID_MAX];
    struct strbuf lease_key;
    struct strbuf pattern;
    int renew_interval_ms; /* a third of the lease */
    int drift_margin_ms;

    bool holder;
    uint64_t deadline_ms;                /* monotonic; valid only while holder */
    unsigned long long reconnects_seen;  /* publisher reconnects when the lease was set */
    struct lease_call *pending;          /* the lease command in flight, or NULL */
    bool releasing;
    struct event *timer;

    uint64_t skip_warned_ms;
    uint64_t skips_since_warning;

    struct ingest_metrics metrics;
};

static void ingest_schedule(struct ingest *ingest, int delay_ms);

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* "<host name>-<pid>-<random hex>": the random part keeps two processes
 * apart that share a host name and a pid, such as two containers that each
 * run the relay as pid 1 on hosts with the same name. */
static void ingest_make_instance_id(char *out, size_t out_len)
{
    char host[64] = "relay";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "relay");
    host[sizeof host - 1] = '\0';

    uint32_t random = 0;
    if (getrandom(&random, sizeof random, 0) != (ssize_t)sizeof random)
        random = (uint32_t)monotonic_ms() ^ (uint32_t)getpid();
    snprintf(out, out_len, "%.32s-%d-%08x", host, (int)getpid(), random);
}

/* ------------------------------------------------------------------------
 * Holding and losing the lease
 * ------------------------------------------------------------------------ */

/* True while this relay may deliver: it holds the lease, the deadline has
 * not passed, and the command connection has not been re-established
 * since the lease was set, which could mean a Redis that lost the key. */
static bool ingest_lease_valid(const struct ingest *ingest, uint64_t now)
{
    return ingest->holder && now < ingest->deadline_ms &&
           publisher_ready(ingest->publisher) &&
           publisher_reconnects(ingest->publisher) == ingest->reconnects_seen;
}

/* Names the condition of ingest_lease_valid that failed, for the log. */
static const char *ingest_invalid_reason(const struct ingest *ingest, uint64_t now)
{
    if (now >= ingest->deadline_ms)
        return "its deadline passed without a confirmed renewal";
    if (!publisher_ready(ingest->publisher))
        return "the connection to Redis is down";
    return "the connection to Redis was re-established";
}

static void ingest_lose(struct ingest *ingest, const char *reason)
{
    if (!ingest->holder)
        return;
    ingest->holder = false;
    ingest->metrics.lease_lost++;
    ingest_subscriber_unsubscribe(ingest->subscriber);
    log_warn("ingest: gave up the lease %s (%s); unsubscribed from \"%s\"", ingest->lease_key.data,
             reason, ingest->pattern.data);
}

/* Records a confirmed lease command sent at `sent_ms`. */
static void ingest_hold(struct ingest *ingest, uint64_t sent_ms)
{
    ingest->deadline_ms = sent_ms + (uint64_t)(ingest->cfg->ingest_lease_ms -
                                               ingest->drift_margin_ms);
    if (ingest->holder)
        return;

    ingest->holder = true;
    ingest->reconnects_seen = publisher_reconnects(ingest->publisher);
    ingest->metrics.lease_acquired++;
    log_info("ingest: acquired the lease %s as %s; subscribing to \"%s\" for app %s",
             ingest->lease_key.data, ingest->instance_id, ingest->pattern.data, ingest->app->id);
    ingest_subscriber_subscribe(ingest->subscriber);
}

/* ------------------------------------------------------------------------
 * Lease commands
 * ------------------------------------------------------------------------ */

/* A release callback waiting to run from the event loop. */
struct release_later {
    void (*done)(void *arg);
    void *arg;
};

static void ingest_on_release_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct release_later *later = arg;
    later->done(later->arg);
    free(later);
}

/* Calls `done` from the event loop rather than from inside a publisher
 * callback, because the caller may free the publisher in it. */
static void ingest_call_later(struct event_base *base, void (*done)(void *arg), void *arg)
{
    struct release_later *later = malloc(sizeof *later);
    if (later) {
        later->done = done;
        later->arg = arg;
        struct timeval now = { 0, 0 };
        if (event_base_once(base, -1, EV_TIMEOUT, ingest_on_release_later, later, &now) == 0)
            return;
        free(later);
    }
    log_error("ingest: cannot schedule the end of the lease release: out of memory; "
              "finishing it at once");
    done(arg);
}

static void ingest_on_lease_reply(void *arg, const struct redisReply *reply)
{
    struct lease_call *call = arg;
    struct ingest *ingest = call->ingest;

    if (call->release) {
        if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
            log_info("ingest: released the lease %s", ingest ? ingest->lease_key.data : "");
        ingest_call_later(call->base, call->released, call->released_arg);
        free(call);
        return;
    }
    if (!ingest) {
        free(call);
        return;
    }
    ingest->pending = NULL;

    if (ingest->releasing) {
        free(call);
        return;
    }

    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        /* An error reply is logged by the publisher. */
        ingest_lose(ingest, reply ? "Redis rejected the lease renewal"
                                  : "the connection to Redis was lost");
        ingest_schedule(ingest, ingest->renew_interval_ms);
    } else if (reply->integer == -1) {
        /* A reply that took longer than the lease confirms nothing that
         * is still valid; the next tick renews it. */
        uint64_t deadline = call->sent_ms + (uint64_t)(ingest->cfg->ingest_lease_ms -
                                                       ingest->drift_margin_ms);
        if (ingest_subscriber_ready(ingest->subscriber) && monotonic_ms() < deadline)
            ingest_hold(ingest, call->sent_ms);
        ingest_schedule(ingest, ingest->renew_interval_ms);
    } else {
        ingest_lose(ingest, "another relay holds it");
        /* Try again every third of the lease, which finds a released
         * lease soon, and right after the other holder's lease would
         * expire, which takes over from a dead holder at once. */
        long long left = reply->integer;
        int delay = left > 0 && left < ingest->renew_interval_ms ? (int)left + 1
                                                                   : ingest->renew_interval_ms;
        ingest_schedule(ingest, delay);
    }
    free(call);
}

/* Queues the lease script or the release script. Returns the call, or
 * NULL when the publisher is not ready. */
static struct lease_call *ingest_send_lease_command(struct ingest *ingest, bool release)
{
    struct lease_call *call = calloc(1, sizeof *call);
    if (!call)
        return NULL;
    call->ingest = ingest;
    call->base = ingest->base;
    call->sent_ms = monotonic_ms();
    call->release = release;

    char lease_ms[16];
    snprintf(lease_ms, sizeof lease_ms, "%d", ingest->cfg->ingest_lease_ms);
    const char *script = release ? ingest_script_release : ingest_script_lease;
    const char *argv[] = { "EVAL", script, "1", ingest->lease_key.data, ingest->instance_id,
                           lease_ms };
    size_t argv_len[6];
    for (size_t i = 0; i < 6; i++)
        argv_len[i] = strlen(argv[i]);

    /* publisher_command frees nothing of ours on failure. */
    if (publisher_command(ingest->publisher, release ? 5 : 6, argv, argv_len,
                          ingest_on_lease_reply, call) != 0) {
        free(call);
        return NULL;
    }
    return call;
}

/* Checks the lease and sends the next lease command when none is in
 * flight. Runs on the timer. */
static void ingest_tick(struct ingest *ingest)
{
    uint64_t now = monotonic_ms();

    if (ingest->holder && !ingest_lease_valid(ingest, now))
        ingest_lose(ingest, ingest_invalid_reason(ingest, now));

    if (ingest->pending) {
        /* The reply reschedules; until then, wake up at the deadline. */
        if (ingest->holder)
            ingest_schedule(ingest, (int)(ingest->deadline_ms - now));
        return;
    }

    /* A relay whose pub/sub connection is down could not deliver, so it
     * neither takes nor keeps the lease. */
    if (!ingest_subscriber_ready(ingest->subscriber)) {
        ingest_lose(ingest, "the pub/sub connection is down");
        ingest_schedule(ingest, ingest->renew_interval_ms);
        return;
    }

    ingest->pending = ingest_send_lease_command(ingest, false);
    if (!ingest->pending)
        ingest_schedule(ingest, ingest->renew_interval_ms);
    else if (ingest->holder)
        ingest_schedule(ingest, (int)(ingest->deadline_ms - now));
}

static void ingest_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ingest_tick(arg);
}

static void ingest_schedule(struct ingest *ingest, int delay_ms)
{
    if (ingest->releasing)
        return;
    if (delay_ms < 0)
        delay_ms = 0;
    struct timeval delay = { .tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000 };
    evtimer_add(ingest->timer, &delay);
}

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

static void ingest_on_published(void *arg, enum publish_result result)
{
    struct ingest *ingest = arg;
    if (result == PUBLISH_OK)
        ingest->metrics.published++;
    else
        ingest->metrics.publish_failed++;
}

static void ingest_on_cached(void *arg, const struct redisReply *reply)
{
    struct ingest *ingest = arg;
    if (cache_store_succeeded(reply))
        ingest->metrics.cache_stored++;
    else
        ingest->metrics.cache_store_failures++;
}

static void ingest_note_skip(struct ingest *ingest, const char *reason, const char *details)
{
    log_debug("ingest: skipped a message (%s): %s", reason, details);

    uint64_t now = monotonic_ms();
    ingest->skips_since_warning++;
    if (ingest->skip_warned_ms != 0 && now - ingest->skip_warned_ms < INGEST_SKIP_WARN_INTERVAL_MS)
        return;
    log_warn("ingest: skipped %llu messages that are not Laravel broadcasts Herald can deliver "
             "since the last report; the latest (%s): %s. Set log_level to debug to see each",
             (unsigned long long)ingest->skips_since_warning, reason, details);
    ingest->skip_warned_ms = now;
    ingest->skips_since_warning = 0;
}

/* Renders the event once and publishes it like a trigger of the HTTP API. */
static void ingest_publish(struct ingest *ingest, const struct ingest_event *parsed)
{
    struct trigger_event event = {
        .name = parsed->name,
        .data = parsed->data,
        .data_len = parsed->data_len,
        .socket_id = parsed->exclude,
    };

    struct strbuf topic;
    struct strbuf envelope;
    strbuf_init(&topic);
    strbuf_init(&envelope);
    trigger_render(&event, parsed->channel, ingest->cfg->prefix, ingest->app->id, wall_clock_us(),
                   &topic, &envelope);

    if (publisher_publish(ingest->publisher, topic.data, topic.len, envelope.data, envelope.len,
                          ingest_on_published, ingest) != 0) {
        ingest->metrics.unavailable++;
    } else if (cache_channel(parsed->channel) &&
               cache_store(ingest->publisher, ingest->cfg->prefix, ingest->app->id,
                           parsed->channel, envelope.data, envelope.len, ingest->cfg->cache_ttl,
                           ingest_on_cached, ingest) != 0) {
        ingest->metrics.cache_store_failures++;
    }

    strbuf_free(&topic);
    strbuf_free(&envelope);
}

static void ingest_on_message(void *arg, const char *channel, size_t channel_len,
                              const char *payload, size_t payload_len)
{
    struct ingest *ingest = arg;

    uint64_t now = monotonic_ms();
    if (!ingest_lease_valid(ingest, now)) {
        ingest->metrics.not_lease_holder++;
        ingest_lose(ingest, ingest_invalid_reason(ingest, now));
        return;
    }

    char details[512];
    struct ingest_event event;
    enum ingest_skip skip = ingest_parse(&event, channel, channel_len, payload, payload_len,
                                         ingest->cfg->laravel_redis_prefix, ingest->cfg->prefix,
                                         ingest->app, details, sizeof details);
    if (skip != INGEST_DELIVER) {
        ingest->metrics.skipped[skip]++;
        ingest_note_skip(ingest, ingest_skip_name(skip), details);
        return;
    }

    if (!ingest->app->enabled) {
        ingest->metrics.app_disabled++;
        snprintf(details, sizeof details, "app %s is disabled", ingest->app->id);
        ingest_note_skip(ingest, "app_disabled", details);
    } else {
        ingest_publish(ingest, &event);
    }
    ingest_event_free(&event);
}

static void ingest_on_subscriber_lost(void *arg)
{
    struct ingest *ingest = arg;
    ingest_lose(ingest, "the pub/sub connection was lost");
}

/* ------------------------------------------------------------------------
 * Metrics
 * ------------------------------------------------------------------------ */

void ingest_write_metrics(struct strbuf *out, void *arg)
{
    const struct ingest *ingest = arg;
    const struct ingest_metrics *m = &ingest->metrics;

    metrics_write_gauge(out, "herald_relay_ingest_lease_held",
                        "1 while this relay holds the Laravel ingest lease and may deliver.",
                        ingest_lease_valid(ingest, monotonic_ms()) ? 1 : 0);
    metrics_write_counter(out, "herald_relay_ingest_lease_changes_total",
                          "Times this relay acquired or gave up the Laravel ingest lease.",
                          "change=\"acquired\"", m->lease_acquired);
    metrics_write_counter(out, "herald_relay_ingest_lease_changes_total", NULL,
                          "change=\"lost\"", m->lease_lost);

    const char *help = "Messages of Laravel's redis broadcaster received by this relay, by "
                       "outcome.";
    char labels[64];
    metrics_write_counter(out, "herald_relay_ingest_messages_total", help,
                          "result=\"published\"", m->published);
    metrics_write_counter(out, "herald_relay_ingest_messages_total", NULL,
                          "result=\"publish_failed\"", m->publish_failed);
    metrics_write_counter(out, "herald_relay_ingest_messages_total", NULL,
                          "result=\"redis_unavailable\"", m->unavailable);
    metrics_write_counter(out, "herald_relay_ingest_messages_total", NULL,
                          "result=\"not_lease_holder\"",
                          m->not_lease_holder +
                              (ingest->subscriber ? ingest_subscriber_dropped(ingest->subscriber)
                                                  : 0));
    metrics_write_counter(out, "herald_relay_ingest_messages_total", NULL,
                          "result=\"app_disabled\"", m->app_disabled);
    for (int skip = INGEST_DELIVER + 1; skip < INGEST_SKIP_COUNT; skip++) {
        snprintf(labels, sizeof labels, "result=\"%s\"", ingest_skip_name((enum ingest_skip)skip));
        metrics_write_counter(out, "herald_relay_ingest_messages_total", NULL, labels,
                              m->skipped[skip]);
    }

    metrics_write_counter(out, "herald_relay_ingest_cache_stores_total",
                          "SET commands that stored the last event of a cache channel for an "
                          "ingested message, by result.",
                          "result=\"stored\"", m->cache_stored);
    metrics_write_counter(out, "herald_relay_ingest_cache_stores_total", NULL,
                          "result=\"failed\"", m->cache_store_failures);
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

struct ingest *ingest_create(struct event_base *base, const struct herald_config *cfg,
                             struct publisher *publisher)
{
    struct ingest *ingest = calloc(1, sizeof *ingest);
    if (!ingest)
        return NULL;

    ingest->base = base;
    ingest->cfg = cfg;
    ingest->app = config_laravel_app(cfg);
    ingest->publisher = publisher;
    ingest->renew_interval_ms = cfg->ingest_lease_ms / 3;
    /* Redis and this host measure the lease with different clocks. The
     * margin, 1 % of the lease plus 2 ms, is an estimate that is far
     * above the rate difference of two working clocks. */
    ingest->drift_margin_ms = cfg->ingest_lease_ms / 100 + 2;
    ingest_make_instance_id(ingest->instance_id, sizeof ingest->instance_id);

    strbuf_init(&ingest->lease_key);
    strbuf_appendf(&ingest->lease_key, "%slease:ingest", cfg->prefix);
    strbuf_init(&ingest->pattern);
    ingest_pattern(&ingest->pattern, cfg->laravel_redis_prefix);

    ingest->timer = evtimer_new(base, ingest_on_timer, ingest);
    ingest->subscriber = ingest_subscriber_create(base, &cfg->redis, ingest->pattern.data,
                                                  ingest_on_message, ingest_on_subscriber_lost,
                                                  ingest);
    if (!ingest->timer || !ingest->subscriber) {
        ingest_close(ingest);
        ingest_free(ingest);
        return NULL;
    }

    log_info("ingest: competing for the lease %s as %s (lease %d ms, prefix \"%s\", app %s)",
             ingest->lease_key.data, ingest->instance_id, cfg->ingest_lease_ms,
             cfg->laravel_redis_prefix, ingest->app->id);
    if (cfg->laravel_redis_prefix[0] == '\0')
        log_warn("ingest: laravel_redis_prefix is empty, so this relay subscribes to every "
                 "Redis channel and skips those that are not valid channel names");
    if (!ingest->app->enabled)
        log_warn("ingest: app %s is disabled, so its Laravel broadcasts are skipped",
                 ingest->app->id);

    ingest_schedule(ingest, 0);
    return ingest;
}

void ingest_release(struct ingest *ingest, void (*done)(void *arg), void *arg)
{
    ingest_lose(ingest, "the relay is shutting down");
    ingest->releasing = true;
    evtimer_del(ingest->timer);

    /* A lease command still in flight may set the lease after this; the
     * release script runs after it on the same connection and deletes it. */
    struct lease_call *call = ingest_send_lease_command(ingest, true);
    if (call) {
        call->released = done;
        call->released_arg = arg;
        return;
    }

    ingest_call_later(ingest->base, done, arg);
}

void ingest_close(struct ingest *ingest)
{
    if (!ingest)
        return;
    ingest->releasing = true;
    if (ingest->timer)
        evtimer_del(ingest->timer);
    ingest_subscriber_free(ingest->subscriber);
    ingest->subscriber = NULL;
}

void ingest_free(struct ingest *ingest)
{
    if (!ingest)
        return;
    /* A reply that still arrives is ignored by its call. */
    if (ingest->pending)
        ingest->pending->ingest = NULL;
    ingest_subscriber_free(ingest->subscriber);
    if (ingest->timer)
        event_free(ingest->timer);
    strbuf_free(&ingest->lease_key);
    strbuf_free(&ingest->pattern);
    free(ingest);
}
