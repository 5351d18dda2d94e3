/* Unit tests of common/config.c: defaults, the JSON file, environment
 * overrides, the development app and every kind of error message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit_tests.h"

static const char *const herald_env_names[] = {
    "HERALD_PREFIX", "HERALD_GATEWAY_HOST", "HERALD_GATEWAY_PORT", "HERALD_RELAY_HOST",
    "HERALD_RELAY_PORT", "HERALD_LOG_LEVEL", "HERALD_ACTIVITY_TIMEOUT", "HERALD_PONG_TIMEOUT",
    "HERALD_NODE_TIMEOUT",
    "HERALD_STRICT_PROTOCOL", "HERALD_MAX_MESSAGE_BYTES", "HERALD_MAX_OUTBOUND_QUEUE_BYTES",
    "HERALD_AUTH_TIMESTAMP_WINDOW", "HERALD_MAX_REQUEST_BODY_BYTES", "HERALD_REDIS_URL",
    "HERALD_REDIS_PASSWORD", "HERALD_REDIS_PASSWORD_FILE", "HERALD_APPS",
    "HERALD_WEBHOOK_BATCH_SIZE",
    "HERALD_WEBHOOK_RETRY_INITIAL_MS", "HERALD_WEBHOOK_RETRY_MAX_MS", "HERALD_WEBHOOK_CLAIM_IDLE",
    "HERALD_LARAVEL_INGEST", "HERALD_LARAVEL_REDIS_PREFIX", "HERALD_LARAVEL_APP_ID",
    "HERALD_INGEST_LEASE_MS",
};

static void clear_herald_env(void)
{
    for (size_t i = 0; i < sizeof herald_env_names / sizeof herald_env_names[0]; i++)
        unsetenv(herald_env_names[i]);
}

static int suite_init(void)
{
    clear_herald_env();
    return 0;
}

static int suite_cleanup(void)
{
    clear_herald_env();
    return 0;
}

/* Writes `len` bytes of `content` to a new temporary file; `path` gets
 * its name. */
static void write_temp_bytes(char path[64], const char *content, size_t len)
{
    strcpy(path, "/tmp/herald-unit-config-XXXXXX");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, content, len) == (ssize_t)len);
    close(fd);
}

static void write_temp_file(char path[64], const char *content)
{
    write_temp_bytes(path, content, strlen(content));
}

static bool config_is_zeroed(const struct herald_config *cfg)
{
    static const struct herald_config zero;
    return memcmp(cfg, &zero, sizeof zero) == 0;
}

/* Loads `json` with config_load_string, expects failure and checks that
 * the message equals `expected`. */
static void expect_string_error(const char *json, const char *expected, unsigned line)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    int rc = config_load_string(&cfg, json, err, sizeof err);
    unit_assert_long_equal(rc, -1, "config_load_string result", __FILE__, line);
    unit_assert_str_equal(err, expected, "error message", __FILE__, line);
    CU_ASSERT(config_is_zeroed(&cfg));
}

#define EXPECT_ERROR(json, expected) expect_string_error((json), (expected), __LINE__)

static void check_default_app(const struct app_config *app)
{
    CU_ASSERT_TRUE(app->enabled);
    CU_ASSERT_FALSE(app->enable_client_messages);
    CU_ASSERT_FALSE(app->enable_user_authentication);
    ASSERT_INT_EQ(app->max_connections, -1);
    ASSERT_INT_EQ(app->max_client_events_per_second, 10);
    ASSERT_INT_EQ(app->max_presence_members, 100);
    ASSERT_INT_EQ(app->max_presence_member_bytes, 1024);
    ASSERT_INT_EQ(app->max_event_payload_bytes, 10240);
    ASSERT_INT_EQ(app->max_channels_per_trigger, 100);
    ASSERT_INT_EQ(app->max_batch_size, 10);
    ASSERT_INT_EQ(app->max_channel_name_length, 164);
    ASSERT_INT_EQ(app->max_event_name_length, 200);
    ASSERT_INT_EQ(app->max_api_requests_per_second, 5000);
}

static void check_defaults(const struct herald_config *cfg)
{
    ASSERT_INT_EQ(cfg->max_connections_per_ip, 1000);
    CU_ASSERT_PTR_NULL(cfg->trusted_proxies);
    ASSERT_STR_EQ(cfg->redis.host, "127.0.0.1");
    ASSERT_INT_EQ(cfg->redis.port, 6379);
    ASSERT_INT_EQ(cfg->redis.database, 0);
    CU_ASSERT_PTR_NULL(cfg->redis.username);
    CU_ASSERT_PTR_NULL(cfg->redis.password);
    ASSERT_STR_EQ(cfg->prefix, "herald:");
    ASSERT_STR_EQ(cfg->gateway_host, "127.0.0.1");
    ASSERT_INT_EQ(cfg->gateway_port, 6001);
    ASSERT_STR_EQ(cfg->relay_host, "127.0.0.1");
    ASSERT_INT_EQ(cfg->relay_port, 6002);
    CU_ASSERT_PTR_NULL(cfg->relay_tls_cert_file);
    CU_ASSERT_PTR_NULL(cfg->relay_tls_key_file);
    ASSERT_INT_EQ(cfg->relay_request_timeout, 10);
    ASSERT_INT_EQ(cfg->log_level, LOG_LEVEL_INFO);
    ASSERT_INT_EQ(cfg->activity_timeout, 120);
    ASSERT_INT_EQ(cfg->pong_timeout, 30);
    ASSERT_INT_EQ(cfg->node_timeout, 10);
    CU_ASSERT_FALSE(cfg->strict_protocol);
    ASSERT_INT_EQ(cfg->max_message_bytes, 16384);
    ASSERT_INT_EQ(cfg->max_outbound_queue_bytes, 262144);
    ASSERT_INT_EQ(cfg->auth_timestamp_window, 600);
    ASSERT_INT_EQ(cfg->max_request_body_bytes, 262144);
}

static void check_development_app(const struct herald_config *cfg)
{
    CU_ASSERT_TRUE(cfg->using_development_app);
    ASSERT_INT_EQ(cfg->app_count, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg->apps);
    ASSERT_STR_EQ(cfg->apps[0].id, "app-1");
    ASSERT_STR_EQ(cfg->apps[0].key, "app-key");
    ASSERT_STR_EQ(cfg->apps[0].secret, "app-secret");
    check_default_app(&cfg->apps[0]);
}

/* ------------------------------------------------------------------------
 * Defaults and the development app
 * ------------------------------------------------------------------------ */

static void test_defaults_from_empty_document(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg, "{}", err, sizeof err), 0);
    ASSERT_STR_EQ(err, "");
    check_defaults(&cfg);
    check_development_app(&cfg);
    config_free(&cfg);
}

static void test_defaults_without_file(void)
{
    clear_herald_env();
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    check_defaults(&cfg);
    check_development_app(&cfg);
    config_free(&cfg);
}

static void test_no_development_app_when_configured(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg,
                                     "{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret\":\"s\"}]}",
                                     err, sizeof err), 0);
    CU_ASSERT_FALSE(cfg.using_development_app);
    ASSERT_INT_EQ(cfg.app_count, 1);
    ASSERT_STR_EQ(cfg.apps[0].id, "42");
    CU_ASSERT_PTR_NULL(config_find_app_by_key(&cfg, "app-key"));
    config_free(&cfg);
}

static void test_free_zeroes_and_repeats(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX];
    ASSERT_INT_EQ(config_load_string(&cfg, "{}", err, sizeof err), 0);
    config_free(&cfg);
    CU_ASSERT(config_is_zeroed(&cfg));
    config_free(&cfg);
    config_free(NULL);
}

/* ------------------------------------------------------------------------
 * The JSON file
 * ------------------------------------------------------------------------ */

static const char full_document[] =
    "{\n"
    "  \"redis_url\": \"redis://herald:p%40ss@redis.internal:6380/3\",\n"
    "  \"prefix\": \"staging:\",\n"
    "  \"gateway_host\": \"0.0.0.0\",\n"
    "  \"gateway_port\": 7001,\n"
    "  \"relay_host\": \"::1\",\n"
    "  \"relay_port\": 7002,\n"
    "  \"log_level\": \"debug\",\n"
    "  \"activity_timeout\": 60,\n"
    "  \"pong_timeout\": 10,\n"
    "  \"node_timeout\": 25,\n"
    "  \"strict_protocol\": true,\n"
    "  \"max_message_bytes\": 20000,\n"
    "  \"max_outbound_queue_bytes\": 1048576,\n"
    "  \"auth_timestamp_window\": 300,\n"
    "  \"max_request_body_bytes\": 100000,\n"
    "  \"apps\": [\n"
    "    {\"id\": \"42\", \"key\": \"key-42\", \"secret\": \"secret-42\",\n"
    "     \"enabled\": false, \"enable_client_messages\": true,\n"
    "     \"enable_user_authentication\": true, \"max_connections\": 5000,\n"
    "     \"max_client_events_per_second\": 20, \"max_presence_members\": 50,\n"
    "     \"max_presence_member_bytes\": 2048, \"max_event_payload_bytes\": 20480,\n"
    "     \"max_channels_per_trigger\": 10, \"max_batch_size\": 5,\n"
    "     \"max_channel_name_length\": 200, \"max_event_name_length\": 100},\n"
    "    {\"id\": \"43\", \"key\": \"key-43\", \"secret\": \"secret-43\"}\n"
    "  ]\n"
    "}\n";

