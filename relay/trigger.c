/* Trigger bodies of the Pusher HTTP API: parsing, validation, rendering.
 *
 * Messages follow Pusher's wording where Pusher has one ("Missing required
 * parameter: name") and otherwise name the field, the value and the limit,
 * because Laravel shows the body of a failed request to the developer as
 * "Pusher error: <body>". */
#include "trigger.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "channel.h"
#include "channel_info.h"
#include "envelope.h"
#include "frame.h"
#include "keys.h"
#include "text.h"

/* json-c's own default. Nesting matters only when `data` arrives as an
 * object instead of a string. */
#define TRIGGER_JSON_MAX_DEPTH 32

#define TRIGGER_PRINTABLE_MAX 64
#define TRIGGER_MESSAGE_MAX 512

/* ------------------------------------------------------------------------
 * Errors and small helpers
 * ------------------------------------------------------------------------ */

__attribute__((format(printf, 4, 5)))
static int trigger_fail(char *err, size_t err_len, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return status;
}

/* A limit below zero means "no limit". */
static size_t limit_to_size(int limit)
{
    return limit < 0 ? SIZE_MAX : (size_t)limit;
}

static const char *json_type_label(const struct json_object *value)
{
    switch (json_object_get_type(value)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
    case json_type_int:
        return "a number";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    case json_type_string:
        return "a string";
    }
    return "an unknown type";
}

void trigger_printable(char *out, size_t out_len, const char *text, size_t text_len)
{
    text_printable(out, out_len, text, text_len, TRIGGER_PRINTABLE_MAX);
}

/* Returns the offset of the first byte that is not well-formed UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or
 * `len` when all of it is. json-c 0.16's UTF-8 check counts continuation
 * bytes only, and browsers close a WebSocket on a frame with such bytes. */
static size_t utf8_invalid_offset(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t extra;
        unsigned char low = 0x80, high = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            if (c == 0xE0)
                low = 0xA0;
            else if (c == 0xED)
                high = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            if (c == 0xF0)
                low = 0x90;
            else if (c == 0xF4)
                high = 0x8F;
        } else {
            return i;
        }
        if (i + extra >= len)
            return i;
        if (s[i + 1] < low || s[i + 1] > high)
            return i;
        for (size_t k = 2; k <= extra; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return i;
        }
        i += extra + 1;
    }
    return len;
}

/* ------------------------------------------------------------------------
 * Parsing the body
 * ------------------------------------------------------------------------ */

static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int trigger_parse_json_object(struct json_object **root, const char *body, size_t body_len,
                              char *err, size_t err_len)
{
    *root = NULL;
    if (body_len == 0)
        return trigger_fail(err, err_len, 400, "Request body is empty; expected a JSON object");
    if (body_len > INT_MAX)
        return trigger_fail(err, err_len, 413, "Request body is too large");

    size_t invalid = utf8_invalid_offset(body, body_len);
    if (invalid < body_len)
        return trigger_fail(err, err_len, 400,
                            "Invalid JSON in request body at byte %zu: invalid UTF-8", invalid);

    struct json_tokener *tok = json_tokener_new_ex(TRIGGER_JSON_MAX_DEPTH);
    if (!tok)
        return trigger_fail(err, err_len, 500, "Out of memory while parsing the request body");
    /* Frames reach browsers as WebSocket text, which must be valid UTF-8,
     * so invalid bytes are rejected here before browsers drop the socket. */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

    struct json_object *value = json_tokener_parse_ex(tok, body, (int)body_len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);

    /* A bare number or literal is complete only once the parser reads what
     * follows it, and a NUL byte marks the end of the input. */
    if (jerr == json_tokener_continue) {
        value = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        if (jerr != json_tokener_success) {
            json_object_put(value);
            json_tokener_free(tok);
            return trigger_fail(err, err_len, 400,
                                "Invalid JSON in request body: unexpected end of input");
        }
        end = body_len;
    }
    json_tokener_free(tok);

    if (jerr != json_tokener_success) {
        return trigger_fail(err, err_len, 400, "Invalid JSON in request body at byte %zu: %s",
                            end, json_tokener_error_desc(jerr));
    }

    while (end < body_len && json_space(body[end]))
        end++;
    if (end < body_len) {
        json_object_put(value);
        return trigger_fail(err, err_len, 400,
                            "Invalid JSON in request body at byte %zu: unexpected data after "
                            "the JSON object",
                            end);
    }

    if (!json_object_is_type(value, json_type_object)) {
        int status = trigger_fail(err, err_len, 400,
                                  "Request body must be a JSON object, not %s",
                                  json_type_label(value));
        json_object_put(value);
        return status;
    }

    *root = value;
    return 0;
}

