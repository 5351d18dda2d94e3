#include "channels.h"

#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cache.h"
#include "channel.h"
#include "envelope.h"
#include "frame.h"
#include "gateway.h"
#include "hashmap.h"
#include "keys.h"
#include "liveness.h"
#include "log.h"
#include "scripts.h"
#include "stats.h"
#include "store.h"
#include "users.h"

/* State of this gateway's Redis subscription to one channel's topic. */
enum topic_state {
    TOPIC_IDLE = 0,      /* not subscribed in Redis */
    TOPIC_SUBSCRIBING,   /* SUBSCRIBE sent, confirmation pending */
    TOPIC_SUBSCRIBED,
    TOPIC_UNSUBSCRIBING, /* UNSUBSCRIBE sent, confirmation pending */
};

/* A local subscriber; `index` is the position of the matching entry in
 * conn->subscriptions. */
struct subscriber {
    struct connection *conn;
    uint32_t index;
};

struct channel {
    const struct app_config *app;
    char *name;
    char *topic; /* the hash map key */
    size_t topic_len;

    struct subscriber *subscribers;
    uint32_t count;
    uint32_t capacity;
    uint32_t pending; /* subscribers still waiting for subscription_succeeded */

    uint8_t state;
    bool cache;    /* a cache channel: new subscribers get the last event */
    bool internal; /* a gateway-internal channel such as a user's watchlist topic */
};

/* topic -> struct channel */
static struct hashmap channel_index;

static uint64_t malformed_envelopes;

static void *checked_realloc(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (!q) {
        log_error("out of memory growing a channel table to %zu bytes", size);
        abort();
    }
    return q;
}

/* ---- channel lifetime ------------------------------------------------- */

static struct channel *channel_create(const struct app_config *app, const char *name,
                                      const char *topic, size_t topic_len)
{
    size_t name_len = strlen(name);
    struct channel *ch = checked_realloc(NULL, sizeof *ch + name_len + 1 + topic_len + 1);
    memset(ch, 0, sizeof *ch);
    ch->app = app;
    ch->name = (char *)(ch + 1);
    memcpy(ch->name, name, name_len + 1);
    ch->topic = ch->name + name_len + 1;
    memcpy(ch->topic, topic, topic_len);
    ch->topic[topic_len] = '\0';
    ch->topic_len = topic_len;
    ch->cache = channel_classify(name).cache;
    ch->internal = strncmp(name, CHANNELS_WATCHLIST_PREFIX, strlen(CHANNELS_WATCHLIST_PREFIX)) == 0;
    hashmap_put(&channel_index, ch->topic, ch->topic_len, ch);
    return ch;
}

static void channel_destroy(struct channel *ch)
{
    hashmap_remove(&channel_index, ch->topic, ch->topic_len);
    free(ch->subscribers);
    free(ch);
}

/* Moves the topic's Redis state towards "subscribed exactly while someone
 * local listens". Called after every change of subscribers or of state;
 * frees the channel once it is idle and empty. */
static void channel_reconcile(struct channel *ch)
{
    bool wanted = ch->count > 0;

    switch (ch->state) {
    case TOPIC_IDLE:
        if (!wanted) {
            channel_destroy(ch);
        } else if (bus_subscribe(ch->topic, ch->topic_len) == 0) {
            ch->state = TOPIC_SUBSCRIBING;
        }
        /* Otherwise Redis is down: the reconnect subscribes again. */
        break;
    case TOPIC_SUBSCRIBED:
        if (!wanted) {
            if (bus_unsubscribe(ch->topic, ch->topic_len) == 0)
                ch->state = TOPIC_UNSUBSCRIBING;
            else
                channel_destroy(ch);
        }
        break;
    default:
        /* A confirmation is on its way; decide when it arrives. hiredis
         * 0.14 loses track of a topic that is subscribed again before its
         * UNSUBSCRIBE is confirmed, so never overlap the two. */
        break;
    }
}

/* ---- shared state in Redis --------------------------------------------- */

/* A subscription_count event the count script could not send yet because
 * the channel's interval had not passed; retried when it has. */
struct count_retry {
    const struct app_config *app;
    char *name;
    uint64_t due_ms;
};