static void check_full_document(const struct herald_config *cfg)
{
    ASSERT_STR_EQ(cfg->redis.host, "redis.internal");
    ASSERT_INT_EQ(cfg->redis.port, 6380);
    ASSERT_INT_EQ(cfg->redis.database, 3);
    ASSERT_STR_EQ(cfg->redis.username, "herald");
    ASSERT_STR_EQ(cfg->redis.password, "p@ss");
    ASSERT_STR_EQ(cfg->prefix, "staging:");
    ASSERT_STR_EQ(cfg->gateway_host, "0.0.0.0");
    ASSERT_INT_EQ(cfg->gateway_port, 7001);
    ASSERT_STR_EQ(cfg->relay_host, "::1");
    ASSERT_INT_EQ(cfg->relay_port, 7002);
    ASSERT_INT_EQ(cfg->log_level, LOG_LEVEL_DEBUG);
    ASSERT_INT_EQ(cfg->activity_timeout, 60);
    ASSERT_INT_EQ(cfg->pong_timeout, 10);
    ASSERT_INT_EQ(cfg->node_timeout, 25);
    CU_ASSERT_TRUE(cfg->strict_protocol);
    ASSERT_INT_EQ(cfg->max_message_bytes, 20000);
    ASSERT_INT_EQ(cfg->max_outbound_queue_bytes, 1048576);
    ASSERT_INT_EQ(cfg->auth_timestamp_window, 300);
    ASSERT_INT_EQ(cfg->max_request_body_bytes, 100000);

    CU_ASSERT_FALSE(cfg->using_development_app);
    ASSERT_INT_EQ(cfg->app_count, 2);
    const struct app_config *app = &cfg->apps[0];
    ASSERT_STR_EQ(app->id, "42");
    ASSERT_STR_EQ(app->key, "key-42");
    ASSERT_STR_EQ(app->secret, "secret-42");
    CU_ASSERT_FALSE(app->enabled);
    CU_ASSERT_TRUE(app->enable_client_messages);
    CU_ASSERT_TRUE(app->enable_user_authentication);
    ASSERT_INT_EQ(app->max_connections, 5000);
    ASSERT_INT_EQ(app->max_client_events_per_second, 20);
    ASSERT_INT_EQ(app->max_presence_members, 50);
    ASSERT_INT_EQ(app->max_presence_member_bytes, 2048);
    ASSERT_INT_EQ(app->max_event_payload_bytes, 20480);
    ASSERT_INT_EQ(app->max_channels_per_trigger, 10);
    ASSERT_INT_EQ(app->max_batch_size, 5);
    ASSERT_INT_EQ(app->max_channel_name_length, 200);
    ASSERT_INT_EQ(app->max_event_name_length, 100);

    /* The second app sets only the required keys and gets every default. */
    ASSERT_STR_EQ(cfg->apps[1].id, "43");
    check_default_app(&cfg->apps[1]);
}

static void test_file_sets_every_setting(void)
{
    clear_herald_env();
    char path[64];
    write_temp_file(path, full_document);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), 0);
    ASSERT_STR_EQ(err, "");
    check_full_document(&cfg);
    config_free(&cfg);
    unlink(path);
}

static void test_string_sets_every_setting(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg, full_document, err, sizeof err), 0);
    check_full_document(&cfg);
    config_free(&cfg);
}

static void test_find_app_by_key_and_id(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX];
    CU_ASSERT_FATAL(config_load_string(&cfg, full_document, err, sizeof err) == 0);
    CU_ASSERT_PTR_EQUAL(config_find_app_by_key(&cfg, "key-43"), &cfg.apps[1]);
    CU_ASSERT_PTR_EQUAL(config_find_app_by_id(&cfg, "42"), &cfg.apps[0]);
    CU_ASSERT_PTR_NULL(config_find_app_by_key(&cfg, "42"));
    CU_ASSERT_PTR_NULL(config_find_app_by_id(&cfg, "key-42"));
    CU_ASSERT_PTR_NULL(config_find_app_by_key(&cfg, "KEY-42"));
    CU_ASSERT_PTR_NULL(config_find_app_by_key(&cfg, NULL));
    CU_ASSERT_PTR_NULL(config_find_app_by_id(&cfg, NULL));
    config_free(&cfg);
}

static void test_log_level_names(void)
{
    static const struct {
        const char *json;
        enum log_level level;
    } cases[] = {
        { "{\"log_level\":\"error\"}", LOG_LEVEL_ERROR },
        { "{\"log_level\":\"WARN\"}", LOG_LEVEL_WARN },
        { "{\"log_level\":\"warning\"}", LOG_LEVEL_WARN },
        { "{\"log_level\":\"info\"}", LOG_LEVEL_INFO },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct herald_config cfg;
        char err[CONFIG_ERROR_MAX];
        ASSERT_INT_EQ(config_load_string(&cfg, cases[i].json, err, sizeof err), 0);
        ASSERT_INT_EQ(cfg.log_level, cases[i].level);
        config_free(&cfg);
    }
}

static void test_file_not_found(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, "/nonexistent/herald.json", err, sizeof err), -1);
    ASSERT_STR_EQ(err, "config: /nonexistent/herald.json: cannot open the file: "
                       "No such file or directory");
    CU_ASSERT(config_is_zeroed(&cfg));
}

static void test_file_is_directory(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, "/tmp", err, sizeof err), -1);
    ASSERT_CONTAINS(err, "config: /tmp: ");
}

static void test_file_invalid_json(void)
{
    char path[64];
    write_temp_file(path, "{\n  \"gateway_port\": 6001,\n  \"prefix\": \"x\"\n  \"relay_port\": 1\n}\n");

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), -1);
    char expected[200];
    snprintf(expected, sizeof expected, "config: %s: invalid JSON at line 4, column 3", path);
    ASSERT_CONTAINS(err, expected);
    CU_ASSERT(config_is_zeroed(&cfg));
    unlink(path);
}

static void test_file_error_names_file_and_setting(void)
{
    char path[64];
    write_temp_file(path, "{\"gateway_port\": 0}");

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), -1);
    char expected[200];
    snprintf(expected, sizeof expected,
             "config: %s: gateway_port: must be a port from 1 to 65535, got 0", path);
    ASSERT_STR_EQ(err, expected);
    unlink(path);
}

static void test_file_duplicate_names_both_apps(void)
{
    char path[64];
    write_temp_file(path, "{\"apps\":[{\"id\":\"1\",\"key\":\"app-key\",\"secret\":\"a\"},"
                          "{\"id\":\"2\",\"key\":\"app-key\",\"secret\":\"b\"}]}");

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), -1);
    char expected[200];
    snprintf(expected, sizeof expected,
             "config: %s: apps[1].key: duplicate key \"app-key\" (also used by apps[0])", path);
    ASSERT_STR_EQ(err, expected);
    unlink(path);
}

static void test_file_with_nul_byte(void)
{
    char path[64];
    strcpy(path, "/tmp/herald-unit-config-XXXXXX");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, "{}\0{}", 5) == 5);
    close(fd);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), -1);
    ASSERT_CONTAINS(err, "contains a NUL byte");
    unlink(path);
}

static void test_invalid_documents(void)
{
    EXPECT_ERROR("", "config: document: invalid JSON at line 1, column 1: unexpected end of data");
    EXPECT_ERROR("{} {}", "config: document: invalid JSON at line 1, column 4: unexpected "
                          "content after the end of the document");
    EXPECT_ERROR("[]", "config: the top level must be a JSON object, got an array");
    EXPECT_ERROR("42", "config: the top level must be a JSON object, got an integer");
    EXPECT_ERROR("{\"prefix\": }", "config: document: invalid JSON at line 1, column 12: "
                                   "unexpected character");
    EXPECT_ERROR("{\"prefix\": \"\xff\"}", "config: document: invalid JSON at line 1, "
                                         "column 13: invalid utf-8 string");
}

/* A limit setting takes 0, which turns the check off, but no negative
 * number. */
static void test_limit_setting_range(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"max_connections_per_ip\":0}", err, sizeof err), 0);
    ASSERT_INT_EQ(cfg.max_connections_per_ip, 0);
    config_free(&cfg);

    EXPECT_ERROR("{\"max_connections_per_ip\":-1}",
                 "config: max_connections_per_ip: must be an integer from 0 to 2147483647, got -1");
    EXPECT_ERROR("{\"max_connections_per_ip\":2147483648}",
                 "config: max_connections_per_ip: must be an integer from 0 to 2147483647, got "
                 "2147483648");
}

/* ------------------------------------------------------------------------
 * Validation errors
 * ------------------------------------------------------------------------ */

static void test_unknown_top_level_key(void)
{
    EXPECT_ERROR("{\"gateway_prot\": 7001}",
                 "config: gateway_prot: unknown setting (check the spelling; "
                 "docs/configuration.md lists every setting)");
    EXPECT_ERROR("{\"redis_host\": \"x\"}",
                 "config: redis_host: unknown setting (check the spelling; "
                 "docs/configuration.md lists every setting)");
}