/* ------------------------------------------------------------------------
 * Validating one event
 * ------------------------------------------------------------------------ */

static int trigger_parse_name(struct trigger_event *event, struct json_object *object,
                              const struct app_config *app, char *err, size_t err_len)
{
    struct json_object *value;
    if (!json_object_object_get_ex(object, "name", &value) || !value)
        return trigger_fail(err, err_len, 400, "Missing required parameter: name");
    if (!json_object_is_type(value, json_type_string))
        return trigger_fail(err, err_len, 400, "Invalid name: expected a string, got %s",
                            json_type_label(value));

    const char *name = json_object_get_string(value);
    size_t len = (size_t)json_object_get_string_len(value);
    size_t max = limit_to_size(app->max_event_name_length);
    if (len == 0)
        return trigger_fail(err, err_len, 400, "Invalid name: the event name is empty");
    if (len > max)
        return trigger_fail(err, err_len, 400,
                            "Invalid name: the event name is %zu bytes, the maximum is %zu",
                            len, max);
    /* The frame renderer takes the name as a C string. */
    if (strlen(name) != len)
        return trigger_fail(err, err_len, 400, "Invalid name: the event name contains \\u0000");

    event->name = name;
    return 0;
}

static int trigger_parse_data(struct trigger_event *event, struct json_object *object,
                              const struct app_config *app, char *err, size_t err_len)
{
    struct json_object *value;
    if (!json_object_object_get_ex(object, "data", &value) || !value)
        return trigger_fail(err, err_len, 400, "Missing required parameter: data");

    switch (json_object_get_type(value)) {
    case json_type_string:
        event->data = json_object_get_string(value);
        event->data_len = (size_t)json_object_get_string_len(value);
        break;
    case json_type_object:
    case json_type_array:
        /* Pusher documents `data` as a string, but some clients send the
         * object itself; clients then receive it as the string they expect.
         * The serialisation is owned by `value`, so by the body. */
        event->data = json_object_to_json_string_length(
            value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &event->data_len);
        break;
    default:
        return trigger_fail(err, err_len, 400, "Invalid data: expected a string, got %s",
                            json_type_label(value));
    }

    size_t max = limit_to_size(app->max_event_payload_bytes);
    if (event->data_len > max)
        return trigger_fail(err, err_len, 413,
                            "Event data too large: %zu bytes, the maximum is %zu",
                            event->data_len, max);
    return 0;
}

/* Matches ^\d+\.\d+$, the socket_id format of the Pusher protocol. */
static bool socket_id_valid(const char *text, size_t len)
{
    if (len == 0 || len > ENVELOPE_SOCKET_ID_MAX)
        return false;

    size_t i = 0;
    size_t digits_before = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        i++;
        digits_before++;
    }
    if (digits_before == 0 || i == len || text[i] != '.')
        return false;
    i++;

    size_t digits_after = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
        i++;
        digits_after++;
    }
    return digits_after > 0 && i == len;
}

bool trigger_socket_id_valid(const char *text, size_t len)
{
    return socket_id_valid(text, len);
}

static int trigger_parse_socket_id(struct trigger_event *event, struct json_object *object,
                                   char *err, size_t err_len)
{
    struct json_object *value;
    event->socket_id = NULL;

    /* A null socket_id excludes no connection, as if it were absent. */
    if (!json_object_object_get_ex(object, "socket_id", &value) || !value)
        return 0;

    if (!json_object_is_type(value, json_type_string))
        return trigger_fail(err, err_len, 400, "Invalid socket_id: expected a string, got %s",
                            json_type_label(value));

    const char *text = json_object_get_string(value);
    size_t len = (size_t)json_object_get_string_len(value);
    if (!socket_id_valid(text, len)) {
        char printable[TRIGGER_PRINTABLE_MAX + 4];
        trigger_printable(printable, sizeof printable, text, len);
        return trigger_fail(err, err_len, 400,
                            "Invalid socket_id \"%s\": expected digits, a dot and digits, "
                            "such as 1234.5678",
                            printable);
    }

    event->socket_id = text;
    return 0;
}

