/* The channel endpoints of the Pusher HTTP API:
 *   GET /apps/{app_id}/channels
 *   GET /apps/{app_id}/channels/{channel_name}
 *   GET /apps/{app_id}/channels/{channel_name}/users
 *
 * Each request is checked completely, then served from one Redis read of
 * the state the gateways keep (channel_info.h lists the keys), so the
 * figures are cluster-wide. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cache.h"
#include "channel.h"
#include "channel_info.h"
#include "http_internal.h"
#include "log.h"
#include "strbuf.h"
#include "trigger.h"

#define HTTP_CHANNELS_MESSAGE_MAX 512

#define HTTP_CHANNELS_PRESENCE_PREFIX "presence-"

/* ------------------------------------------------------------------------
 * Redis replies
 * ------------------------------------------------------------------------ */

/* Sends 500 for a reply that is neither an error nor of the shape the
 * read returns, and logs its type. */
static void http_channels_reply_unexpected(struct http_exchange *exchange,
                                           const struct redisReply *reply, const char *what)
{
    log_error("redis: unexpected reply of type %d to %s of app %s", reply->type, what,
              exchange->app->id);
    char message[HTTP_CHANNELS_MESSAGE_MAX];
    snprintf(message, sizeof message,
             "Unexpected reply from Redis to %s; the relay log has its type", what);
    http_exchange_reply(exchange, 500, message);
}

/* Context of one queued read: the exchange and the info attributes its
 * response renders. With info=cache, the counts are kept here while the
 * cached event is read. */
struct http_channels_read {
    struct http_exchange *exchange;
    unsigned attributes;
    struct channel_counts counts;
};

static void http_channels_on_list(void *arg, const struct redisReply *reply)
{
    struct http_channels_read *read = arg;
    struct http_exchange *exchange = read->exchange;
    unsigned attributes = read->attributes;
    free(read);
    exchange->replies_pending--;

    static const char what[] = "the channel list query";
    if (http_exchange_reply_redis_failure(exchange, reply, what))
        return;

    struct strbuf body;
    strbuf_init(&body);
    if (channel_info_render_list(&body, reply, attributes) == 0)
        http_exchange_reply(exchange, 200, body.data);
    else
        http_channels_reply_unexpected(exchange, reply, what);
    strbuf_free(&body);
}

/* Reply to the cached event read, the second read of info=cache. */
static void http_channels_on_cache(void *arg, const struct redisReply *reply)
{
    struct http_channels_read *read = arg;
    struct http_exchange *exchange = read->exchange;
    exchange->replies_pending--;

    static const char what[] = "the cached event query";
    if (http_exchange_reply_redis_failure(exchange, reply, what)) {
        free(read);
        return;
    }

    struct strbuf body;
    struct strbuf cache;
    strbuf_init(&body);
    strbuf_init(&cache);
    channel_info_render_channel(&body, read->attributes & ~CHANNEL_INFO_CACHE, &read->counts);
    if (cache_render_attribute(&cache, reply) != 0) {
        http_channels_reply_unexpected(exchange, reply, what);
    } else {
        /* The cached event is reported whether or not the channel is
         * occupied, because the cache outlives its subscribers. It goes
         * in before the closing brace of the object. */
        if (cache.len > 0) {
            body.len--;
            strbuf_append_char(&body, ',');
            strbuf_append(&body, cache.data, cache.len);
            strbuf_append_char(&body, '}');
        }
        http_exchange_reply(exchange, 200, body.data);
    }
    strbuf_free(&cache);
    strbuf_free(&body);
    free(read);
}

static void http_channels_on_channel(void *arg, const struct redisReply *reply)
{
    struct http_channels_read *read = arg;
    struct http_exchange *exchange = read->exchange;
    exchange->replies_pending--;

    static const char what[] = "the channel counts query";
    if (http_exchange_reply_redis_failure(exchange, reply, what)) {
        free(read);
        return;
    }

    if (channel_info_parse_counts(reply, &read->counts, 1) != 0) {
        http_channels_reply_unexpected(exchange, reply, what);
        free(read);
        return;
    }

    if (read->attributes & CHANNEL_INFO_CACHE) {
        struct http_api *api = exchange->api;
        exchange->replies_pending++;
        if (cache_read(api->publisher, api->cfg->prefix, exchange->app->id, exchange->channel,
                       http_channels_on_cache, read) != 0) {
            exchange->replies_pending--;
            free(read);
            http_exchange_reply(exchange, 503, "Redis unavailable, try again");
        }
        return;
    }

    struct strbuf body;
    strbuf_init(&body);
    channel_info_render_channel(&body, read->attributes, &read->counts);
    http_exchange_reply(exchange, 200, body.data);
    strbuf_free(&body);
    free(read);
}

