/* libFuzzer harness: the frames a client sends to the gateway.
 *
 * The input is one WebSocket text message for gateway/protocol.c's
 * protocol_handle_message: the JSON frame, pusher:subscribe with presence
 * channel_data, pusher:signin with user_data, pusher:unsubscribe,
 * pusher:ping and client events. It goes to two connections of an app
 * with client events and user authentication enabled:
 *   - a new one, not signed in and subscribed to nothing. The replies to
 *     its Redis scripts arrive while it is open, and then it closes.
 *   - an established one, signed in as user 7 and subscribed to
 *     private-orders.7, presence-room.7 and #server-to-user-7. It gets
 *     the message twice, so a repeated subscribe, sign-in, unsubscribe or
 *     client event meets the state the first one left, and the second
 *     client event hits the limit of one per second. Then it closes
 *     before the replies to its Redis scripts arrive.
 * gateway_stubs.c checks every frame and subscription that results. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connection.h"
#include "fuzz_util.h"
#include "gateway.h"
#include "gateway_stubs.h"

static const char config_json[] =
    "{\"apps\":[{\"id\":\"42\",\"key\":\"" FUZZ_APP_KEY "\",\"secret\":\"" FUZZ_APP_SECRET "\","
    "\"enable_client_messages\":true,\"enable_user_authentication\":true,"
    "\"max_client_events_per_second\":1}]}";

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_gateway_init(config_json);
    return 0;
}

/* Opens a connection with the harness's fixed socket_id. */
static struct connection *open_connection(void)
{
    struct connection *conn = fuzz_connection_open("/app/" FUZZ_APP_KEY, "7");
    FUZZ_CHECK(conn->established && !conn->closing, "the harness connection did not open");
    snprintf(conn->socket_id, sizeof conn->socket_id, "%s", FUZZ_SOCKET_ID);
    return conn;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *message = (const char *)data;

    /* server.c rejects a larger message before protocol.c gets it. */
    if (size > (size_t)gateway.config.max_message_bytes)
        return 0;

    struct connection *fresh = open_connection();
    fuzz_connection_receive(fresh, message, size);
    fuzz_gateway_deliver_replies();
    fuzz_connection_close(fresh);

    struct connection *known = open_connection();
    known->user_id = fuzz_strndup("7", 1);
    known->user_info = fuzz_strndup("{\"name\":\"Alice\"}", 16);
    fuzz_connection_subscribe(known, "private-orders.7");
    fuzz_connection_subscribe(known, "presence-room.7");
    fuzz_connection_subscribe(known, "#server-to-user-7");
    fuzz_connection_receive(known, message, size);
    fuzz_connection_receive(known, message, size);
    fuzz_connection_close(known);
    fuzz_gateway_deliver_replies();
    return 0;
}