static struct count_retry *count_retries;
static size_t count_retry_total;
static size_t count_retry_capacity;
static uv_timer_t count_retry_timer;

static void send_subscription_count(const struct app_config *app, const char *name,
                                    uint32_t local_count);

static void on_count_reply(redisReply *reply, void *privdata)
{
    struct count_retry *retry = privdata;
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0 &&
        !gateway.stopping) {
        if (count_retry_total == count_retry_capacity) {
            count_retry_capacity = count_retry_capacity ? count_retry_capacity * 2 : 8;
            count_retries = checked_realloc(count_retries,
                                            count_retry_capacity * sizeof *count_retries);
        }
        retry->due_ms = gateway_now_ms() + (uint64_t)reply->integer;
        count_retries[count_retry_total++] = *retry;
        free(retry);
        return;
    }
    free(retry->name);
    free(retry);
}

static void on_count_retry_timer(uv_timer_t *timer)
{
    (void)timer;
    uint64_t now = gateway_now_ms();
    size_t kept = 0;
    for (size_t i = 0; i < count_retry_total; i++) {
        struct count_retry *retry = &count_retries[i];
        if (retry->due_ms > now) {
            count_retries[kept++] = *retry;
            continue;
        }
        struct strbuf topic;
        strbuf_init(&topic);
        keys_channel_topic(&topic, gateway.config.prefix, retry->app->id, retry->name);
        struct channel *ch = hashmap_get(&channel_index, topic.data, topic.len);
        strbuf_free(&topic);
        send_subscription_count(retry->app, retry->name, ch ? ch->count : 0);
        free(retry->name);
    }
    count_retry_total = kept;
}

/* Records this node's subscription count for the channel in Redis, for the
 * cluster-wide counts the HTTP API reports and, for apps that enable it,
 * the subscription_count events. While Redis is down the count is not
 * sent; the state sync after the reconnect sends every count. */
static void send_subscription_count(const struct app_config *app, const char *name,
                                    uint32_t local_count)
{
    char count[16], interval[16] = "0";
    snprintf(count, sizeof count, "%u", local_count);
    bool notify = app->enable_subscription_count &&
                  channel_classify(name).type != CHANNEL_PRESENCE;
    if (notify)
        snprintf(interval, sizeof interval, "%d", app->subscription_count_interval_ms);

    const char *argv[] = { gateway.config.prefix, app->id, name, gateway.node_id, count,
                           interval };
    struct count_retry *retry = NULL;
    if (notify) {
        retry = checked_realloc(NULL, sizeof *retry);
        retry->app = app;
        retry->name = strdup(name);
        if (!retry->name) {
            log_error("out of memory scheduling a subscription count");
            abort();
        }
    }
    if (store_eval(scripts_channel_count, 6, argv, NULL, notify ? on_count_reply : NULL, retry) !=
            0 &&
        retry) {
        free(retry->name);
        free(retry);
    }
}

static void publish_subscription_count(const struct channel *ch)
{
    /* Internal channels are not channels of the app: no counts, no
     * occupancy, no webhooks. */
    if (ch->internal)
        return;
    send_subscription_count(ch->app, ch->name, ch->count);
}

/* ---- subscriber arrays ------------------------------------------------ */

static void send_subscription_succeeded(struct connection *conn, struct channel *ch)
{
    struct strbuf frame;
    strbuf_init(&frame);
    frame_render_event(&frame, "pusher_internal:subscription_succeeded", ch->name, "{}", 2, NULL);
    connection_send_frame(conn, frame.data, frame.len);
    strbuf_free(&frame);
}

/* Moves a subscription whose topic is in place to its next state: a plain
 * one is confirmed at once, a presence one starts its join script. */
static void confirm_subscription(struct connection *conn, struct subscription *sub)
{
    if (sub->channel->internal) {
        sub->state = SUBSCRIPTION_ACTIVE;
        return;
    }
    if (!sub->member) {
        sub->state = SUBSCRIPTION_ACTIVE;
        send_subscription_succeeded(conn, sub->channel);
        if (sub->channel->cache)
            cache_fetch_start(conn, sub, sub->channel->name);
        return;
    }
    sub->state = SUBSCRIPTION_JOINING;
    /* Without Redis the join waits for channels_sync_node_state(). */
    presence_send_join(conn, sub->channel->name, sub->member);
}

