#include "webhook_job.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static bool field_is(const char *name, size_t len, const char *expected)
{
    return len == strlen(expected) && memcmp(name, expected, len) == 0;
}

/* Parses the decimal subscription count. The scripts write it with
 * tostring(), so it is a plain non-negative integer. */
static int parse_count(const char *text, long long *value)
{
    if (text[0] < '0' || text[0] > '9')
        return -1;
    char *end;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *value = parsed;
    return 0;
}

static int check_present(const char *value, const char *field, const char *type, char *err,
                         size_t err_len)
{
    if (value)
        return 0;
    snprintf(err, err_len, "missing field %s for %s", field, type);
    return -1;
}

int webhook_job_event_parse(struct webhook_job_event *event, char *const *strings,
                            const size_t *lengths, size_t count, char *err, size_t err_len)
{
    memset(event, 0, sizeof *event);
    const char *name = NULL;
    const char *subscription_count = NULL;

    for (size_t i = 0; i + 1 < count; i += 2) {
        const char *field = strings[i];
        size_t field_len = lengths[i];
        const char *value = strings[i + 1];
        size_t value_len = lengths[i + 1];

        if (field_is(field, field_len, "name"))
            name = value;
        else if (field_is(field, field_len, "channel"))
            event->channel = value;
        else if (field_is(field, field_len, "user_id"))
            event->user_id = value_len > 0 ? value : NULL;
        else if (field_is(field, field_len, "event"))
            event->event = value;
        else if (field_is(field, field_len, "data")) {
            event->data = value;
            event->data_len = value_len;
        } else if (field_is(field, field_len, "socket_id"))
            event->socket_id = value;
        else if (field_is(field, field_len, "subscription_count"))
            subscription_count = value;
    }

    if (!name) {
        snprintf(err, err_len, "missing field name");
        return -1;
    }
    event->type = config_webhook_event_from_name(name);
    if (event->type == 0) {
        snprintf(err, err_len, "unknown event name \"%.64s\"", name);
        return -1;
    }
    if (!event->channel || event->channel[0] == '\0') {
        snprintf(err, err_len, "missing field channel for %s", name);
        return -1;
    }

    /* Fields of other types are dropped, so the body carries only what
     * Pusher documents for this type. */
    switch (event->type) {
    case WEBHOOK_MEMBER_ADDED:
    case WEBHOOK_MEMBER_REMOVED:
        event->event = event->data = event->socket_id = NULL;
        event->data_len = 0;
        return check_present(event->user_id, "user_id", name, err, err_len);

    case WEBHOOK_CLIENT_EVENT:
        if (check_present(event->event, "event", name, err, err_len) != 0 ||
            check_present(event->data, "data", name, err, err_len) != 0 ||
            check_present(event->socket_id, "socket_id", name, err, err_len) != 0)
            return -1;
        return 0;

    case WEBHOOK_SUBSCRIPTION_COUNT:
        event->user_id = event->event = event->data = event->socket_id = NULL;
        event->data_len = 0;
        if (check_present(subscription_count, "subscription_count", name, err, err_len) != 0)
            return -1;
        if (parse_count(subscription_count, &event->subscription_count) != 0) {
            snprintf(err, err_len, "invalid subscription_count \"%.32s\": expected a "
                     "non-negative integer", subscription_count);
            return -1;
        }
        return 0;

    default: /* channel_occupied, channel_vacated, cache_miss */
        event->user_id = event->event = event->data = event->socket_id = NULL;
        event->data_len = 0;
        return 0;
    }
}

static void append_string_member(struct strbuf *out, const char *key, const char *value,
                                 size_t len)
{
    strbuf_appendf(out, ",\"%s\":", key);
    strbuf_append_json_string(out, value, len);
}

static void render_event(struct strbuf *out, const struct webhook_job_event *event)
{
    const char *name = config_webhook_event_name(event->type);
    strbuf_append_str(out, "{\"name\":");
    strbuf_append_json_string(out, name, strlen(name));
    append_string_member(out, "channel", event->channel, strlen(event->channel));

    if (event->user_id)
        append_string_member(out, "user_id", event->user_id, strlen(event->user_id));
    if (event->event)
        append_string_member(out, "event", event->event, strlen(event->event));
    if (event->data)
        append_string_member(out, "data", event->data, event->data_len);
    if (event->socket_id)
        append_string_member(out, "socket_id", event->socket_id, strlen(event->socket_id));
    if (event->type == WEBHOOK_SUBSCRIPTION_COUNT)
        strbuf_appendf(out, ",\"subscription_count\":%lld", event->subscription_count);
    strbuf_append_char(out, '}');
}

void webhook_job_render_body(struct strbuf *out, uint64_t time_ms,
                             const struct webhook_job_event *const *events, size_t count)
{
    strbuf_appendf(out, "{\"time_ms\":%" PRIu64 ",\"events\":[", time_ms);
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            strbuf_append_char(out, ',');
        render_event(out, events[i]);
    }
    strbuf_append_str(out, "]}");
}
