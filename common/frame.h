/* Rendering of the server-to-client Pusher frames.
 *
 * Every `data` is rendered as a JSON-encoded string, except pusher:error
 * whose data is an object, as Pusher itself sends it. */
#ifndef HERALD_FRAME_H
#define HERALD_FRAME_H

#include <stddef.h>

#include "strbuf.h"

/* {"event":E,"channel":C,"data":"<data escaped>"[,"user_id":U]}.
 * `channel` and `user_id` may be NULL; `data` is the raw string that becomes
 * the JSON string value. */
void frame_render_event(struct strbuf *out, const char *event, const char *channel,
                        const char *data, size_t data_len, const char *user_id);

/* {"event":"pusher:error","data":{"code":N,"message":M}}; code < 0 renders null. */
void frame_render_error(struct strbuf *out, int code, const char *message);

void frame_render_connection_established(struct strbuf *out, const char *socket_id,
                                         int activity_timeout);

/* {"event":"pusher:subscription_error","channel":C,"data":{"type":T,"error":M,"status":S}} */
void frame_render_subscription_error(struct strbuf *out, const char *channel,
                                     const char *type, const char *message, int status);

#endif