static void test_webhooks_parsed(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    int rc = config_load_string(&cfg,
                                "{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                                "\"webhooks\":[{\"url\":\"http://127.0.0.1:9000/hooks\","
                                "\"event_types\":[\"member_added\",\"channel_vacated\"],"
                                "\"headers\":{\"X-Api-Token\":\"t1\"}},"
                                "{\"url\":\"https://hooks.example/all\"}]}]}",
                                err, sizeof err);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_STR_EQ(err, "");
    if (rc != 0)
        return;
    const struct app_config *app = &cfg.apps[0];
    ASSERT_INT_EQ(app->webhook_count, 2);
    ASSERT_STR_EQ(app->webhooks[0].url, "http://127.0.0.1:9000/hooks");
    ASSERT_INT_EQ(app->webhooks[0].event_types, WEBHOOK_MEMBER_ADDED | WEBHOOK_CHANNEL_VACATED);
    ASSERT_INT_EQ(app->webhooks[0].header_count, 1);
    ASSERT_STR_EQ(app->webhooks[0].headers[0].name, "X-Api-Token");
    ASSERT_STR_EQ(app->webhooks[0].headers[0].value, "t1");
    ASSERT_INT_EQ(app->webhooks[1].event_types, WEBHOOK_ALL_EVENTS);
    ASSERT_INT_EQ(app->webhook_events, WEBHOOK_ALL_EVENTS);
    ASSERT_STR_EQ(config_webhook_event_name(WEBHOOK_CACHE_MISS), "cache_miss");
    CU_ASSERT_PTR_NULL(config_webhook_event_name(WEBHOOK_ALL_EVENTS));
    config_free(&cfg);
}

static void test_webhook_errors(void)
{
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"webhooks\":[{\"url\":\"ftp://x\"}]}]}",
                 "config: apps[0].webhooks[0].url: expected an http:// or https:// URL without "
                 "spaces");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"webhooks\":[{\"url\":\"http://x\",\"event_types\":[\"member_joined\"]}]}]}",
                 "config: apps[0].webhooks[0].event_types[0]: expected one of channel_occupied, "
                 "channel_vacated, member_added, member_removed, client_event, cache_miss, "
                 "subscription_count");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"webhooks\":[{\"event_types\":[\"cache_miss\"]}]}]}",
                 "config: apps[0].webhooks[0]: missing \"url\"");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"webhooks\":[{\"url\":\"http://x\",\"headers\":{\"Bad Name\":\"v\"}}]}]}",
                 "config: apps[0].webhooks[0].headers.Bad Name: expected a header name and a "
                 "string value without line breaks");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"webhooks\":[{\"url\":\"http://x\",\"retry\":3}]}]}",
                 "config: apps[0].webhooks[0].retry: unknown webhook setting (expected url, "
                 "event_types, headers)");
}

static void test_webhook_delivery_settings(void)
{
    clear_herald_env();
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg, "{}", err, sizeof err), 0);
    ASSERT_INT_EQ(cfg.webhook_timeout, 5);
    ASSERT_INT_EQ(cfg.webhook_max_attempts, 10);
    ASSERT_INT_EQ(cfg.webhook_batch_size, 50);
    ASSERT_INT_EQ(cfg.webhook_retry_initial_ms, 1000);
    ASSERT_INT_EQ(cfg.webhook_retry_max_ms, 60000);
    ASSERT_INT_EQ(cfg.webhook_claim_idle, 30);
    config_free(&cfg);

    ASSERT_INT_EQ(config_load_string(&cfg,
                                     "{\"webhook_batch_size\":1000,\"webhook_retry_initial_ms\":50,"
                                     "\"webhook_retry_max_ms\":200,\"webhook_claim_idle\":2}",
                                     err, sizeof err), 0);
    ASSERT_INT_EQ(cfg.webhook_batch_size, 1000);
    ASSERT_INT_EQ(cfg.webhook_retry_initial_ms, 50);
    ASSERT_INT_EQ(cfg.webhook_retry_max_ms, 200);
    ASSERT_INT_EQ(cfg.webhook_claim_idle, 2);
    config_free(&cfg);

    setenv("HERALD_WEBHOOK_BATCH_SIZE", "1", 1);
    setenv("HERALD_WEBHOOK_RETRY_INITIAL_MS", "100", 1);
    setenv("HERALD_WEBHOOK_RETRY_MAX_MS", "400", 1);
    setenv("HERALD_WEBHOOK_CLAIM_IDLE", "3", 1);
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    ASSERT_INT_EQ(cfg.webhook_batch_size, 1);
    ASSERT_INT_EQ(cfg.webhook_retry_initial_ms, 100);
    ASSERT_INT_EQ(cfg.webhook_retry_max_ms, 400);
    ASSERT_INT_EQ(cfg.webhook_claim_idle, 3);
    config_free(&cfg);
    clear_herald_env();

    EXPECT_ERROR("{\"webhook_batch_size\":1001}",
                 "config: webhook_batch_size: must be an integer from 1 to 1000, got 1001");
    EXPECT_ERROR("{\"webhook_retry_initial_ms\":0}",
                 "config: webhook_retry_initial_ms: must be an integer from 1 to 2147483647, "
                 "got 0");
    EXPECT_ERROR("{\"webhook_claim_idle\":2147484}",
                 "config: webhook_claim_idle: must be an integer from 1 to 2147483, got 2147484");
}

static void test_laravel_ingest_settings(void)
{
    clear_herald_env();
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";

    ASSERT_INT_EQ(config_load_string(&cfg, "{\"apps\":[{\"id\":\"a\",\"key\":\"k\","
                                     "\"secret\":\"s\"},{\"id\":\"b\",\"key\":\"l\","
                                     "\"secret\":\"t\"}]}",
                                     err, sizeof err), 0);
    CU_ASSERT_FALSE(cfg.laravel_ingest);
    ASSERT_STR_EQ(cfg.laravel_redis_prefix, "laravel_database_");
    CU_ASSERT_PTR_NULL(cfg.laravel_app_id);
    ASSERT_INT_EQ(cfg.ingest_lease_ms, 5000);
    ASSERT_STR_EQ(config_laravel_app(&cfg)->id, "a");
    config_free(&cfg);

    ASSERT_INT_EQ(config_load_string(&cfg,
                                     "{\"laravel_ingest\":true,\"laravel_redis_prefix\":"
                                     "\"laravel-database-\",\"laravel_app_id\":\"b\","
                                     "\"ingest_lease_ms\":100,\"apps\":[{\"id\":\"a\","
                                     "\"key\":\"k\",\"secret\":\"s\"},{\"id\":\"b\","
                                     "\"key\":\"l\",\"secret\":\"t\"}]}",
                                     err, sizeof err), 0);
    CU_ASSERT_TRUE(cfg.laravel_ingest);
    ASSERT_STR_EQ(cfg.laravel_redis_prefix, "laravel-database-");
    ASSERT_STR_EQ(cfg.laravel_app_id, "b");
    ASSERT_INT_EQ(cfg.ingest_lease_ms, 100);
    ASSERT_STR_EQ(config_laravel_app(&cfg)->id, "b");
    config_free(&cfg);

    /* An empty Laravel prefix is valid: REDIS_PREFIX may be set to "". */
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"laravel_redis_prefix\":\"\"}", err, sizeof err),
                  0);
    ASSERT_STR_EQ(cfg.laravel_redis_prefix, "");
    ASSERT_STR_EQ(config_laravel_app(&cfg)->id, "app-1");
    config_free(&cfg);

    setenv("HERALD_LARAVEL_INGEST", "yes", 1);
    setenv("HERALD_LARAVEL_REDIS_PREFIX", "{shop}:", 1);
    setenv("HERALD_LARAVEL_APP_ID", "app-1", 1);
    setenv("HERALD_INGEST_LEASE_MS", "2500", 1);
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    CU_ASSERT_TRUE(cfg.laravel_ingest);
    ASSERT_STR_EQ(cfg.laravel_redis_prefix, "{shop}:");
    ASSERT_STR_EQ(cfg.laravel_app_id, "app-1");
    ASSERT_INT_EQ(cfg.ingest_lease_ms, 2500);
    config_free(&cfg);

    /* HERALD_APPS replaces the file's apps, so the id is checked last. */
    setenv("HERALD_APPS", "[{\"id\":\"c\",\"key\":\"m\",\"secret\":\"u\"}]", 1);
    CU_ASSERT_EQUAL(config_load(&cfg, NULL, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "config: laravel_app_id: no configured app has the id \"app-1\"; set it "
                       "to the id of the app that Laravel broadcasts for");
    CU_ASSERT_TRUE(config_is_zeroed(&cfg));
    clear_herald_env();

    EXPECT_ERROR("{\"laravel_app_id\":\"nope\"}",
                 "config: laravel_app_id: no configured app has the id \"nope\"; set it to the "
                 "id of the app that Laravel broadcasts for");
    EXPECT_ERROR("{\"laravel_app_id\":\"\"}",
                 "config: laravel_app_id: no configured app has the id \"\"; set it to the id "
                 "of the app that Laravel broadcasts for");
    EXPECT_ERROR("{\"ingest_lease_ms\":99}",
                 "config: ingest_lease_ms: must be an integer from 100 to 2147483647, got 99");
    EXPECT_ERROR("{\"laravel_redis_prefix\":\"a\\nb\"}",
                 "config: laravel_redis_prefix: must not contain control characters");
    EXPECT_ERROR("{\"laravel_ingest\":\"true\"}",
                 "config: laravel_ingest: expected true or false, got a string");
    EXPECT_ERROR("{\"laravel_redis_prefix\":7}",
                 "config: laravel_redis_prefix: expected a string, got an integer");
}