int trigger_check_channel_name(const char *name, size_t len, const char *where,
                               const struct app_config *app, char *err, size_t err_len)
{
    size_t max = limit_to_size(app->max_channel_name_length);
    char printable[TRIGGER_PRINTABLE_MAX + 4];
    trigger_printable(printable, sizeof printable, name, len);

    if (len > max)
        return trigger_fail(err, err_len, 400,
                            "Invalid %s: the channel name is %zu bytes, the maximum is %zu",
                            where, len, max);
    if (!channel_name_valid(name, len, max))
        return trigger_fail(err, err_len, 400,
                            "Invalid %s \"%s\": a channel name uses only A-Z a-z 0-9 _ - = @ "
                            ", . ; and may start with #",
                            where, printable);

    /* Names starting with '#' belong to the server; the only one a backend
     * may publish to is a user's #server-to-user-<user id> channel. The
     * classifier calls the prefix without a user id reserved too. */
    if (channel_classify(name).type == CHANNEL_RESERVED)
        return trigger_fail(err, err_len, 400,
                            "Invalid %s \"%s\": names starting with # are reserved, except "
                            "#server-to-user-<user id>",
                            where, printable);
    return 0;
}

/* Checks one channel name of the body; `where` names it in the message. */
static int trigger_check_channel(struct json_object *value, const char *where,
                                 const struct app_config *app, char *err, size_t err_len)
{
    if (!json_object_is_type(value, json_type_string))
        return trigger_fail(err, err_len, 400, "Invalid %s: expected a string, got %s", where,
                            json_type_label(value));

    return trigger_check_channel_name(json_object_get_string(value),
                                      (size_t)json_object_get_string_len(value), where, app, err,
                                      err_len);
}

static bool channel_listed(const char **channels, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(channels[i], name) == 0)
            return true;
    }
    return false;
}

/* Reads `channel` (one name) or `channels` (an array of names). A batch
 * item takes `channel` only, as in Pusher's batch API. */
static int trigger_parse_channels(struct trigger_event *event, struct json_object *object,
                                  const struct app_config *app, bool single_only, char *err,
                                  size_t err_len)
{
    struct json_object *channel = NULL;
    struct json_object *channels = NULL;
    json_object_object_get_ex(object, "channel", &channel);
    json_object_object_get_ex(object, "channels", &channels);

    if (single_only && channels)
        return trigger_fail(err, err_len, 400,
                            "Invalid parameter channels: a batch event takes a single channel");
    if (channel && channels)
        return trigger_fail(err, err_len, 400,
                            "Invalid parameters: give either channel or channels, not both");

    if (channel) {
        int status = trigger_check_channel(channel, "channel", app, err, err_len);
        if (status)
            return status;

        event->channels = malloc(sizeof *event->channels);
        if (!event->channels)
            return trigger_fail(err, err_len, 500, "Out of memory");
        event->channels[0] = json_object_get_string(channel);
        event->channel_count = 1;
        return 0;
    }

    if (!channels)
        return trigger_fail(err, err_len, 400,
                            single_only ? "Missing required parameter: channel"
                                        : "Missing required parameter: channel or channels");
    if (!json_object_is_type(channels, json_type_array))
        return trigger_fail(err, err_len, 400, "Invalid channels: expected an array, got %s",
                            json_type_label(channels));

    size_t count = json_object_array_length(channels);
    size_t max = limit_to_size(app->max_channels_per_trigger);
    if (count == 0)
        return trigger_fail(err, err_len, 400, "Invalid channels: the array is empty");
    if (count > max)
        return trigger_fail(err, err_len, 400, "Too many channels: %zu, the maximum is %zu",
                            count, max);

    event->channels = calloc(count, sizeof *event->channels);
    if (!event->channels)
        return trigger_fail(err, err_len, 500, "Out of memory");

    for (size_t i = 0; i < count; i++) {
        struct json_object *value = json_object_array_get_idx(channels, i);
        char where[32];
        snprintf(where, sizeof where, "channels[%zu]", i);
        int status = trigger_check_channel(value, where, app, err, err_len);
        if (status)
            return status;

        /* A channel listed twice still gets the event once, as its
         * subscribers would expect. */
        const char *name = json_object_get_string(value);
        if (!channel_listed(event->channels, event->channel_count, name))
            event->channels[event->channel_count++] = name;
    }
    return 0;
}

/* Reads the optional `info`: a comma-separated list of the attributes to
 * respond with. A null info requests nothing, as if it were absent. */
static int trigger_parse_info(struct trigger_event *event, struct json_object *object,
                              char *err, size_t err_len)
{
    struct json_object *value;
    event->info = 0;
    if (!json_object_object_get_ex(object, "info", &value) || !value)
        return 0;

    if (!json_object_is_type(value, json_type_string))
        return trigger_fail(err, err_len, 400,
                            "Invalid info: expected a string such as \"user_count\", got %s",
                            json_type_label(value));

    const char *text = json_object_get_string(value);
    if (strlen(text) != (size_t)json_object_get_string_len(value))
        return trigger_fail(err, err_len, 400, "Invalid info: the value contains \\u0000");

    return channel_info_parse(text, CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT,
                              &event->info, err, err_len);
}

