/* Channel attributes: `info` parsing, the Redis scripts that read the
 * gateways' shared state, and the JSON bodies built from their replies. */
#include "channel_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "channel.h"

#define CHANNEL_INFO_ATTRIBUTE_MAX 64

static const struct {
    const char *name;
    unsigned flag;
} channel_info_attributes[] = {
    { "user_count", CHANNEL_INFO_USER_COUNT },
    { "subscription_count", CHANNEL_INFO_SUBSCRIPTION_COUNT },
    { "cache", CHANNEL_INFO_CACHE },
};

#define CHANNEL_INFO_ATTRIBUTE_COUNT \
    (sizeof channel_info_attributes / sizeof channel_info_attributes[0])

/* ------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

/* Appends "user_count, subscription_count or cache" for the `allowed` flags. */
static void append_allowed_names(struct strbuf *out, unsigned allowed)
{
    size_t total = 0;
    for (size_t i = 0; i < CHANNEL_INFO_ATTRIBUTE_COUNT; i++) {
        if (allowed & channel_info_attributes[i].flag)
            total++;
    }

    size_t written = 0;
    for (size_t i = 0; i < CHANNEL_INFO_ATTRIBUTE_COUNT; i++) {
        if (!(allowed & channel_info_attributes[i].flag))
            continue;
        if (written > 0)
            strbuf_append_str(out, written + 1 == total ? " or " : ", ");
        strbuf_append_str(out, channel_info_attributes[i].name);
        written++;
    }
}

