#include "users.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "channels.h"
#include "envelope.h"
#include "frame.h"
#include "gateway.h"
#include "keys.h"
#include "liveness.h"
#include "log.h"
#include "scripts.h"
#include "store.h"

#define SIGNIN_TICK_MS 1000

/* Most connections one terminate request closes on this gateway at once. */
#define TERMINATE_BATCH 256

/* Connections still waiting to sign in, oldest first. Apps may have
 * different timeouts, so the tick checks every pending connection's own
 * deadline; only connections of apps that require sign-in are listed. */
static struct connection *pending_head;
static struct connection *pending_tail;
static uv_timer_t signin_timer;

/* ---- sign-in deadline ------------------------------------------------- */

static void pending_remove(struct connection *conn)
{
    if (!conn->signin_pending)
        return;
    if (conn->signin_prev)
        conn->signin_prev->signin_next = conn->signin_next;
    else
        pending_head = conn->signin_next;
    if (conn->signin_next)
        conn->signin_next->signin_prev = conn->signin_prev;
    else
        pending_tail = conn->signin_prev;
    conn->signin_prev = conn->signin_next = NULL;
    conn->signin_pending = false;
}

void users_track_unsigned(struct connection *conn)
{
    if (!conn->app->enable_user_authentication || conn->signin_pending)
        return;
    conn->signin_pending = true;
    conn->signin_since = gateway_now_ms();
    conn->signin_prev = pending_tail;
    conn->signin_next = NULL;
    if (pending_tail)
        pending_tail->signin_next = conn;
    else
        pending_head = conn;
    pending_tail = conn;
}

/* ---- watchlists ------------------------------------------------------ */

struct watchlist_request {
    struct connection *conn;
    char **ids;
    size_t count;
    bool cancelled; /* the connection closed; ignore the reply */
};

static void watchlist_request_free(struct watchlist_request *request)
{
    for (size_t i = 0; i < request->count; i++)
        free(request->ids[i]);
    free(request->ids);
    free(request);
}

static void append_event_group(struct strbuf *data, const char *name, char **ids,
                               const bool *online, size_t count, bool want_online, bool *first)
{
    bool any = false;
    for (size_t i = 0; i < count; i++) {
        if (online[i] != want_online)
            continue;
        if (!any) {
            if (!*first)
                strbuf_append_char(data, ',');
            strbuf_appendf(data, "{\"name\":\"%s\",\"user_ids\":[", name);
            *first = false;
        } else {
            strbuf_append_char(data, ',');
        }
        strbuf_append_json_string(data, ids[i], strlen(ids[i]));
        any = true;
    }
    if (any)
        strbuf_append_str(data, "]}");
}

/* Sends the watched users' current state, as returned by the script. */
static void on_watchlist_state(redisReply *reply, void *privdata)
{
    struct watchlist_request *request = privdata;
    if (request->cancelled) {
        watchlist_request_free(request);
        return;
    }
    request->conn->watchlist = NULL;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != request->count) {
        watchlist_request_free(request);
        return;
    }

    bool *online = calloc(request->count ? request->count : 1, sizeof *online);
    if (!online) {
        log_error("out of memory sending watchlist state socket_id=%s", request->conn->socket_id);
        abort();
    }
    for (size_t i = 0; i < request->count; i++)
        online[i] = reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer;

    struct strbuf data, frame;
    strbuf_init(&data);
    strbuf_init(&frame);
    bool first = true;
    strbuf_append_str(&data, "{\"events\":[");
    append_event_group(&data, "online", request->ids, online, request->count, true, &first);
    append_event_group(&data, "offline", request->ids, online, request->count, false, &first);
    strbuf_append_str(&data, "]}");
    frame_render_event(&frame, "pusher_internal:watchlist_events", NULL, data.data, data.len, NULL);
    connection_send_frame(request->conn, frame.data, frame.len);
    strbuf_free(&data);
    strbuf_free(&frame);
    free(online);
    watchlist_request_free(request);
}

void users_signed_in(struct connection *conn, json_object *watchlist)
{
    pending_remove(conn);

    /* A second sign-in replaces the first one's request for the state. */
    if (conn->watchlist) {
        conn->watchlist->cancelled = true;
        conn->watchlist = NULL;
    }

    size_t total = watchlist ? json_object_array_length(watchlist) : 0;
    size_t count = total > USERS_WATCHLIST_MAX ? USERS_WATCHLIST_MAX : total;
    struct watchlist_request *request = calloc(1, sizeof *request);
    const char **argv = calloc(5 + count, sizeof *argv);
    if (!request || !argv || !(request->ids = calloc(count ? count : 1, sizeof *request->ids))) {
        log_error("out of memory signing in socket_id=%s", conn->socket_id);
        abort();
    }
    request->conn = conn;

    /* Subscribe before requesting the state, so no change between the two
     * is lost. A change that lands in both arrives twice, which the
     * client's online set absorbs. */
    struct strbuf name;
    strbuf_init(&name);
    for (size_t i = 0; i < count; i++) {
        json_object *item = json_object_array_get_idx(watchlist, i);
        if (!json_object_is_type(item, json_type_string))
            continue;
        const char *id = json_object_get_string(item);
        if (!id[0] || strlen(id) > 128)
            continue;
        request->ids[request->count++] = strdup(id);
        strbuf_reset(&name);
        strbuf_appendf(&name, CHANNELS_WATCHLIST_PREFIX "%s", id);
        channels_subscribe(conn, name.data, NULL);
    }
    strbuf_free(&name);

    argv[0] = gateway.config.prefix;
    argv[1] = conn->app->id;
    argv[2] = conn->user_id;
    argv[3] = conn->socket_id;
    argv[4] = gateway.node_id;
    for (size_t i = 0; i < request->count; i++)
        argv[5 + i] = request->ids[i];

    bool wants_state = watchlist != NULL && request->count > 0;
    if (store_eval(scripts_user_online, (int)(5 + request->count), argv, NULL,
                   wants_state ? on_watchlist_state : NULL, wants_state ? request : NULL) == 0 &&
        wants_state)
        conn->watchlist = request;
    else
        watchlist_request_free(request);
    free(argv);

    if (total > USERS_WATCHLIST_MAX) {
        char message[128];
        snprintf(message, sizeof message,
                 "Watchlist limit exceeded: only the first %d user ids are watched",
                 USERS_WATCHLIST_MAX);
        connection_send_error(conn, 4302, message);
    }
}

