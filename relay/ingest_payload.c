/* Laravel redis broadcaster messages: from topic and payload to an event. */
#include "ingest_payload.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "strbuf.h"
#include "trigger.h"

static const char *const ingest_skip_names[INGEST_SKIP_COUNT] = {
    [INGEST_DELIVER] = "delivered",
    [INGEST_SKIP_FOREIGN_TOPIC] = "foreign_topic",
    [INGEST_SKIP_CHANNEL] = "invalid_channel",
    [INGEST_SKIP_PAYLOAD] = "invalid_payload",
    [INGEST_SKIP_EVENT] = "invalid_event",
    [INGEST_SKIP_DATA] = "invalid_data",
    [INGEST_SKIP_DATA_TOO_LARGE] = "data_too_large",
};

const char *ingest_skip_name(enum ingest_skip skip)
{
    return skip < INGEST_SKIP_COUNT ? ingest_skip_names[skip] : "unknown";
}

__attribute__((format(printf, 4, 5)))
static enum ingest_skip ingest_fail(char *err, size_t err_len, enum ingest_skip skip,
                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return skip;
}

/* A limit below zero means "no limit", as in the app configuration. */
static size_t limit_to_size(int limit)
{
    return limit < 0 ? SIZE_MAX : (size_t)limit;
}

/* ------------------------------------------------------------------------
 * Topic
 * ------------------------------------------------------------------------ */

/* Finds the channel name in `topic`. Herald's own topics never start with
 * a Laravel prefix that differs from Herald's prefix, but an empty or
 * overlapping Laravel prefix would match them, so they are skipped here. */
static enum ingest_skip ingest_parse_topic(struct ingest_event *out, const char *topic,
                                           size_t topic_len, const char *laravel_prefix,
                                           const char *herald_prefix,
                                           const struct app_config *app, char *err,
                                           size_t err_len)
{
    char printable[80];
    trigger_printable(printable, sizeof printable, topic, topic_len);

    size_t prefix_len = strlen(laravel_prefix);
    if (topic_len < prefix_len || memcmp(topic, laravel_prefix, prefix_len) != 0)
        return ingest_fail(err, err_len, INGEST_SKIP_FOREIGN_TOPIC,
                           "topic \"%s\" does not start with the Laravel prefix", printable);

    size_t herald_len = strlen(herald_prefix);
    if (herald_len > 0 && topic_len >= herald_len && memcmp(topic, herald_prefix, herald_len) == 0)
        return ingest_fail(err, err_len, INGEST_SKIP_FOREIGN_TOPIC,
                           "topic \"%s\" is one of Herald's own (prefix \"%s\")", printable,
                           herald_prefix);

    const char *channel = topic + prefix_len;
    size_t channel_len = topic_len - prefix_len;
    char message[256];
    if (strlen(channel) != channel_len)
        return ingest_fail(err, err_len, INGEST_SKIP_CHANNEL,
                           "topic \"%s\": the channel name contains a NUL byte", printable);
    if (trigger_check_channel_name(channel, channel_len, "channel", app, message,
                                   sizeof message) != 0)
        return ingest_fail(err, err_len, INGEST_SKIP_CHANNEL, "topic \"%s\": %s", printable,
                           message);

    out->channel = channel;
    return INGEST_DELIVER;
}

/* ------------------------------------------------------------------------
 * Payload fields
 * ------------------------------------------------------------------------ */

static enum ingest_skip ingest_parse_name(struct ingest_event *out, struct json_object *root,
                                          const struct app_config *app, char *err,
                                          size_t err_len)
{
    struct json_object *value;
    if (!json_object_object_get_ex(root, "event", &value) ||
        !json_object_is_type(value, json_type_string))
        return ingest_fail(err, err_len, INGEST_SKIP_EVENT,
                           "\"event\" is missing or not a string");

    const char *name = json_object_get_string(value);
    size_t len = (size_t)json_object_get_string_len(value);
    size_t max = limit_to_size(app->max_event_name_length);
    if (len == 0)
        return ingest_fail(err, err_len, INGEST_SKIP_EVENT, "\"event\" is empty");
    if (len > max)
        return ingest_fail(err, err_len, INGEST_SKIP_EVENT,
                           "\"event\" is %zu bytes, the maximum is %zu", len, max);
    if (strlen(name) != len)
        return ingest_fail(err, err_len, INGEST_SKIP_EVENT, "\"event\" contains \\u0000");

    out->name = name;
    return INGEST_DELIVER;
}

