#include "users.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "envelope.h"
#include "gateway.h"
#include "keys.h"
#include "liveness.h"
#include "log.h"

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

void users_signed_in(struct connection *conn)
{
    pending_remove(conn);
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
