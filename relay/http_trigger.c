/* The endpoints that PUBLISH: POST /apps/{app_id}/events, /batch_events and
 * /users/{user_id}/terminate_connections.
 *
 * A request gets its response only after Redis has acknowledged every
 * PUBLISH it caused. A trigger that requests `info` also reads the channel
 * counts, queued on the same connection right after its PUBLISH commands,
 * so the counts are those of the moment the events went out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "cache.h"
#include "channel_info.h"
#include "envelope.h"
#include "http_internal.h"
#include "keys.h"
#include "log.h"
#include "strbuf.h"
#include "trigger.h"

#define HTTP_TRIGGER_MESSAGE_MAX 512

/* Largest user id accepted by terminate_connections; the gateway accepts
 * presence user ids of up to 128 bytes too. */
#define HTTP_TRIGGER_USER_ID_MAX 128

enum http_counts_state {
    COUNTS_NONE,    /* no event asked for info */
    COUNTS_PENDING, /* the read is queued */
    COUNTS_READ,
    COUNTS_LOST,    /* the connection went away first */
    COUNTS_FAILED,  /* Redis replied with an error or an unexpected shape */
};

/* State of one trigger or termination while its Redis replies are awaited. */
struct http_trigger {
    struct trigger_list list; /* empty for a termination */
    bool is_event;            /* false for a termination */
    size_t total;             /* PUBLISH commands this request needs */
    size_t queued;            /* PUBLISH commands handed to the publisher */
    size_t published;         /* acknowledged by Redis */
    bool lost;                /* a PUBLISH was never acknowledged */
    bool rejected;            /* Redis replied to a PUBLISH with an error */

    /* SET commands that store the frame of each cache channel. */
    size_t cache_total;  /* queued */
    size_t cache_stored; /* acknowledged by Redis */
    bool cache_lost;     /* a SET was never acknowledged */

    /* Distinct channels of the events that asked for info, and their
     * counts once read. The names point into `list`. */
    const char **info_channels;
    size_t info_channel_count;
    struct channel_counts *counts;
    enum http_counts_state counts_state;
};

void http_trigger_free(struct http_trigger *trigger)
{
    if (!trigger)
        return;
    trigger_list_free(&trigger->list);
    free(trigger->info_channels);
    free(trigger->counts);
    free(trigger);
}

static uint64_t wall_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

static const struct channel_counts *http_trigger_counts_of(const struct http_trigger *trigger,
                                                           const char *channel)
{
    for (size_t i = 0; i < trigger->info_channel_count; i++) {
        if (strcmp(trigger->info_channels[i], channel) == 0)
            return &trigger->counts[i];
    }
    return NULL;
}

static void http_trigger_render_channel(struct strbuf *out, const struct http_trigger *trigger,
                                        const char *channel, unsigned info)
{
    static const struct channel_counts none = { 0, 0 };
    const struct channel_counts *counts = http_trigger_counts_of(trigger, channel);
    channel_info_render_attributes(out, channel_info_applicable(channel, info),
                                   counts ? counts : &none);
}

/* Appends the success body: {} without info,
 * {"channels":{"<name>":{…},…}} for one event, {"batch":[{…},{}]} for a
 * batch, aligned with its items. */
static void http_trigger_render_success(struct strbuf *out, const struct http_exchange *exchange)
{
    const struct http_trigger *trigger = exchange->trigger;
    const struct trigger_list *list = &trigger->list;

    if (trigger->counts_state != COUNTS_READ) {
        strbuf_append_str(out, "{}");
        return;
    }

    if (exchange->endpoint == HTTP_ENDPOINT_EVENTS) {
        const struct trigger_event *event = &list->events[0];
        strbuf_append_str(out, "{\"channels\":{");
        for (size_t c = 0; c < event->channel_count; c++) {
            if (c > 0)
                strbuf_append_char(out, ',');
            strbuf_append_json_string(out, event->channels[c], strlen(event->channels[c]));
            strbuf_append_char(out, ':');
            http_trigger_render_channel(out, trigger, event->channels[c], event->info);
        }
        strbuf_append_str(out, "}}");
        return;
    }

    strbuf_append_str(out, "{\"batch\":[");
    for (size_t i = 0; i < list->event_count; i++) {
        const struct trigger_event *event = &list->events[i];
        if (i > 0)
            strbuf_append_char(out, ',');
        /* A batch item has exactly one channel. */
        http_trigger_render_channel(out, trigger, event->channels[0], event->info);
    }
    strbuf_append_str(out, "]}");
}

