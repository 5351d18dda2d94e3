/* libFuzzer harness: the WebSocket handshake a client opens the gateway
 * with, handled by gateway/protocol.c's protocol_handle_open.
 *
 * The input is the request path, then optionally a newline and the value
 * of ?protocol=, as server.c passes them: the path cut to nothing when
 * longer than its 255-byte buffer, and no protocol value when it is longer
 * than 118 bytes. Each input opens two connections, under three settings:
 * the defaults, strict_protocol, and a draining gateway. One app has a
 * quota of one connection, so the second connection to it must be closed
 * with 4004. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "connection.h"
#include "fuzz_util.h"
#include "gateway.h"
#include "gateway_stubs.h"
#include "message.h"

/* Sizes of the buffers server.c copies the path and the ?protocol=
 * argument into (the argument includes "protocol="). */
#define FUZZ_PATH_MAX 255
#define FUZZ_PROTOCOL_MAX (128 - 1 - 9)

static const char config_json[] =
    "{\"apps\":["
    "{\"id\":\"42\",\"key\":\"" FUZZ_APP_KEY "\",\"secret\":\"" FUZZ_APP_SECRET "\"},"
    "{\"id\":\"43\",\"key\":\"off-key\",\"secret\":\"s\",\"enabled\":false},"
    "{\"id\":\"44\",\"key\":\"quota-key\",\"secret\":\"s\",\"max_connections\":1}]}";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_gateway_init(config_json);
    return 0;
}

/* Returns the one frame queued for `conn`, parsed. */
static json_object *only_frame(const struct connection *conn)
{
    FUZZ_CHECK(conn->outbound.count == 1, "the handshake queued %u frames", conn->outbound.count);
    struct message *m = message_queue_peek(&conn->outbound);
    json_object *frame = fuzz_json_parse_object((const char *)message_payload(m), m->len);
    FUZZ_CHECK(frame, "the handshake frame is not one JSON object");
    return frame;
}

static const char *string_member(json_object *obj, const char *key)
{
    json_object *value;
    if (!json_object_object_get_ex(obj, key, &value) ||
        !json_object_is_type(value, json_type_string))
        return NULL;
    return json_object_get_string(value);
}

/* Matches ^\d+\.\d+$, the socket_id format of the Pusher protocol. */
static bool socket_id_valid(const char *text)
{
    size_t before = strspn(text, "0123456789");
    if (before == 0 || text[before] != '.')
        return false;
    size_t after = strspn(text + before + 1, "0123456789");
    return after > 0 && text[before + 1 + after] == '\0';
}

static void check_established(const struct connection *conn)
{
    FUZZ_CHECK(conn->counted && conn->app && conn->app->enabled, "an uncounted connection opened");
    FUZZ_CHECK(socket_id_valid(conn->socket_id), "socket_id %s", conn->socket_id);

    json_object *frame = only_frame(conn);
    const char *event = string_member(frame, "event");
    FUZZ_CHECK(event && strcmp(event, "pusher:connection_established") == 0,
               "an open connection got %s first", event ? event : "a frame without event");

    /* data is a string that contains a JSON object. */
    const char *data = string_member(frame, "data");
    FUZZ_CHECK(data, "connection_established without a string data");
    json_object *inner = fuzz_json_parse_object(data, strlen(data));
    FUZZ_CHECK(inner, "connection_established data is not a JSON object: %s", data);
    const char *socket_id = string_member(inner, "socket_id");
    FUZZ_CHECK(socket_id && strcmp(socket_id, conn->socket_id) == 0,
               "connection_established names socket_id %s, the connection has %s",
               socket_id ? socket_id : "(none)", conn->socket_id);
    json_object_put(inner);
    json_object_put(frame);
}

static void check_rejected(const struct connection *conn)
{
    FUZZ_CHECK(conn->closing && !conn->counted, "a rejected connection stays open or counted");

    static const int codes[] = { 4001, 4003, 4004, 4005, 4006, 4007, 4008, 4200 };
    bool known = false;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        known = known || codes[i] == conn->close_code;
    FUZZ_CHECK(known, "handshake closed with code %u", conn->close_code);

    /* The pusher:error frame carries the close code. */
    json_object *frame = only_frame(conn);
    json_object *data, *code;
    FUZZ_CHECK(json_object_object_get_ex(frame, "data", &data) &&
                   json_object_object_get_ex(data, "code", &code) &&
                   json_object_get_int(code) == conn->close_code,
               "pusher:error does not carry the close code %u", conn->close_code);
    json_object_put(frame);
}

static void open_twice(const char *path, const char *protocol)
{
    struct connection *first = fuzz_connection_open(path, protocol);
    struct connection *second = fuzz_connection_open(path, protocol);

    if (first->established)
        check_established(first);
    else
        check_rejected(first);

    bool quota_full = first->established && first->app->max_connections == 1;
    if (second->established) {
        FUZZ_CHECK(!quota_full, "a second connection opened to an app with a quota of one");
        check_established(second);
    } else {
        check_rejected(second);
        if (quota_full)
            FUZZ_CHECK(second->close_code == 4004, "over the quota, closed with %u",
                       second->close_code);
    }

    fuzz_connection_close(second);
    fuzz_connection_close(first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *input = (const char *)data;
    const char *newline = memchr(input, '\n', size);
    size_t path_len = newline ? (size_t)(newline - input) : size;

    char *path = fuzz_strndup(input, path_len);
    if (strlen(path) > FUZZ_PATH_MAX)
        path[0] = '\0';
    char *protocol = NULL;
    if (newline) {
        protocol = fuzz_strndup(newline + 1, size - path_len - 1);
        if (strlen(protocol) > FUZZ_PROTOCOL_MAX) {
            free(protocol);
            protocol = NULL;
        }
    }

    open_twice(path, protocol);
    gateway.config.strict_protocol = true;
    open_twice(path, protocol);
    gateway.config.strict_protocol = false;
    gateway.draining = true;
    open_twice(path, protocol);
    gateway.draining = false;

    free(path);
    free(protocol);
    return 0;
}
