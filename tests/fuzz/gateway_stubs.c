/* Stand-ins for server.c, channels.c, store.c, bus.c and liveness.c, linked
 * with the real gateway/protocol.c, users.c, presence.c and message.c (see
 * gateway_stubs.h).
 *
 * The stubs keep the state protocol.c relies on (the connection's
 * subscriptions, its queue, its close code) and check every effect the
 * code under test has:
 *   - every frame sent to the client is one JSON object with a string
 *     event, in valid UTF-8 when the client's message was;
 *   - a subscription is recorded only for a valid, non-reserved channel
 *     name, after a signature check that passed for that channel when the
 *     channel needs one, and only for the signed-in user's own
 *     #server-to-user- channel;
 *   - a presence member has a usable user_id, and a user_info that is JSON
 *     text, because presence.c copies it unparsed into the frames of other
 *     members;
 *   - a sign-in records the connection's own user_id in Redis, and watches
 *     only the user ids its watchlist names;
 *   - a client event is published as one envelope that excludes the sender
 *     and carries exactly event, channel, data and, on presence channels,
 *     the sender's user_id, in valid UTF-8. */
#include "gateway_stubs.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "channels.h"
#include "envelope.h"
#include "frame.h"
#include "fuzz_util.h"
#include "gateway.h"
#include "keys.h"
#include "liveness.h"
#include "log.h"
#include "message.h"
#include "presence.h"
#include "protocol.h"
#include "scripts.h"
#include "signature.h"
#include "store.h"
#include "users.h"
#include "bus.h"

/* Maximum length of a user_id that protocol.c accepts, as on Pusher. */
#define FUZZ_USER_ID_MAX 128

/* Maximum length of the close reason server.c sends: RFC 6455 allows 123
 * bytes. */
#define FUZZ_CLOSE_REASON_MAX 123

struct gateway gateway;

/* channels.c shares one struct channel per name between its subscribers;
 * here every subscription owns its own. */
struct channel {
    char *name;
};

static uv_loop_t loop;

/* Set for the message being handled: the connection that sent it, whether
 * the message was valid UTF-8 (libwebsockets lets no other text frame
 * through), and the channel whose auth the last passing signature check
 * covered. */
static struct connection *sender;
static bool message_utf8;
static char *authorized_channel;

/* A script reply that Redis would deliver on a later loop iteration. */
struct pending_reply {
    store_reply_fn callback;
    void *privdata;
    size_t elements; /* integers in the array reply */
};

#define FUZZ_PENDING_MAX 64

static struct pending_reply pending[FUZZ_PENDING_MAX];
static size_t pending_count;

/* ---- setup ------------------------------------------------------------- */

void fuzz_gateway_init(const char *config_json)
{
    char err[CONFIG_ERROR_MAX];

    log_init("gateway", LOG_LEVEL_ERROR);

    if (config_load_string(&gateway.config, config_json, err, sizeof err) != 0)
        fuzz_fail("the harness configuration is invalid: %s", err);

    if (uv_loop_init(&loop) != 0)
        fuzz_fail("uv_loop_init failed");
    gateway.loop = &loop;
    gateway.node_number = 1;
    snprintf(gateway.node_id, sizeof gateway.node_id, "fuzz-1");

    size_t count = gateway.config.app_count;
    gateway.app_connections = calloc(count, sizeof *gateway.app_connections);
    gateway.app_connections_reported = calloc(count, sizeof *gateway.app_connections_reported);
    gateway.app_connections_cluster = calloc(count, sizeof *gateway.app_connections_cluster);
    if (!gateway.app_connections || !gateway.app_connections_reported ||
        !gateway.app_connections_cluster)
        fuzz_fail("out of memory allocating the connection counters");
}

/* ---- checks ------------------------------------------------------------ */

/* Frames and close reasons for the connection itself must be valid UTF-8
 * or its browser fails the connection without reading them. libwebsockets
 * lets only valid UTF-8 text frames through, so a message that is not
 * valid cannot reach the gateway. The handshake's path and query can
 * contain any byte after percent-decoding, so they are always checked. */
static bool own_utf8_expected(void)
{
    return message_utf8;
}