static void http_channels_on_users(void *arg, const struct redisReply *reply)
{
    struct http_channels_read *read = arg;
    struct http_exchange *exchange = read->exchange;
    free(read);
    exchange->replies_pending--;

    static const char what[] = "the presence users query";
    if (http_exchange_reply_redis_failure(exchange, reply, what))
        return;

    struct strbuf body;
    strbuf_init(&body);
    if (channel_info_render_users(&body, reply) == 0)
        http_exchange_reply(exchange, 200, body.data);
    else
        http_channels_reply_unexpected(exchange, reply, what);
    strbuf_free(&body);
}

/* Queues one read; `done` receives a struct http_channels_read. Responds
 * 503 itself when Redis is not connected. */
static void http_channels_send(struct http_exchange *exchange, unsigned attributes, int argc,
                               const char **argv, publisher_reply_fn *done)
{
    struct http_api *api = exchange->api;
    if (!publisher_ready(api->publisher)) {
        http_exchange_reply(exchange, 503, "Redis unavailable, try again");
        return;
    }

    struct http_channels_read *read = malloc(sizeof *read);
    size_t argv_len[8];
    if (!read || argc > (int)(sizeof argv_len / sizeof argv_len[0])) {
        free(read);
        http_exchange_reply(exchange, 500, "Out of memory");
        return;
    }
    read->exchange = exchange;
    read->attributes = attributes;
    for (int i = 0; i < argc; i++)
        argv_len[i] = strlen(argv[i]);

    exchange->replies_pending++;
    if (publisher_command(api->publisher, argc, argv, argv_len, done, read) != 0) {
        exchange->replies_pending--;
        free(read);
        http_exchange_reply(exchange, 503, "Redis unavailable, try again");
    }
}

/* ------------------------------------------------------------------------
 * Request checks
 * ------------------------------------------------------------------------ */

/* Parses `info` from the query against the `allowed` attributes. */
static int http_channels_parse_info(const struct http_exchange *exchange, unsigned allowed,
                                    unsigned *attributes, char *err, size_t err_len)
{
    const char *info = http_exchange_param(exchange, "info");
    return channel_info_parse(info ? info : "", allowed, attributes, err, err_len);
}

/* Checks the {channel_name} of the path like a trigger's channel. */
static int http_channels_check_name(const struct http_exchange *exchange, char *err,
                                    size_t err_len)
{
    return trigger_check_channel_name(exchange->channel, exchange->channel_len, "channel",
                                      exchange->app, err, err_len);
}

/* Rejects each requested attribute that does not apply to the channel, as
 * Pusher does: user_count needs a presence channel, subscription_count a
 * non-presence one, cache a cache channel. */