/* Reads `data`: an object loses its "socket" key and is serialised, an
 * array is serialised, and a string is delivered unchanged, as the HTTP
 * API does with a string `data`. */
static enum ingest_skip ingest_parse_data(struct ingest_event *out, struct json_object *root,
                                          const struct app_config *app, char *err,
                                          size_t err_len)
{
    struct json_object *value;
    if (!json_object_object_get_ex(root, "data", &value) || !value)
        return ingest_fail(err, err_len, INGEST_SKIP_DATA, "\"data\" is missing or null");

    switch (json_object_get_type(value)) {
    case json_type_object:
        json_object_object_del(value, "socket");
        /* fall through */
    case json_type_array:
        /* PHP escapes "/" as "\/"; the data string is clearer without it
         * and means the same. The serialisation is owned by `value`. */
        out->data = json_object_to_json_string_length(
            value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &out->data_len);
        break;
    case json_type_string:
        out->data = json_object_get_string(value);
        out->data_len = (size_t)json_object_get_string_len(value);
        break;
    default:
        return ingest_fail(err, err_len, INGEST_SKIP_DATA,
                           "\"data\" is not an object, an array or a string");
    }

    size_t max = limit_to_size(app->max_event_payload_bytes);
    if (out->data_len > max)
        return ingest_fail(err, err_len, INGEST_SKIP_DATA_TOO_LARGE,
                           "\"data\" is %zu bytes, the maximum is %zu", out->data_len, max);
    return INGEST_DELIVER;
}

/* Reads the top-level `socket`. Only a socket_id excludes a connection;
 * null, another type or a malformed string delivers to every subscriber. */
static void ingest_parse_socket(struct ingest_event *out, struct json_object *root)
{
    struct json_object *value;
    out->exclude = NULL;
    if (!json_object_object_get_ex(root, "socket", &value) ||
        !json_object_is_type(value, json_type_string))
        return;

    const char *text = json_object_get_string(value);
    if (trigger_socket_id_valid(text, (size_t)json_object_get_string_len(value)))
        out->exclude = text;
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

enum ingest_skip ingest_parse(struct ingest_event *out, const char *topic, size_t topic_len,
                              const char *payload, size_t payload_len,
                              const char *laravel_prefix, const char *herald_prefix,
                              const struct app_config *app, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);

    enum ingest_skip skip = ingest_parse_topic(out, topic, topic_len, laravel_prefix,
                                               herald_prefix, app, err, err_len);
    if (skip != INGEST_DELIVER)
        return skip;

    /* The payload goes through the same strict, UTF-8 checking parser as
     * an HTTP API body, because its data ends up in WebSocket text frames. */
    char message[256];
    struct json_object *root;
    if (trigger_parse_json_object(&root, payload, payload_len, message, sizeof message) != 0)
        return ingest_fail(err, err_len, INGEST_SKIP_PAYLOAD, "channel %s: %s", out->channel,
                           message);

    skip = ingest_parse_name(out, root, app, message, sizeof message);
    if (skip == INGEST_DELIVER)
        skip = ingest_parse_data(out, root, app, message, sizeof message);
    if (skip != INGEST_DELIVER) {
        json_object_put(root);
        return ingest_fail(err, err_len, skip, "channel %s: %s", out->channel, message);
    }

    ingest_parse_socket(out, root);
    out->root = root;
    return INGEST_DELIVER;
}

void ingest_event_free(struct ingest_event *event)
{
    json_object_put(event->root);
    memset(event, 0, sizeof *event);
}

void ingest_pattern(struct strbuf *out, const char *prefix)
{
    for (const char *p = prefix; *p; p++) {
        if (*p == '*' || *p == '?' || *p == '[' || *p == ']' || *p == '\\')
            strbuf_append_char(out, '\\');
        strbuf_append_char(out, *p);
    }
    strbuf_append_char(out, '*');
}
