#include "frame.h"

#include <string.h>

void frame_render_event(struct strbuf *out, const char *event, const char *channel,
                        const char *data, size_t data_len, const char *user_id)
{
    strbuf_append_str(out, "{\"event\":");
    strbuf_append_json_string(out, event, strlen(event));
    if (channel) {
        strbuf_append_str(out, ",\"channel\":");
        strbuf_append_json_string(out, channel, strlen(channel));
    }
    strbuf_append_str(out, ",\"data\":");
    strbuf_append_json_string(out, data, data_len);
    if (user_id) {
        strbuf_append_str(out, ",\"user_id\":");
        strbuf_append_json_string(out, user_id, strlen(user_id));
    }
    strbuf_append_char(out, '}');
}

void frame_render_error(struct strbuf *out, int code, const char *message)
{
    strbuf_append_str(out, "{\"event\":\"pusher:error\",\"data\":{\"code\":");
    if (code < 0)
        strbuf_append_str(out, "null");
    else
        strbuf_appendf(out, "%d", code);
    strbuf_append_str(out, ",\"message\":");
    strbuf_append_json_string(out, message, strlen(message));
    strbuf_append_str(out, "}}");
}

void frame_render_connection_established(struct strbuf *out, const char *socket_id,
                                         int activity_timeout)
{
    struct strbuf data;
    strbuf_init(&data);
    strbuf_append_str(&data, "{\"socket_id\":");
    strbuf_append_json_string(&data, socket_id, strlen(socket_id));
    strbuf_appendf(&data, ",\"activity_timeout\":%d}", activity_timeout);

    frame_render_event(out, "pusher:connection_established", NULL, data.data, data.len, NULL);
    strbuf_free(&data);
}

void frame_render_subscription_error(struct strbuf *out, const char *channel,
                                     const char *type, const char *message, int status)
{
    strbuf_append_str(out, "{\"event\":\"pusher:subscription_error\",\"channel\":");
    strbuf_append_json_string(out, channel, strlen(channel));
    strbuf_append_str(out, ",\"data\":{\"type\":");
    strbuf_append_json_string(out, type, strlen(type));
    strbuf_append_str(out, ",\"error\":");
    strbuf_append_json_string(out, message, strlen(message));
    strbuf_appendf(out, ",\"status\":%d}}", status);
}