/* Checks a frame queued for the connection itself. */
static void check_own_frame(const struct connection *conn, const char *frame, size_t len)
{
    json_object *parsed = fuzz_json_parse_object(frame, len);
    FUZZ_CHECK(parsed, "frame for socket_id=%s is not one JSON object: %.*s", conn->socket_id,
               (int)len, frame);

    json_object *event;
    FUZZ_CHECK(json_object_object_get_ex(parsed, "event", &event) &&
                   json_object_is_type(event, json_type_string),
               "frame for socket_id=%s has no string event: %.*s", conn->socket_id, (int)len,
               frame);
    json_object_put(parsed);

    if (own_utf8_expected())
        FUZZ_CHECK(fuzz_utf8_valid(frame, len),
                   "frame for socket_id=%s is not valid UTF-8: %.*s", conn->socket_id, (int)len,
                   frame);
}

/* Checks that `text` is one JSON value, as presence.c inserts user_info
 * unparsed into the member list it sends; "" stands for no user_info. */
static void check_user_info(const char *text)
{
    if (!text[0])
        return;

    struct strbuf wrapped;
    strbuf_init(&wrapped);
    strbuf_append_str(&wrapped, "{\"user_info\":");
    strbuf_append_str(&wrapped, text);
    strbuf_append_char(&wrapped, '}');
    json_object *parsed = fuzz_json_parse_object(wrapped.data, wrapped.len);
    FUZZ_CHECK(parsed, "user_info is not one JSON value: %s", text);
    json_object_put(parsed);
    strbuf_free(&wrapped);

    if (message_utf8)
        FUZZ_CHECK(fuzz_utf8_valid(text, strlen(text)), "user_info is not valid UTF-8: %s", text);
}

static void check_user_id(const char *user_id)
{
    size_t len = strlen(user_id);
    FUZZ_CHECK(len > 0 && len <= FUZZ_USER_ID_MAX, "user_id has %zu bytes: %s", len, user_id);
    if (message_utf8)
        FUZZ_CHECK(fuzz_utf8_valid(user_id, len), "user_id is not valid UTF-8: %s", user_id);
}

/* Checks a watchlist subscription of users.c: an internal channel named
 * after a watched user id, for a signed-in connection. */
static void check_watchlist_subscription(const struct connection *conn, const char *name,
                                         const struct presence_member *member)
{
    FUZZ_CHECK(conn->user_id, "socket_id=%s watches %s without signing in", conn->socket_id,
               name);
    FUZZ_CHECK(!member, "watchlist channel %s with a presence member", name);
    check_user_id(name + strlen(CHANNELS_WATCHLIST_PREFIX));
}

/* Checks what protocol.c must have verified before it subscribes. */
static void check_subscription_allowed(const struct connection *conn, const char *name,
                                       const struct presence_member *member)
{
    if (strncmp(name, CHANNELS_WATCHLIST_PREFIX, strlen(CHANNELS_WATCHLIST_PREFIX)) == 0) {
        check_watchlist_subscription(conn, name, member);
        return;
    }

    size_t max_len = (size_t)conn->app->max_channel_name_length;
    FUZZ_CHECK(channel_name_valid(name, strlen(name), max_len),
               "subscribed to an invalid channel name: %s", name);

    enum channel_type type = channel_classify(name).type;
    FUZZ_CHECK(type != CHANNEL_RESERVED, "subscribed to the reserved channel %s", name);
    if (type == CHANNEL_SERVER_TO_USER) {
        const char *user = name + strlen(CHANNEL_SERVER_TO_USER_PREFIX);
        FUZZ_CHECK(conn->user_id && strcmp(conn->user_id, user) == 0,
                   "socket_id=%s signed in as %s subscribed to %s", conn->socket_id,
                   conn->user_id ? conn->user_id : "(nobody)", name);
    }
    if (channel_requires_auth(type))
        FUZZ_CHECK(authorized_channel && strcmp(authorized_channel, name) == 0,
                   "subscribed to %s without a passing signature check for it (last passed: %s)",
                   name, authorized_channel ? authorized_channel : "none");

    FUZZ_CHECK((member != NULL) == (type == CHANNEL_PRESENCE),
               "subscription to %s %s a presence member", name, member ? "has" : "lacks");
    if (member) {
        check_user_id(member->user_id);
        check_user_info(member->user_info);
    }
}

