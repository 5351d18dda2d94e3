/* Cache channels: the SET that stores a cache channel's last event and the
 * read behind GET /apps/{app_id}/channels/{channel_name}?info=cache. */
#include "cache.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>

#include "channel.h"
#include "envelope.h"
#include "keys.h"

/* Reads the value and the TTL in one atomic step, so the TTL belongs to
 * the frame returned. The key is passed in KEYS, as Redis Cluster needs. */
static const char cache_script_read[] =
    "local frame = redis.call('GET', KEYS[1])\n"
    "if not frame then return false end\n"
    "return {frame, redis.call('TTL', KEYS[1])}\n";

bool cache_channel(const char *channel)
{
    return channel_classify(channel).cache;
}

/* ------------------------------------------------------------------------
 * Storing
 * ------------------------------------------------------------------------ */

int cache_store(struct publisher *pub, const char *prefix, const char *app_id,
                const char *channel, const char *envelope, size_t envelope_len,
                int ttl_seconds, publisher_reply_fn *done, void *arg)
{
    struct envelope decoded;
    if (envelope_decode(envelope, envelope_len, &decoded) != 0)
        return -1;

    struct strbuf key;
    strbuf_init(&key);
    keys_cache(&key, prefix, app_id, channel);

    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", ttl_seconds);

    const char *argv[] = { "SET", key.data, decoded.frame, "EX", ttl };
    const size_t argv_len[] = { 3, key.len, decoded.frame_len, 2, strlen(ttl) };
    int rc = publisher_command(pub, 5, argv, argv_len, done, arg);
    strbuf_free(&key);
    return rc;
}

bool cache_store_succeeded(const struct redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0;
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

int cache_read(struct publisher *pub, const char *prefix, const char *app_id,
               const char *channel, publisher_reply_fn *done, void *arg)
{
    struct strbuf key;
    strbuf_init(&key);
    keys_cache(&key, prefix, app_id, channel);

    const char *argv[] = { "EVAL", cache_script_read, "1", key.data };
    const size_t argv_len[] = { 4, sizeof cache_script_read - 1, 1, key.len };
    int rc = publisher_command(pub, 4, argv, argv_len, done, arg);
    strbuf_free(&key);
    return rc;
}

/* Finds the `data` string of a stored frame. Returns the parsed frame,
 * which owns *data, or NULL when the frame is not an object with a string
 * `data`. */
static struct json_object *cache_parse_frame(const char *frame, size_t frame_len,
                                             const char **data, size_t *data_len)
{
    if (frame_len > INT_MAX)
        return NULL;

    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    struct json_object *root = json_tokener_parse_ex(tok, frame, (int)frame_len);
    bool complete = json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);

    struct json_object *value;
    if (!complete || !json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "data", &value) ||
        !json_object_is_type(value, json_type_string)) {
        json_object_put(root);
        return NULL;
    }

    *data = json_object_get_string(value);
    *data_len = (size_t)json_object_get_string_len(value);
    return root;
}

int cache_render_attribute(struct strbuf *out, const struct redisReply *reply)
{
    if (!reply)
        return -1;
    if (reply->type == REDIS_REPLY_NIL)
        return 0;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;

    const char *data;
    size_t data_len;
    struct json_object *frame = cache_parse_frame(reply->element[0]->str,
                                                  reply->element[0]->len, &data, &data_len);
    if (!frame)
        return -1;

    /* The relay always stores the frame with EX, so the TTL is not -1 (no
     * expiry). The script runs atomically, so the key cannot expire between
     * its GET and its TTL. */
    strbuf_append_str(out, "\"cache\":{\"data\":");
    strbuf_append_json_string(out, data, data_len);
    strbuf_appendf(out, ",\"ttl\":%lld}", reply->element[1]->integer);
    json_object_put(frame);
    return 0;
}
