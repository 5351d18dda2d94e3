/* libFuzzer harness: the bodies of POST /apps/{app_id}/events and
 * /batch_events, parsed by relay/trigger.c.
 *
 * The input is the request body. It goes through trigger_parse_event and
 * trigger_parse_batch with the default app limits. A rejected body must
 * get a status the relay sends and a message. An accepted one must contain
 * only what the limits and the protocol allow. Every frame trigger_render
 * makes of it must decode to exactly the event's name, channel and data,
 * inside an envelope that excludes the event's socket_id.
 *
 * Every frame must be valid UTF-8 as browsers decode it: trigger.c
 * rejects bodies that are not well-formed UTF-8 (RFC 3629) before parsing,
 * so nothing json-c lets through, such as overlong forms or surrogates,
 * reaches a frame. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "channel_info.h"
#include "config.h"
#include "envelope.h"
#include "fuzz_relay.h"
#include "fuzz_util.h"
#include "strbuf.h"
#include "trigger.h"

/* Size of the message buffer of relay/http_api.c. */
#define FUZZ_MESSAGE_MAX 512

static const char config_json[] =
    "{\"apps\":[{\"id\":\"" FUZZ_RELAY_APP_ID "\",\"key\":\"app-key\",\"secret\":\"app-secret\"}]}";

static struct herald_config config;
static const struct app_config *app;

/* Whether the body being parsed is valid UTF-8 as browsers decode it. */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[CONFIG_ERROR_MAX];
    if (config_load_string(&config, config_json, err, sizeof err) != 0)
        fuzz_fail("the harness configuration is invalid: %s", err);
    app = config_find_app_by_id(&config, FUZZ_RELAY_APP_ID);
    return 0;
}

static void check_event_fields(const struct trigger_event *event)
{
    size_t name_len = strlen(event->name);
    FUZZ_CHECK(name_len > 0 && name_len <= (size_t)app->max_event_name_length,
               "accepted an event name of %zu bytes", name_len);
    FUZZ_CHECK(event->data && event->data_len <= (size_t)app->max_event_payload_bytes,
               "accepted %zu bytes of data", event->data_len);
    if (event->socket_id)
        FUZZ_CHECK(fuzz_socket_id_valid(event->socket_id) &&
                       strlen(event->socket_id) <= ENVELOPE_SOCKET_ID_MAX,
                   "accepted the socket_id %s", event->socket_id);
    FUZZ_CHECK((event->info & ~(CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT)) == 0,
               "accepted info attributes %x", event->info);

    FUZZ_CHECK(event->channel_count > 0 &&
                   event->channel_count <= (size_t)app->max_channels_per_trigger,
               "accepted %zu channels", event->channel_count);
    for (size_t i = 0; i < event->channel_count; i++) {
        const char *channel = event->channels[i];
        FUZZ_CHECK(channel_name_valid(channel, strlen(channel),
                                      (size_t)app->max_channel_name_length),
                   "accepted the channel name %s", channel);
        FUZZ_CHECK(channel_classify(channel).type != CHANNEL_RESERVED,
                   "accepted the reserved channel %s", channel);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(channel, event->channels[j]) != 0, "channel %s listed twice",
                       channel);
    }
}

static void check_list(const struct trigger_list *list, bool batch)
{
    size_t max_events = batch ? (size_t)app->max_batch_size : 1;
    FUZZ_CHECK((batch || list->event_count == 1) && list->event_count <= max_events,
               "accepted %zu events", list->event_count);

    size_t frames = 0;
    for (size_t i = 0; i < list->event_count; i++) {
        const struct trigger_event *event = &list->events[i];
        check_event_fields(event);
        if (batch)
            FUZZ_CHECK(event->channel_count == 1, "batch[%zu] has %zu channels", i,
                       event->channel_count);
        for (size_t c = 0; c < event->channel_count; c++)
            fuzz_check_rendered_event(event, event->channels[c], true);
        frames += event->channel_count;
    }
    FUZZ_CHECK(frames == list->frame_count, "frame_count %zu, the events have %zu",
               list->frame_count, frames);
}

static void check_parse(const char *body, size_t len, bool batch)
{
    struct trigger_list list;
    char err[FUZZ_MESSAGE_MAX] = "";
    int status = batch ? trigger_parse_batch(&list, app, body, len, err, sizeof err)
                       : trigger_parse_event(&list, app, body, len, err, sizeof err);
    if (status != 0) {
        FUZZ_CHECK(status == 400 || status == 413, "%s returned %d: %s",
                   batch ? "trigger_parse_batch" : "trigger_parse_event", status, err);
        FUZZ_CHECK(err[0] && fuzz_utf8_valid(err, strlen(err)),
                   "status %d without a UTF-8 message: %s", status, err);
        return;
    }

    check_list(&list, batch);
    trigger_list_free(&list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    check_parse(body, size, false);
    check_parse(body, size, true);
    return 0;
}
