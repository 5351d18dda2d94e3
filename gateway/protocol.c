#include "protocol.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "channels.h"
#include "envelope.h"
#include "frame.h"
#include "gateway.h"
#include "keys.h"
#include "log.h"
#include "presence.h"
#include "signature.h"
#include "store.h"
#include "text.h"
#include "users.h"

/* Protocol versions that share the wire format this server speaks. */
#define PROTOCOL_MIN 4
#define PROTOCOL_MAX 7

/* Deep nesting buys an attacker stack and time in the parser and no
 * legitimate frame needs it. */
#define JSON_MAX_DEPTH 16

/* Maximum length of client input quoted back in an error message. */
#define QUOTE_MAX 200

/* Room for a quote: QUOTE_MAX bytes, "..." and the NUL. */
#define QUOTE_BUFFER (QUOTE_MAX + 4)

/* Maximum length of a presence user_id, as on Pusher. */
#define USER_ID_MAX 128

static struct message *pong_frame;

/* Quotes client input for an error message with text_printable(): a
 * browser fails the connection on a message or close reason that is not
 * valid UTF-8, such as raw bytes of a percent-decoded path. */
static const char *quote_bytes(char out[QUOTE_BUFFER], const char *text, size_t len)
{
    text_printable(out, QUOTE_BUFFER, text, len, QUOTE_MAX);
    return out;
}

static const char *quote_input(char out[QUOTE_BUFFER], const char *text)
{
    return quote_bytes(out, text, strlen(text));
}

/* ---- connection open -------------------------------------------------- */

static bool parse_protocol_version(const char *text, int *version)
{
    if (!text[0] || strlen(text) > 3)
        return false;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
    }
    *version = atoi(text);
    return true;
}

void protocol_handle_open(struct connection *conn, const char *path, const char *query_protocol,
                          int has_protocol)
{
    char message[320];
    char quoted[QUOTE_BUFFER];

    if (!pong_frame)
        pong_frame = message_new_static("{\"event\":\"pusher:pong\",\"data\":\"{}\"}");

    if (strncmp(path, "/app/", 5) != 0 || !path[5] || strchr(path + 5, '/')) {
        snprintf(message, sizeof message, "Path not found: %s; connect to /app/{app_key}",
                 quote_input(quoted, path));
        connection_close_with_error(conn, 4005, message);
        return;
    }

    const char *key = path + 5;
    conn->app = config_find_app_by_key(&gateway.config, key);
    if (!conn->app) {
        snprintf(message, sizeof message, "App key %s does not exist", quote_input(quoted, key));
        connection_close_with_error(conn, 4001, message);
        return;
    }
    if (!conn->app->enabled) {
        snprintf(message, sizeof message, "App %s is disabled", conn->app->id);
        connection_close_with_error(conn, 4003, message);
        return;
    }

    if (conn->origin_rejected) {
        snprintf(message, sizeof message, "Origin not allowed for app %s", conn->app->id);
        connection_close_with_error(conn, 4009, message);
        return;
    }

    /* Pusher clients reconnect after a back-off on 4100, which suits many
     * users behind one NAT address. */
    if (conn->peer_rejected) {
        snprintf(message, sizeof message,
                 "Over capacity: this gateway accepts %d connections from one IP address",
                 gateway.config.max_connections_per_ip);
        connection_close_with_error(conn, 4100, message);
        return;
    }

    if (gateway.draining) {
        connection_close_with_error(conn, 4200, "Server is restarting; reconnect");
        return;
    }

    if (!has_protocol) {
        if (gateway.config.strict_protocol) {
            connection_close_with_error(conn, 4008,
                                        "No protocol version supplied; add ?protocol=7 to the URL");
            return;
        }
    } else {
        int version;
        if (!parse_protocol_version(query_protocol, &version)) {
            snprintf(message, sizeof message,
                     "Invalid version string format: protocol=%s is not an integer",
                     quote_input(quoted, query_protocol));
            connection_close_with_error(conn, 4006, message);
            return;
        }
        if (version < PROTOCOL_MIN || version > PROTOCOL_MAX) {
            snprintf(message, sizeof message,
                     "Unsupported protocol version %d; this server speaks versions %d to %d",
                     version, PROTOCOL_MIN, PROTOCOL_MAX);
            connection_close_with_error(conn, 4007, message);
            return;
        }
    }

    if (conn->app->max_connections >= 0) {
        /* The cluster total is as of the last heartbeat, so bursts across
         * several gateways may overshoot the quota by what they accept
         * within one heartbeat interval. */
        size_t i = gateway_app_index(conn->app);
        uint64_t others = gateway.app_connections_cluster[i] > gateway.app_connections_reported[i]
                              ? gateway.app_connections_cluster[i] - gateway.app_connections_reported[i]
                              : 0;
        if (others + gateway.app_connections[i] >= (uint64_t)conn->app->max_connections) {
            snprintf(message, sizeof message,
                     "Over connection quota: app %s allows %d connections", conn->app->id,
                     conn->app->max_connections);
            connection_close_with_error(conn, 4004, message);
            return;
        }
    }
    gateway.app_connections[gateway_app_index(conn->app)]++;
    conn->counted = true;

    snprintf(conn->socket_id, sizeof conn->socket_id, "%u.%llu", gateway.node_number,
             (unsigned long long)++gateway.next_socket_serial);
    conn->established = true;

    users_track_unsigned(conn);

    struct strbuf frame;
    strbuf_init(&frame);
    frame_render_connection_established(&frame, conn->socket_id, gateway.config.activity_timeout);
    connection_send_frame(conn, frame.data, frame.len);
    strbuf_free(&frame);

    log_debug("connection open socket_id=%s app=%s", conn->socket_id, conn->app->id);
}