static void channel_add_subscriber(struct channel *ch, struct connection *conn,
                                   struct presence_member *member)
{
    if (ch->count == ch->capacity) {
        ch->capacity = ch->capacity ? ch->capacity * 2 : 4;
        ch->subscribers = checked_realloc(ch->subscribers, ch->capacity * sizeof *ch->subscribers);
    }
    if (conn->subscription_count == conn->subscription_capacity) {
        conn->subscription_capacity = conn->subscription_capacity ? conn->subscription_capacity * 2 : 2;
        conn->subscriptions = checked_realloc(conn->subscriptions,
                                              conn->subscription_capacity * sizeof *conn->subscriptions);
    }

    uint32_t index = conn->subscription_count++;
    uint32_t slot = ch->count++;
    stats.subscriptions++;
    ch->subscribers[slot] = (struct subscriber){ conn, index };

    struct subscription *sub = &conn->subscriptions[index];
    sub->channel = ch;
    sub->member = member;
    sub->cache = NULL;
    sub->slot = slot;
    sub->state = SUBSCRIPTION_PENDING;
    if (ch->state == TOPIC_SUBSCRIBED) {
        confirm_subscription(conn, sub);
        /* Counted once the topic is in place, so the subscription_count
         * event this may publish reaches the new subscriber too. */
        publish_subscription_count(ch);
    } else {
        ch->pending++;
    }
}

/* Removes conn->subscriptions[index] from both arrays by moving the last
 * entry of each into the hole and fixing that entry's back reference. */
static void remove_subscription(struct connection *conn, uint32_t index)
{
    struct subscription *sub = &conn->subscriptions[index];
    struct channel *ch = sub->channel;
    if (sub->state == SUBSCRIPTION_PENDING)
        ch->pending--;
    if (sub->cache) {
        cache_fetch_cancel(sub->cache);
        sub->cache = NULL;
    }
    if (sub->member) {
        /* A join in flight runs before this leave: both go over the one
         * command connection, and Redis runs scripts in order. */
        if (sub->member->joined || sub->member->join)
            presence_send_leave(conn, ch->name);
        presence_member_free(sub->member);
        sub->member = NULL;
    }

    uint32_t slot = sub->slot;
    ch->subscribers[slot] = ch->subscribers[--ch->count];
    stats.subscriptions--;
    if (slot < ch->count) {
        struct subscriber *moved = &ch->subscribers[slot];
        moved->conn->subscriptions[moved->index].slot = slot;
    }

    conn->subscriptions[index] = conn->subscriptions[--conn->subscription_count];
    if (index < conn->subscription_count) {
        struct subscription *moved = &conn->subscriptions[index];
        moved->channel->subscribers[moved->slot].index = index;
    }

    publish_subscription_count(ch);
    channel_reconcile(ch);
}