static int http_channels_check_applicable(const char *channel, unsigned attributes, char *err,
                                          size_t err_len)
{
    char printable[80];
    trigger_printable(printable, sizeof printable, channel, strlen(channel));
    struct channel_kind kind = channel_classify(channel);
    bool presence = kind.type == CHANNEL_PRESENCE;

    if ((attributes & CHANNEL_INFO_USER_COUNT) && !presence) {
        snprintf(err, err_len,
                 "Invalid info attribute user_count: \"%s\" is not a presence channel, and "
                 "only presence channels have users",
                 printable);
        return 400;
    }
    if ((attributes & CHANNEL_INFO_SUBSCRIPTION_COUNT) && presence) {
        snprintf(err, err_len,
                 "Invalid info attribute subscription_count: it is not available for presence "
                 "channels such as \"%s\"; ask for user_count",
                 printable);
        return 400;
    }
    if ((attributes & CHANNEL_INFO_CACHE) && !kind.cache) {
        snprintf(err, err_len,
                 "Invalid info attribute cache: \"%s\" is not a cache channel; only channels "
                 "whose names start with cache-, private-cache-, private-encrypted-cache- or "
                 "presence-cache- keep their last event",
                 printable);
        return 400;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

static void http_channels_handle_list(struct http_exchange *exchange)
{
    char message[HTTP_CHANNELS_MESSAGE_MAX];
    unsigned attributes;
    int status = http_channels_parse_info(
        exchange, CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT, &attributes, message,
        sizeof message);
    if (status) {
        http_exchange_reply(exchange, status, message);
        return;
    }

    const char *filter = http_exchange_param(exchange, "filter_by_prefix");
    if (!filter)
        filter = "";
    if ((attributes & CHANNEL_INFO_USER_COUNT) &&
        strncmp(filter, HTTP_CHANNELS_PRESENCE_PREFIX,
                sizeof HTTP_CHANNELS_PRESENCE_PREFIX - 1) != 0) {
        http_exchange_reply(exchange, 400,
                            "Invalid info attribute user_count: it is only available for "
                            "presence channels, so filter_by_prefix must start with "
                            "\"presence-\"");
        return;
    }

    const char *argv[] = {
        "EVAL",
        channel_info_script_list,
        "0",
        exchange->api->cfg->prefix,
        exchange->app->id,
        filter,
        attributes & CHANNEL_INFO_SUBSCRIPTION_COUNT ? "1" : "0",
        attributes & CHANNEL_INFO_USER_COUNT ? "1" : "0",
    };
    http_channels_send(exchange, attributes, 8, argv, http_channels_on_list);
}

static void http_channels_handle_channel(struct http_exchange *exchange)
{
    char message[HTTP_CHANNELS_MESSAGE_MAX];
    int status = http_channels_check_name(exchange, message, sizeof message);

    unsigned attributes = 0;
    if (status == 0)
        status = http_channels_parse_info(exchange,
                                          CHANNEL_INFO_USER_COUNT |
                                              CHANNEL_INFO_SUBSCRIPTION_COUNT |
                                              CHANNEL_INFO_CACHE,
                                          &attributes, message, sizeof message);
    if (status == 0)
        status = http_channels_check_applicable(exchange->channel, attributes, message,
                                                sizeof message);
    if (status) {
        http_exchange_reply(exchange, status, message);
        return;
    }

    /* With info=cache, the counts are read first and the cached event
     * after them (http_channels_on_channel queues that read). */
    const char *argv[] = {
        "EVAL", channel_info_script_counts, "0", exchange->api->cfg->prefix, exchange->app->id,
        exchange->channel,
    };
    http_channels_send(exchange, attributes, 6, argv, http_channels_on_channel);
}

static void http_channels_handle_users(struct http_exchange *exchange)
{
    char message[HTTP_CHANNELS_MESSAGE_MAX];
    int status = http_channels_check_name(exchange, message, sizeof message);
    if (status) {
        http_exchange_reply(exchange, status, message);
        return;
    }

    if (channel_classify(exchange->channel).type != CHANNEL_PRESENCE) {
        char printable[80];
        trigger_printable(printable, sizeof printable, exchange->channel, exchange->channel_len);
        snprintf(message, sizeof message,
                 "Invalid channel \"%s\": users are only listed for presence channels", printable);
        http_exchange_reply(exchange, 400, message);
        return;
    }

    struct strbuf key;
    strbuf_init(&key);
    channel_info_channel_key(&key, exchange->api->cfg->prefix, "members", exchange->app->id,
                             exchange->channel);
    const char *argv[] = { "HKEYS", key.data };
    http_channels_send(exchange, 0, 2, argv, http_channels_on_users);
    strbuf_free(&key);
}

void http_channels_handle(struct http_exchange *exchange)
{
    switch (exchange->endpoint) {
    case HTTP_ENDPOINT_CHANNELS:
        http_channels_handle_list(exchange);
        break;
    case HTTP_ENDPOINT_CHANNEL:
        http_channels_handle_channel(exchange);
        break;
    default:
        http_channels_handle_users(exchange);
        break;
    }
}