/* ---- helpers ---------------------------------------------------------- */

static void send_subscription_error(struct connection *conn, const char *channel,
                                    const char *type, const char *message, int status)
{
    struct strbuf frame;
    strbuf_init(&frame);
    frame_render_subscription_error(&frame, channel, type, message, status);
    connection_send_frame(conn, frame.data, frame.len);
    strbuf_free(&frame);
}

/* Returns the frame's `data` as an object. Clients send an object; a string
 * that contains a JSON object is accepted too. A parsed string is stored in
 * *owned, which the caller releases. */
static json_object *data_object(json_object *frame, json_object **owned)
{
    *owned = NULL;
    json_object *data;
    if (!json_object_object_get_ex(frame, "data", &data))
        return NULL;
    if (json_object_is_type(data, json_type_object))
        return data;
    if (!json_object_is_type(data, json_type_string))
        return NULL;

    json_object *parsed = json_tokener_parse(json_object_get_string(data));
    if (!parsed || !json_object_is_type(parsed, json_type_object)) {
        json_object_put(parsed);
        return NULL;
    }
    *owned = parsed;
    return parsed;
}

/* Returns the string member `key` of `obj`, or NULL when absent, not a
 * string, or containing a NUL character (an escaped \u0000), which C
 * strings would silently cut off. */
static const char *string_member(json_object *obj, const char *key)
{
    json_object *value;
    if (!obj || !json_object_object_get_ex(obj, key, &value) ||
        !json_object_is_type(value, json_type_string))
        return NULL;
    const char *text = json_object_get_string(value);
    if (strlen(text) != (size_t)json_object_get_string_len(value))
        return NULL;
    return text;
}

/* ---- pusher:subscribe ------------------------------------------------- */

/* Returns true when `text` contains "<key>" : <digits> with exactly these
 * digits, not followed by another digit. */
static bool number_text_present(const char *text, const char *key, const char *digits)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    size_t digits_len = strlen(digits);
    for (const char *p = strstr(text, quoted); p; p = strstr(p + 1, quoted)) {
        const char *q = p + strlen(quoted);
        q += strspn(q, " \t\r\n");
        if (*q != ':')
            continue;
        q++;
        q += strspn(q, " \t\r\n");
        if (strncmp(q, digits, digits_len) == 0 && (q[digits_len] < '0' || q[digits_len] > '9'))
            return true;
    }
    return false;
}

/* Parses presence channel_data: an object with user_id (string, or integer
 * taken in its decimal form) and optional user_info (any JSON value).
 * Sends a subscription error and returns NULL when it is unusable. */
