#include "cache.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "keys.h"
#include "gateway.h"
#include "log.h"
#include "presence.h"
#include "store.h"

struct cache_fetch {
    struct connection *conn;
    char *channel;
    bool cancelled; /* the subscription went away; ignore the reply */

    struct message_hold held; /* events that arrived during the fetch */
};

static void fetch_free(struct cache_fetch *fetch)
{
    message_hold_clear(&fetch->held);
    free(fetch->channel);
    free(fetch);
}

void cache_fetch_hold(struct cache_fetch *fetch, struct message *m, unsigned long long seq,
                      bool member_event)
{
    message_hold_push(&fetch->held, m, member_event ? seq : 0);
}

void cache_fetch_cancel(struct cache_fetch *fetch)
{
    fetch->cancelled = true;
}

/* Sends the held events after the cached one. An event whose bytes equal
 * the cached frame was published after the subscription and is the same
 * event the cache returned, so it is sent once. */
static void flush_held(struct connection *conn, struct subscription *sub,
                       struct cache_fetch *fetch, const char *cached, size_t cached_len)
{
    bool skipped_cached = false;
    for (uint32_t i = 0; i < fetch->held.count; i++) {
        struct message *m = fetch->held.messages[i];
        unsigned long long seq = fetch->held.seqs[i];
        if (seq && sub->member) {
            if (seq <= sub->member->last_seq)
                continue;
            sub->member->last_seq = seq;
        } else if (!skipped_cached && cached && m->len == cached_len &&
                   memcmp(message_payload(m), cached, cached_len) == 0) {
            skipped_cached = true;
            continue;
        }
        connection_send(conn, m);
    }
}

static void on_cache_reply(redisReply *reply, void *privdata)
{
    struct cache_fetch *fetch = privdata;
    if (fetch->cancelled) {
        fetch_free(fetch);
        return;
    }

    struct connection *conn = fetch->conn;
    struct subscription *sub = NULL;
    for (uint32_t i = 0; i < conn->subscription_count && !sub; i++) {
        if (conn->subscriptions[i].cache == fetch)
            sub = &conn->subscriptions[i];
    }
    if (!sub) {
        fetch_free(fetch);
        return;
    }

    const char *cached = NULL;
    size_t cached_len = 0;
    if (reply && reply->type == REDIS_REPLY_STRING) {
        cached = reply->str;
        cached_len = reply->len;
        connection_send_frame(conn, cached, cached_len);
    } else {
        /* Also when Redis did not reply: the client learns there is nothing
         * to replay and goes on with live events. */
        struct strbuf miss;
        strbuf_init(&miss);
        frame_render_event(&miss, "pusher:cache_miss", fetch->channel, "{}", 2, NULL);
        connection_send_frame(conn, miss.data, miss.len);
        strbuf_free(&miss);
        if (conn->app->webhook_events & WEBHOOK_CACHE_MISS)
            store_command("XADD %swebhooks:{%s} MAXLEN ~ %d * time_ms %llu name cache_miss "
                          "channel %s",
                          gateway.config.prefix, conn->app->id,
                          gateway.config.webhook_stream_max_length,
                          (unsigned long long)(gateway_wall_clock_us() / 1000), fetch->channel);
    }

    sub->state = SUBSCRIPTION_ACTIVE;
    sub->cache = NULL;
    flush_held(conn, sub, fetch, cached, cached_len);
    fetch_free(fetch);
}

void cache_fetch_start(struct connection *conn, struct subscription *sub, const char *channel)
{
    struct cache_fetch *fetch = calloc(1, sizeof *fetch);
    if (!fetch || !(fetch->channel = strdup(channel))) {
        log_error("out of memory fetching a cache channel");
        abort();
    }
    fetch->conn = conn;
    sub->cache = fetch;
    sub->state = SUBSCRIPTION_CACHING;

    struct strbuf key;
    strbuf_init(&key);
    keys_cache(&key, gateway.config.prefix, conn->app->id, channel);
    if (store_query(on_cache_reply, fetch, "GET %b", key.data, key.len) != 0)
        on_cache_reply(NULL, fetch); /* Redis is down: send cache_miss now */
    strbuf_free(&key);
}
