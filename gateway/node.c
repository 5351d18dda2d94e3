#include "node.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

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

static void on_connection_totals(redisReply *reply, void *privdata)
{
    uint64_t *reported = privdata;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == gateway.config.app_count) {
        for (size_t i = 0; i < reply->elements; i++) {
            if (reply->element[i]->type != REDIS_REPLY_INTEGER)
                continue;
            gateway.app_connections_cluster[i] = (uint64_t)reply->element[i]->integer;
            gateway.app_connections_reported[i] = reported[i];
        }
    }
    free(reported);
}

/* Reports this node's connection count per app and learns the cluster's
 * totals, which the max_connections check uses until the next beat. */
static void report_connections(void)
{
    size_t apps = gateway.config.app_count;
    const char **argv = calloc(2 + 2 * apps, sizeof *argv);
    char (*counts)[24] = calloc(apps ? apps : 1, sizeof *counts);
    uint64_t *reported = calloc(apps ? apps : 1, sizeof *reported);
    if (!argv || !counts || !reported) {
        log_error("out of memory reporting connection counts");
        abort();
    }

    argv[0] = gateway.config.prefix;
    argv[1] = gateway.node_id;
    for (size_t i = 0; i < apps; i++) {
        reported[i] = gateway.app_connections[i];
        snprintf(counts[i], sizeof counts[i], "%llu", (unsigned long long)reported[i]);
        argv[2 + 2 * i] = gateway.config.apps[i].id;
        argv[3 + 2 * i] = counts[i];
    }
    if (store_eval(scripts_app_connections, (int)(2 + 2 * apps), argv, NULL,
                   on_connection_totals, reported) != 0)
        free(reported);
    free(argv);
    free(counts);
}

static void on_heartbeat(uv_timer_t *timer)
{
    (void)timer;
    if (!store_connected())
        return;

    report_connections();

    store_command("SET %snode:%s 1 PX %d", gateway.config.prefix, gateway.node_id,
                  gateway.config.node_timeout * 1000);
    store_command("SADD %snodes %s", gateway.config.prefix, gateway.node_id);

    const char *argv[] = { gateway.config.prefix, gateway.node_id };
    store_eval(scripts_node_reap, 2, argv, NULL, on_reap_reply, NULL);
}

/* Tells the scripts which webhook events each app wants. Every gateway
 * writes the same values from the same configuration. */
static void register_webhook_apps(void)
{
    for (size_t i = 0; i < gateway.config.app_count; i++) {
        const struct app_config *app = &gateway.config.apps[i];
        if (app->webhook_count)
            store_command("HSET %swebhook-apps %s %u:%d", gateway.config.prefix, app->id,
                          app->webhook_events, gateway.config.webhook_stream_max_length);
        else
            store_command("HDEL %swebhook-apps %s", gateway.config.prefix, app->id);
    }
}

static void on_store_ready(void)
{
    register_webhook_apps();
    /* The sync script also writes the heartbeat and registers the node. */
    channels_sync_node_state();
    report_connections();
}

void node_start(void)
{
    size_t apps = gateway.config.app_count ? gateway.config.app_count : 1;
    gateway.app_connections = calloc(apps, sizeof *gateway.app_connections);
    gateway.app_connections_reported = calloc(apps, sizeof *gateway.app_connections_reported);
    gateway.app_connections_cluster = calloc(apps, sizeof *gateway.app_connections_cluster);
    if (!gateway.app_connections || !gateway.app_connections_reported ||
        !gateway.app_connections_cluster) {
        log_error("out of memory allocating connection counters");
        abort();
    }

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
    for (size_t i = 0; i < gateway.config.app_count; i++)
        store_command("HDEL %sconns:{%s} %s", gateway.config.prefix, gateway.config.apps[i].id,
                      gateway.node_id);
    store_stop();
}
