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
 * Frames must be valid UTF-8 as browsers decode it whenever the body is.
 * NOTE: trigger.c relies on json-c's UTF-8 check, which accepts overlong
 * forms, surrogates and code points above U+10FFFF (see docs/fuzzing.md),
 * so frames of a body with those are checked only when the environment
 * variable HERALD_FUZZ_STRICT_UTF8 is 1, until trigger.c rejects them. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "channel_info.h"
#include "config.h"
#include "envelope.h"
#include "fuzz_util.h"
#include "strbuf.h"
#include "trigger.h"

/* Size of the message buffer of relay/http_api.c. */
#define FUZZ_MESSAGE_MAX 512

#define FUZZ_PREFIX "herald:"
#define FUZZ_APP_ID "42"
#define FUZZ_PUBLISHED_US 1700000000000000ULL

static const char config_json[] =
    "{\"apps\":[{\"id\":\"" FUZZ_APP_ID "\",\"key\":\"app-key\",\"secret\":\"app-secret\"}]}";

static struct herald_config config;
static const struct app_config *app;
static bool strict_utf8;

/* Whether the body being parsed is valid UTF-8 as browsers decode it. */
static bool body_utf8;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[CONFIG_ERROR_MAX];
    if (config_load_string(&config, config_json, err, sizeof err) != 0)
        fuzz_fail("the harness configuration is invalid: %s", err);
    app = config_find_app_by_id(&config, FUZZ_APP_ID);

    const char *strict = getenv("HERALD_FUZZ_STRICT_UTF8");
    strict_utf8 = strict && strcmp(strict, "1") == 0;
    return 0;
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

static void check_event_fields(const struct trigger_event *event)
{
    size_t name_len = strlen(event->name);
    FUZZ_CHECK(name_len > 0 && name_len <= (size_t)app->max_event_name_length,
               "accepted an event name of %zu bytes", name_len);
    FUZZ_CHECK(event->data && event->data_len <= (size_t)app->max_event_payload_bytes,
               "accepted %zu bytes of data", event->data_len);
    if (event->socket_id)
        FUZZ_CHECK(socket_id_valid(event->socket_id) &&
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

/* Checks that the frame contains exactly the event's name, channel and data. */
static void check_frame(const struct trigger_event *event, const char *channel, const char *frame,
                        size_t len)
{
    if (body_utf8 || strict_utf8)
        FUZZ_CHECK(fuzz_utf8_valid(frame, len), "frame is not valid UTF-8: %.*s", (int)len,
                   frame);
    json_object *parsed = fuzz_json_parse_object(frame, len);
    FUZZ_CHECK(parsed, "frame is not one JSON object: %.*s", (int)len, frame);
    FUZZ_CHECK(json_object_object_length(parsed) == 3, "frame has %d members: %.*s",
               json_object_object_length(parsed), (int)len, frame);

    json_object *name, *frame_channel, *data;
    FUZZ_CHECK(json_object_object_get_ex(parsed, "event", &name) &&
                   json_object_is_type(name, json_type_string) &&
                   strcmp(json_object_get_string(name), event->name) == 0,
               "frame event differs from %s: %.*s", event->name, (int)len, frame);
    FUZZ_CHECK(json_object_object_get_ex(parsed, "channel", &frame_channel) &&
                   json_object_is_type(frame_channel, json_type_string) &&
                   strcmp(json_object_get_string(frame_channel), channel) == 0,
               "frame channel differs from %s: %.*s", channel, (int)len, frame);
    FUZZ_CHECK(json_object_object_get_ex(parsed, "data", &data) &&
                   json_object_is_type(data, json_type_string) &&
                   (size_t)json_object_get_string_len(data) == event->data_len &&
                   memcmp(json_object_get_string(data), event->data, event->data_len) == 0,
               "frame data differs from the event's %zu bytes: %.*s", event->data_len, (int)len,
               frame);
    json_object_put(parsed);
}

static void check_render(const struct trigger_event *event, const char *channel)
{
    struct strbuf topic, payload, expected_topic;
    strbuf_init(&topic);
    strbuf_init(&payload);
    strbuf_init(&expected_topic);
    trigger_render(event, channel, FUZZ_PREFIX, FUZZ_APP_ID, FUZZ_PUBLISHED_US, &topic, &payload);

    strbuf_appendf(&expected_topic, FUZZ_PREFIX "ch:{" FUZZ_APP_ID ":%s}", channel);
    FUZZ_CHECK(strcmp(topic.data, expected_topic.data) == 0, "topic %s, expected %s",
               topic.data, expected_topic.data);

    struct envelope envelope;
    FUZZ_CHECK(envelope_decode(payload.data, payload.len, &envelope) == 0,
               "rendered envelope does not decode: %s", payload.data);
    FUZZ_CHECK(envelope.flags == 0 && envelope.published_us == FUZZ_PUBLISHED_US,
               "envelope flags %x, published_us %llu", envelope.flags, envelope.published_us);
    if (event->socket_id)
        FUZZ_CHECK(envelope.exclude && envelope.exclude_len == strlen(event->socket_id) &&
                       memcmp(envelope.exclude, event->socket_id, envelope.exclude_len) == 0,
                   "envelope does not exclude socket_id %s", event->socket_id);
    else
        FUZZ_CHECK(!envelope.exclude, "envelope excludes a socket_id the event does not name");
    check_frame(event, channel, envelope.frame, envelope.frame_len);

    strbuf_free(&topic);
    strbuf_free(&payload);
    strbuf_free(&expected_topic);
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
            check_render(event, event->channels[c]);
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
    body_utf8 = fuzz_utf8_valid(body, size);
    check_parse(body, size, false);
    check_parse(body, size, true);
    return 0;
}
