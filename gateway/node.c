#include "node.h"

#include <hiredis/hiredis.h>

#include "channels.h"
#include "gateway.h"
#include "log.h"
#include "scripts.h"
#include "store.h"

static uv_timer_t heartbeat_timer;

/* Heartbeats go out five times per node_timeout, so a node survives four
 * lost beats (a stalled loop, a slow Redis) before others reap it. */
static uint64_t heartbeat_interval_ms(void)
{
    uint64_t interval = (uint64_t)gateway.config.node_timeout * 1000 / 5;
    return interval < 200 ? 200 : interval;
}

static void on_reap_reply(redisReply *reply, void *privdata)
{
    (void)privdata;
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING)
            log_warn("removed the presence and subscription state of node %s: its heartbeat "
                     "expired",
                     reply->element[i]->str);
    }
}

static void on_heartbeat(uv_timer_t *timer)
{
    (void)timer;
    if (!store_connected())
        return;

    store_command("SET %snode:%s 1 PX %d", gateway.config.prefix, gateway.node_id,
                  gateway.config.node_timeout * 1000);
    store_command("SADD %snodes %s", gateway.config.prefix, gateway.node_id);

    const char *argv[] = { gateway.config.prefix, gateway.node_id };
    store_eval(scripts_node_reap, 2, argv, NULL, on_reap_reply, NULL);
}

static void on_store_ready(void)
{
    /* The sync script also writes the heartbeat and registers the node. */
    channels_sync_node_state();
}

void node_start(void)
{
    store_start(on_store_ready);
    uv_timer_init(gateway.loop, &heartbeat_timer);
    uint64_t interval = heartbeat_interval_ms();
    uv_timer_start(&heartbeat_timer, on_heartbeat, interval, interval);
}

void node_stop(void)
{
    uv_timer_stop(&heartbeat_timer);
    uv_close((uv_handle_t *)&heartbeat_timer, NULL);
    store_command("DEL %snode:%s %snode-state:%s", gateway.config.prefix, gateway.node_id,
                  gateway.config.prefix, gateway.node_id);
    store_command("SREM %snodes %s", gateway.config.prefix, gateway.node_id);
    store_stop();
}
