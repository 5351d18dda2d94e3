#include "presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"
#include "frame.h"
#include "gateway.h"
#include "log.h"
#include "scripts.h"
#include "store.h"

struct presence_join {
    struct connection *conn;
    struct presence_member *member;
    char *channel;
    bool cancelled; /* the subscription went away; ignore the reply */
};

static void *checked_alloc(size_t size)
{
    void *p = calloc(1, size);
    if (!p) {
        log_error("out of memory allocating %zu bytes for presence", size);
        abort();
    }
    return p;
}

static char *checked_strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = checked_alloc(len);
    memcpy(copy, s, len);
    return copy;
}

struct presence_member *presence_member_new(const char *user_id, const char *user_info)
{
    struct presence_member *member = checked_alloc(sizeof *member);
    member->user_id = checked_strdup(user_id);
    member->user_info = checked_strdup(user_info);
    return member;
}

void presence_member_free(struct presence_member *member)
{
    if (member->join)
        member->join->cancelled = true;
    message_hold_clear(&member->held);
    free(member->user_id);
    free(member->user_info);
    free(member);
}

void presence_hold(struct presence_member *member, struct message *m, unsigned long long seq)
{
    message_hold_push(&member->held, m, seq);
}

/* ---- join ------------------------------------------------------------- */

/* Renders subscription_succeeded with {"presence":{"ids","hash","count"}}
 * from the script's flat [user_id, user_info, …] array. */
static void render_snapshot(struct strbuf *frame, const char *channel, const redisReply *members)
{
    struct strbuf data;
    strbuf_init(&data);
    size_t count = members->elements / 2;

    strbuf_append_str(&data, "{\"presence\":{\"ids\":[");
    for (size_t i = 0; i < count; i++) {
        const redisReply *id = members->element[2 * i];
        if (i)
            strbuf_append_char(&data, ',');
        strbuf_append_json_string(&data, id->str, id->len);
    }
    strbuf_append_str(&data, "],\"hash\":{");
    for (size_t i = 0; i < count; i++) {
        const redisReply *id = members->element[2 * i];
        const redisReply *info = members->element[2 * i + 1];
        if (i)
            strbuf_append_char(&data, ',');
        strbuf_append_json_string(&data, id->str, id->len);
        strbuf_append_char(&data, ':');
        if (info->len)
            strbuf_append(&data, info->str, info->len);
        else
            strbuf_append_str(&data, "null");
    }
    strbuf_appendf(&data, "},\"count\":%zu}}", count);

    frame_render_event(frame, "pusher_internal:subscription_succeeded", channel, data.data,
                       data.len, NULL);
    strbuf_free(&data);
}

static bool snapshot_reply_valid(const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return false;
    if (strcmp(reply->element[0]->str, "full") == 0)
        return true;
    if (reply->elements != 3 || reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_ARRAY || reply->element[2]->elements % 2)
        return false;
    for (size_t i = 0; i < reply->element[2]->elements; i++) {
        if (reply->element[2]->element[i]->type != REDIS_REPLY_STRING)
            return false;
    }
    return true;
}

static void on_join_reply(redisReply *reply, void *privdata)
{
    struct presence_join *join = privdata;
    if (join->cancelled)
        goto done;
    join->member->join = NULL;

    if (!reply || reply->type == REDIS_REPLY_ERROR || !snapshot_reply_valid(reply)) {
        if (reply && reply->type != REDIS_REPLY_ERROR)
            log_error("presence: unexpected join reply channel=%s socket_id=%s", join->channel,
                      join->conn->socket_id);
        channels_presence_joined(join->conn, join->member, PRESENCE_RETRY, 0, NULL, 0);
        goto done;
    }
    if (strcmp(reply->element[0]->str, "full") == 0) {
        channels_presence_joined(join->conn, join->member, PRESENCE_FULL, 0, NULL, 0);
        goto done;
    }

    struct strbuf frame;
    strbuf_init(&frame);
    render_snapshot(&frame, join->channel, reply->element[2]);
    unsigned long long seq = strtoull(reply->element[1]->str, NULL, 10);
    channels_presence_joined(join->conn, join->member, PRESENCE_JOINED, seq, frame.data, frame.len);
    strbuf_free(&frame);

done:
    free(join->channel);
    free(join);
}

int presence_send_join(struct connection *conn, const char *channel,
                       struct presence_member *member)
{
    char max_members[16];
    snprintf(max_members, sizeof max_members, "%d",
             conn->app->max_presence_members > 0 ? conn->app->max_presence_members : 0);
    const char *argv[] = {
        gateway.config.prefix, conn->app->id,       channel,         conn->socket_id,
        member->user_id,       member->user_info,   gateway.node_id, max_members,
    };

    struct presence_join *join = checked_alloc(sizeof *join);
    join->conn = conn;
    join->member = member;
    join->channel = checked_strdup(channel);
    if (store_eval(scripts_presence_join, 8, argv, NULL, on_join_reply, join) != 0) {
        free(join->channel);
        free(join);
        return -1;
    }
    member->join = join;
    return 0;
}

void presence_send_leave(struct connection *conn, const char *channel)
{
    const char *argv[] = { gateway.config.prefix, conn->app->id, channel, conn->socket_id,
                           gateway.node_id };
    /* When Redis is down the leave is lost here; the state sync after the
     * reconnect removes every member this node no longer has. */
    store_eval(scripts_presence_leave, 5, argv, NULL, NULL, NULL);
}