static void http_trigger_finish(struct http_exchange *exchange)
{
    struct http_trigger *trigger = exchange->trigger;
    struct http_metrics *metrics = &exchange->api->metrics;
    char message[HTTP_TRIGGER_MESSAGE_MAX];
    int status;

    /* Frames never handed to the publisher went missing with the
     * connection, like those whose reply it lost. */
    metrics->publish_lost += trigger->total - trigger->queued;
    if (trigger->is_event)
        metrics->events_published += trigger->published;

    if (trigger->rejected) {
        status = 500;
        snprintf(message, sizeof message,
                 "Redis rejected the PUBLISH of %zu of %zu frames; the relay log has the error",
                 trigger->total - trigger->published, trigger->total);
    } else if (trigger->lost && trigger->published == 0) {
        status = 503;
        snprintf(message, sizeof message, "Redis unavailable, try again");
    } else if (trigger->lost) {
        status = 503;
        snprintf(message, sizeof message,
                 "Redis unavailable, try again; the connection was lost after %zu of %zu "
                 "frames were published, so a retry delivers those again",
                 trigger->published, trigger->total);
    } else if (trigger->cache_stored < trigger->cache_total) {
        status = trigger->cache_lost ? 503 : 500;
        snprintf(message, sizeof message,
                 "All %zu frames were published, but the last event of %zu of %zu cache "
                 "channels was not stored (%s), so new subscribers may get an older event or "
                 "pusher:cache_miss; a retry delivers the events again",
                 trigger->total, trigger->cache_total - trigger->cache_stored,
                 trigger->cache_total,
                 trigger->cache_lost ? "Redis unavailable" : "Redis rejected the SET, the relay "
                                                             "log has the error");
    } else if (trigger->counts_state == COUNTS_LOST) {
        status = 503;
        snprintf(message, sizeof message,
                 "Redis unavailable after all %zu frames were published: the channel counts "
                 "asked for in info could not be read, and a retry delivers the events again",
                 trigger->total);
    } else if (trigger->counts_state == COUNTS_FAILED) {
        status = 500;
        snprintf(message, sizeof message,
                 "Redis rejected the read of the channel counts asked for in info after all "
                 "%zu frames were published; the relay log has the error",
                 trigger->total);
    } else {
        struct strbuf body;
        strbuf_init(&body);
        http_trigger_render_success(&body, exchange);
        http_exchange_reply(exchange, 200, body.data);
        strbuf_free(&body);
        return;
    }

    http_exchange_reply(exchange, status, message);
}

/* ------------------------------------------------------------------------
 * Redis replies
 * ------------------------------------------------------------------------ */

static void http_trigger_on_published(void *arg, enum publish_result result)
{
    struct http_exchange *exchange = arg;
    struct http_trigger *trigger = exchange->trigger;
    struct http_metrics *metrics = &exchange->api->metrics;
    exchange->replies_pending--;

    switch (result) {
    case PUBLISH_OK:
        trigger->published++;
        break;
    case PUBLISH_LOST:
        trigger->lost = true;
        metrics->publish_lost++;
        break;
    case PUBLISH_FAILED:
        trigger->rejected = true;
        metrics->publish_rejected++;
        break;
    }

    if (exchange->replies_pending == 0 && !exchange->submitting)
        http_trigger_finish(exchange);
}

