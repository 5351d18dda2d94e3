/* libFuzzer harness: the JSON configuration file, read by
 * config_load_string (common/config.c).
 *
 * The input is the file's content, cut at its first NUL as the loader
 * reads it. A rejected file must get a message that starts with
 * "config: ". An accepted one must satisfy the checks that
 * docs/configuration.md promises, because both binaries use the struct
 * without checking it again. */
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Letters, digits and - . _ ~, as app ids and keys must be. */
static bool url_safe(const char *s)
{
    if (!s[0])
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && !strchr("-._~", *s))
            return false;
    }
    return true;
}

static void check_app(const struct herald_config *cfg, size_t index)
{
    const struct app_config *app = &cfg->apps[index];
    FUZZ_CHECK(app->id && url_safe(app->id), "apps[%zu].id is %s", index,
               app->id ? app->id : "NULL");
    FUZZ_CHECK(app->key && url_safe(app->key), "apps[%zu].key is %s", index,
               app->key ? app->key : "NULL");
    FUZZ_CHECK(app->secret && app->secret[0], "apps[%zu].secret is empty", index);

    for (size_t j = 0; j < index; j++) {
        FUZZ_CHECK(strcmp(app->id, cfg->apps[j].id) != 0, "apps[%zu] and apps[%zu] share id %s",
                   j, index, app->id);
        FUZZ_CHECK(strcmp(app->key, cfg->apps[j].key) != 0,
                   "apps[%zu] and apps[%zu] share key %s", j, index, app->key);
    }
    FUZZ_CHECK(config_find_app_by_key(cfg, app->key) == app, "apps[%zu] not found by key",
               index);
    FUZZ_CHECK(config_find_app_by_id(cfg, app->id) == app, "apps[%zu] not found by id", index);

    FUZZ_CHECK(app->max_connections == -1 || app->max_connections >= 1,
               "apps[%zu].max_connections is %d", index, app->max_connections);
    const int limits[] = {
        app->user_authentication_timeout, app->subscription_count_interval_ms,
        app->max_client_events_per_second, app->max_presence_members,
        app->max_presence_member_bytes, app->max_event_payload_bytes,
        app->max_channels_per_trigger, app->max_batch_size,
        app->max_channel_name_length, app->max_event_name_length,
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        FUZZ_CHECK(limits[i] >= 1, "apps[%zu] has the limit %d (field %zu of the list)", index,
                   limits[i], i);
}

static void check_config(const struct herald_config *cfg)
{
    FUZZ_CHECK(cfg->redis.host && cfg->redis.host[0], "empty Redis host");
    FUZZ_CHECK(cfg->redis.port >= 1 && cfg->redis.port <= 65535, "Redis port %d",
               cfg->redis.port);
    FUZZ_CHECK(cfg->redis.database >= 0, "Redis database %d", cfg->redis.database);
    FUZZ_CHECK(cfg->gateway_port >= 1 && cfg->gateway_port <= 65535, "gateway_port %d",
               cfg->gateway_port);
    FUZZ_CHECK(cfg->relay_port >= 1 && cfg->relay_port <= 65535, "relay_port %d",
               cfg->relay_port);
    FUZZ_CHECK(cfg->gateway_host && cfg->gateway_host[0], "empty gateway_host");
    FUZZ_CHECK(cfg->relay_host && cfg->relay_host[0], "empty relay_host");
    FUZZ_CHECK(cfg->log_level >= LOG_LEVEL_DEBUG && cfg->log_level <= LOG_LEVEL_ERROR,
               "log_level %d", (int)cfg->log_level);

    /* Redis Cluster reads { and } as a hash tag. */
    FUZZ_CHECK(cfg->prefix && !strpbrk(cfg->prefix, "{}"), "prefix %s",
               cfg->prefix ? cfg->prefix : "NULL");
    for (const char *c = cfg->prefix; *c; c++)
        FUZZ_CHECK(!iscntrl((unsigned char)*c), "prefix with a control character");

    const int positive[] = {
        cfg->activity_timeout, cfg->pong_timeout, cfg->node_timeout,
        cfg->auth_timestamp_window, cfg->max_message_bytes, cfg->max_outbound_queue_bytes,
        cfg->max_request_body_bytes,
    };
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++)
        FUZZ_CHECK(positive[i] >= 1, "server setting %zu of the list is %d", i, positive[i]);
    FUZZ_CHECK(cfg->node_timeout <= 2147483, "node_timeout %d", cfg->node_timeout);

    FUZZ_CHECK(cfg->app_count >= 1 && cfg->apps, "no app configured");
    for (size_t i = 0; i < cfg->app_count; i++)
        check_app(cfg, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup((const char *)data, size);
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";

    if (config_load_string(&cfg, text, err, sizeof err) == 0) {
        check_config(&cfg);
        config_free(&cfg);
    } else {
        FUZZ_CHECK(strncmp(err, "config: ", 8) == 0, "error message without the prefix: %s",
                   err);
    }
    free(text);
    return 0;
}