/* Validates one event object; on error event->channels may be allocated
 * and is freed with the list. */
static int trigger_parse_one(struct trigger_event *event, struct json_object *object,
                             const struct app_config *app, bool batch_item, char *err,
                             size_t err_len)
{
    int status = trigger_parse_name(event, object, app, err, err_len);
    if (status == 0)
        status = trigger_parse_data(event, object, app, err, err_len);
    if (status == 0)
        status = trigger_parse_channels(event, object, app, batch_item, err, err_len);
    if (status == 0)
        status = trigger_parse_socket_id(event, object, err, err_len);
    if (status == 0)
        status = trigger_parse_info(event, object, err, err_len);
    return status;
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

void trigger_list_free(struct trigger_list *list)
{
    for (size_t i = 0; i < list->event_count; i++)
        free(list->events[i].channels);
    free(list->events);
    json_object_put(list->body);
    memset(list, 0, sizeof *list);
}

static int trigger_list_init(struct trigger_list *list, struct json_object *body, size_t count,
                             char *err, size_t err_len)
{
    memset(list, 0, sizeof *list);
    list->body = body;
    list->events = calloc(count ? count : 1, sizeof *list->events);
    if (!list->events) {
        trigger_list_free(list);
        return trigger_fail(err, err_len, 500, "Out of memory");
    }
    return 0;
}

int trigger_parse_event(struct trigger_list *out, const struct app_config *app,
                        const char *body, size_t body_len, char *err, size_t err_len)
{
    struct json_object *root;
    int status = trigger_parse_json_object(&root, body, body_len, err, err_len);
    if (status)
        return status;

    status = trigger_list_init(out, root, 1, err, err_len);
    if (status)
        return status;

    out->event_count = 1;
    status = trigger_parse_one(&out->events[0], root, app, false, err, err_len);
    if (status) {
        trigger_list_free(out);
        return status;
    }

    out->frame_count = out->events[0].channel_count;
    return 0;
}

int trigger_parse_batch(struct trigger_list *out, const struct app_config *app,
                        const char *body, size_t body_len, char *err, size_t err_len)
{
    struct json_object *root;
    int status = trigger_parse_json_object(&root, body, body_len, err, err_len);
    if (status)
        return status;

    struct json_object *batch;
    if (!json_object_object_get_ex(root, "batch", &batch) || !batch) {
        json_object_put(root);
        return trigger_fail(err, err_len, 400, "Missing required parameter: batch");
    }
    if (!json_object_is_type(batch, json_type_array)) {
        status = trigger_fail(err, err_len, 400, "Invalid batch: expected an array, got %s",
                              json_type_label(batch));
        json_object_put(root);
        return status;
    }

    size_t count = json_object_array_length(batch);
    size_t max = limit_to_size(app->max_batch_size);
    if (count > max) {
        json_object_put(root);
        return trigger_fail(err, err_len, 400, "Batch too large: %zu events, the maximum is %zu",
                            count, max);
    }

    status = trigger_list_init(out, root, count, err, err_len);
    if (status)
        return status;

    for (size_t i = 0; i < count; i++) {
        struct json_object *item = json_object_array_get_idx(batch, i);
        struct trigger_event *event = &out->events[i];
        out->event_count = i + 1;

        if (!json_object_is_type(item, json_type_object)) {
            status = trigger_fail(err, err_len, 400,
                                  "Invalid batch[%zu]: expected an object, got %s", i,
                                  json_type_label(item));
            break;
        }

        char item_err[TRIGGER_MESSAGE_MAX];
        status = trigger_parse_one(event, item, app, true, item_err, sizeof item_err);
        if (status) {
            snprintf(err, err_len, "batch[%zu]: %s", i, item_err);
            break;
        }
        out->frame_count += event->channel_count;
    }

    if (status) {
        trigger_list_free(out);
        return status;
    }
    return 0;
}

void trigger_render(const struct trigger_event *event, const char *channel, const char *prefix,
                    const char *app_id, unsigned long long published_us, struct strbuf *topic,
                    struct strbuf *envelope)
{
    struct strbuf frame;
    strbuf_init(&frame);
    frame_render_event(&frame, event->name, channel, event->data, event->data_len, NULL);

    envelope_encode_published(envelope, event->socket_id, 0, published_us, frame.data,
                              frame.len);
    keys_channel_topic(topic, prefix, app_id, channel);
    strbuf_free(&frame);
}