static void http_trigger_on_cached(void *arg, const struct redisReply *reply)
{
    struct http_exchange *exchange = arg;
    struct http_trigger *trigger = exchange->trigger;
    struct http_metrics *metrics = &exchange->api->metrics;
    exchange->replies_pending--;

    if (cache_store_succeeded(reply)) {
        trigger->cache_stored++;
        metrics->cache_stored++;
    } else {
        /* An error reply is logged by the publisher. */
        if (!reply)
            trigger->cache_lost = true;
        metrics->cache_store_failures++;
    }

    if (exchange->replies_pending == 0 && !exchange->submitting)
        http_trigger_finish(exchange);
}

/* Queues the SET that keeps the frame in `envelope` as the last event of
 * cache channel `channel`, right behind its PUBLISH, so the 200 response
 * also confirms the event is stored. */
static void http_trigger_queue_cache_store(struct http_exchange *exchange, const char *channel,
                                           const struct strbuf *envelope)
{
    struct http_api *api = exchange->api;
    struct http_trigger *trigger = exchange->trigger;

    trigger->cache_total++;
    exchange->replies_pending++;
    if (cache_store(api->publisher, api->cfg->prefix, exchange->app->id, channel, envelope->data,
                    envelope->len, api->cfg->cache_ttl, http_trigger_on_cached, exchange) != 0) {
        exchange->replies_pending--;
        trigger->cache_lost = true;
        api->metrics.cache_store_failures++;
    }
}

static void http_trigger_on_counts(void *arg, const struct redisReply *reply)
{
    struct http_exchange *exchange = arg;
    struct http_trigger *trigger = exchange->trigger;
    exchange->replies_pending--;

    if (!reply) {
        trigger->counts_state = COUNTS_LOST;
    } else if (channel_info_parse_counts(reply, trigger->counts, trigger->info_channel_count) ==
               0) {
        trigger->counts_state = COUNTS_READ;
    } else {
        /* An error reply is logged by the publisher. */
        if (reply->type != REDIS_REPLY_ERROR)
            log_error("redis: unexpected reply of type %d to the channel counts script of app "
                      "%s",
                      reply->type, exchange->app->id);
        trigger->counts_state = COUNTS_FAILED;
    }

    if (exchange->replies_pending == 0 && !exchange->submitting)
        http_trigger_finish(exchange);
}

/* ------------------------------------------------------------------------
 * Queueing the commands
 * ------------------------------------------------------------------------ */

/* Collects the distinct channels of the events that asked for info. */
static int http_trigger_collect_info_channels(struct http_trigger *trigger)
{
    const struct trigger_list *list = &trigger->list;
    trigger->info_channels = calloc(list->frame_count ? list->frame_count : 1,
                                    sizeof *trigger->info_channels);
    trigger->counts = calloc(list->frame_count ? list->frame_count : 1, sizeof *trigger->counts);
    if (!trigger->info_channels || !trigger->counts)
        return -1;

    for (size_t i = 0; i < list->event_count; i++) {
        const struct trigger_event *event = &list->events[i];
        if (!event->info)
            continue;
        for (size_t c = 0; c < event->channel_count; c++) {
            if (!http_trigger_counts_of(trigger, event->channels[c]))
                trigger->info_channels[trigger->info_channel_count++] = event->channels[c];
        }
    }
    return 0;
}

/* Queues the script that reads the counts of every info channel. */
static void http_trigger_queue_counts(struct http_exchange *exchange)
{
    struct http_api *api = exchange->api;
    struct http_trigger *trigger = exchange->trigger;
    size_t argc = 5 + trigger->info_channel_count;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *argv_len = calloc(argc, sizeof *argv_len);
    if (!argv || !argv_len) {
        free(argv);
        free(argv_len);
        trigger->counts_state = COUNTS_FAILED;
        return;
    }

    argv[0] = "EVAL";
    argv[1] = channel_info_script_counts;
    argv[2] = "0";
    argv[3] = api->cfg->prefix;
    argv[4] = exchange->app->id;
    for (size_t i = 0; i < trigger->info_channel_count; i++)
        argv[5 + i] = trigger->info_channels[i];
    for (size_t i = 0; i < argc; i++)
        argv_len[i] = strlen(argv[i]);

    exchange->replies_pending++;
    if (publisher_command(api->publisher, (int)argc, argv, argv_len, http_trigger_on_counts,
                          exchange) == 0) {
        trigger->counts_state = COUNTS_PENDING;
    } else {
        exchange->replies_pending--;
        trigger->counts_state = COUNTS_LOST;
    }
    free(argv);
    free(argv_len);
}