void users_connection_closed(struct connection *conn)
{
    if (conn->watchlist) {
        conn->watchlist->cancelled = true;
        conn->watchlist = NULL;
    }
    if (!conn->user_id)
        return;
    const char *argv[] = { gateway.config.prefix, conn->app->id, conn->user_id, conn->socket_id,
                           gateway.node_id };
    /* When Redis is down this is lost; the node sync after the reconnect
     * removes every signed-in connection this node no longer has. */
    store_eval(scripts_user_offline, 5, argv, NULL, NULL, NULL);
}

void users_untrack(struct connection *conn)
{
    pending_remove(conn);
}

static void on_signin_tick(uv_timer_t *timer)
{
    (void)timer;
    uint64_t now = gateway_now_ms();
    struct connection *conn = pending_head;
    while (conn) {
        struct connection *next = conn->signin_next;
        uint64_t timeout_ms = (uint64_t)conn->app->user_authentication_timeout * 1000;
        if (now - conn->signin_since >= timeout_ms) {
            pending_remove(conn);
            connection_close_with_error(conn, 4009,
                                        "Connection not authorized within timeout: this app "
                                        "requires pusher:signin");
        }
        conn = next;
    }
}

/* ---- control topics --------------------------------------------------- */

void users_subscribe_control_topics(void)
{
    struct strbuf topic;
    strbuf_init(&topic);
    for (size_t i = 0; i < gateway.config.app_count; i++) {
        strbuf_reset(&topic);
        keys_control_topic(&topic, gateway.config.prefix, gateway.config.apps[i].id);
        bus_subscribe(topic.data, topic.len);
    }
    strbuf_free(&topic);
}

static const struct app_config *app_of_control_topic(const char *topic, size_t len)
{
    struct strbuf expected;
    strbuf_init(&expected);
    const struct app_config *found = NULL;
    for (size_t i = 0; i < gateway.config.app_count && !found; i++) {
        strbuf_reset(&expected);
        keys_control_topic(&expected, gateway.config.prefix, gateway.config.apps[i].id);
        if (expected.len == len && memcmp(expected.data, topic, len) == 0)
            found = &gateway.config.apps[i];
    }
    strbuf_free(&expected);
    return found;
}

struct user_match {
    const struct app_config *app;
    const char *user_id;
};

static bool is_user_connection(struct connection *conn, void *arg)
{
    const struct user_match *match = arg;
    return conn->app == match->app && conn->user_id &&
           strcmp(conn->user_id, match->user_id) == 0;
}

/* Closes every connection of this gateway signed in as `user_id`, with
 * 4009 so pusher-js does not reconnect on its own. */
static void terminate_user(const struct app_config *app, const char *user_id)
{
    struct user_match match = { app, user_id };
    struct connection *found[TERMINATE_BATCH];
    size_t total = 0, n;
    /* Closing takes a connection off the lists, so each pass finds the
     * next batch. */
    while ((n = liveness_find(is_user_connection, &match, found, TERMINATE_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++)
            connection_close_with_error(found[i], 4009, "You got disconnected by the app.");
        total += n;
    }
    if (total)
        log_info("terminated %zu connections app=%s user_id=%s", total, app->id, user_id);
}

int users_handle_control(const char *topic, size_t topic_len, const char *payload, size_t len)
{
    const struct app_config *app = app_of_control_topic(topic, topic_len);
    if (!app)
        return 0;

    struct envelope env;
    if (envelope_decode(payload, len, &env) != 0) {
        log_warn("dropped malformed control message app=%s", app->id);
        return 1;
    }

    /* Control frames are rare and come from relays: parsing is fine here. */
    json_tokener *tokener = json_tokener_new();
    json_object *frame = json_tokener_parse_ex(tokener, env.frame, (int)env.frame_len);
    json_tokener_free(tokener);
    json_object *event = NULL, *data = NULL;
    if (frame && json_object_object_get_ex(frame, "event", &event) &&
        json_object_is_type(event, json_type_string) &&
        json_object_object_get_ex(frame, "data", &data) &&
        json_object_is_type(data, json_type_string) &&
        strcmp(json_object_get_string(event), "herald:terminate_user") == 0) {
        terminate_user(app, json_object_get_string(data));
    } else {
        log_warn("ignored unknown control message app=%s", app->id);
    }
    json_object_put(frame);
    return 1;
}

void users_start(void)
{
    uv_timer_init(gateway.loop, &signin_timer);
    uv_timer_start(&signin_timer, on_signin_tick, SIGNIN_TICK_MS, SIGNIN_TICK_MS);
}

void users_stop(void)
{
    uv_timer_stop(&signin_timer);
    uv_close((uv_handle_t *)&signin_timer, NULL);
}