static void test_tls_needs_cert_and_key(void)
{
    EXPECT_ERROR("{\"tls_cert_file\":\"/etc/herald/cert.pem\"}",
                 "config: tls_cert_file is set but tls_key_file is not; TLS needs both the "
                 "certificate and its key");
    EXPECT_ERROR("{\"tls_key_file\":\"/etc/herald/key.pem\"}",
                 "config: tls_key_file is set but tls_cert_file is not; TLS needs both the "
                 "certificate and its key");

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg,
                                     "{\"tls_cert_file\":\"c.pem\",\"tls_key_file\":\"k.pem\"}",
                                     err, sizeof err),
                  0);
    ASSERT_STR_EQ(cfg.tls_cert_file, "c.pem");
    ASSERT_STR_EQ(cfg.tls_key_file, "k.pem");
    config_free(&cfg);
}

static void test_relay_tls_needs_cert_and_key(void)
{
    EXPECT_ERROR("{\"relay_tls_cert_file\":\"/etc/herald/cert.pem\"}",
                 "config: relay_tls_cert_file is set but relay_tls_key_file is not; TLS needs "
                 "both the certificate and its key");
    EXPECT_ERROR("{\"relay_tls_key_file\":\"/etc/herald/key.pem\"}",
                 "config: relay_tls_key_file is set but relay_tls_cert_file is not; TLS needs "
                 "both the certificate and its key");

    /* The gateway's pair does not turn on HTTPS for the relay. */
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg,
                                     "{\"tls_cert_file\":\"c.pem\",\"tls_key_file\":\"k.pem\","
                                     "\"relay_tls_cert_file\":\"rc.pem\","
                                     "\"relay_tls_key_file\":\"rk.pem\"}",
                                     err, sizeof err),
                  0);
    ASSERT_STR_EQ(cfg.relay_tls_cert_file, "rc.pem");
    ASSERT_STR_EQ(cfg.relay_tls_key_file, "rk.pem");
    ASSERT_STR_EQ(cfg.tls_cert_file, "c.pem");
    config_free(&cfg);
}

static void test_relay_request_timeout(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"relay_request_timeout\":3600}", err, sizeof err),
                  0);
    ASSERT_INT_EQ(cfg.relay_request_timeout, 3600);
    config_free(&cfg);

    EXPECT_ERROR("{\"relay_request_timeout\":0}",
                 "config: relay_request_timeout: must be an integer from 1 to 3600, got 0");
    EXPECT_ERROR("{\"relay_request_timeout\":3601}",
                 "config: relay_request_timeout: must be an integer from 1 to 3600, got 3601");
}

static void test_max_api_requests_per_second(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg,
                                     "{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                                     "\"max_api_requests_per_second\":25}]}",
                                     err, sizeof err),
                  0);
    ASSERT_INT_EQ(cfg.apps[0].max_api_requests_per_second, 25);
    config_free(&cfg);
}

static void test_allowed_origins(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    int rc = config_load_string(&cfg,
                                "{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                                "\"allowed_origins\":[\"app.example.com\",\"*.example.org\"]},"
                                "{\"id\":\"2\",\"key\":\"k2\",\"secret\":\"s\"}]}",
                                err, sizeof err);
    ASSERT_INT_EQ(rc, 0);
    if (rc != 0)
        return;
    const struct app_config *app = &cfg.apps[0];
    CU_ASSERT_TRUE(config_origin_allowed(app, "https://app.example.com"));
    CU_ASSERT_TRUE(config_origin_allowed(app, "http://APP.example.com:8080"));
    CU_ASSERT_TRUE(config_origin_allowed(app, "https://eu.example.org"));
    CU_ASSERT_FALSE(config_origin_allowed(app, "https://example.org"));
    CU_ASSERT_FALSE(config_origin_allowed(app, "https://evil.com"));
    CU_ASSERT_FALSE(config_origin_allowed(app, "https://app.example.com.evil.com"));
    CU_ASSERT_FALSE(config_origin_allowed(app, "https://notexample.org"));
    CU_ASSERT_TRUE(config_origin_allowed(app, NULL));
    CU_ASSERT_TRUE(config_origin_allowed(&cfg.apps[1], "https://anything.test"));
    config_free(&cfg);

    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"allowed_origins\":[\"https://app.example.com\"]}]}",
                 "config: apps[0].allowed_origins[0]: expected a host pattern such as "
                 "\"example.com\", \"*.example.com\" or \"*\" (no scheme, port or path)");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"allowed_origins\":[\"a*.example.com\"]}]}",
                 "config: apps[0].allowed_origins[0]: expected a host pattern such as "
                 "\"example.com\", \"*.example.com\" or \"*\" (no scheme, port or path)");
}

static void test_unknown_app_key(void)
{
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"max_conections\":5}]}",
                 "config: apps[0].max_conections: unknown app setting (check the spelling; "
                 "docs/configuration.md lists every setting)");
}

static void test_duplicate_app_key(void)
{
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"app-key\",\"secret\":\"s1\"},"
                 "{\"id\":\"2\",\"key\":\"app-key\",\"secret\":\"s2\"}]}",
                 "config: apps[1].key: duplicate key \"app-key\" (also used by apps[0])");
}

static void test_duplicate_app_id(void)
{
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"a\",\"secret\":\"s\"},"
                 "{\"id\":\"2\",\"key\":\"b\",\"secret\":\"s\"},"
                 "{\"id\":\"1\",\"key\":\"c\",\"secret\":\"s\"}]}",
                 "config: apps[2].id: duplicate id \"1\" (also used by apps[0])");
}

static void test_missing_and_empty_app_fields(void)
{
    EXPECT_ERROR("{\"apps\":[{\"key\":\"k\",\"secret\":\"s\"}]}",
                 "config: apps[0]: missing \"id\"");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"secret\":\"s\"}]}",
                 "config: apps[0]: missing \"key\"");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\"}]}",
                 "config: apps[0]: missing \"secret\" (or \"secret_file\")");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"\",\"key\":\"k\",\"secret\":\"s\"}]}",
                 "config: apps[0].id: must not be empty");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"\",\"secret\":\"s\"}]}",
                 "config: apps[0].key: must not be empty");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"\"}]}",
                 "config: apps[0].secret: must not be empty");
}

static void test_app_id_and_key_characters(void)
{
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"app:key\",\"secret\":\"s\"}]}",
                 "config: apps[0].key: \"app:key\" may contain only letters, digits and - . _ ~");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"a/b\",\"key\":\"k\",\"secret\":\"s\"}]}",
                 "config: apps[0].id: \"a/b\" may contain only letters, digits and - . _ ~");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"{x}\",\"key\":\"k\",\"secret\":\"s\"}]}",
                 "config: apps[0].id: \"{x}\" may contain only letters, digits and - . _ ~");

    /* The secret may contain any character. */
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX];
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"apps\":[{\"id\":\"A-z_0.9~\",\"key\":\"k\","
                                     "\"secret\":\"s:/{}@ \\u00e9\"}]}", err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.apps[0].secret, "s:/{}@ \xc3\xa9");
    config_free(&cfg);
}

static void test_apps_shape(void)
{
    EXPECT_ERROR("{\"apps\":[]}",
                 "config: apps: the list is empty; configure at least one app, or leave the "
                 "setting out to run with the development app");
    EXPECT_ERROR("{\"apps\":{\"id\":\"1\"}}",
                 "config: apps: expected an array of app objects, got an object");
    EXPECT_ERROR("{\"apps\":[\"app-1\"]}", "config: apps[0]: expected an object, got a string");
    EXPECT_ERROR("{\"apps\":[{\"id\":1,\"key\":\"k\",\"secret\":\"s\"}]}",
                 "config: apps[0].id: expected a string, got an integer");
}

static void test_wrong_types(void)
{
    EXPECT_ERROR("{\"gateway_port\":\"6001\"}",
                 "config: gateway_port: expected an integer, got a string");
    EXPECT_ERROR("{\"activity_timeout\":1.5}",
                 "config: activity_timeout: expected an integer, got a non-integer number");
    EXPECT_ERROR("{\"strict_protocol\":1}",
                 "config: strict_protocol: expected true or false, got an integer");
    EXPECT_ERROR("{\"log_level\":3}", "config: log_level: expected a string, got an integer");
    EXPECT_ERROR("{\"prefix\":null}", "config: prefix: expected a string, got null");
    EXPECT_ERROR("{\"redis_url\":[]}", "config: redis_url: expected a string, got an array");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\",\"enabled\":\"yes\"}]}",
                 "config: apps[0].enabled: expected true or false, got a string");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"max_batch_size\":\"10\"}]}",
                 "config: apps[0].max_batch_size: expected an integer, got a string");
}

