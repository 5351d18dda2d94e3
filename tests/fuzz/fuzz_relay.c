#include "fuzz_relay.h"

#include <json-c/json.h>
#include <string.h>

#include "envelope.h"
#include "fuzz_util.h"
#include "strbuf.h"

bool fuzz_socket_id_valid(const char *text)
{
    size_t before = strspn(text, "0123456789");
    if (before == 0 || text[before] != '.')
        return false;
    size_t after = strspn(text + before + 1, "0123456789");
    return after > 0 && text[before + 1 + after] == '\0';
}

/* Checks that the frame contains exactly the event's name, channel and data. */
static void check_frame(const struct trigger_event *event, const char *channel, const char *frame,
                        size_t len, bool check_utf8)
{
    if (check_utf8)
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

void fuzz_check_rendered_event(const struct trigger_event *event, const char *channel,
                               bool check_utf8)
{
    struct strbuf topic, payload, expected_topic;
    strbuf_init(&topic);
    strbuf_init(&payload);
    strbuf_init(&expected_topic);
    trigger_render(event, channel, FUZZ_RELAY_PREFIX, FUZZ_RELAY_APP_ID, FUZZ_RELAY_PUBLISHED_US, &topic, &payload);

    strbuf_appendf(&expected_topic, FUZZ_RELAY_PREFIX "ch:{" FUZZ_RELAY_APP_ID ":%s}", channel);
    FUZZ_CHECK(strcmp(topic.data, expected_topic.data) == 0, "topic %s, expected %s",
               topic.data, expected_topic.data);

    struct envelope envelope;
    FUZZ_CHECK(envelope_decode(payload.data, payload.len, &envelope) == 0,
               "rendered envelope does not decode: %s", payload.data);
    FUZZ_CHECK(envelope.flags == 0 && envelope.published_us == FUZZ_RELAY_PUBLISHED_US,
               "envelope flags %x, published_us %llu", envelope.flags, envelope.published_us);
    if (event->socket_id)
        FUZZ_CHECK(envelope.exclude && envelope.exclude_len == strlen(event->socket_id) &&
                       memcmp(envelope.exclude, event->socket_id, envelope.exclude_len) == 0,
                   "envelope does not exclude socket_id %s", event->socket_id);
    else
        FUZZ_CHECK(!envelope.exclude, "envelope excludes a socket_id the event does not name");
    check_frame(event, channel, envelope.frame, envelope.frame_len, check_utf8);

    strbuf_free(&topic);
    strbuf_free(&payload);
    strbuf_free(&expected_topic);
}