/* Renders every frame of the list once per channel and PUBLISHes it, with
 * a SET of the frame behind each PUBLISH to a cache channel, then queues
 * the read of the counts when an event asked for info. */
static void http_trigger_publish(struct http_exchange *exchange)
{
    struct http_api *api = exchange->api;
    struct http_trigger *trigger = exchange->trigger;
    const struct trigger_list *list = &trigger->list;
    unsigned long long published_us = wall_clock_us();

    trigger->total = list->frame_count;
    exchange->submitting = true;

    struct strbuf topic;
    struct strbuf envelope;
    strbuf_init(&topic);
    strbuf_init(&envelope);

    for (size_t i = 0; i < list->event_count && !trigger->lost; i++) {
        const struct trigger_event *event = &list->events[i];

        for (size_t c = 0; c < event->channel_count; c++) {
            strbuf_reset(&topic);
            strbuf_reset(&envelope);
            trigger_render(event, event->channels[c], api->cfg->prefix, exchange->app->id,
                           published_us, &topic, &envelope);

            exchange->replies_pending++;
            if (publisher_publish(api->publisher, topic.data, topic.len, envelope.data,
                                  envelope.len, http_trigger_on_published, exchange) != 0) {
                /* The connection is closing; every later PUBLISH would fail
                 * the same way. */
                exchange->replies_pending--;
                trigger->lost = true;
                break;
            }
            trigger->queued++;

            if (cache_channel(event->channels[c]))
                http_trigger_queue_cache_store(exchange, event->channels[c], &envelope);
        }
    }

    strbuf_free(&topic);
    strbuf_free(&envelope);

    if (!trigger->lost && trigger->info_channel_count > 0)
        http_trigger_queue_counts(exchange);

    exchange->submitting = false;
    if (exchange->replies_pending == 0)
        http_trigger_finish(exchange);
}

/* ------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

static const char *http_trigger_body(struct http_exchange *exchange, size_t *len)
{
    struct evbuffer *input = evhttp_request_get_input_buffer(exchange->req);
    *len = evbuffer_get_length(input);
    return *len ? (const char *)evbuffer_pullup(input, -1) : "";
}

void http_trigger_handle_events(struct http_exchange *exchange)
{
    struct http_api *api = exchange->api;
    const struct app_config *app = exchange->app;
    char message[HTTP_TRIGGER_MESSAGE_MAX];

    size_t body_len;
    const char *body = http_trigger_body(exchange, &body_len);
    struct http_trigger *trigger = calloc(1, sizeof *trigger);
    if (!body || !trigger) {
        free(trigger);
        http_exchange_reply(exchange, 500, "Out of memory");
        return;
    }
    trigger->is_event = true;

    int status;
    if (exchange->endpoint == HTTP_ENDPOINT_EVENTS)
        status = trigger_parse_event(&trigger->list, app, body, body_len, message, sizeof message);
    else
        status = trigger_parse_batch(&trigger->list, app, body, body_len, message, sizeof message);
    if (status) {
        free(trigger);
        http_exchange_reply(exchange, status, message);
        return;
    }
    exchange->trigger = trigger;

    if (trigger->list.frame_count == 0) {
        http_exchange_reply(exchange, 200, "{}");
        return;
    }
    if (!publisher_ready(api->publisher)) {
        api->metrics.publish_unavailable += trigger->list.frame_count;
        http_exchange_reply(exchange, 503, "Redis unavailable, try again");
        return;
    }
    if (http_trigger_collect_info_channels(trigger) != 0) {
        http_exchange_reply(exchange, 500, "Out of memory");
        return;
    }

    http_trigger_publish(exchange);
}

/* Matches a user id of 1 to HTTP_TRIGGER_USER_ID_MAX bytes of valid UTF-8
 * without control characters. The gateway compares it byte for byte with
 * the ids of signed-in users. */