static void test_out_of_range_numbers(void)
{
    EXPECT_ERROR("{\"gateway_port\":0}", "config: gateway_port: must be a port from 1 to 65535, got 0");
    EXPECT_ERROR("{\"relay_port\":65536}",
                 "config: relay_port: must be a port from 1 to 65535, got 65536");
    EXPECT_ERROR("{\"activity_timeout\":0}",
                 "config: activity_timeout: must be an integer from 1 to 2147483647, got 0");
    EXPECT_ERROR("{\"pong_timeout\":-5}",
                 "config: pong_timeout: must be an integer from 1 to 2147483647, got -5");
    EXPECT_ERROR("{\"node_timeout\":0}",
                 "config: node_timeout: must be an integer from 1 to 2147483, got 0");
    EXPECT_ERROR("{\"node_timeout\":2147484}",
                 "config: node_timeout: must be an integer from 1 to 2147483, got 2147484");
    EXPECT_ERROR("{\"auth_timestamp_window\":0}",
                 "config: auth_timestamp_window: must be an integer from 1 to 2147483647, got 0");
    EXPECT_ERROR("{\"max_message_bytes\":2147483648}",
                 "config: max_message_bytes: must be an integer from 1 to 2147483647, "
                 "got 2147483648");
    EXPECT_ERROR("{\"max_outbound_queue_bytes\":0}",
                 "config: max_outbound_queue_bytes: must be an integer from 1 to 2147483647, "
                 "got 0");
    EXPECT_ERROR("{\"max_request_body_bytes\":-1}",
                 "config: max_request_body_bytes: must be an integer from 1 to 2147483647, "
                 "got -1");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"max_presence_members\":0}]}",
                 "config: apps[0].max_presence_members: must be an integer from 1 to "
                 "2147483647, got 0");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"max_connections\":0}]}",
                 "config: apps[0].max_connections: must be -1 (unlimited) or an integer from 1 "
                 "to 2147483647, got 0");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\","
                 "\"max_connections\":-2}]}",
                 "config: apps[0].max_connections: must be -1 (unlimited) or an integer from 1 "
                 "to 2147483647, got -2");
}

static void test_range_edges_accepted(void)
{
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg,
                                     "{\"gateway_port\":1,\"relay_port\":65535,"
                                     "\"pong_timeout\":2147483647,\"apps\":[{\"id\":\"1\","
                                     "\"key\":\"k\",\"secret\":\"s\",\"max_connections\":-1,"
                                     "\"max_batch_size\":1}]}",
                                     err, sizeof err), 0);
    ASSERT_STR_EQ(err, "");
    ASSERT_INT_EQ(cfg.gateway_port, 1);
    ASSERT_INT_EQ(cfg.relay_port, 65535);
    ASSERT_INT_EQ(cfg.pong_timeout, 2147483647);
    ASSERT_INT_EQ(cfg.apps[0].max_connections, -1);
    ASSERT_INT_EQ(cfg.apps[0].max_batch_size, 1);
    config_free(&cfg);
}

static void test_string_settings_checked(void)
{
    EXPECT_ERROR("{\"gateway_host\":\"\"}", "config: gateway_host: must not be empty");
    EXPECT_ERROR("{\"relay_host\":\"\"}", "config: relay_host: must not be empty");
    EXPECT_ERROR("{\"log_level\":\"verbose\"}",
                 "config: log_level: unknown log level \"verbose\"; use debug, info, warn or error");
    EXPECT_ERROR("{\"prefix\":\"app{1}:\"}",
                 "config: prefix: must not contain '{' or '}', which Redis Cluster reads as a "
                 "hash tag");
    EXPECT_ERROR("{\"prefix\":\"a\\nb\"}", "config: prefix: must not contain control characters");
    EXPECT_ERROR("{\"gateway_host\":\"a\\u0000b\"}",
                 "config: gateway_host: must not contain a NUL character");

    /* An empty prefix is allowed: keys then start with "ch:". */
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX];
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"prefix\":\"\"}", err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.prefix, "");
    config_free(&cfg);
}

static void test_secret_never_in_messages(void)
{
    /* Every failure after the secret was read must keep it out of the text. */
    static const char *const documents[] = {
        "{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"TOPSECRET\",\"enabled\":1}]}",
        "{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"TOPSECRET\"},"
        "{\"id\":\"1\",\"key\":\"k2\",\"secret\":\"TOPSECRET\"}]}",
        "{\"apps\":[{\"id\":\"1\",\"secret\":\"TOPSECRET\"}]}",
        "{\"apps\":[{\"id\":\"1\",\"key\":\"k\",\"secret\":[\"TOPSECRET\"]}]}",
        "{\"redis_url\":\"redis://user:TOPSECRET@host:99999\"}",
        "{\"redis_url\":\"redis://user:TOPSECRET@\"}",
        "{\"redis_url\":\"redis://user:TOPSECRET@host/x\"}",
        "{\"redis_url\":\"http://user:TOPSECRET@host\"}",
        "{\"redis_url\":\"redis://user:TOP%zzSECRET@host\"}",
        "{\"redis_url\":\"redis://TOPSECRET@host\"}",
    };
    for (size_t i = 0; i < sizeof documents / sizeof documents[0]; i++) {
        struct herald_config cfg;
        char err[CONFIG_ERROR_MAX] = "";
        ASSERT_INT_EQ(config_load_string(&cfg, documents[i], err, sizeof err), -1);
        CU_ASSERT(strlen(err) > strlen("config: "));
        ASSERT_NOT_CONTAINS(err, "TOPSECRET");
        ASSERT_NOT_CONTAINS(err, "TOP%zz");
    }
}

/* ------------------------------------------------------------------------
 * Redis URLs
 * ------------------------------------------------------------------------ */

struct redis_url_case {
    const char *url;
    const char *host;
    int port;
    const char *username;
    const char *password;
    int database;
};

static void test_redis_url_forms(void)
{
    static const struct redis_url_case cases[] = {
        { "redis://localhost", "localhost", 6379, NULL, NULL, 0 },
        { "redis://10.0.0.5:6380", "10.0.0.5", 6380, NULL, NULL, 0 },
        { "redis://redis/2", "redis", 6379, NULL, NULL, 2 },
        { "redis://redis:7000/", "redis", 7000, NULL, NULL, 0 },
        { "redis://:pw@redis:7000/15", "redis", 7000, NULL, "pw", 15 },
        { "redis://alice:pw@redis", "redis", 6379, "alice", "pw", 0 },
        { "redis://alice:@redis", "redis", 6379, "alice", NULL, 0 },
        { "REDIS://Redis.Example", "Redis.Example", 6379, NULL, NULL, 0 },
        { "redis://[::1]:6390/1", "::1", 6390, NULL, NULL, 1 },
        { "redis://[::1]", "::1", 6379, NULL, NULL, 0 },
        /* Reserved characters in a password, escaped and unescaped. */
        { "redis://:p%40ss%3Aw%2Fd@h", "h", 6379, NULL, "p@ss:w/d", 0 },
        { "redis://:p@ss/w:d@h:1", "h", 1, NULL, "p@ss/w:d", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[300];
        snprintf(json, sizeof json, "{\"redis_url\":\"%s\"}", cases[i].url);
        struct herald_config cfg;
        char err[CONFIG_ERROR_MAX] = "";
        int rc = config_load_string(&cfg, json, err, sizeof err);
        unit_assert_long_equal(rc, 0, cases[i].url, __FILE__, __LINE__);
        if (rc != 0) {
            ASSERT_STR_EQ(err, "");
            continue;
        }
        ASSERT_STR_EQ(cfg.redis.host, cases[i].host);
        ASSERT_INT_EQ(cfg.redis.port, cases[i].port);
        ASSERT_STR_EQ(cfg.redis.username, cases[i].username);
        ASSERT_STR_EQ(cfg.redis.password, cases[i].password);
        ASSERT_INT_EQ(cfg.redis.database, cases[i].database);
        config_free(&cfg);
    }
}

static void test_redis_url_errors(void)
{
    static const struct {
        const char *url;
        const char *message;
    } cases[] = {
        { "localhost:6379", "must start with redis:// (form "
                            "redis://[[username]:password@]host[:port][/db])" },
        { "rediss://h", "rediss:// (TLS) is not supported; use redis://host:port" },
        { "redis://", "the host is missing" },
        { "redis://:6379", "the host is missing" },
        { "redis://h:0", "the port must be a number from 1 to 65535" },
        { "redis://h:65536", "the port must be a number from 1 to 65535" },
        { "redis://h:", "the port must be a number from 1 to 65535" },
        { "redis://h:12ab", "the port must be a number from 1 to 65535" },
        { "redis://h/x", "the database must be a number from 0 to 2147483647" },
        { "redis://h/-1", "the database must be a number from 0 to 2147483647" },
        { "redis://h/99999999999", "the database must be a number from 0 to 2147483647" },
        { "redis://h?db=1", "unexpected text after the host, port and database "
                            "(query parameters are not supported)" },
        { "redis://[::1", "an IPv6 address must end with ']'" },
        { "redis://[]:1", "the host is missing" },
        { "redis://[::1]x", "unexpected text after the host, port and database "
                            "(query parameters are not supported)" },
        { "redis://pw@h", "the part before '@' must be [username]:password" },
        { "redis://:p%4@h", "invalid percent-escape in the user name or password" },
        { "redis://:p%00@h", "invalid percent-escape in the user name or password" },
        { "redis://u%zz:p@h", "invalid percent-escape in the user name or password" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[300], expected[CONFIG_ERROR_MAX];
        snprintf(json, sizeof json, "{\"redis_url\":\"%s\"}", cases[i].url);
        snprintf(expected, sizeof expected, "config: redis_url: %s", cases[i].message);
        expect_string_error(json, expected, __LINE__);
    }
}

/* ------------------------------------------------------------------------
 * Environment
 * ------------------------------------------------------------------------ */

static void test_env_overrides_file(void)
{
    clear_herald_env();
    char path[64];
    write_temp_file(path, full_document);

    setenv("HERALD_GATEWAY_PORT", "8001", 1);
    setenv("HERALD_PREFIX", "prod:", 1);
    setenv("HERALD_LOG_LEVEL", "error", 1);
    setenv("HERALD_STRICT_PROTOCOL", "false", 1);
    setenv("HERALD_REDIS_URL", "redis://cache:6400/4", 1);
    setenv("HERALD_APPS", "[{\"id\":\"env-app\",\"key\":\"env-key\",\"secret\":\"env-secret\","
                          "\"enable_client_messages\":true}]", 1);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), 0);
    ASSERT_STR_EQ(err, "");

    ASSERT_INT_EQ(cfg.gateway_port, 8001);
    ASSERT_STR_EQ(cfg.prefix, "prod:");
    ASSERT_INT_EQ(cfg.log_level, LOG_LEVEL_ERROR);
    CU_ASSERT_FALSE(cfg.strict_protocol);
    /* HERALD_REDIS_URL replaces the whole URL, credentials included. */
    ASSERT_STR_EQ(cfg.redis.host, "cache");
    ASSERT_INT_EQ(cfg.redis.port, 6400);
    ASSERT_INT_EQ(cfg.redis.database, 4);
    CU_ASSERT_PTR_NULL(cfg.redis.username);
    CU_ASSERT_PTR_NULL(cfg.redis.password);
    /* HERALD_APPS replaces the file's apps rather than adding to them. */
    ASSERT_INT_EQ(cfg.app_count, 1);
    ASSERT_STR_EQ(cfg.apps[0].id, "env-app");
    CU_ASSERT_TRUE(cfg.apps[0].enable_client_messages);
    CU_ASSERT_FALSE(cfg.using_development_app);
    /* Settings without a variable keep the file's values. */
    ASSERT_INT_EQ(cfg.relay_port, 7002);
    ASSERT_INT_EQ(cfg.activity_timeout, 60);

    config_free(&cfg);
    clear_herald_env();
    unlink(path);
}

