/* Checks of what the relay publishes, shared by the harnesses of trigger
 * bodies and of Laravel broadcaster messages. */
#ifndef HERALD_FUZZ_RELAY_H
#define HERALD_FUZZ_RELAY_H

#include <stdbool.h>

#include "trigger.h"

/* Prefix, app id and publish time the harnesses render events with. */
#define FUZZ_RELAY_PREFIX "herald:"
#define FUZZ_RELAY_APP_ID "42"
#define FUZZ_RELAY_PUBLISHED_US 1700000000000000ULL

/* Matches ^\d+\.\d+$, the socket_id format of the Pusher protocol. */
bool fuzz_socket_id_valid(const char *text);

/* Renders `event` for `channel` with trigger_render and checks the result:
 * the channel's topic, an envelope that excludes exactly the event's
 * socket_id, and a frame of exactly the event's name, channel and data,
 * in valid UTF-8 when `check_utf8` is true. */
void fuzz_check_rendered_event(const struct trigger_event *event, const char *channel,
                               bool check_utf8);

#endif