/* ---- signature checks -------------------------------------------------- */

/* The harness links with --wrap for both functions, so protocol.c calls
 * these and they call the real ones. */
enum signature_status __real_signature_check_channel_auth(const struct app_config *app,
                                                          const char *auth,
                                                          const char *socket_id,
                                                          const char *channel,
                                                          const char *channel_data);
enum signature_status __real_signature_check_user_auth(const struct app_config *app,
                                                       const char *auth, const char *socket_id,
                                                       const char *user_data);
enum signature_status __wrap_signature_check_channel_auth(const struct app_config *app,
                                                          const char *auth,
                                                          const char *socket_id,
                                                          const char *channel,
                                                          const char *channel_data);
enum signature_status __wrap_signature_check_user_auth(const struct app_config *app,
                                                       const char *auth, const char *socket_id,
                                                       const char *user_data);

static bool is_placeholder(const char *auth)
{
    const char *colon = auth ? strchr(auth, ':') : NULL;
    return colon && strcmp(colon + 1, FUZZ_SIGNATURE_PLACEHOLDER) == 0;
}

enum signature_status __wrap_signature_check_channel_auth(const struct app_config *app,
                                                          const char *auth,
                                                          const char *socket_id,
                                                          const char *channel,
                                                          const char *channel_data)
{
    enum signature_status status =
        __real_signature_check_channel_auth(app, auth, socket_id, channel, channel_data);
    if (status == SIGNATURE_MISMATCH && is_placeholder(auth))
        status = SIGNATURE_OK;

    if (status == SIGNATURE_OK) {
        free(authorized_channel);
        authorized_channel = fuzz_strndup(channel, strlen(channel));
    }
    return status;
}

enum signature_status __wrap_signature_check_user_auth(const struct app_config *app,
                                                       const char *auth, const char *socket_id,
                                                       const char *user_data)
{
    enum signature_status status =
        __real_signature_check_user_auth(app, auth, socket_id, user_data);
    if (status == SIGNATURE_MISMATCH && is_placeholder(auth))
        status = SIGNATURE_OK;
    return status;
}

/* ---- server.c: sending and closing -------------------------------------- */

/* Queues like server.c, whose fast path writes at once instead; the frame
 * stays queued until the connection is freed. */
void connection_send(struct connection *conn, struct message *m)
{
    if (conn->closing)
        return;
    check_own_frame(conn, (const char *)message_payload(m), m->len);

    size_t limit = (size_t)gateway.config.max_outbound_queue_bytes;
    if (conn->outbound.count > 0 && conn->outbound.bytes + m->len > limit) {
        message_queue_clear(&conn->outbound);
        connection_close(conn, 4100, "Over capacity: the client did not read its messages in time");
        return;
    }
    message_queue_push(&conn->outbound, m);
}

void connection_send_frame(struct connection *conn, const char *frame, size_t len)
{
    struct message *m = message_new(frame, len);
    connection_send(conn, m);
    message_release_if_unused(m);
}

void connection_send_error(struct connection *conn, int code, const char *message)
{
    struct strbuf frame;
    strbuf_init(&frame);
    frame_render_error(&frame, code, message);
    connection_send_frame(conn, frame.data, frame.len);
    strbuf_free(&frame);
}

/* Keeps the reason as server.c does, cut to what a close frame carries,
 * which must be valid UTF-8 too. */
void connection_close(struct connection *conn, int code, const char *reason)
{
    if (conn->closing)
        return;
    FUZZ_CHECK(code >= 4000 && code <= 4299, "socket_id=%s closed with code %d", conn->socket_id,
               code);

    size_t reason_len = strlen(reason);
    if (reason_len > FUZZ_CLOSE_REASON_MAX) {
        reason_len = FUZZ_CLOSE_REASON_MAX;
        while (reason_len && ((unsigned char)reason[reason_len] & 0xc0) == 0x80)
            reason_len--;
    }
    if (own_utf8_expected())
        FUZZ_CHECK(fuzz_utf8_valid(reason, reason_len),
                   "close reason for socket_id=%s is not valid UTF-8: %.*s", conn->socket_id,
                   (int)reason_len, reason);

    conn->closing = true;
    conn->close_code = (uint16_t)code;
    conn->close_reason = fuzz_strndup(reason, reason_len);
}