static struct presence_member *parse_channel_data(struct connection *conn, const char *channel,
                                                  const char *channel_data)
{
    char message[256];
    size_t limit = (size_t)conn->app->max_presence_member_bytes;
    if (strlen(channel_data) > limit) {
        snprintf(message, sizeof message,
                 "Presence channel_data is %zu bytes; the limit is %zu bytes",
                 strlen(channel_data), limit);
        send_subscription_error(conn, channel, "LimitReached", message, 4301);
        return NULL;
    }

    json_object *parsed = json_tokener_parse(channel_data);
    json_object *user_id = NULL, *user_info = NULL;
    char id[USER_ID_MAX + 1];
    bool valid = parsed && json_object_is_type(parsed, json_type_object) &&
                 json_object_object_get_ex(parsed, "user_id", &user_id);

    if (valid && json_object_is_type(user_id, json_type_string)) {
        const char *text = json_object_get_string(user_id);
        size_t len = strlen(text);
        valid = len > 0 && len <= USER_ID_MAX &&
                len == (size_t)json_object_get_string_len(user_id);
        if (valid)
            memcpy(id, text, len + 1);
    } else if (valid && json_object_is_type(user_id, json_type_int)) {
        /* A number and its decimal string are the same user. json-c keeps
         * integers above INT64_MAX as unsigned and reports them as
         * INT64_MAX through the signed getter, so those are read unsigned. */
        int64_t number = json_object_get_int64(user_id);
        if (number == INT64_MAX) {
            snprintf(id, sizeof id, "%" PRIu64, json_object_get_uint64(user_id));
            /* json-c clamps an integer beyond 64 bits to UINT64_MAX; only
             * digits that really appear in channel_data are accepted. */
            valid = number_text_present(channel_data, "user_id", id);
        } else {
            snprintf(id, sizeof id, "%" PRId64, number);
        }
    } else {
        valid = false;
    }

    if (!valid) {
        json_object_put(parsed);
        snprintf(message, sizeof message,
                 "Invalid presence channel_data: expected a JSON object with user_id, a "
                 "non-empty string of at most %d characters or an integer",
                 USER_ID_MAX);
        send_subscription_error(conn, channel, "InvalidChannelData", message, 400);
        return NULL;
    }

    const char *info = "";
    if (json_object_object_get_ex(parsed, "user_info", &user_info) && user_info)
        info = json_object_to_json_string_ext(user_info, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
    struct presence_member *member = presence_member_new(id, info);
    json_object_put(parsed);
    return member;
}

static void handle_subscribe(struct connection *conn, json_object *frame)
{
    char message[512];
    char quoted[QUOTE_BUFFER];
    json_object *owned;
    json_object *data = data_object(frame, &owned);
    const char *channel = string_member(data, "channel");

    if (!channel) {
        connection_send_error(conn, -1,
                              "Invalid pusher:subscribe: data must be an object with a string channel");
        goto done;
    }

    size_t name_len = strlen(channel);
    if (!channel_name_valid(channel, name_len, (size_t)conn->app->max_channel_name_length)) {
        snprintf(message, sizeof message,
                 "Invalid channel name: a name has 1 to %d characters from A-Z a-z 0-9 _ - = @ , . ;",
                 conn->app->max_channel_name_length);
        send_subscription_error(conn, channel, "InvalidChannel", message, 400);
        goto done;
    }

    struct channel_kind kind = channel_classify(channel);
    switch (kind.type) {
    case CHANNEL_RESERVED:
        send_subscription_error(conn, channel, "InvalidChannel",
                                "Channel names starting with # are reserved", 400);
        goto done;
    case CHANNEL_SERVER_TO_USER:
        /* Only the signed-in user's own channel; pusher-js sends auth "". */
        if (!conn->user_id ||
            strcmp(channel + strlen(CHANNEL_SERVER_TO_USER_PREFIX), conn->user_id) != 0) {
            send_subscription_error(conn, channel, "AuthError",
                                    "The connection is not signed in as the user of this channel",
                                    401);
            goto done;
        }
        break;
    default:
        break;
    }

    const char *channel_data = NULL;
    if (kind.type == CHANNEL_PRESENCE) {
        /* A signed-in connection may omit channel_data and join as its
         * user; the auth then covers "<socket_id>:<channel>" only. */
        channel_data = string_member(data, "channel_data");
        if (!channel_data && !conn->user_id) {
            send_subscription_error(conn, channel, "AuthError",
                                    "Presence channels need channel_data, a JSON string with "
                                    "user_id and user_info, signed by your auth endpoint",
                                    401);
            goto done;
        }
    }

    if (channel_requires_auth(kind.type)) {
        const char *auth = string_member(data, "auth");
        enum signature_status status =
            auth ? signature_check_channel_auth(conn->app, auth, conn->socket_id, channel,
                                                channel_data)
                 : SIGNATURE_MALFORMED;
        if (status != SIGNATURE_OK) {
            if (status == SIGNATURE_WRONG_KEY) {
                const char *colon = strchr(auth, ':');
                int key_len = colon ? (int)(colon - auth) : (int)strlen(auth);
                snprintf(message, sizeof message, "Invalid key in subscription auth data: '%s'",
                         quote_bytes(quoted, auth, (size_t)key_len));
            } else {
                snprintf(message, sizeof message,
                         "Invalid signature: Expected HMAC SHA256 hex digest of %s:%s%s, but got %s",
                         conn->socket_id, channel, channel_data ? ":<channel_data>" : "",
                         auth ? quote_input(quoted, auth) : "(no auth)");
            }
            send_subscription_error(conn, channel, "AuthError", message, 401);
            goto done;
        }
    }

    struct presence_member *member = NULL;
    if (channel_data) {
        member = parse_channel_data(conn, channel, channel_data);
        if (!member)
            goto done;
    } else if (kind.type == CHANNEL_PRESENCE) {
        /* The signed-in user's info is the member's info, so it counts
         * against the same limit as channel_data. */
        size_t info_len = strlen(conn->user_info);
        if (info_len > (size_t)conn->app->max_presence_member_bytes) {
            snprintf(message, sizeof message,
                     "The signed-in user's user_info is %zu bytes; the presence member limit is "
                     "%d bytes",
                     info_len, conn->app->max_presence_member_bytes);
            send_subscription_error(conn, channel, "LimitReached", message, 4301);
            goto done;
        }
        member = presence_member_new(conn->user_id, conn->user_info);
    }

    if (conn->subscription_count >= (uint32_t)gateway.config.max_subscriptions_per_connection &&
        !channels_find(conn, channel)) {
        snprintf(message, sizeof message,
                 "Subscription limit reached: a connection may subscribe to %d channels",
                 gateway.config.max_subscriptions_per_connection);
        send_subscription_error(conn, channel, "LimitReached", message, 4100);
        if (member)
            presence_member_free(member);
        goto done;
    }

    if (channels_subscribe(conn, channel, member) != 0) {
        snprintf(message, sizeof message, "Existing subscription to channel %s", channel);
        connection_send_error(conn, -1, message);
    }

done:
    json_object_put(owned);
}

/* ---- pusher:unsubscribe ----------------------------------------------- */

static void handle_unsubscribe(struct connection *conn, json_object *frame)
{
    json_object *owned;
    json_object *data = data_object(frame, &owned);
    const char *channel = string_member(data, "channel");

    if (!channel) {
        connection_send_error(conn, -1,
                              "Invalid pusher:unsubscribe: data must be an object with a string channel");
    } else if (channels_unsubscribe(conn, channel) != 0) {
        char message[320];
        char quoted[QUOTE_BUFFER];
        snprintf(message, sizeof message,
                 "No current subscription to channel %s, or subscription in progress",
                 quote_input(quoted, channel));
        connection_send_error(conn, -1, message);
    }
    json_object_put(owned);
}

/* ---- pusher:signin ---------------------------------------------------- */

/* Responds to a failed sign-in. Apps that require sign-in close the connection
 * with 4009, so pusher-js does not retry with the same bad credentials;
 * other apps keep it open. */
static void reject_signin(struct connection *conn, const char *message)
{
    if (conn->app->enable_user_authentication)
        connection_close_with_error(conn, 4009, message);
    else
        connection_send_error(conn, -1, message);
}

static void handle_signin(struct connection *conn, json_object *frame)
{
    char message[320];
    json_object *owned;
    json_object *data = data_object(frame, &owned);
    const char *auth = string_member(data, "auth");
    const char *user_data = string_member(data, "user_data");
    json_object *parsed = NULL;

    if (!auth || !user_data) {
        reject_signin(conn, "Invalid pusher:signin: data needs the strings auth and user_data");
        goto done;
    }

    enum signature_status status =
        signature_check_user_auth(conn->app, auth, conn->socket_id, user_data);
    if (status != SIGNATURE_OK) {
        snprintf(message, sizeof message,
                 "Invalid signin signature: expected HMAC SHA256 hex digest of "
                 "%s::user::<user_data>%s",
                 conn->socket_id, status == SIGNATURE_WRONG_KEY ? " with the app's key" : "");
        reject_signin(conn, message);
        goto done;
    }

    /* user_data: an object with a non-empty string id; user_info and
     * watchlist are optional. */
    parsed = json_tokener_parse(user_data);
    const char *id = json_object_is_type(parsed, json_type_object) ? string_member(parsed, "id")
                                                                   : NULL;
    if (!id || !id[0] || strlen(id) > USER_ID_MAX) {
        snprintf(message, sizeof message,
                 "Invalid user_data: expected a JSON object with id, a non-empty string of at "
                 "most %d characters",
                 USER_ID_MAX);
        reject_signin(conn, message);
        goto done;
    }
    if (conn->user_id && strcmp(conn->user_id, id) != 0) {
        reject_signin(conn, "The connection is already signed in as another user");
        goto done;
    }

    json_object *user_info = NULL;
    const char *info = "";
    if (json_object_object_get_ex(parsed, "user_info", &user_info) && user_info)
        info = json_object_to_json_string_ext(user_info, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!conn->user_id) {
        conn->user_id = strdup(id);
        conn->user_info = strdup(info);
        if (!conn->user_id || !conn->user_info) {
            log_error("out of memory signing in socket_id=%s", conn->socket_id);
            abort();
        }
    }
    json_object *watchlist = NULL;
    if (!json_object_object_get_ex(parsed, "watchlist", &watchlist) ||
        !json_object_is_type(watchlist, json_type_array))
        watchlist = NULL;

    /* signin_success carries the user_data string exactly as the client
     * sent it. */
    struct strbuf inner, reply;
    strbuf_init(&inner);
    strbuf_init(&reply);
    strbuf_append_str(&inner, "{\"user_data\":");
    strbuf_append_json_string(&inner, user_data, strlen(user_data));
    strbuf_append_char(&inner, '}');
    frame_render_event(&reply, "pusher:signin_success", NULL, inner.data, inner.len, NULL);
    connection_send_frame(conn, reply.data, reply.len);
    strbuf_free(&inner);
    strbuf_free(&reply);
    users_signed_in(conn, watchlist);
    log_debug("signed in socket_id=%s app=%s user_id=%s", conn->socket_id, conn->app->id,
              conn->user_id);

done:
    json_object_put(parsed);
    json_object_put(owned);
}

/* ---- client events ---------------------------------------------------- */

/* Counts one client event against the per-connection limit of
 * max_client_events_per_second; returns false when it is over. */
static bool client_event_allowed(struct connection *conn)
{
    uint64_t now = gateway_now_ms();
    if ((uint32_t)now - conn->client_event_window_ms >= 1000) {
        conn->client_event_window_ms = (uint32_t)now;
        conn->client_event_count = 0;
    }
    return ++conn->client_event_count <= (uint32_t)conn->app->max_client_events_per_second;
}

/* Relays a client-* event to every other subscriber of the channel on
 * every gateway, through the channel's topic with the sender excluded. The
 * frame is rebuilt from the event name, channel and data only, so a client
 * cannot inject fields such as user_id. */
static void handle_client_event(struct connection *conn, json_object *frame, const char *event)
{
    char message[320];
    char quoted[QUOTE_BUFFER];
    const struct app_config *app = conn->app;

    if (!app->enable_client_messages) {
        connection_send_error(conn, 4301, "The app does not have client messaging enabled.");
        return;
    }
    if (strlen(event) > (size_t)app->max_event_name_length) {
        snprintf(message, sizeof message, "Client event name is longer than %d bytes",
                 app->max_event_name_length);
        connection_send_error(conn, 4301, message);
        return;
    }

    const char *channel = string_member(frame, "channel");
    struct subscription *sub = channel ? channels_find(conn, channel) : NULL;
    if (!sub || sub->state != SUBSCRIPTION_ACTIVE) {
        snprintf(message, sizeof message,
                 "Cannot broadcast client event (connection not subscribed to channel %s)",
                 channel ? quote_input(quoted, channel) : "(none)");
        connection_send_error(conn, -1, message);
        return;
    }

    enum channel_type type = channel_classify(channel).type;
    if (type != CHANNEL_PRIVATE && type != CHANNEL_PRESENCE) {
        connection_send_error(conn, 4301,
                              "Client events are allowed on private- and presence- channels only");
        return;
    }

    if (!client_event_allowed(conn)) {
        snprintf(message, sizeof message,
                 "Client event rejected: the limit is %d client events per second",
                 app->max_client_events_per_second);
        connection_send_error(conn, 4301, message);
        return;
    }

    /* pusher-js sends data as an object, other clients as a string; the
     * frame carries a string either way. */
    json_object *data = NULL;
    const char *data_text = "{}";
    size_t data_len;
    if (json_object_object_get_ex(frame, "data", &data) && data &&
        json_object_is_type(data, json_type_string)) {
        data_text = json_object_get_string(data);
        data_len = (size_t)json_object_get_string_len(data);
    } else {
        if (data)
            data_text = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        data_len = strlen(data_text);
    }
    if (data_len > (size_t)app->max_event_payload_bytes) {
        snprintf(message, sizeof message,
                 "Client event data is %zu bytes; the limit is %d bytes", data_len,
                 app->max_event_payload_bytes);
        connection_send_error(conn, 4301, message);
        return;
    }

    struct strbuf rendered, envelope, topic;
    strbuf_init(&rendered);
    strbuf_init(&envelope);
    strbuf_init(&topic);
    frame_render_event(&rendered, event, channel, data_text, data_len,
                       sub->member ? sub->member->user_id : NULL);
    envelope_encode_published(&envelope, conn->socket_id, ENVELOPE_FLAG_CLIENT_EVENT,
                              gateway_wall_clock_us(), rendered.data, rendered.len);
    keys_channel_topic(&topic, gateway.config.prefix, app->id, channel);
    if (store_command("PUBLISH %b %b", topic.data, topic.len, envelope.data, envelope.len) != 0) {
        connection_send_error(conn, -1, "Client event not delivered: Redis is unavailable");
    } else if (app->webhook_events & WEBHOOK_CLIENT_EVENT) {
        const char *user_id = sub->member ? sub->member->user_id : "";
        store_command("XADD %swebhooks:{%s} MAXLEN ~ %d * time_ms %llu name client_event "
                      "channel %s event %s data %b socket_id %s user_id %s",
                      gateway.config.prefix, app->id, gateway.config.webhook_stream_max_length,
                      (unsigned long long)(gateway_wall_clock_us() / 1000), channel, event,
                      data_text, data_len, conn->socket_id, user_id);
    }
    strbuf_free(&rendered);
    strbuf_free(&envelope);
    strbuf_free(&topic);
}

/* ---- dispatch --------------------------------------------------------- */

void protocol_handle_message(struct connection *conn, const char *text, size_t len)
{
    static json_tokener *tokener;
    if (!tokener)
        tokener = json_tokener_new_ex(JSON_MAX_DEPTH);
    json_tokener_reset(tokener);

    json_object *frame = json_tokener_parse_ex(tokener, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tokener);
    size_t end = json_tokener_get_parse_end(tokener);
    while (end < len && (text[end] == ' ' || text[end] == '\n' || text[end] == '\r' ||
                         text[end] == '\t'))
        end++;
    if (!frame || jerr != json_tokener_success || end != len) {
        const char *reason = jerr == json_tokener_continue ? "unexpected end of input"
                             : jerr == json_tokener_success ? "trailing data after the value"
                                                            : json_tokener_error_desc(jerr);
        char message[160];
        snprintf(message, sizeof message, "Invalid JSON: %s", reason);
        connection_send_error(conn, -1, message);
        json_object_put(frame);
        return;
    }

    char quoted[QUOTE_BUFFER];
    const char *event = json_object_is_type(frame, json_type_object)
                            ? string_member(frame, "event")
                            : NULL;
    if (!event) {
        connection_send_error(conn, -1, "Invalid message: expected a JSON object with a string event");
    } else if (strcmp(event, "pusher:ping") == 0) {
        connection_send(conn, pong_frame);
    } else if (strcmp(event, "pusher:pong") == 0) {
        /* Liveness was already recorded on receipt. */
    } else if (strcmp(event, "pusher:subscribe") == 0) {
        handle_subscribe(conn, frame);
    } else if (strcmp(event, "pusher:unsubscribe") == 0) {
        handle_unsubscribe(conn, frame);
    } else if (strcmp(event, "pusher:signin") == 0) {
        handle_signin(conn, frame);
    } else if (strncmp(event, "client-", 7) == 0) {
        handle_client_event(conn, frame, event);
    } else if (strncmp(event, "pusher:", 7) == 0 || strncmp(event, "pusher_internal:", 16) == 0) {
        log_debug("ignored unknown event %s socket_id=%s", quote_input(quoted, event),
                  conn->socket_id);
    } else {
        char message[320];
        snprintf(message, sizeof message,
                 "Unsupported event %s: clients send pusher:* and client-* events only",
                 quote_input(quoted, event));
        connection_send_error(conn, -1, message);
    }
    json_object_put(frame);
}