static bool user_id_valid(const char *text, size_t len)
{
    if (len == 0 || len > HTTP_TRIGGER_USER_ID_MAX)
        return false;

    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        size_t extra;
        unsigned min;
        unsigned code;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            extra = 1, min = 0x80, code = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, min = 0x800, code = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, min = 0x10000, code = c & 0x07;
        } else {
            return false;
        }
        if (i + extra >= len)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            unsigned char next = (unsigned char)text[i + k];
            if ((next & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (next & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF
         * are not valid UTF-8. */
        if (code < min || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff)
            return false;
        i += extra + 1;
    }
    return true;
}

void http_trigger_handle_terminate(struct http_exchange *exchange)
{
    struct http_api *api = exchange->api;
    const struct app_config *app = exchange->app;
    char message[HTTP_TRIGGER_MESSAGE_MAX];

    if (!user_id_valid(exchange->user_id, exchange->user_id_len)) {
        char printable[80];
        trigger_printable(printable, sizeof printable, exchange->user_id, exchange->user_id_len);
        snprintf(message, sizeof message,
                 "Invalid user_id \"%s\": expected 1 to %d bytes of UTF-8 without control "
                 "characters",
                 printable, HTTP_TRIGGER_USER_ID_MAX);
        http_exchange_reply(exchange, 400, message);
        return;
    }

    /* Pusher documents the body as {}; any JSON object is accepted and
     * its content ignored. */
    size_t body_len;
    const char *body = http_trigger_body(exchange, &body_len);
    struct json_object *root = NULL;
    int status = body ? trigger_parse_json_object(&root, body, body_len, message, sizeof message)
                      : 500;
    if (status) {
        http_exchange_reply(exchange, status, body ? message : "Out of memory");
        return;
    }
    json_object_put(root);

    struct http_trigger *trigger = calloc(1, sizeof *trigger);
    if (!trigger) {
        http_exchange_reply(exchange, 500, "Out of memory");
        return;
    }
    exchange->trigger = trigger;
    trigger->total = 1;

    if (!publisher_ready(api->publisher)) {
        api->metrics.publish_unavailable++;
        http_exchange_reply(exchange, 503, "Redis unavailable, try again");
        return;
    }

    /* Every gateway subscribes to the control topic of its apps and closes
     * the connections signed in as this user with close code 4009. */
    struct strbuf topic;
    struct strbuf frame;
    struct strbuf envelope;
    strbuf_init(&topic);
    strbuf_init(&frame);
    strbuf_init(&envelope);
    keys_control_topic(&topic, api->cfg->prefix, app->id);
    strbuf_append_str(&frame, "{\"event\":\"herald:terminate_user\",\"data\":");
    strbuf_append_json_string(&frame, exchange->user_id, exchange->user_id_len);
    strbuf_append_char(&frame, '}');
    envelope_encode(&envelope, NULL, 0, frame.data, frame.len);

    exchange->submitting = true;
    exchange->replies_pending++;
    if (publisher_publish(api->publisher, topic.data, topic.len, envelope.data, envelope.len,
                          http_trigger_on_published, exchange) == 0) {
        trigger->queued++;
    } else {
        exchange->replies_pending--;
        trigger->lost = true;
    }
    strbuf_free(&topic);
    strbuf_free(&frame);
    strbuf_free(&envelope);

    exchange->submitting = false;
    if (exchange->replies_pending == 0)
        http_trigger_finish(exchange);
}
