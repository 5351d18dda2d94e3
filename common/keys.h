/* Names of Redis keys and pub/sub topics.
 *
 * `prefix` is the configured installation prefix (default "herald:"). Keys
 * about one channel carry the hash tag {app:channel}, so they live on one
 * Redis Cluster slot together with the channel's topic. */
#ifndef HERALD_KEYS_H
#define HERALD_KEYS_H

#include "strbuf.h"

/* <prefix>ch:{<app_id>:<channel>} */
void keys_channel_topic(struct strbuf *out, const char *prefix, const char *app_id,
                        const char *channel);

/* <prefix>cache:{<app_id>:<channel>}: the last event of a cache channel,
 * as the frame bytes clients receive, with a TTL. */
void keys_cache(struct strbuf *out, const char *prefix, const char *app_id, const char *channel);

/* <prefix>ctl:{<app_id>}: app-wide control messages such as terminating a
 * user's connections. */
void keys_control_topic(struct strbuf *out, const char *prefix, const char *app_id);

#endif