static void test_env_sets_every_setting(void)
{
    clear_herald_env();
    setenv("HERALD_PREFIX", "p:", 1);
    setenv("HERALD_GATEWAY_HOST", "0.0.0.0", 1);
    setenv("HERALD_GATEWAY_PORT", "7101", 1);
    setenv("HERALD_RELAY_HOST", "127.0.0.2", 1);
    setenv("HERALD_RELAY_PORT", "7102", 1);
    setenv("HERALD_LOG_LEVEL", "DEBUG", 1);
    setenv("HERALD_ACTIVITY_TIMEOUT", "90", 1);
    setenv("HERALD_PONG_TIMEOUT", "15", 1);
    setenv("HERALD_NODE_TIMEOUT", "45", 1);
    setenv("HERALD_STRICT_PROTOCOL", "yes", 1);
    setenv("HERALD_MAX_MESSAGE_BYTES", "32768", 1);
    setenv("HERALD_MAX_OUTBOUND_QUEUE_BYTES", "524288", 1);
    setenv("HERALD_AUTH_TIMESTAMP_WINDOW", "120", 1);
    setenv("HERALD_MAX_REQUEST_BODY_BYTES", "+65536", 1);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    ASSERT_STR_EQ(err, "");
    ASSERT_STR_EQ(cfg.prefix, "p:");
    ASSERT_STR_EQ(cfg.gateway_host, "0.0.0.0");
    ASSERT_INT_EQ(cfg.gateway_port, 7101);
    ASSERT_STR_EQ(cfg.relay_host, "127.0.0.2");
    ASSERT_INT_EQ(cfg.relay_port, 7102);
    ASSERT_INT_EQ(cfg.log_level, LOG_LEVEL_DEBUG);
    ASSERT_INT_EQ(cfg.activity_timeout, 90);
    ASSERT_INT_EQ(cfg.pong_timeout, 15);
    ASSERT_INT_EQ(cfg.node_timeout, 45);
    CU_ASSERT_TRUE(cfg.strict_protocol);
    ASSERT_INT_EQ(cfg.max_message_bytes, 32768);
    ASSERT_INT_EQ(cfg.max_outbound_queue_bytes, 524288);
    ASSERT_INT_EQ(cfg.auth_timestamp_window, 120);
    ASSERT_INT_EQ(cfg.max_request_body_bytes, 65536);
    check_development_app(&cfg);
    config_free(&cfg);
    clear_herald_env();
}

static void test_env_boolean_words(void)
{
    static const struct {
        const char *text;
        bool value;
    } cases[] = {
        { "true", true }, { "TRUE", true }, { "1", true }, { "yes", true }, { "on", true },
        { "false", false }, { "0", false }, { "no", false }, { "Off", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        clear_herald_env();
        setenv("HERALD_STRICT_PROTOCOL", cases[i].text, 1);
        struct herald_config cfg;
        char err[CONFIG_ERROR_MAX] = "";
        ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
        unit_assert_long_equal(cfg.strict_protocol, cases[i].value, cases[i].text, __FILE__,
                               __LINE__);
        config_free(&cfg);
    }
    clear_herald_env();
}

static void test_env_redis_password_overrides_url(void)
{
    clear_herald_env();
    char path[64];
    write_temp_file(path, "{\"redis_url\":\"redis://alice:from-file@redis:6380\"}");
    setenv("HERALD_REDIS_PASSWORD", "from-env", 1);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.host, "redis");
    ASSERT_INT_EQ(cfg.redis.port, 6380);
    ASSERT_STR_EQ(cfg.redis.username, "alice");
    ASSERT_STR_EQ(cfg.redis.password, "from-env");
    config_free(&cfg);

    /* The password also applies over HERALD_REDIS_URL and the default. */
    setenv("HERALD_REDIS_URL", "redis://:from-url@other", 1);
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.host, "other");
    ASSERT_STR_EQ(cfg.redis.password, "from-env");
    config_free(&cfg);

    unsetenv("HERALD_REDIS_URL");
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.host, "127.0.0.1");
    ASSERT_STR_EQ(cfg.redis.password, "from-env");
    config_free(&cfg);

    clear_herald_env();
    unlink(path);
}

static void test_env_empty_means_unset(void)
{
    clear_herald_env();
    setenv("HERALD_GATEWAY_PORT", "", 1);
    setenv("HERALD_APPS", "", 1);
    setenv("HERALD_REDIS_PASSWORD", "", 1);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    ASSERT_INT_EQ(cfg.gateway_port, 6001);
    CU_ASSERT_PTR_NULL(cfg.redis.password);
    check_development_app(&cfg);
    config_free(&cfg);
    clear_herald_env();
}

static void test_env_ignored_by_load_string(void)
{
    clear_herald_env();
    setenv("HERALD_GATEWAY_PORT", "9999", 1);
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX];
    ASSERT_INT_EQ(config_load_string(&cfg, "{}", err, sizeof err), 0);
    ASSERT_INT_EQ(cfg.gateway_port, 6001);
    config_free(&cfg);
    clear_herald_env();
}

/* Sets one variable, expects config_load(NULL) to fail with `expected`. */
static void expect_env_error(const char *name, const char *value, const char *expected,
                             unsigned line)
{
    clear_herald_env();
    setenv(name, value, 1);
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    int rc = config_load(&cfg, NULL, err, sizeof err);
    unit_assert_long_equal(rc, -1, name, __FILE__, line);
    unit_assert_str_equal(err, expected, name, __FILE__, line);
    CU_ASSERT(config_is_zeroed(&cfg));
    clear_herald_env();
}

#define EXPECT_ENV_ERROR(name, value, expected) \
    expect_env_error((name), (value), (expected), __LINE__)

static void test_env_errors_name_variable(void)
{
    EXPECT_ENV_ERROR("HERALD_GATEWAY_PORT", "abc",
                     "config: HERALD_GATEWAY_PORT: expected a decimal integer, got \"abc\"");
    EXPECT_ENV_ERROR("HERALD_RELAY_PORT", "70000",
                     "config: HERALD_RELAY_PORT: must be a port from 1 to 65535, got 70000");
    EXPECT_ENV_ERROR("HERALD_GATEWAY_PORT", " 6001",
                     "config: HERALD_GATEWAY_PORT: expected a decimal integer, got \" 6001\"");
    EXPECT_ENV_ERROR("HERALD_GATEWAY_PORT", "6001 ",
                     "config: HERALD_GATEWAY_PORT: expected a decimal integer, got \"6001 \"");
    EXPECT_ENV_ERROR("HERALD_ACTIVITY_TIMEOUT", "0",
                     "config: HERALD_ACTIVITY_TIMEOUT: must be an integer from 1 to 2147483647, "
                     "got 0");
    EXPECT_ENV_ERROR("HERALD_MAX_MESSAGE_BYTES", "99999999999999999999",
                     "config: HERALD_MAX_MESSAGE_BYTES: expected a decimal integer, got "
                     "\"99999999999999999999\"");
    EXPECT_ENV_ERROR("HERALD_STRICT_PROTOCOL", "maybe",
                     "config: HERALD_STRICT_PROTOCOL: expected true or false (or 1/0, yes/no, "
                     "on/off), got \"maybe\"");
    EXPECT_ENV_ERROR("HERALD_LOG_LEVEL", "loud",
                     "config: HERALD_LOG_LEVEL: unknown log level \"loud\"; use debug, info, "
                     "warn or error");
    EXPECT_ENV_ERROR("HERALD_PREFIX", "{x}",
                     "config: HERALD_PREFIX: must not contain '{' or '}', which Redis Cluster "
                     "reads as a hash tag");
    EXPECT_ENV_ERROR("HERALD_REDIS_URL", "redis://:hunter2@h:0",
                     "config: HERALD_REDIS_URL: the port must be a number from 1 to 65535");
}

