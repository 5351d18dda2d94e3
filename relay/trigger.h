/* Validation of Pusher HTTP API trigger bodies and rendering of the frames
 * they produce.
 *
 * A body is parsed and checked completely before anything is published, so
 * a request is either rejected as a whole or delivered as a whole. */
#ifndef HERALD_RELAY_TRIGGER_H
#define HERALD_RELAY_TRIGGER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "strbuf.h"

struct json_object;

/* One event to deliver to one or more channels. Every pointer points into
 * the parsed body owned by the trigger_list. */
struct trigger_event {
    const char *name;
    const char *data; /* the `data` string, or an object or array serialised */
    size_t data_len;
    const char *socket_id; /* connection to exclude, or NULL */
    const char **channels; /* distinct and valid channel names */
    size_t channel_count;
    unsigned info; /* CHANNEL_INFO_* attributes to respond with, 0 for none */
};

struct trigger_list {
    struct json_object *body;
    struct trigger_event *events;
    size_t event_count;
    size_t frame_count; /* sum of channel_count: the number of PUBLISH to send */
};

/* Parses and validates the body of POST /apps/{app_id}/events against the
 * app's limits. Returns 0 and fills `out`, or returns the HTTP status to
 * respond with (400, or 413 when `data` is too large) and a message for the
 * client in `err`. On error `out` needs no freeing. */
int trigger_parse_event(struct trigger_list *out, const struct app_config *app,
                        const char *body, size_t body_len, char *err, size_t err_len);

/* Same for POST /apps/{app_id}/batch_events. The message names the index of
 * the first invalid item, as in "batch[2]: Missing required parameter:
 * channel". */
int trigger_parse_batch(struct trigger_list *out, const struct app_config *app,
                        const char *body, size_t body_len, char *err, size_t err_len);

void trigger_list_free(struct trigger_list *list);

/* Appends the topic of `channel` to `topic` and the envelope carrying the
 * event's frame for that channel to `envelope`. `published_us` is the
 * publish time in microseconds since the epoch; gateways measure the
 * delivery latency from it. */
void trigger_render(const struct trigger_event *event, const char *channel, const char *prefix,
                    const char *app_id, unsigned long long published_us, struct strbuf *topic,
                    struct strbuf *envelope);

/* Checks a channel name given in a request: its length against the app's
 * max_channel_name_length, its characters, and that it is not reserved
 * (#server-to-user-<user id> is allowed). `where` names the value in the
 * message ("channel", "channels[3]"). Returns 0, or 400 with the message
 * in `err`. */
int trigger_check_channel_name(const char *name, size_t len, const char *where,
                               const struct app_config *app, char *err, size_t err_len);

/* Parses `body` as one JSON object in valid UTF-8 into a new json-c object
 * at *root. Returns 0, or the HTTP status (400, 413, 500) with a message in
 * `err`. */
int trigger_parse_json_object(struct json_object **root, const char *body, size_t body_len,
                              char *err, size_t err_len);

/* True when `text` matches ^\d+\.\d+$, the socket_id format of the Pusher
 * protocol, in at most ENVELOPE_SOCKET_ID_MAX bytes. */
bool trigger_socket_id_valid(const char *text, size_t len);

/* Copies `text` into `out` for use inside an error message: bytes outside
 * printable ASCII become '?', and text longer than 64 bytes is cut and
 * ends in "...". `out_len` must be at least 68. */
void trigger_printable(char *out, size_t out_len, const char *text, size_t text_len);

#endif
