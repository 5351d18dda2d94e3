/* Channel attributes of the Pusher HTTP API (`info`, occupancy, presence
 * users): parsing the request, the Redis reads, rendering the responses.
 *
 * The gateways keep the cluster-wide state in Redis (common/scripts.c
 * writes it), with P the configured prefix:
 *   P channels:{app}          set of the app's occupied channels
 *   P subs:{app:channel}      hash: gateway node id -> its subscription count
 *   P members:{app:channel}   hash: presence user_id -> user_info JSON
 * A channel's subscription_count is the sum of its subs values, and its
 * user_count the number of fields of its members hash.
 *
 * Everything here is free of I/O, so the CUnit tests cover it with
 * hand-built hiredis replies. */
#ifndef HERALD_RELAY_CHANNEL_INFO_H
#define HERALD_RELAY_CHANNEL_INFO_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

struct redisReply;

/* Attributes a request can ask for in `info`, as bit flags. */
#define CHANNEL_INFO_USER_COUNT 0x1u
#define CHANNEL_INFO_SUBSCRIPTION_COUNT 0x2u
#define CHANNEL_INFO_CACHE 0x4u

struct channel_counts {
    long long subscription_count; /* connections subscribed across the cluster */
    long long user_count;         /* distinct presence users; 0 for other channels */
};

/* Parses a comma-separated `info` value such as "user_count,subscription_count"
 * into CHANNEL_INFO_* flags. Empty items are skipped, so "" requests
 * nothing. Returns 0, or 400 with a message in `err` when an item is not
 * one of the `allowed` attributes. */
int channel_info_parse(const char *text, unsigned allowed, unsigned *attributes, char *err,
                       size_t err_len);

/* Returns the subset of `requested` that is reported for `channel`:
 * user_count on presence channels, subscription_count on all other
 * channels. Pusher reports no subscription_count for presence channels. */
unsigned channel_info_applicable(const char *channel, unsigned requested);

/* Appends the key of `kind` ("members", "subs") of one channel:
 * <prefix><kind>:{<app_id>:<channel>}. */
void channel_info_channel_key(struct strbuf *out, const char *prefix, const char *kind,
                              const char *app_id, const char *channel);

/* ------------------------------------------------------------------------
 * Redis reads
 * ------------------------------------------------------------------------ */

/* Lua script. ARGV: prefix, app id, then one or more channel names.
 * Returns two integers per channel, in order: its subscription_count and
 * its user_count. */
extern const char channel_info_script_counts[];

/* Lua script. ARGV: prefix, app id, filter_by_prefix ("" for all), "1" to
 * sum the subscription counts, "1" to count the presence users.
 * Returns name, subscription_count, user_count for every occupied channel
 * whose name starts with the filter; a count not asked for is 0. */
extern const char channel_info_script_list[];

/* Reads the reply of channel_info_script_counts for `count` channels.
 * Returns 0, or -1 when the reply does not have that shape. */
int channel_info_parse_counts(const struct redisReply *reply, struct channel_counts *counts,
                              size_t count);

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

/* Appends the attributes object of one channel, such as {"user_count":2},
 * with exactly the attributes in `attributes` (cache is never rendered). */
void channel_info_render_attributes(struct strbuf *out, unsigned attributes,
                                    const struct channel_counts *counts);

/* Appends the body of GET /apps/{app_id}/channels/{channel_name}:
 * {"occupied":false} when no connection is subscribed, otherwise
 * {"occupied":true} plus `attributes`, which the caller has checked to
 * apply to the channel. */
void channel_info_render_channel(struct strbuf *out, unsigned attributes,
                                 const struct channel_counts *counts);

/* Appends the body of GET /apps/{app_id}/channels from the reply of
 * channel_info_script_list, channels sorted by name. Returns 0, or -1
 * (appending nothing) when the reply has an unexpected shape. */
int channel_info_render_list(struct strbuf *out, const struct redisReply *reply,
                             unsigned attributes);

/* Appends the body of GET /apps/{app_id}/channels/{channel_name}/users from
 * the reply of HKEYS on the members hash, ids sorted. Returns 0, or -1
 * (appending nothing) when the reply has an unexpected shape. */
int channel_info_render_users(struct strbuf *out, const struct redisReply *reply);

#endif