static void test_env_apps_errors(void)
{
    EXPECT_ENV_ERROR("HERALD_APPS", "[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"hunter2\"",
                     "config: HERALD_APPS: invalid JSON at line 1, column 40: unexpected end "
                     "of data");
    EXPECT_ENV_ERROR("HERALD_APPS", "{\"id\":\"1\"}",
                     "config: HERALD_APPS: expected an array of app objects, got an object");
    EXPECT_ENV_ERROR("HERALD_APPS", "[]",
                     "config: HERALD_APPS: the list is empty; configure at least one app, or "
                     "leave the setting out to run with the development app");
    EXPECT_ENV_ERROR("HERALD_APPS",
                     "[{\"id\":\"1\",\"key\":\"app-key\",\"secret\":\"a\"},"
                     "{\"id\":\"2\",\"key\":\"app-key\",\"secret\":\"b\"}]",
                     "config: HERALD_APPS[1].key: duplicate key \"app-key\" (also used by "
                     "HERALD_APPS[0])");
    EXPECT_ENV_ERROR("HERALD_APPS", "[{\"id\":\"1\",\"key\":\"k\",\"secret\":\"s\",\"sekret\":1}]",
                     "config: HERALD_APPS[0].sekret: unknown app setting (check the spelling; "
                     "docs/configuration.md lists every setting)");
}

static void test_env_error_after_valid_file(void)
{
    /* The file loads, the environment fails: the result is freed and zeroed. */
    clear_herald_env();
    char path[64];
    write_temp_file(path, full_document);
    setenv("HERALD_PONG_TIMEOUT", "-1", 1);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, path, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "config: HERALD_PONG_TIMEOUT: must be an integer from 1 to 2147483647, "
                       "got -1");
    CU_ASSERT(config_is_zeroed(&cfg));
    clear_herald_env();
    unlink(path);
}


/* ------------------------------------------------------------------------
 * Secrets from files
 * ------------------------------------------------------------------------ */

/* Builds an apps document whose only app reads its secret from `path`. */
static void format_secret_file_document(char *json, size_t size, const char *path)
{
    snprintf(json, size,
             "{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":\"%s\"}]}", path);
}

/* Loads an app secret from a file holding `content` and checks the result. */
static void expect_secret_from_file(const char *content, size_t len, const char *expected,
                                    unsigned line)
{
    char path[64];
    write_temp_bytes(path, content, len);
    char json[200];
    format_secret_file_document(json, sizeof json, path);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    int rc = config_load_string(&cfg, json, err, sizeof err);
    unit_assert_long_equal(rc, 0, "config_load_string result", __FILE__, line);
    unit_assert_str_equal(err, "", "error message", __FILE__, line);
    if (rc == 0) {
        unit_assert_str_equal(cfg.apps[0].secret, expected, "secret", __FILE__, line);
        config_free(&cfg);
    }
    unlink(path);
}

#define EXPECT_SECRET_FROM_FILE(content, expected) \
    expect_secret_from_file(LITERAL(content), (expected), __LINE__)

static void test_secret_file_read(void)
{
    EXPECT_SECRET_FROM_FILE("file-secret", "file-secret");
    EXPECT_SECRET_FROM_FILE("file-secret\n", "file-secret");
    EXPECT_SECRET_FROM_FILE("file-secret\r\n", "file-secret");
    EXPECT_SECRET_FROM_FILE("file-secret\n\n\n", "file-secret");
    /* Only line breaks at the end go: spaces and inner lines are the secret's. */
    EXPECT_SECRET_FROM_FILE(" two words \n", " two words ");
    EXPECT_SECRET_FROM_FILE("line-1\nline-2\n", "line-1\nline-2");
    EXPECT_SECRET_FROM_FILE("s:/{}@\"\\ \xc3\xa9\n", "s:/{}@\"\\ \xc3\xa9");
}

static void test_secret_file_in_env_apps(void)
{
    clear_herald_env();
    char path[64];
    write_temp_file(path, "env-file-secret\n");
    char json[200];
    snprintf(json, sizeof json, "[{\"id\":\"7\",\"key\":\"k7\",\"secret_file\":\"%s\"}]", path);
    setenv("HERALD_APPS", json, 1);

    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    ASSERT_STR_EQ(err, "");
    ASSERT_INT_EQ(cfg.app_count, 1);
    ASSERT_STR_EQ(cfg.apps[0].id, "7");
    ASSERT_STR_EQ(cfg.apps[0].secret, "env-file-secret");
    config_free(&cfg);

    clear_herald_env();
    unlink(path);
}

static void test_secret_and_secret_file_both(void)
{
    char path[64];
    write_temp_file(path, "TOPSECRET-FILE\n");
    char json[256];
    snprintf(json, sizeof json,
             "{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":\"%s\","
             "\"secret\":\"TOPSECRET-JSON\"}]}", path);
    EXPECT_ERROR(json, "config: apps[0]: app \"42\" sets both \"secret\" and \"secret_file\"; "
                       "keep one of them");
    unlink(path);
}

static void test_secret_file_errors(void)
{
    EXPECT_ERROR("{\"apps\":[{\"id\":\"42\",\"key\":\"k\","
                 "\"secret_file\":\"/nonexistent/herald-secret\"}]}",
                 "config: apps[0].secret_file of app \"42\": cannot open "
                 "\"/nonexistent/herald-secret\": No such file or directory");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":\"/tmp\"}]}",
                 "config: apps[0].secret_file of app \"42\": cannot read \"/tmp\": "
                 "Is a directory");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":\"\"}]}",
                 "config: apps[0].secret_file: expected the path of a file, got an empty "
                 "string");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":1}]}",
                 "config: apps[0].secret_file: expected the path of a file, got an integer");
    EXPECT_ERROR("{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":\"a\\u0000b\"}]}",
                 "config: apps[0].secret_file: must not contain a NUL character");

    /* An empty file, or one with only line breaks, contains no secret. */
    static const char *const empty_contents[] = { "", "\n", "\r\n\n" };
    for (size_t i = 0; i < sizeof empty_contents / sizeof empty_contents[0]; i++) {
        char path[64];
        write_temp_file(path, empty_contents[i]);
        char json[200];
        format_secret_file_document(json, sizeof json, path);
        char expected[200];
        snprintf(expected, sizeof expected,
                 "config: apps[0].secret_file of app \"42\": \"%s\" is empty; write the secret "
                 "into it", path);
        EXPECT_ERROR(json, expected);
        unlink(path);
    }
}

/* A file that fails after its content was read still keeps the content
 * out of the message. */
static void test_secret_file_content_never_in_messages(void)
{
    char path[64];
    char json[200];
    char expected[200];

    write_temp_bytes(path, LITERAL("TOPSECRET\0tail\n"));
    format_secret_file_document(json, sizeof json, path);
    snprintf(expected, sizeof expected,
             "config: apps[0].secret_file of app \"42\": \"%s\" contains a NUL byte", path);
    EXPECT_ERROR(json, expected);
    unlink(path);

    /* One byte over the limit. */
    static char large[65537 + 1];
    memset(large, 'A', sizeof large - 1);
    memcpy(large, "TOPSECRET", 9);
    write_temp_bytes(path, large, sizeof large - 1);
    format_secret_file_document(json, sizeof json, path);
    snprintf(expected, sizeof expected,
             "config: apps[0].secret_file of app \"42\": \"%s\" is larger than 65536 bytes; it "
             "must contain only the secret", path);
    EXPECT_ERROR(json, expected);
    unlink(path);

    /* A file of exactly the limit is accepted. */
    write_temp_bytes(path, large, 65536);
    format_secret_file_document(json, sizeof json, path);
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg, json, err, sizeof err), 0);
    CU_ASSERT_FATAL(cfg.app_count == 1);
    ASSERT_INT_EQ(strlen(cfg.apps[0].secret), 65536);
    config_free(&cfg);
    unlink(path);

    /* A later error about the same app, or another setting, once the
     * secret sits in memory. */
    write_temp_file(path, "TOPSECRET\n");
    const char *const documents[] = {
        "{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":\"%s\"},"
        "{\"id\":\"42\",\"key\":\"k2\",\"secret_file\":\"%s\"}]}",
        "{\"apps\":[{\"id\":\"42\",\"key\":\"k\",\"secret_file\":\"%s\",\"enabled\":1}]}",
        "{\"redis_password_file\":\"%s\",\"tls_cert_file\":\"%s\"}",
        "{\"redis_password_file\":\"%s\",\"laravel_app_id\":\"%s\"}",
    };
    for (size_t i = 0; i < sizeof documents / sizeof documents[0]; i++) {
        char document[400];
        snprintf(document, sizeof document, documents[i], path, path);
        memset(err, 0, sizeof err);
        ASSERT_INT_EQ(config_load_string(&cfg, document, err, sizeof err), -1);
        CU_ASSERT(strlen(err) > strlen("config: "));
        ASSERT_NOT_CONTAINS(err, "TOPSECRET");
    }
    unlink(path);
}