static int find_subscription(const struct connection *conn, const char *name)
{
    for (uint32_t i = 0; i < conn->subscription_count; i++) {
        if (strcmp(conn->subscriptions[i].channel->name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* ---- public API ------------------------------------------------------- */

int channels_subscribe(struct connection *conn, const char *name, struct presence_member *member)
{
    if (find_subscription(conn, name) >= 0) {
        if (member)
            presence_member_free(member);
        return -1;
    }

    struct strbuf topic;
    strbuf_init(&topic);
    keys_channel_topic(&topic, gateway.config.prefix, conn->app->id, name);

    struct channel *ch = hashmap_get(&channel_index, topic.data, topic.len);
    if (!ch)
        ch = channel_create(conn->app, name, topic.data, topic.len);
    strbuf_free(&topic);

    channel_add_subscriber(ch, conn, member);
    channel_reconcile(ch);
    return 0;
}

struct subscription *channels_find(struct connection *conn, const char *name)
{
    int index = find_subscription(conn, name);
    return index < 0 ? NULL : &conn->subscriptions[index];
}

int channels_unsubscribe(struct connection *conn, const char *name)
{
    int index = find_subscription(conn, name);
    if (index < 0)
        return -1;
    remove_subscription(conn, (uint32_t)index);
    return 0;
}

void channels_unsubscribe_all(struct connection *conn)
{
    while (conn->subscription_count)
        remove_subscription(conn, conn->subscription_count - 1);
    free(conn->subscriptions);
    conn->subscriptions = NULL;
    conn->subscription_capacity = 0;
}

size_t channels_count(void)
{
    return channel_index.count;
}

/* ---- Redis events ----------------------------------------------------- */

static void on_bus_connected(void)
{
    /* Collect the channels first: the map must not be iterated while
     * reconcile may change it. */
    size_t cursor = 0;
    struct hashmap_entry *e;
    size_t n = channel_index.count, i = 0;
    struct channel **all = checked_realloc(NULL, (n ? n : 1) * sizeof *all);
    while ((e = hashmap_next(&channel_index, &cursor)) && i < n)
        all[i++] = e->value;
    for (size_t j = 0; j < i; j++)
        channel_reconcile(all[j]);
    free(all);
    if (i)
        log_info("redis pubsub: resubscribing %zu channel topics", i);
    users_subscribe_control_topics();
}

static void on_bus_disconnected(void)
{
    /* Redis forgot every subscription with the connection. Keep the
     * clients; they stay subscribed and the topics come back on reconnect. */
    size_t cursor = 0;
    struct hashmap_entry *e;
    while ((e = hashmap_next(&channel_index, &cursor))) {
        struct channel *ch = e->value;
        ch->state = TOPIC_IDLE;
        if (ch->count == 0) {
            channel_destroy(ch);
            continue;
        }

        /* Member events published while the topic was down are lost, so a
         * presence subscriber's list may be stale. Once the topic is back,
         * it joins again (the script is idempotent for a known socket) and
         * gets a fresh subscription_succeeded, which pusher-js applies by
         * replacing its member list. */
        for (uint32_t i = 0; i < ch->count; i++) {
            struct subscriber *s = &ch->subscribers[i];
            struct subscription *sub = &s->conn->subscriptions[s->index];
            if (sub->member && sub->state == SUBSCRIPTION_ACTIVE) {
                sub->state = SUBSCRIPTION_PENDING;
                ch->pending++;
            }
        }
    }
}

static void on_bus_subscribed(const char *topic, size_t topic_len)
{
    struct channel *ch = hashmap_get(&channel_index, topic, topic_len);
    if (!ch || ch->state != TOPIC_SUBSCRIBING)
        return;

    ch->state = TOPIC_SUBSCRIBED;
    for (uint32_t i = 0; i < ch->count && ch->pending; i++) {
        struct subscriber *s = &ch->subscribers[i];
        struct subscription *sub = &s->conn->subscriptions[s->index];
        if (sub->state != SUBSCRIPTION_PENDING)
            continue;
        ch->pending--;
        confirm_subscription(s->conn, sub);
    }
    publish_subscription_count(ch);
    channel_reconcile(ch);
}

static void on_bus_unsubscribed(const char *topic, size_t topic_len)
{
    struct channel *ch = hashmap_get(&channel_index, topic, topic_len);
    if (!ch || ch->state != TOPIC_UNSUBSCRIBING)
        return;
    ch->state = TOPIC_IDLE;
    channel_reconcile(ch);
}

static bool socket_id_equals(const struct connection *conn, const char *id, size_t len)
{
    return strncmp(conn->socket_id, id, len) == 0 && conn->socket_id[len] == '\0';
}

/* Delivers one published frame to every active local subscriber except the
 * excluded socket. The frame is copied once into a shared message; each
 * recipient's queue only takes a reference. */
static void on_bus_message(const char *topic, size_t topic_len, const char *payload, size_t len)
{
    struct channel *ch = hashmap_get(&channel_index, topic, topic_len);
    if (!ch) {
        users_handle_control(topic, topic_len, payload, len);
        return;
    }
    if (ch->count == 0)
        return;

    struct envelope env;
    if (envelope_decode(payload, len, &env) != 0) {
        /* Logged for the first and then every 1000th, so a misbehaving
         * publisher cannot flood the log. */
        if (malformed_envelopes++ % 1000 == 0)
            log_warn("dropped malformed envelope on topic %.*s (%llu so far)", (int)topic_len,
                     topic, (unsigned long long)malformed_envelopes);
        return;
    }

    stats.events_received++;
    struct message *m = message_new(env.frame, env.frame_len);
    m->published_us = env.published_us;
    bool member_event = env.flags & ENVELOPE_FLAG_MEMBER_EVENT;
    for (uint32_t i = 0; i < ch->count; i++) {
        struct subscriber *s = &ch->subscribers[i];
        struct subscription *sub = &s->conn->subscriptions[s->index];
        if (env.exclude && socket_id_equals(s->conn, env.exclude, env.exclude_len))
            continue;
        if (sub->state == SUBSCRIPTION_JOINING) {
            if (member_event)
                presence_hold(sub->member, m, env.seq);
        } else if (sub->state == SUBSCRIPTION_CACHING) {
            cache_fetch_hold(sub->cache, m, env.seq, member_event);
        } else if (sub->state == SUBSCRIPTION_ACTIVE) {
            if (member_event && sub->member && env.seq) {
                if (env.seq <= sub->member->last_seq)
                    continue;
                sub->member->last_seq = env.seq;
            }
            connection_queue(s->conn, m);
        }
    }
    message_release_if_unused(m);
}

/* ---- presence --------------------------------------------------------- */

void channels_presence_joined(struct connection *conn, struct presence_member *member,
                              enum presence_join_result result, unsigned long long seq,
                              const char *frame, size_t frame_len)
{
    uint32_t index = 0;
    while (index < conn->subscription_count && conn->subscriptions[index].member != member)
        index++;
    if (index == conn->subscription_count)
        return;
    struct subscription *sub = &conn->subscriptions[index];

    switch (result) {
    case PRESENCE_RETRY:
        /* Redis went away mid-join; channels_sync_node_state() joins again. */
        break;

    case PRESENCE_FULL: {
        char message[160];
        snprintf(message, sizeof message,
                 "Presence channel is full: the limit is %d members",
                 conn->app->max_presence_members);
        struct strbuf error;
        strbuf_init(&error);
        frame_render_subscription_error(&error, sub->channel->name, "LimitReached", message, 4100);
        connection_send_frame(conn, error.data, error.len);
        strbuf_free(&error);
        remove_subscription(conn, index);
        break;
    }

    case PRESENCE_JOINED:
        member->joined = true;
        sub->state = SUBSCRIPTION_ACTIVE;
        connection_send_frame(conn, frame, frame_len);
        /* Events the snapshot already reflects carry a sequence number no
         * higher than the snapshot's; send only the later ones. */
        member->last_seq = seq;
        for (uint32_t i = 0; i < member->held.count; i++) {
            if (member->held.seqs[i] > member->last_seq) {
                connection_send(conn, member->held.messages[i]);
                member->last_seq = member->held.seqs[i];
            }
        }
        message_hold_clear(&member->held);
        if (sub->channel->cache)
            cache_fetch_start(conn, sub, sub->channel->name);
        break;
    }
}

void channels_leave_presence(void)
{
    size_t cursor = 0;
    struct hashmap_entry *e;
    while ((e = hashmap_next(&channel_index, &cursor))) {
        struct channel *ch = e->value;
        for (uint32_t i = 0; i < ch->count; i++) {
            struct subscriber *s = &ch->subscribers[i];
            struct presence_member *member = s->conn->subscriptions[s->index].member;
            if (member && (member->joined || member->join)) {
                presence_send_leave(s->conn, ch->name);
                /* A join still in flight runs before this leave and sets
                 * joined again; the leave sent at close is then a no-op. */
                member->joined = false;
            }
        }
    }
}

static bool is_signed_in(struct connection *conn, void *arg)
{
    (void)arg;
    return conn->user_id != NULL;
}

/* Appends the arguments of one state entry for the node sync script. */
static void push_args(const char ***argv, int *argc, int *capacity, const char **items, int n)
{
    if (*argc + n > *capacity) {
        while (*argc + n > *capacity)
            *capacity = *capacity ? *capacity * 2 : 64;
        *argv = checked_realloc(*argv, (size_t)*capacity * sizeof **argv);
    }
    for (int i = 0; i < n; i++)
        (*argv)[(*argc)++] = items[i];
}

void channels_sync_node_state(void)
{
    /* Counts are rendered into one buffer first; the argument array points
     * into it, so it must not grow after the pointers are taken. */
    size_t channel_total = channel_index.count;
    char (*counts)[16] = checked_realloc(NULL, (channel_total ? channel_total : 1) * 16);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", gateway.config.node_timeout * 1000);

    const char **argv = NULL;
    int argc = 0, capacity = 0;
    const char *head[] = { gateway.config.prefix, gateway.node_id, ttl };
    push_args(&argv, &argc, &capacity, head, 3);

    size_t cursor = 0, n = 0;
    struct hashmap_entry *e;
    while ((e = hashmap_next(&channel_index, &cursor)) && n < channel_total) {
        struct channel *ch = e->value;
        if (ch->count == 0)
            continue;
        snprintf(counts[n], sizeof counts[n], "%u", ch->count);
        const char *entry[] = { "c", ch->app->id, ch->name, counts[n] };
        push_args(&argv, &argc, &capacity, entry, 4);
        n++;

        for (uint32_t i = 0; i < ch->count; i++) {
            struct subscriber *s = &ch->subscribers[i];
            struct subscription *sub = &s->conn->subscriptions[s->index];
            if (!sub->member || !sub->member->joined)
                continue;
            const char *member[] = { "p", ch->app->id, ch->name, s->conn->socket_id,
                                     sub->member->user_id, sub->member->user_info };
            push_args(&argv, &argc, &capacity, member, 6);
        }
    }

    /* Signed-in connections, for the watchlists' online state. */
    size_t signed_capacity = gateway.connection_count ? gateway.connection_count : 1;
    struct connection **signed_in = checked_realloc(NULL, signed_capacity * sizeof *signed_in);
    size_t signed_count = liveness_find(is_signed_in, NULL, signed_in, signed_capacity);
    for (size_t i = 0; i < signed_count; i++) {
        const char *entry[] = { "s", signed_in[i]->app->id, signed_in[i]->user_id,
                                signed_in[i]->socket_id };
        push_args(&argv, &argc, &capacity, entry, 4);
    }

    /* NOTE: one script call carries the whole node state. A node with
     * hundreds of thousands of presence members would block Redis for a
     * noticeable time here, so it should send the state in batches. */
    store_eval(scripts_node_sync, argc, argv, NULL, NULL, NULL);
    free(argv);
    free(counts);
    free(signed_in);

    /* Joins that were waiting for Redis go out after the sync, in order. */
    cursor = 0;
    while ((e = hashmap_next(&channel_index, &cursor))) {
        struct channel *ch = e->value;
        for (uint32_t i = 0; i < ch->count; i++) {
            struct subscriber *s = &ch->subscribers[i];
            struct subscription *sub = &s->conn->subscriptions[s->index];
            if (sub->state == SUBSCRIPTION_JOINING && !sub->member->join)
                presence_send_join(s->conn, ch->name, sub->member);
        }
    }
}

static const struct bus_callbacks channel_bus_callbacks = {
    .connected = on_bus_connected,
    .disconnected = on_bus_disconnected,
    .subscribed = on_bus_subscribed,
    .unsubscribed = on_bus_unsubscribed,
    .message = on_bus_message,
    .batch_done = connections_flush,
};

void channels_init(void)
{
    hashmap_init(&channel_index);
    uv_timer_init(gateway.loop, &count_retry_timer);
    uv_timer_start(&count_retry_timer, on_count_retry_timer, 100, 100);
    bus_start(&channel_bus_callbacks);
}

void channels_shutdown(void)
{
    /* Called after every connection is gone, so each channel left is only
     * waiting for a Redis confirmation that no longer matters. */
    size_t cursor = 0;
    struct hashmap_entry *e;
    while ((e = hashmap_next(&channel_index, &cursor)))
        channel_destroy(e->value);
    uv_timer_stop(&count_retry_timer);
    uv_close((uv_handle_t *)&count_retry_timer, NULL);
    for (size_t i = 0; i < count_retry_total; i++)
        free(count_retries[i].name);
    free(count_retries);
    count_retries = NULL;
    count_retry_total = count_retry_capacity = 0;
    bus_stop();
    hashmap_free(&channel_index);
}