int channel_info_parse(const char *text, unsigned allowed, unsigned *attributes, char *err,
                       size_t err_len)
{
    *attributes = 0;

    const char *item = text;
    for (;;) {
        size_t len = strcspn(item, ",");
        if (len > 0) {
            unsigned flag = 0;
            for (size_t i = 0; i < CHANNEL_INFO_ATTRIBUTE_COUNT; i++) {
                const char *name = channel_info_attributes[i].name;
                if (strlen(name) == len && memcmp(name, item, len) == 0)
                    flag = channel_info_attributes[i].flag;
            }

            if (!(flag & allowed)) {
                struct strbuf expected;
                strbuf_init(&expected);
                append_allowed_names(&expected, allowed);
                /* The item comes from the query string or the body, so only
                 * printable ASCII of it goes into the message. */
                char printable[CHANNEL_INFO_ATTRIBUTE_MAX + 4];
                size_t shown = len < CHANNEL_INFO_ATTRIBUTE_MAX ? len : CHANNEL_INFO_ATTRIBUTE_MAX;
                for (size_t i = 0; i < shown; i++) {
                    unsigned char c = (unsigned char)item[i];
                    printable[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
                }
                printable[shown] = '\0';
                snprintf(err, err_len, "Invalid info attribute \"%s%s\": expected %s", printable,
                         shown < len ? "..." : "", expected.data);
                strbuf_free(&expected);
                return 400;
            }
            *attributes |= flag;
        }

        if (item[len] == '\0')
            break;
        item += len + 1;
    }
    return 0;
}

unsigned channel_info_applicable(const char *channel, unsigned requested)
{
    if (channel_classify(channel).type == CHANNEL_PRESENCE)
        return requested & CHANNEL_INFO_USER_COUNT;
    return requested & CHANNEL_INFO_SUBSCRIPTION_COUNT;
}

void channel_info_channel_key(struct strbuf *out, const char *prefix, const char *kind,
                              const char *app_id, const char *channel)
{
    strbuf_appendf(out, "%s%s:{%s:%s}", prefix, kind, app_id, channel);
}

/* ------------------------------------------------------------------------
 * Redis reads
 * ------------------------------------------------------------------------ */

/* Both scripts build key names from their arguments, like the gateway's
 * scripts. That works on a single Redis or a Sentinel primary, not on
 * Redis Cluster. They only read, and each runs as one atomic step, so the
 * counts of one response come from one moment. */
#define CHANNEL_INFO_LUA_SUM_SUBSCRIPTIONS                                         \
    "local function subscriptions(p, tag)\n"                                     \
    "  local total = 0\n"                                                        \
    "  for _, n in ipairs(redis.call('HVALS', p .. 'subs:' .. tag)) do\n"        \
    "    total = total + tonumber(n)\n"                                          \
    "  end\n"                                                                    \
    "  return total\n"                                                           \
    "end\n"

const char channel_info_script_counts[] =
    CHANNEL_INFO_LUA_SUM_SUBSCRIPTIONS
    "local p, app = ARGV[1], ARGV[2]\n"
    "local counts = {}\n"
    "for i = 3, #ARGV do\n"
    "  local tag = '{' .. app .. ':' .. ARGV[i] .. '}'\n"
    "  counts[#counts + 1] = subscriptions(p, tag)\n"
    "  counts[#counts + 1] = redis.call('HLEN', p .. 'members:' .. tag)\n"
    "end\n"
    "return counts\n";

const char channel_info_script_list[] =
    CHANNEL_INFO_LUA_SUM_SUBSCRIPTIONS
    "local p, app, filter = ARGV[1], ARGV[2], ARGV[3]\n"
    "local want_subscriptions, want_users = ARGV[4] == '1', ARGV[5] == '1'\n"
    "local result = {}\n"
    "for _, ch in ipairs(redis.call('SMEMBERS', p .. 'channels:{' .. app .. '}')) do\n"
    "  if string.sub(ch, 1, #filter) == filter then\n"
    "    local tag = '{' .. app .. ':' .. ch .. '}'\n"
    "    local count, users = 0, 0\n"
    "    if want_subscriptions then count = subscriptions(p, tag) end\n"
    "    if want_users then users = redis.call('HLEN', p .. 'members:' .. tag) end\n"
    "    result[#result + 1] = ch\n"
    "    result[#result + 1] = count\n"
    "    result[#result + 1] = users\n"
    "  end\n"
    "end\n"
    "return result\n";

static bool reply_is_integer(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_INTEGER;
}

int channel_info_parse_counts(const struct redisReply *reply, struct channel_counts *counts,
                              size_t count)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 * count)
        return -1;

    for (size_t i = 0; i < count; i++) {
        const redisReply *subscriptions = reply->element[2 * i];
        const redisReply *users = reply->element[2 * i + 1];
        if (!reply_is_integer(subscriptions) || !reply_is_integer(users))
            return -1;
        counts[i].subscription_count = subscriptions->integer;
        counts[i].user_count = users->integer;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

void channel_info_render_attributes(struct strbuf *out, unsigned attributes,
                                    const struct channel_counts *counts)
{
    strbuf_append_char(out, '{');
    if (attributes & CHANNEL_INFO_USER_COUNT)
        strbuf_appendf(out, "\"user_count\":%lld", counts->user_count);
    if (attributes & CHANNEL_INFO_SUBSCRIPTION_COUNT) {
        if (attributes & CHANNEL_INFO_USER_COUNT)
            strbuf_append_char(out, ',');
        strbuf_appendf(out, "\"subscription_count\":%lld", counts->subscription_count);
    }
    strbuf_append_char(out, '}');
}

void channel_info_render_channel(struct strbuf *out, unsigned attributes,
                                 const struct channel_counts *counts)
{
    if (counts->subscription_count <= 0) {
        strbuf_append_str(out, "{\"occupied\":false}");
        return;
    }

    strbuf_append_str(out, "{\"occupied\":true");
    if (attributes & CHANNEL_INFO_USER_COUNT)
        strbuf_appendf(out, ",\"user_count\":%lld", counts->user_count);
    if (attributes & CHANNEL_INFO_SUBSCRIPTION_COUNT)
        strbuf_appendf(out, ",\"subscription_count\":%lld", counts->subscription_count);
    strbuf_append_char(out, '}');
}

/* Orders string replies by their bytes, so responses do not depend on the
 * order Redis returns set members and hash fields in. */
static int compare_string_replies(const void *a, const void *b)
{
    const redisReply *left = *(const redisReply *const *)a;
    const redisReply *right = *(const redisReply *const *)b;
    size_t shorter = left->len < right->len ? left->len : right->len;
    int order = memcmp(left->str, right->str, shorter);
    if (order != 0)
        return order;
    return left->len < right->len ? -1 : (left->len > right->len ? 1 : 0);
}

/* One listed channel: the name reply and its two counts. */
struct listed_channel {
    const redisReply *name;
    struct channel_counts counts;
};

static int compare_listed_channels(const void *a, const void *b)
{
    const struct listed_channel *left = a;
    const struct listed_channel *right = b;
    return compare_string_replies(&left->name, &right->name);
}

int channel_info_render_list(struct strbuf *out, const struct redisReply *reply,
                             unsigned attributes)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements % 3 != 0)
        return -1;

    size_t count = reply->elements / 3;
    struct listed_channel *channels = calloc(count ? count : 1, sizeof *channels);
    if (!channels)
        return -1;

    for (size_t i = 0; i < count; i++) {
        const redisReply *name = reply->element[3 * i];
        const redisReply *subscriptions = reply->element[3 * i + 1];
        const redisReply *users = reply->element[3 * i + 2];
        if (!name || name->type != REDIS_REPLY_STRING || !reply_is_integer(subscriptions) ||
            !reply_is_integer(users)) {
            free(channels);
            return -1;
        }
        channels[i].name = name;
        channels[i].counts.subscription_count = subscriptions->integer;
        channels[i].counts.user_count = users->integer;
    }
    qsort(channels, count, sizeof *channels, compare_listed_channels);

    strbuf_append_str(out, "{\"channels\":{");
    for (size_t i = 0; i < count; i++) {
        const redisReply *name = channels[i].name;
        if (i > 0)
            strbuf_append_char(out, ',');
        strbuf_append_json_string(out, name->str, name->len);
        strbuf_append_char(out, ':');
        /* The name is a C string: gateways accept no NUL in a channel name. */
        channel_info_render_attributes(out, channel_info_applicable(name->str, attributes),
                                       &channels[i].counts);
    }
    strbuf_append_str(out, "}}");

    free(channels);
    return 0;
}

int channel_info_render_users(struct strbuf *out, const struct redisReply *reply)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return -1;

    size_t count = reply->elements;
    const redisReply **ids = calloc(count ? count : 1, sizeof *ids);
    if (!ids)
        return -1;
    for (size_t i = 0; i < count; i++) {
        ids[i] = reply->element[i];
        if (!ids[i] || ids[i]->type != REDIS_REPLY_STRING) {
            free(ids);
            return -1;
        }
    }
    qsort(ids, count, sizeof *ids, compare_string_replies);

    strbuf_append_str(out, "{\"users\":[");
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            strbuf_append_char(out, ',');
        strbuf_append_str(out, "{\"id\":");
        strbuf_append_json_string(out, ids[i]->str, ids[i]->len);
        strbuf_append_char(out, '}');
    }
    strbuf_append_str(out, "]}");

    free(ids);
    return 0;
}
