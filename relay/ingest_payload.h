/* Messages of Laravel's redis broadcaster (Illuminate RedisBroadcaster):
 * checking one message and turning it into a Pusher event.
 *
 * Laravel runs PUBLISH <redis prefix><channel> <payload> for each channel
 * of a broadcast, with a payload such as
 *
 *     {"event":"App\\Events\\OrderShipped","data":{"order_id":7,"socket":null},"socket":null}
 *
 * `data` is an object and repeats `socket`, the socket_id given to
 * toOthers(), or null. The event delivered to clients has `data` as a JSON
 * string without that key, and excludes the connection `socket` names.
 *
 * Everything here is free of I/O, so the CUnit tests cover it. */
#ifndef HERALD_RELAY_INGEST_PAYLOAD_H
#define HERALD_RELAY_INGEST_PAYLOAD_H

#include <stddef.h>

#include "config.h"

struct json_object;
struct strbuf;

/* Outcome of checking a message: delivered, or the reason it is skipped. */
enum ingest_skip {
    INGEST_DELIVER = 0,
    INGEST_SKIP_FOREIGN_TOPIC, /* outside the Laravel prefix, or one of Herald's own topics */
    INGEST_SKIP_CHANNEL,       /* channel name invalid or reserved */
    INGEST_SKIP_PAYLOAD,       /* not a JSON object in valid UTF-8 */
    INGEST_SKIP_EVENT,         /* `event` missing, not a string, empty or too long */
    INGEST_SKIP_DATA,          /* `data` missing, or not an object, array or string */
    INGEST_SKIP_DATA_TOO_LARGE, /* serialised `data` over the app's max_event_payload_bytes */
    INGEST_SKIP_COUNT,
};

/* One message turned into an event. The strings point into `root`, which
 * ingest_event_free releases. */
struct ingest_event {
    struct json_object *root;
    const char *channel; /* points into the topic passed to ingest_parse */
    const char *name;
    const char *data; /* JSON text, without data.socket */
    size_t data_len;
    const char *exclude; /* socket_id to leave out, or NULL */
};

/* Label of `skip` in metrics and logs, such as "invalid_event". */
const char *ingest_skip_name(enum ingest_skip skip);

/* Checks the message PUBLISHed to `topic` (NUL-terminated, `topic_len`
 * bytes) with `payload`, against the prefixes and `app`'s limits. Returns
 * INGEST_DELIVER and fills `out`, or the reason to skip it with details
 * for the log in `err`; `out` then needs no freeing. */
enum ingest_skip ingest_parse(struct ingest_event *out, const char *topic, size_t topic_len,
                              const char *payload, size_t payload_len,
                              const char *laravel_prefix, const char *herald_prefix,
                              const struct app_config *app, char *err, size_t err_len);

void ingest_event_free(struct ingest_event *event);

/* Appends the PSUBSCRIBE pattern that matches every channel starting with
 * `prefix`: the prefix with the glob characters * ? [ ] \ escaped, then *. */
void ingest_pattern(struct strbuf *out, const char *prefix);

#endif