static void test_redis_password_file(void)
{
    clear_herald_env();
    char password_path[64];
    write_temp_file(password_path, "from-password-file\n");

    /* The file beats the URL's password, whichever key comes first. */
    char json[256];
    snprintf(json, sizeof json,
             "{\"redis_password_file\":\"%s\",\"redis_url\":\"redis://alice:from-url@redis\"}",
             password_path);
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load_string(&cfg, json, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.host, "redis");
    ASSERT_STR_EQ(cfg.redis.username, "alice");
    ASSERT_STR_EQ(cfg.redis.password, "from-password-file");
    ASSERT_STR_EQ(cfg.redis_password_file, password_path);
    config_free(&cfg);

    /* config_load reads it from the file, and also over HERALD_REDIS_URL. */
    char config_path[64];
    write_temp_file(config_path, json);
    ASSERT_INT_EQ(config_load(&cfg, config_path, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.password, "from-password-file");
    config_free(&cfg);
    setenv("HERALD_REDIS_URL", "redis://:from-env-url@other", 1);
    ASSERT_INT_EQ(config_load(&cfg, config_path, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.host, "other");
    ASSERT_STR_EQ(cfg.redis.password, "from-password-file");
    config_free(&cfg);
    clear_herald_env();

    /* An empty value in the file counts as unset, as for tls_cert_file. */
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"redis_password_file\":\"\","
                                     "\"redis_url\":\"redis://:from-url@redis\"}",
                                     err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.password, "from-url");
    config_free(&cfg);

    unlink(config_path);
    unlink(password_path);
}

static void test_env_redis_password_file(void)
{
    clear_herald_env();
    char file_path[64], env_path[64], config_path[64];
    write_temp_file(file_path, "from-config-setting\n");
    write_temp_file(env_path, "from-env-file\n");
    char json[256];
    snprintf(json, sizeof json,
             "{\"redis_url\":\"redis://:from-url@redis\",\"redis_password_file\":\"%s\"}",
             file_path);
    write_temp_file(config_path, json);

    /* HERALD_REDIS_PASSWORD_FILE replaces the file's redis_password_file. */
    setenv("HERALD_REDIS_PASSWORD_FILE", env_path, 1);
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, config_path, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.password, "from-env-file");
    ASSERT_STR_EQ(cfg.redis_password_file, env_path);
    config_free(&cfg);

    /* Without a config file it replaces the default URL's empty password. */
    ASSERT_INT_EQ(config_load(&cfg, NULL, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.host, "127.0.0.1");
    ASSERT_STR_EQ(cfg.redis.password, "from-env-file");
    config_free(&cfg);

    /* HERALD_REDIS_PASSWORD replaces the file's redis_password_file too. */
    unsetenv("HERALD_REDIS_PASSWORD_FILE");
    setenv("HERALD_REDIS_PASSWORD", "from-env", 1);
    ASSERT_INT_EQ(config_load(&cfg, config_path, err, sizeof err), 0);
    ASSERT_STR_EQ(cfg.redis.password, "from-env");
    CU_ASSERT_PTR_NULL(cfg.redis_password_file);
    config_free(&cfg);

    /* Both variables at once are rejected, without either value. */
    setenv("HERALD_REDIS_PASSWORD", "TOPSECRET", 1);
    setenv("HERALD_REDIS_PASSWORD_FILE", env_path, 1);
    ASSERT_INT_EQ(config_load(&cfg, config_path, err, sizeof err), -1);
    ASSERT_STR_EQ(err, "config: HERALD_REDIS_PASSWORD and HERALD_REDIS_PASSWORD_FILE are both "
                       "set; unset one of them");
    CU_ASSERT(config_is_zeroed(&cfg));

    clear_herald_env();
    unlink(config_path);
    unlink(env_path);
    unlink(file_path);
}

static void test_redis_password_file_errors(void)
{
    clear_herald_env();
    EXPECT_ERROR("{\"redis_password_file\":\"/nonexistent/redis-password\"}",
                 "config: redis_password_file: cannot open \"/nonexistent/redis-password\": "
                 "No such file or directory");
    EXPECT_ERROR("{\"redis_password_file\":1}",
                 "config: redis_password_file: expected a string, got an integer");

    char empty_path[64];
    write_temp_file(empty_path, "\n");
    char expected[200];
    snprintf(expected, sizeof expected,
             "config: HERALD_REDIS_PASSWORD_FILE: \"%s\" is empty; write the secret into it",
             empty_path);
    EXPECT_ENV_ERROR("HERALD_REDIS_PASSWORD_FILE", empty_path, expected);

    /* A config file's setting is named with the file. */
    char config_path[64];
    write_temp_file(config_path, "{\"redis_password_file\":\"/nonexistent/redis-password\"}");
    struct herald_config cfg;
    char err[CONFIG_ERROR_MAX] = "";
    ASSERT_INT_EQ(config_load(&cfg, config_path, err, sizeof err), -1);
    snprintf(expected, sizeof expected,
             "config: %s: redis_password_file: cannot open \"/nonexistent/redis-password\": "
             "No such file or directory", config_path);
    ASSERT_STR_EQ(err, expected);
    CU_ASSERT(config_is_zeroed(&cfg));

    unlink(config_path);
    unlink(empty_path);
}

static void test_error_buffer_small(void)
{
    /* A short buffer gets a cut but terminated message. */
    struct herald_config cfg;
    char err[16];
    memset(err, 'x', sizeof err);
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"gateway_port\":0}", err, sizeof err), -1);
    ASSERT_STR_EQ(err, "config: gateway");
    ASSERT_INT_EQ(config_load_string(&cfg, "{\"gateway_port\":0}", NULL, 0), -1);
}

CU_ErrorCode test_config_register(void)
{
    static const struct unit_test tests[] = {
        { "defaults from empty document", test_defaults_from_empty_document },
        { "defaults without file", test_defaults_without_file },
        { "no development app when configured", test_no_development_app_when_configured },
        { "free zeroes and repeats", test_free_zeroes_and_repeats },
        { "file sets every setting", test_file_sets_every_setting },
        { "string sets every setting", test_string_sets_every_setting },
        { "find app by key and id", test_find_app_by_key_and_id },
        { "log level names", test_log_level_names },
        { "file not found", test_file_not_found },
        { "file is directory", test_file_is_directory },
        { "file invalid JSON", test_file_invalid_json },
        { "file error names file and setting", test_file_error_names_file_and_setting },
        { "file duplicate names both apps", test_file_duplicate_names_both_apps },
        { "file with NUL byte", test_file_with_nul_byte },
        { "invalid documents", test_invalid_documents },
        { "limit setting range", test_limit_setting_range },
        { "unknown top-level key", test_unknown_top_level_key },
        { "unknown app key", test_unknown_app_key },
        { "webhooks parsed", test_webhooks_parsed },
        { "TLS needs cert and key", test_tls_needs_cert_and_key },
        { "relay TLS needs cert and key", test_relay_tls_needs_cert_and_key },
        { "relay request timeout", test_relay_request_timeout },
        { "max API requests per second", test_max_api_requests_per_second },
        { "allowed origins", test_allowed_origins },
        { "webhook errors", test_webhook_errors },
        { "webhook delivery settings", test_webhook_delivery_settings },
        { "laravel ingest settings", test_laravel_ingest_settings },
        { "duplicate app key", test_duplicate_app_key },
        { "duplicate app id", test_duplicate_app_id },
        { "missing and empty app fields", test_missing_and_empty_app_fields },
        { "app id and key characters", test_app_id_and_key_characters },
        { "apps shape", test_apps_shape },
        { "wrong types", test_wrong_types },
        { "out-of-range numbers", test_out_of_range_numbers },
        { "range edges accepted", test_range_edges_accepted },
        { "string settings checked", test_string_settings_checked },
        { "secret never in messages", test_secret_never_in_messages },
        { "redis URL forms", test_redis_url_forms },
        { "redis URL errors", test_redis_url_errors },
        { "env overrides file", test_env_overrides_file },
        { "env sets every setting", test_env_sets_every_setting },
        { "env boolean words", test_env_boolean_words },
        { "env redis password overrides URL", test_env_redis_password_overrides_url },
        { "env empty means unset", test_env_empty_means_unset },
        { "env ignored by load_string", test_env_ignored_by_load_string },
        { "env errors name variable", test_env_errors_name_variable },
        { "env apps errors", test_env_apps_errors },
        { "env error after valid file", test_env_error_after_valid_file },
        { "secret file read", test_secret_file_read },
        { "secret file in env apps", test_secret_file_in_env_apps },
        { "secret and secret_file both", test_secret_and_secret_file_both },
        { "secret file errors", test_secret_file_errors },
        { "secret file content never in messages", test_secret_file_content_never_in_messages },
        { "redis password file", test_redis_password_file },
        { "env redis password file", test_env_redis_password_file },
        { "redis password file errors", test_redis_password_file_errors },
        { "error buffer small", test_error_buffer_small },
        { NULL, NULL },
    };
    return unit_add_suite("config", suite_init, suite_cleanup, tests) ? CUE_SUCCESS
                                                                      : CU_get_error();
}