void connection_close_with_error(struct connection *conn, int code, const char *message)
{
    connection_send_error(conn, code, message);
    connection_close(conn, code, message);
}

/* ---- channels.c: the connection's subscriptions -------------------------- */

static int find_subscription(const struct connection *conn, const char *name)
{
    for (uint32_t i = 0; i < conn->subscription_count; i++) {
        if (strcmp(conn->subscriptions[i].channel->name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* Records an active subscription: the state channels.c reaches once Redis
 * confirmed the topic and, for presence, the join. */
static void add_subscription(struct connection *conn, const char *name,
                             struct presence_member *member)
{
    if (conn->subscription_count == conn->subscription_capacity) {
        uint32_t capacity = conn->subscription_capacity ? conn->subscription_capacity * 2 : 4;
        struct subscription *grown =
            realloc(conn->subscriptions, capacity * sizeof *conn->subscriptions);
        if (!grown)
            fuzz_fail("out of memory growing the subscriptions");
        conn->subscriptions = grown;
        conn->subscription_capacity = capacity;
    }

    struct channel *channel = calloc(1, sizeof *channel);
    if (!channel)
        fuzz_fail("out of memory allocating a channel");
    channel->name = fuzz_strndup(name, strlen(name));

    struct subscription *sub = &conn->subscriptions[conn->subscription_count];
    memset(sub, 0, sizeof *sub);
    sub->channel = channel;
    sub->member = member;
    sub->slot = conn->subscription_count;
    sub->state = SUBSCRIPTION_ACTIVE;
    conn->subscription_count++;
}

static void remove_subscription(struct connection *conn, uint32_t index)
{
    struct subscription *sub = &conn->subscriptions[index];
    if (sub->member)
        presence_member_free(sub->member);
    free(sub->channel->name);
    free(sub->channel);

    conn->subscription_count--;
    memmove(sub, sub + 1, (conn->subscription_count - index) * sizeof *sub);
}

int channels_subscribe(struct connection *conn, const char *name, struct presence_member *member)
{
    check_subscription_allowed(conn, name, member);
    if (find_subscription(conn, name) >= 0) {
        if (member)
            presence_member_free(member);
        return -1;
    }
    add_subscription(conn, name, member);
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

/* Only channels.c starts a presence join, and it is not linked. */
void channels_presence_joined(struct connection *conn, struct presence_member *member,
                              enum presence_join_result result, unsigned long long seq,
                              const char *frame, size_t frame_len)
{
    (void)member;
    (void)result;
    (void)seq;
    (void)frame;
    (void)frame_len;
    fuzz_fail("unexpected presence join result for socket_id=%s", conn->socket_id);
}

/* ---- store.c: Redis commands -------------------------------------------- */

/* Checks the frame of a published client event, which every other
 * subscriber of the channel receives unchanged. */
static void check_client_event_frame(const char *frame, size_t len)
{
    if (message_utf8)
        FUZZ_CHECK(fuzz_utf8_valid(frame, len), "client event frame is not valid UTF-8: %.*s",
                   (int)len, frame);

    json_object *parsed = fuzz_json_parse_object(frame, len);
    FUZZ_CHECK(parsed, "client event frame is not one JSON object: %.*s", (int)len, frame);

    const char *event = NULL, *channel = NULL, *user_id = NULL;
    size_t members = 0;
    json_object_object_foreach(parsed, key, value) {
        members++;
        FUZZ_CHECK(json_object_is_type(value, json_type_string),
                   "client event member %s is not a string: %.*s", key, (int)len, frame);
        if (strcmp(key, "event") == 0)
            event = json_object_get_string(value);
        else if (strcmp(key, "channel") == 0)
            channel = json_object_get_string(value);
        else if (strcmp(key, "user_id") == 0)
            user_id = json_object_get_string(value);
        else if (strcmp(key, "data") == 0)
            FUZZ_CHECK((size_t)json_object_get_string_len(value) <=
                           (size_t)sender->app->max_event_payload_bytes,
                       "client event data of %d bytes is over the limit",
                       json_object_get_string_len(value));
        else
            fuzz_fail("client event frame has the member %s: %.*s", key, (int)len, frame);
    }
    FUZZ_CHECK(event && strncmp(event, "client-", 7) == 0, "client event named %s",
               event ? event : "(none)");
    FUZZ_CHECK(channel, "client event without a channel: %.*s", (int)len, frame);

    struct subscription *sub = channels_find(sender, channel);
    FUZZ_CHECK(sub && sub->state == SUBSCRIPTION_ACTIVE,
               "client event on %s, which socket_id=%s is not subscribed to", channel,
               sender->socket_id);
    enum channel_type type = channel_classify(channel).type;
    FUZZ_CHECK(type == CHANNEL_PRIVATE || type == CHANNEL_PRESENCE,
               "client event on the channel %s", channel);
    if (sub->member)
        FUZZ_CHECK(user_id && strcmp(user_id, sub->member->user_id) == 0,
                   "client event on %s carries user_id %s, the sender is %s", channel,
                   user_id ? user_id : "(none)", sub->member->user_id);
    else
        FUZZ_CHECK(!user_id, "client event on %s carries user_id %s", channel, user_id);
    FUZZ_CHECK(members == (user_id ? 4u : 3u), "client event frame has %zu members", members);
    json_object_put(parsed);
}

/* Checks the PUBLISH of a client event, the only command protocol.c sends. */
static void check_publish(const char *topic, size_t topic_len, const char *payload, size_t len)
{
    struct envelope envelope;
    FUZZ_CHECK(envelope_decode(payload, len, &envelope) == 0,
               "published envelope does not decode: %.*s", (int)len, payload);
    FUZZ_CHECK(envelope.exclude && envelope.exclude_len == strlen(sender->socket_id) &&
                   memcmp(envelope.exclude, sender->socket_id, envelope.exclude_len) == 0,
               "client event envelope does not exclude its sender socket_id=%s",
               sender->socket_id);
    FUZZ_CHECK(envelope.flags == ENVELOPE_FLAG_CLIENT_EVENT, "client event envelope flags %x",
               envelope.flags);
    check_client_event_frame(envelope.frame, envelope.frame_len);

    /* The topic is the one of the channel named in the frame. */
    json_object *parsed = fuzz_json_parse_object(envelope.frame, envelope.frame_len);
    json_object *channel;
    json_object_object_get_ex(parsed, "channel", &channel);
    struct strbuf expected;
    strbuf_init(&expected);
    keys_channel_topic(&expected, gateway.config.prefix, sender->app->id,
                       json_object_get_string(channel));
    FUZZ_CHECK(expected.len == topic_len && memcmp(expected.data, topic, topic_len) == 0,
               "client event published to %.*s instead of %s", (int)topic_len, topic,
               expected.data);
    strbuf_free(&expected);
    json_object_put(parsed);
}

int store_command(const char *format, ...)
{
    FUZZ_CHECK(sender, "store_command outside a message");
    FUZZ_CHECK(strcmp(format, "PUBLISH %b %b") == 0, "unexpected Redis command %s", format);

    va_list ap;
    va_start(ap, format);
    const char *topic = va_arg(ap, const char *);
    size_t topic_len = va_arg(ap, size_t);
    const char *payload = va_arg(ap, const char *);
    size_t len = va_arg(ap, size_t);
    va_end(ap);

    check_publish(topic, topic_len, payload, len);
    return 0;
}

/* Runs the scripts of users.c, the only ones the linked code starts:
 * presence joins and leaves come from channels.c, which is not linked.
 * The reply of user_online is delivered later, by run_pending_replies. */
int store_eval(const char *script, int argc, const char **argv, const size_t *lengths,
               store_reply_fn callback, void *privdata)
{
    (void)lengths;
    FUZZ_CHECK(script == scripts_user_online || script == scripts_user_offline,
               "unexpected script with %d arguments", argc);
    FUZZ_CHECK(argc >= 5, "user script with %d arguments", argc);
    FUZZ_CHECK(sender && sender->user_id && strcmp(argv[2], sender->user_id) == 0 &&
                   strcmp(argv[3], sender->socket_id) == 0,
               "user script for user_id %s socket_id %s", argv[2], argv[3]);

    if (script == scripts_user_offline) {
        FUZZ_CHECK(argc == 5 && !callback, "user_offline with %d arguments", argc);
        return 0;
    }
    for (int i = 5; i < argc; i++)
        check_user_id(argv[i]);
    if (callback) {
        FUZZ_CHECK(pending_count < FUZZ_PENDING_MAX, "more than %d script replies pending",
                   FUZZ_PENDING_MAX);
        pending[pending_count++] = (struct pending_reply){ callback, privdata,
                                                           (size_t)(argc - 5) };
    }
    return 0;
}

/* Delivers the pending script replies, as the loop would once they
 * arrived: one integer per watched user, alternately online and
 * offline. */
static void run_pending_replies(void)
{
    for (size_t i = 0; i < pending_count; i++) {
        struct pending_reply *reply = &pending[i];
        redisReply *items = calloc(reply->elements ? reply->elements : 1, sizeof *items);
        redisReply **element = calloc(reply->elements ? reply->elements : 1, sizeof *element);
        if (!items || !element)
            fuzz_fail("out of memory building a script reply");
        for (size_t e = 0; e < reply->elements; e++) {
            items[e].type = REDIS_REPLY_INTEGER;
            items[e].integer = (long long)(e % 2 == 0);
            element[e] = &items[e];
        }
        redisReply array = { .type = REDIS_REPLY_ARRAY, .elements = reply->elements,
                             .element = element };
        reply->callback(&array, reply->privdata);
        free(element);
        free(items);
    }
    pending_count = 0;
}

/* ---- bus.c and liveness.c ------------------------------------------------ */

/* users.c subscribes control topics only at startup, which is not run. */
int bus_subscribe(const char *topic, size_t len)
{
    fuzz_fail("unexpected subscription to %.*s", (int)len, topic);
}

/* Only terminating a user walks the connections, from a control message. */
size_t liveness_find(bool (*match)(struct connection *conn, void *arg), void *arg,
                     struct connection **out, size_t max)
{
    (void)match;
    (void)arg;
    (void)out;
    (void)max;
    fuzz_fail("unexpected walk over the connections");
}

/* ---- connections --------------------------------------------------------- */

struct connection *fuzz_connection_open(const char *path, const char *protocol)
{
    struct connection *conn = calloc(1, sizeof *conn);
    if (!conn)
        fuzz_fail("out of memory allocating a connection");

    message_utf8 = true;
    sender = conn;
    protocol_handle_open(conn, path, protocol ? protocol : "", protocol != NULL);
    sender = NULL;
    return conn;
}

void fuzz_connection_subscribe(struct connection *conn, const char *channel)
{
    struct presence_member *member = NULL;
    if (channel_classify(channel).type == CHANNEL_PRESENCE)
        member = presence_member_new(conn->user_id, conn->user_info);
    add_subscription(conn, channel, member);
}

void fuzz_connection_receive(struct connection *conn, const char *data, size_t len)
{
    /* server.c drops what a closing connection sends. */
    if (conn->closing)
        return;

    message_utf8 = fuzz_utf8_valid(data, len);
    sender = conn;
    free(authorized_channel);
    authorized_channel = NULL;

    protocol_handle_message(conn, data, len);

    sender = NULL;
    free(authorized_channel);
    authorized_channel = NULL;
}

void fuzz_gateway_deliver_replies(void)
{
    run_pending_replies();
}

/* Releases the connection in the order of server.c's handle_closed. */
void fuzz_connection_close(struct connection *conn)
{
    sender = conn;
    users_untrack(conn);
    users_connection_closed(conn);
    sender = NULL;

    while (conn->subscription_count)
        remove_subscription(conn, conn->subscription_count - 1);
    free(conn->subscriptions);
    message_queue_clear(&conn->outbound);
    free(conn->user_id);
    free(conn->user_info);
    free(conn->close_reason);
    free(conn->rx_buffer);
    if (conn->counted)
        gateway.app_connections[gateway_app_index(conn->app)]--;
    free(conn);
}
