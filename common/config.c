/* Loading and validation of the configuration.
 *
 * The sources apply in this order: built-in defaults, the JSON file, then
 * the HERALD_* environment variables. The development app is added last,
 * and only when no source configured an app. Every value is checked here,
 * so the binaries can use the struct without checking again.
 *
 * Every error message starts with "config: " and names the file or
 * variable and the setting. No message contains an app secret or a Redis
 * password, so none repeats a whole redis_url or HERALD_APPS value. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

/* A larger file is rejected without parsing, so that a wrong path such as a
 * log file or /dev/zero fails fast instead of filling memory. */
#define CONFIG_FILE_MAX_BYTES (16 * 1024 * 1024)

/* A secret file contains one app secret or password. A larger file is most
 * likely a wrong path, and is rejected before its content is kept. */
#define SECRET_FILE_MAX_BYTES 65536

#define CONFIG_WHERE_MAX 256

#define DEVELOPMENT_APP_ID "app-1"
#define DEVELOPMENT_APP_KEY "app-key"
#define DEVELOPMENT_APP_SECRET "app-secret"

/* ------------------------------------------------------------------------
 * Errors and small helpers
 * ------------------------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static int config_fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return -1;

    int n = snprintf(err, err_len, "config: ");
    if (n < 0 || (size_t)n >= err_len)
        return -1;

    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Writes a setting's name for messages, such as "apps[1].key". A name cut
 * short by the buffer size still points the reader to the right place. */
__attribute__((format(printf, 3, 4)))
static void format_where(char *where, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, size, fmt, ap);
    va_end(ap);
}

/* Allocation failure aborts, as it does in strbuf.c, because a process
 * that cannot copy a configuration string has no useful way to go on. */
static char *config_strdup(const char *s)
{
    char *copy = strdup(s);
    if (!copy) {
        fprintf(stderr, "herald: out of memory copying a configuration string\n");
        abort();
    }
    return copy;
}

static void *config_calloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (!p) {
        fprintf(stderr, "herald: out of memory allocating the configuration\n");
        abort();
    }
    return p;
}

static void replace_string(char **field, const char *value)
{
    char *copy = value ? config_strdup(value) : NULL;
    free(*field);
    *field = copy;
}

static const char *json_type_label(const struct json_object *value)
{
    switch (json_object_get_type(value)) {
    case json_type_null:    return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double:  return "a non-integer number";
    case json_type_int:     return "an integer";
    case json_type_object:  return "an object";
    case json_type_array:   return "an array";
    case json_type_string:  return "a string";
    }
    return "an unknown JSON type";
}

/* Counts the line and column (both from 1) of byte `offset` in `text`. */
static void text_position(const char *text, size_t offset, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && text[i]; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

/* Parses one complete JSON document. Errors name `where` and give a line
 * and column but never quote the text, which may contain secrets. */
static struct json_object *parse_json_document(const char *text, const char *where,
                                               char *err, size_t err_len)
{
    size_t len = strlen(text);
    if (len >= INT_MAX)
        return config_fail(err, err_len, "%s: the document is too large", where), NULL;

    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        fprintf(stderr, "herald: out of memory creating a JSON parser\n");
        abort();
    }
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);

    /* The length includes the terminating NUL, which marks the end of the
     * input for json-c. Without it a bare number would stay incomplete. */
    struct json_object *root = json_tokener_parse_ex(tok, text, (int)len + 1);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);

    int line, column;
    if (!root || jerr != json_tokener_success) {
        json_object_put(root);
        text_position(text, end, &line, &column);
        config_fail(err, err_len, "%s: invalid JSON at line %d, column %d: %s", where, line,
                    column, json_tokener_error_desc(jerr));
        return NULL;
    }

    /* json-c stops after the first value. Anything but whitespace after it
     * is a broken document, not a second one. */
    for (size_t i = end; i < len; i++) {
        if (!isspace((unsigned char)text[i])) {
            json_object_put(root);
            text_position(text, i, &line, &column);
            config_fail(err, err_len,
                        "%s: invalid JSON at line %d, column %d: unexpected content after the "
                        "end of the document", where, line, column);
            return NULL;
        }
    }
    return root;
}

/* ------------------------------------------------------------------------
 * Defaults
 * ------------------------------------------------------------------------ */

static void set_app_defaults(struct app_config *app)
{
    memset(app, 0, sizeof *app);
    app->enabled = true;
    app->enable_client_messages = false;
    app->enable_user_authentication = false;
    app->user_authentication_timeout = 30;
    app->enable_subscription_count = false;
    app->subscription_count_interval_ms = 1000;
    app->max_connections = -1;
    app->max_client_events_per_second = 10;
    app->max_presence_members = 100;
    app->max_presence_member_bytes = 1024;
    app->max_event_payload_bytes = 10240;
    app->max_channels_per_trigger = 100;
    app->max_batch_size = 10;
    app->max_channel_name_length = 164;
    app->max_event_name_length = 200;
    app->max_api_requests_per_second = 5000;
}

static void set_defaults(struct herald_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);

    cfg->redis.host = config_strdup("127.0.0.1");
    cfg->redis.port = 6379;
    cfg->redis.database = 0;

    cfg->prefix = config_strdup("herald:");
    cfg->gateway_host = config_strdup("127.0.0.1");
    cfg->gateway_port = 6001;
    cfg->relay_host = config_strdup("127.0.0.1");
    cfg->relay_port = 6002;
    cfg->relay_request_timeout = 10;
    cfg->log_level = LOG_LEVEL_INFO;

    cfg->activity_timeout = 120;
    cfg->pong_timeout = 30;
    cfg->node_timeout = 10;
    cfg->drain_seconds = 10;
    cfg->cache_ttl = 1800;
    cfg->max_subscriptions_per_connection = 200;
    cfg->max_connections_per_ip = 1000;
    cfg->webhook_timeout = 5;
    cfg->webhook_max_attempts = 10;
    cfg->webhook_stream_max_length = 100000;
    cfg->webhook_batch_size = 50;
    cfg->webhook_retry_initial_ms = 1000;
    cfg->webhook_retry_max_ms = 60000;
    cfg->webhook_claim_idle = 30;
    cfg->strict_protocol = false;
    cfg->max_message_bytes = 16384;
    cfg->max_outbound_queue_bytes = 262144;
    cfg->auth_timestamp_window = 600;
    cfg->max_request_body_bytes = 262144;
    cfg->laravel_ingest = false;
    cfg->laravel_redis_prefix = config_strdup("laravel_database_");
    cfg->laravel_app_id = NULL;
    cfg->ingest_lease_ms = 5000;
}

static void add_development_app(struct herald_config *cfg)
{
    cfg->apps = config_calloc(1, sizeof *cfg->apps);
    set_app_defaults(&cfg->apps[0]);
    cfg->apps[0].id = config_strdup(DEVELOPMENT_APP_ID);
    cfg->apps[0].key = config_strdup(DEVELOPMENT_APP_KEY);
    cfg->apps[0].secret = config_strdup(DEVELOPMENT_APP_SECRET);
    cfg->app_count = 1;
    cfg->using_development_app = true;
}

static void free_webhooks(struct app_config *app)
{
    for (size_t i = 0; i < app->webhook_count; i++) {
        struct webhook_config *hook = &app->webhooks[i];
        for (size_t j = 0; j < hook->header_count; j++) {
            free(hook->headers[j].name);
            free(hook->headers[j].value);
        }
        free(hook->headers);
        free(hook->url);
    }
    free(app->webhooks);
    app->webhooks = NULL;
    app->webhook_count = 0;
    app->webhook_events = 0;
}

static void free_apps(struct app_config *apps, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(apps[i].id);
        free(apps[i].key);
        free(apps[i].secret);
        free_webhooks(&apps[i]);
        for (size_t j = 0; j < apps[i].allowed_origin_count; j++)
            free(apps[i].allowed_origins[j]);
        free(apps[i].allowed_origins);
    }
    free(apps);
}

static const char *const webhook_event_names[] = {
    "channel_occupied", "channel_vacated", "member_added",       "member_removed",
    "client_event",     "cache_miss",      "subscription_count",
};

#define WEBHOOK_EVENT_TYPES (sizeof webhook_event_names / sizeof webhook_event_names[0])

const char *config_webhook_event_name(unsigned event)
{
    for (size_t i = 0; i < WEBHOOK_EVENT_TYPES; i++) {
        if (event == 1u << i)
            return webhook_event_names[i];
    }
    return NULL;
}

unsigned config_webhook_event_from_name(const char *name)
{
    for (size_t i = 0; i < WEBHOOK_EVENT_TYPES; i++) {
        if (strcmp(name, webhook_event_names[i]) == 0)
            return 1u << i;
    }
    return 0;
}

static void free_redis(struct redis_config *redis)
{
    free(redis->host);
    free(redis->username);
    free(redis->password);
    memset(redis, 0, sizeof *redis);
}

void config_free(struct herald_config *cfg)
{
    if (!cfg)
        return;

    free_redis(&cfg->redis);
    free(cfg->redis_password_file);
    free(cfg->prefix);
    free(cfg->gateway_host);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg->relay_host);
    free(cfg->relay_tls_cert_file);
    free(cfg->relay_tls_key_file);
    free(cfg->laravel_redis_prefix);
    free(cfg->laravel_app_id);
    free(cfg->trusted_proxies);
    free_apps(cfg->apps, cfg->app_count);
    memset(cfg, 0, sizeof *cfg);
}

/* ------------------------------------------------------------------------
 * Top-level settings
 *
 * One table drives both the JSON keys and the environment variables, so
 * the two can never accept different settings.
 * ------------------------------------------------------------------------ */

enum setting_kind {
    SETTING_HOST,      /* non-empty string */
    SETTING_PREFIX,    /* string without braces or control characters */
    SETTING_PORT,      /* integer 1..65535 */
    SETTING_POSITIVE,  /* integer 1..INT_MAX: seconds or bytes */
    SETTING_LIMIT,     /* integer 0..INT_MAX: a limit that 0 turns off */
    SETTING_BOOL,
    SETTING_LOG_LEVEL, /* "debug", "info", "warn" or "error" */
    SETTING_TEXT,      /* string without control characters, possibly empty */
};

struct setting {
    const char *name; /* JSON key, equal to the struct field name */
    const char *env;  /* environment variable */
    enum setting_kind kind;
    size_t offset;    /* of the field in struct herald_config */
    int min;          /* smallest SETTING_POSITIVE value; 0 means 1 */
    int max;          /* largest SETTING_POSITIVE value; 0 means INT_MAX */
};

/* The gateway sends node_timeout to Redis as milliseconds in an int
 * (SET ... PX), so it may be at most INT_MAX / 1000 seconds, about 24 days. */
#define NODE_TIMEOUT_MAX (INT_MAX / 1000)

/* A drain longer than an hour outlasts every orchestrator's grace period. */
#define DRAIN_SECONDS_MAX 3600

/* Bounds one webhook POST body: each job of a client event can carry up to
 * max_event_payload_bytes of data. */
#define WEBHOOK_BATCH_SIZE_MAX 1000

/* The relay sends webhook_claim_idle to Redis (XAUTOCLAIM) in milliseconds
 * in an int. */
#define WEBHOOK_CLAIM_IDLE_MAX (INT_MAX / 1000)

/* A client that needs more than an hour to send one request is not a
 * backend of the HTTP API. */
#define RELAY_REQUEST_TIMEOUT_MAX 3600

/* The ingest lease is renewed every third of its lifetime, so a lease
 * below 100 ms would mean a Redis round trip every few milliseconds. */
#define INGEST_LEASE_MS_MIN 100

/* Each entry names its field, its environment variable (spelled out,
 * because the preprocessor cannot upper-case) and its kind. */
#define SETTING(field, env_name, setting_kind, ...) \
    { .name = #field, .env = env_name, .kind = setting_kind, \
      .offset = offsetof(struct herald_config, field), __VA_ARGS__ }

static const struct setting settings[] = {
    SETTING(prefix, "HERALD_PREFIX", SETTING_PREFIX),
    SETTING(redis_password_file, "HERALD_REDIS_PASSWORD_FILE", SETTING_TEXT),
    SETTING(gateway_host, "HERALD_GATEWAY_HOST", SETTING_HOST),
    SETTING(gateway_port, "HERALD_GATEWAY_PORT", SETTING_PORT),
    SETTING(tls_cert_file, "HERALD_TLS_CERT_FILE", SETTING_TEXT),
    SETTING(tls_key_file, "HERALD_TLS_KEY_FILE", SETTING_TEXT),
    SETTING(relay_host, "HERALD_RELAY_HOST", SETTING_HOST),
    SETTING(relay_port, "HERALD_RELAY_PORT", SETTING_PORT),
    SETTING(relay_tls_cert_file, "HERALD_RELAY_TLS_CERT_FILE", SETTING_TEXT),
    SETTING(relay_tls_key_file, "HERALD_RELAY_TLS_KEY_FILE", SETTING_TEXT),
    SETTING(relay_request_timeout, "HERALD_RELAY_REQUEST_TIMEOUT", SETTING_POSITIVE,
            .max = RELAY_REQUEST_TIMEOUT_MAX),
    SETTING(log_level, "HERALD_LOG_LEVEL", SETTING_LOG_LEVEL),
    SETTING(activity_timeout, "HERALD_ACTIVITY_TIMEOUT", SETTING_POSITIVE),
    SETTING(pong_timeout, "HERALD_PONG_TIMEOUT", SETTING_POSITIVE),
    SETTING(node_timeout, "HERALD_NODE_TIMEOUT", SETTING_POSITIVE, .max = NODE_TIMEOUT_MAX),
    SETTING(drain_seconds, "HERALD_DRAIN_SECONDS", SETTING_POSITIVE, .max = DRAIN_SECONDS_MAX),
    SETTING(cache_ttl, "HERALD_CACHE_TTL", SETTING_POSITIVE),
    SETTING(webhook_timeout, "HERALD_WEBHOOK_TIMEOUT", SETTING_POSITIVE),
    SETTING(webhook_max_attempts, "HERALD_WEBHOOK_MAX_ATTEMPTS", SETTING_POSITIVE),
    SETTING(webhook_stream_max_length, "HERALD_WEBHOOK_STREAM_MAX_LENGTH", SETTING_POSITIVE),
    SETTING(webhook_batch_size, "HERALD_WEBHOOK_BATCH_SIZE", SETTING_POSITIVE,
            .max = WEBHOOK_BATCH_SIZE_MAX),
    SETTING(webhook_retry_initial_ms, "HERALD_WEBHOOK_RETRY_INITIAL_MS", SETTING_POSITIVE),
    SETTING(webhook_retry_max_ms, "HERALD_WEBHOOK_RETRY_MAX_MS", SETTING_POSITIVE),
    SETTING(webhook_claim_idle, "HERALD_WEBHOOK_CLAIM_IDLE", SETTING_POSITIVE,
            .max = WEBHOOK_CLAIM_IDLE_MAX),
    SETTING(strict_protocol, "HERALD_STRICT_PROTOCOL", SETTING_BOOL),
    SETTING(max_message_bytes, "HERALD_MAX_MESSAGE_BYTES", SETTING_POSITIVE),
    SETTING(max_subscriptions_per_connection, "HERALD_MAX_SUBSCRIPTIONS_PER_CONNECTION",
            SETTING_POSITIVE),
    SETTING(max_connections_per_ip, "HERALD_MAX_CONNECTIONS_PER_IP", SETTING_LIMIT),
    SETTING(trusted_proxies, "HERALD_TRUSTED_PROXIES", SETTING_TEXT),
    SETTING(max_outbound_queue_bytes, "HERALD_MAX_OUTBOUND_QUEUE_BYTES", SETTING_POSITIVE),
    SETTING(auth_timestamp_window, "HERALD_AUTH_TIMESTAMP_WINDOW", SETTING_POSITIVE),
    SETTING(max_request_body_bytes, "HERALD_MAX_REQUEST_BODY_BYTES", SETTING_POSITIVE),
    SETTING(laravel_ingest, "HERALD_LARAVEL_INGEST", SETTING_BOOL),
    SETTING(laravel_redis_prefix, "HERALD_LARAVEL_REDIS_PREFIX", SETTING_TEXT),
    SETTING(laravel_app_id, "HERALD_LARAVEL_APP_ID", SETTING_TEXT),
    SETTING(ingest_lease_ms, "HERALD_INGEST_LEASE_MS", SETTING_POSITIVE,
            .min = INGEST_LEASE_MS_MIN),
};

#define SETTING_COUNT (sizeof settings / sizeof settings[0])

static const struct setting *find_setting(const char *name)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    }
    return NULL;
}

static bool setting_takes_string(enum setting_kind kind)
{
    return kind == SETTING_HOST || kind == SETTING_PREFIX || kind == SETTING_LOG_LEVEL ||
           kind == SETTING_TEXT;
}

static int store_setting_string(struct herald_config *cfg, const struct setting *s,
                                const char *value, const char *where, char *err, size_t err_len)
{
    void *field = (char *)cfg + s->offset;

    switch (s->kind) {
    case SETTING_HOST:
        if (value[0] == '\0')
            return config_fail(err, err_len, "%s: must not be empty", where);
        replace_string(field, value);
        return 0;

    case SETTING_PREFIX:
        /* A brace would add a Redis Cluster hash tag to every key and so
         * put all channels of all apps on one slot. */
        for (const char *p = value; *p; p++) {
            if (*p == '{' || *p == '}')
                return config_fail(err, err_len,
                                   "%s: must not contain '{' or '}', which Redis Cluster "
                                   "reads as a hash tag", where);
            if (iscntrl((unsigned char)*p))
                return config_fail(err, err_len, "%s: must not contain control characters",
                                   where);
        }
        replace_string(field, value);
        return 0;

    case SETTING_TEXT:
        for (const char *p = value; *p; p++) {
            if (iscntrl((unsigned char)*p))
                return config_fail(err, err_len, "%s: must not contain control characters",
                                   where);
        }
        replace_string(field, value);
        return 0;

    case SETTING_LOG_LEVEL: {
        enum log_level level;
        if (log_parse_level(value, &level) != 0)
            return config_fail(err, err_len,
                               "%s: unknown log level \"%s\"; use debug, info, warn or error",
                               where, value);
        *(enum log_level *)field = level;
        return 0;
    }

    default:
        return config_fail(err, err_len, "%s: internal error: not a string setting", where);
    }
}

static int store_setting_int(struct herald_config *cfg, const struct setting *s, long long value,
                             const char *where, char *err, size_t err_len)
{
    int *field = (int *)((char *)cfg + s->offset);

    if (s->kind == SETTING_PORT && (value < 1 || value > 65535))
        return config_fail(err, err_len, "%s: must be a port from 1 to 65535, got %lld", where,
                           value);
    int max = s->max > 0 ? s->max : INT_MAX;
    int min = s->min > 0 ? s->min : 1;
    if (s->kind == SETTING_POSITIVE && (value < min || value > max))
        return config_fail(err, err_len, "%s: must be an integer from %d to %d, got %lld", where,
                           min, max, value);
    if (s->kind == SETTING_LIMIT && (value < 0 || value > INT_MAX))
        return config_fail(err, err_len, "%s: must be an integer from 0 to %d, got %lld", where,
                           INT_MAX, value);
    *field = (int)value;
    return 0;
}

static int apply_json_setting(struct herald_config *cfg, const struct setting *s,
                              struct json_object *value, const char *where, char *err,
                              size_t err_len)
{
    if (setting_takes_string(s->kind)) {
        if (!json_object_is_type(value, json_type_string))
            return config_fail(err, err_len, "%s: expected a string, got %s", where,
                               json_type_label(value));
        if (strlen(json_object_get_string(value)) != (size_t)json_object_get_string_len(value))
            return config_fail(err, err_len, "%s: must not contain a NUL character", where);
        return store_setting_string(cfg, s, json_object_get_string(value), where, err, err_len);
    }

    if (s->kind == SETTING_BOOL) {
        if (!json_object_is_type(value, json_type_boolean))
            return config_fail(err, err_len, "%s: expected true or false, got %s", where,
                               json_type_label(value));
        *(bool *)((char *)cfg + s->offset) = json_object_get_boolean(value);
        return 0;
    }

    if (!json_object_is_type(value, json_type_int))
        return config_fail(err, err_len, "%s: expected an integer, got %s", where,
                           json_type_label(value));
    /* json-c saturates values beyond int64 at INT64_MAX / INT64_MIN, which
     * the range check then rejects. */
    return store_setting_int(cfg, s, (long long)json_object_get_int64(value), where, err,
                             err_len);
}

/* Parses a whole decimal integer with an optional sign and nothing else. */
static int parse_decimal(const char *text, long long *value)
{
    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return -1;

    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *value = v;
    return 0;
}

static int parse_bool_text(const char *text, bool *value)
{
    static const char *const true_words[] = { "true", "1", "yes", "on" };
    static const char *const false_words[] = { "false", "0", "no", "off" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, true_words[i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp(text, false_words[i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return -1;
}

static int apply_env_setting(struct herald_config *cfg, const struct setting *s, const char *text,
                             char *err, size_t err_len)
{
    if (setting_takes_string(s->kind))
        return store_setting_string(cfg, s, text, s->env, err, err_len);

    if (s->kind == SETTING_BOOL) {
        bool value;
        if (parse_bool_text(text, &value) != 0)
            return config_fail(err, err_len,
                               "%s: expected true or false (or 1/0, yes/no, on/off), got \"%s\"",
                               s->env, text);
        *(bool *)((char *)cfg + s->offset) = value;
        return 0;
    }

    long long value;
    if (parse_decimal(text, &value) != 0)
        return config_fail(err, err_len, "%s: expected a decimal integer, got \"%s\"", s->env,
                           text);
    return store_setting_int(cfg, s, value, s->env, err, err_len);
}

/* ------------------------------------------------------------------------
 * Redis URL: redis://[[username]:password@]host[:port][/db]
 *
 * The URL may contain the password, so no error message repeats it.
 * ------------------------------------------------------------------------ */

static int hex_digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies `len` bytes of `text` into a new string, decoding %XX escapes as
 * URLs require for reserved characters in a user name or password.
 * Returns NULL on a broken escape or on %00, which a C string cannot hold. */
static char *percent_decode(const char *text, size_t len)
{
    char *out = config_calloc(len + 1, 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '%') {
            out[n++] = text[i];
            continue;
        }

        int high = i + 1 < len ? hex_digit_value(text[i + 1]) : -1;
        int low = i + 2 < len ? hex_digit_value(text[i + 2]) : -1;
        if (high < 0 || low < 0 || (high == 0 && low == 0)) {
            free(out);
            return NULL;
        }
        out[n++] = (char)(high * 16 + low);
        i += 2;
    }
    return out;
}

static int fail_and_free_redis(struct redis_config *redis, char *err, size_t err_len,
                               const char *where, const char *problem)
{
    free_redis(redis);
    return config_fail(err, err_len, "%s: %s", where, problem);
}

static int parse_port_text(const char *text, size_t len, int *port)
{
    if (len == 0 || len > 5)
        return -1;

    int value = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)text[i]))
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    if (value < 1 || value > 65535)
        return -1;
    *port = value;
    return 0;
}

static int parse_redis_url(const char *url, const char *where, struct redis_config *out,
                           char *err, size_t err_len)
{
    static const char scheme[] = "redis://";

    memset(out, 0, sizeof *out);
    out->port = 6379;

    if (strncasecmp(url, "rediss://", 9) == 0)
        return config_fail(err, err_len,
                           "%s: rediss:// (TLS) is not supported; use redis://host:port", where);
    if (strncasecmp(url, scheme, sizeof scheme - 1) != 0)
        return config_fail(err, err_len,
                           "%s: must start with redis:// (form "
                           "redis://[[username]:password@]host[:port][/db])", where);

    const char *rest = url + sizeof scheme - 1;

    /* The user information ends at the last '@', because an unescaped '@'
     * can belong to the password but never to the host. */
    const char *at = strrchr(rest, '@');
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon)
            return config_fail(err, err_len,
                               "%s: the part before '@' must be [username]:password", where);
        if (colon > rest) {
            out->username = percent_decode(rest, (size_t)(colon - rest));
            if (!out->username)
                goto bad_escape;
        }
        if (at > colon + 1) {
            out->password = percent_decode(colon + 1, (size_t)(at - colon - 1));
            if (!out->password)
                goto bad_escape;
        }
        rest = at + 1;
    }

    /* Host, as a name, an IPv4 address or a bracketed IPv6 address. */
    const char *host_end;
    const char *after_host;
    if (rest[0] == '[') {
        host_end = strchr(rest, ']');
        if (!host_end)
            return fail_and_free_redis(out, err, err_len, where,
                                       "an IPv6 address must end with ']'");
        out->host = config_calloc((size_t)(host_end - rest), 1);
        memcpy(out->host, rest + 1, (size_t)(host_end - rest - 1));
        after_host = host_end + 1;
    } else {
        host_end = rest + strcspn(rest, ":/?#");
        out->host = config_calloc((size_t)(host_end - rest) + 1, 1);
        memcpy(out->host, rest, (size_t)(host_end - rest));
        after_host = host_end;
    }
    if (out->host[0] == '\0')
        return fail_and_free_redis(out, err, err_len, where, "the host is missing");

    /* Optional port. */
    const char *p = after_host;
    if (*p == ':') {
        p++;
        size_t port_len = strcspn(p, "/?#");
        if (parse_port_text(p, port_len, &out->port) != 0)
            return fail_and_free_redis(out, err, err_len, where,
                                       "the port must be a number from 1 to 65535");
        p += port_len;
    }

    /* Optional database number. "redis://host/" means database 0. */
    if (*p == '/') {
        p++;
        size_t db_len = strcspn(p, "?#");
        long long db = 0;
        for (size_t i = 0; i < db_len; i++) {
            if (!isdigit((unsigned char)p[i]) || db > INT_MAX / 10)
                return fail_and_free_redis(out, err, err_len, where,
                                           "the database must be a number from 0 to 2147483647");
            db = db * 10 + (p[i] - '0');
        }
        if (db > INT_MAX)
            return fail_and_free_redis(out, err, err_len, where,
                                       "the database must be a number from 0 to 2147483647");
        out->database = (int)db;
        p += db_len;
    }

    if (*p != '\0')
        return fail_and_free_redis(out, err, err_len, where,
                                   "unexpected text after the host, port and database "
                                   "(query parameters are not supported)");
    return 0;

bad_escape:
    return fail_and_free_redis(out, err, err_len, where,
                               "invalid percent-escape in the user name or password");
}

/* ------------------------------------------------------------------------
 * Secret files: an app's secret_file and redis_password_file
 *
 * Orchestrators hand secrets to a container as files (a Kubernetes Secret
 * volume, Docker secrets under /run/secrets). That keeps them out of the
 * environment, which child processes inherit and `ps e` shows. Messages
 * name the setting and the path, never the content.
 * ------------------------------------------------------------------------ */

/* Reads the secret in the file at `path` into a new string, without the
 * trailing line breaks that editors and `echo` add. Returns NULL with a
 * message naming `where` and the path when the file cannot be read, is
 * empty, is too large or contains a NUL byte. */
static char *read_secret_file(const char *path, const char *where, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        config_fail(err, err_len, "%s: cannot open \"%s\": %s", where, path, strerror(errno));
        return NULL;
    }

    /* One byte more than allowed, to tell a full file from a larger one. */
    char *secret = config_calloc(SECRET_FILE_MAX_BYTES + 2, 1);
    size_t len = fread(secret, 1, SECRET_FILE_MAX_BYTES + 1, f);
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);

    if (read_errno != 0) {
        config_fail(err, err_len, "%s: cannot read \"%s\": %s", where, path,
                    strerror(read_errno));
        goto fail;
    }
    if (len > SECRET_FILE_MAX_BYTES) {
        config_fail(err, err_len,
                    "%s: \"%s\" is larger than %d bytes; it must contain only the secret",
                    where, path, SECRET_FILE_MAX_BYTES);
        goto fail;
    }
    if (memchr(secret, '\0', len)) {
        config_fail(err, err_len, "%s: \"%s\" contains a NUL byte", where, path);
        goto fail;
    }

    while (len > 0 && (secret[len - 1] == '\n' || secret[len - 1] == '\r'))
        len--;
    secret[len] = '\0';
    if (len == 0) {
        config_fail(err, err_len, "%s: \"%s\" is empty; write the secret into it", where, path);
        goto fail;
    }

    /* The read buffer has the maximum size, and each app keeps its secret. */
    char *copy = config_strdup(secret);
    free(secret);
    return copy;

fail:
    free(secret);
    return NULL;
}

/* Replaces the Redis password with the content of redis_password_file when
 * that is set. `where` names the source of the setting in messages. */
static int apply_redis_password_file(struct herald_config *cfg, const char *where, char *err,
                                     size_t err_len)
{
    if (!cfg->redis_password_file || !cfg->redis_password_file[0])
        return 0;

    char *password = read_secret_file(cfg->redis_password_file, where, err, err_len);
    if (!password)
        return -1;
    free(cfg->redis.password);
    cfg->redis.password = password;
    return 0;
}

/* ------------------------------------------------------------------------
 * Apps
 * ------------------------------------------------------------------------ */

enum app_field_kind {
    APP_FIELD_ID,          /* non-empty, URL-safe: it is in /apps/{id}/ and Redis keys */
    APP_FIELD_KEY,         /* non-empty, URL-safe: it is in /app/{key} and "key:signature" */
    APP_FIELD_SECRET,      /* non-empty, never shown in a message */
    APP_FIELD_SECRET_FILE, /* path of the file that contains the secret */
    APP_FIELD_BOOL,
    APP_FIELD_LIMIT,       /* integer 1..INT_MAX */
    APP_FIELD_CONNECTIONS, /* -1 for unlimited, or 1..INT_MAX */
    APP_FIELD_WEBHOOKS,    /* array of {url, event_types, headers} */
    APP_FIELD_ORIGINS,     /* array of host patterns */
};

struct app_field {
    const char *name; /* JSON key, equal to the struct field name */
    enum app_field_kind kind;
    size_t offset;    /* of the field in struct app_config */
};

#define APP_FIELD(field, kind) { #field, kind, offsetof(struct app_config, field) }

static const struct app_field app_fields[] = {
    APP_FIELD(id, APP_FIELD_ID),
    APP_FIELD(key, APP_FIELD_KEY),
    APP_FIELD(secret, APP_FIELD_SECRET),
    /* No struct field: parse_app reads the file into `secret`. */
    { "secret_file", APP_FIELD_SECRET_FILE, 0 },
    APP_FIELD(enabled, APP_FIELD_BOOL),
    APP_FIELD(enable_client_messages, APP_FIELD_BOOL),
    APP_FIELD(enable_user_authentication, APP_FIELD_BOOL),
    APP_FIELD(user_authentication_timeout, APP_FIELD_LIMIT),
    APP_FIELD(enable_subscription_count, APP_FIELD_BOOL),
    APP_FIELD(subscription_count_interval_ms, APP_FIELD_LIMIT),
    APP_FIELD(max_connections, APP_FIELD_CONNECTIONS),
    APP_FIELD(max_client_events_per_second, APP_FIELD_LIMIT),
    APP_FIELD(max_presence_members, APP_FIELD_LIMIT),
    APP_FIELD(max_presence_member_bytes, APP_FIELD_LIMIT),
    APP_FIELD(max_event_payload_bytes, APP_FIELD_LIMIT),
    APP_FIELD(max_channels_per_trigger, APP_FIELD_LIMIT),
    APP_FIELD(max_batch_size, APP_FIELD_LIMIT),
    APP_FIELD(max_channel_name_length, APP_FIELD_LIMIT),
    APP_FIELD(max_event_name_length, APP_FIELD_LIMIT),
    APP_FIELD(max_api_requests_per_second, APP_FIELD_LIMIT),
    APP_FIELD(webhooks, APP_FIELD_WEBHOOKS),
    APP_FIELD(allowed_origins, APP_FIELD_ORIGINS),
};

#define APP_FIELD_COUNT (sizeof app_fields / sizeof app_fields[0])

static const struct app_field *find_app_field(const char *name)
{
    for (size_t i = 0; i < APP_FIELD_COUNT; i++) {
        if (strcmp(app_fields[i].name, name) == 0)
            return &app_fields[i];
    }
    return NULL;
}

/* The unreserved characters of RFC 3986, which need no escaping in a URL
 * path and contain neither ':' nor braces. */
static bool url_safe_name(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && c != '-' && c != '.' && c != '_' && c != '~')
            return false;
    }
    return true;
}

static int store_app_string(struct app_config *app, const struct app_field *f,
                            struct json_object *value, const char *where, char *err,
                            size_t err_len)
{
    if (!json_object_is_type(value, json_type_string))
        return config_fail(err, err_len, "%s: expected a string, got %s", where,
                           json_type_label(value));

    const char *text = json_object_get_string(value);
    if (text[0] == '\0')
        return config_fail(err, err_len, "%s: must not be empty", where);
    if (strlen(text) != (size_t)json_object_get_string_len(value))
        return config_fail(err, err_len, "%s: must not contain a NUL character", where);
    if (f->kind != APP_FIELD_SECRET && !url_safe_name(text))
        return config_fail(err, err_len,
                           "%s: \"%s\" may contain only letters, digits and - . _ ~", where,
                           text);

    replace_string((char **)((char *)app + f->offset), text);
    return 0;
}

static int store_app_int(struct app_config *app, const struct app_field *f,
                         struct json_object *value, const char *where, char *err, size_t err_len)
{
    if (!json_object_is_type(value, json_type_int))
        return config_fail(err, err_len, "%s: expected an integer, got %s", where,
                           json_type_label(value));

    long long v = (long long)json_object_get_int64(value);
    if (f->kind == APP_FIELD_CONNECTIONS && v == -1) {
        *(int *)((char *)app + f->offset) = -1;
        return 0;
    }
    if (v < 1 || v > INT_MAX) {
        if (f->kind == APP_FIELD_CONNECTIONS)
            return config_fail(err, err_len,
                               "%s: must be -1 (unlimited) or an integer from 1 to %d, got %lld",
                               where, INT_MAX, v);
        return config_fail(err, err_len, "%s: must be an integer from 1 to %d, got %lld", where,
                           INT_MAX, v);
    }
    *(int *)((char *)app + f->offset) = (int)v;
    return 0;
}

static bool header_name_valid(const char *name)
{
    if (!name[0])
        return false;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

static int parse_webhook(struct json_object *obj, struct webhook_config *hook, const char *where,
                         char *err, size_t err_len)
{
    if (!json_object_is_type(obj, json_type_object))
        return config_fail(err, err_len, "%s: expected an object, got %s", where,
                           json_type_label(obj));

    hook->event_types = WEBHOOK_ALL_EVENTS;
    json_object_object_foreach(obj, name, value) {
        if (strcmp(name, "url") == 0) {
            const char *url = json_object_is_type(value, json_type_string)
                                  ? json_object_get_string(value)
                                  : NULL;
            if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
                strpbrk(url, " \r\n"))
                return config_fail(err, err_len,
                                   "%s.url: expected an http:// or https:// URL without spaces",
                                   where);
            replace_string(&hook->url, url);
        } else if (strcmp(name, "event_types") == 0) {
            if (!json_object_is_type(value, json_type_array) ||
                json_object_array_length(value) == 0)
                return config_fail(err, err_len,
                                   "%s.event_types: expected a non-empty array of event names",
                                   where);
            hook->event_types = 0;
            for (size_t i = 0; i < json_object_array_length(value); i++) {
                struct json_object *item = json_object_array_get_idx(value, i);
                unsigned bit = json_object_is_type(item, json_type_string)
                                   ? config_webhook_event_from_name(json_object_get_string(item))
                                   : 0;
                if (!bit)
                    return config_fail(err, err_len,
                                       "%s.event_types[%zu]: expected one of channel_occupied, "
                                       "channel_vacated, member_added, member_removed, "
                                       "client_event, cache_miss, subscription_count",
                                       where, i);
                hook->event_types |= bit;
            }
        } else if (strcmp(name, "headers") == 0) {
            if (!json_object_is_type(value, json_type_object))
                return config_fail(err, err_len, "%s.headers: expected an object of strings",
                                   where);
            size_t count = (size_t)json_object_object_length(value);
            hook->headers = calloc(count ? count : 1, sizeof *hook->headers);
            if (!hook->headers)
                return config_fail(err, err_len, "%s.headers: out of memory", where);
            json_object_object_foreach(value, header, header_value) {
                const char *text = json_object_is_type(header_value, json_type_string)
                                       ? json_object_get_string(header_value)
                                       : NULL;
                if (!header_name_valid(header) || !text || strpbrk(text, "\r\n"))
                    return config_fail(err, err_len,
                                       "%s.headers.%s: expected a header name and a string "
                                       "value without line breaks",
                                       where, header);
                struct webhook_header *h = &hook->headers[hook->header_count++];
                replace_string(&h->name, header);
                replace_string(&h->value, text);
            }
        } else {
            return config_fail(err, err_len,
                               "%s.%s: unknown webhook setting (expected url, event_types, "
                               "headers)",
                               where, name);
        }
    }
    if (!hook->url)
        return config_fail(err, err_len, "%s: missing \"url\"", where);
    return 0;
}

static int parse_webhooks(struct json_object *value, struct app_config *app, const char *where,
                          char *err, size_t err_len)
{
    if (!json_object_is_type(value, json_type_array))
        return config_fail(err, err_len, "%s: expected an array of webhooks, got %s", where,
                           json_type_label(value));

    free_webhooks(app);
    size_t count = json_object_array_length(value);
    app->webhooks = calloc(count ? count : 1, sizeof *app->webhooks);
    if (!app->webhooks)
        return config_fail(err, err_len, "%s: out of memory", where);
    char item_where[CONFIG_WHERE_MAX];
    for (size_t i = 0; i < count; i++) {
        format_where(item_where, sizeof item_where, "%s[%zu]", where, i);
        app->webhook_count++;
        if (parse_webhook(json_object_array_get_idx(value, i), &app->webhooks[i], item_where, err,
                          err_len) != 0)
            return -1;
        app->webhook_events |= app->webhooks[i].event_types;
    }
    return 0;
}

static int parse_allowed_origins(struct json_object *value, struct app_config *app,
                                 const char *where, char *err, size_t err_len)
{
    if (!json_object_is_type(value, json_type_array) || json_object_array_length(value) == 0)
        return config_fail(err, err_len,
                           "%s: expected a non-empty array of host patterns such as "
                           "\"example.com\", \"*.example.com\" or \"*\"",
                           where);
    size_t count = json_object_array_length(value);
    app->allowed_origins = calloc(count, sizeof *app->allowed_origins);
    if (!app->allowed_origins)
        return config_fail(err, err_len, "%s: out of memory", where);
    for (size_t i = 0; i < count; i++) {
        struct json_object *item = json_object_array_get_idx(value, i);
        const char *pattern = json_object_is_type(item, json_type_string)
                                  ? json_object_get_string(item)
                                  : NULL;
        if (!pattern || !pattern[0] || strpbrk(pattern, "/: \t") ||
            (strchr(pattern, '*') && strcmp(pattern, "*") != 0 &&
             (strncmp(pattern, "*.", 2) != 0 || strchr(pattern + 1, '*'))))
            return config_fail(err, err_len,
                               "%s[%zu]: expected a host pattern such as \"example.com\", "
                               "\"*.example.com\" or \"*\" (no scheme, port or path)",
                               where, i);
        app->allowed_origins[app->allowed_origin_count++] = config_strdup(pattern);
    }
    return 0;
}

bool config_origin_allowed(const struct app_config *app, const char *origin)
{
    if (!app->allowed_origins || !origin)
        return true;

    /* Origin is "scheme://host[:port]"; keep the host. */
    const char *host = strstr(origin, "://");
    host = host ? host + 3 : origin;
    size_t host_len = strcspn(host, ":/");

    for (size_t i = 0; i < app->allowed_origin_count; i++) {
        const char *pattern = app->allowed_origins[i];
        if (strcmp(pattern, "*") == 0)
            return true;
        if (strncmp(pattern, "*.", 2) == 0) {
            /* "*.example.com" matches sub.example.com, not example.com. */
            size_t suffix_len = strlen(pattern + 1);
            if (host_len > suffix_len &&
                strncasecmp(host + host_len - suffix_len, pattern + 1, suffix_len) == 0)
                return true;
        } else if (strlen(pattern) == host_len && strncasecmp(host, pattern, host_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Fills `app` from one element of an apps array. `where` is the element's
 * name in messages, such as "apps[1]" or "HERALD_APPS[0]". */
static int parse_app(struct json_object *obj, struct app_config *app, const char *where,
                     char *err, size_t err_len)
{
    if (!json_object_is_type(obj, json_type_object))
        return config_fail(err, err_len, "%s: expected an object, got %s", where,
                           json_type_label(obj));

    /* The path stays valid while `obj` lives. The file is read after the
     * loop, so that the message can name the app by its id. */
    const char *secret_file = NULL;

    char field_where[CONFIG_WHERE_MAX];
    json_object_object_foreach(obj, name, value) {
        format_where(field_where, sizeof field_where, "%s.%s", where, name);

        const struct app_field *f = find_app_field(name);
        if (!f)
            return config_fail(err, err_len,
                               "%s: unknown app setting (check the spelling; "
                               "docs/configuration.md lists every setting)", field_where);

        int rc;
        switch (f->kind) {
        case APP_FIELD_ID:
        case APP_FIELD_KEY:
        case APP_FIELD_SECRET:
            rc = store_app_string(app, f, value, field_where, err, err_len);
            break;
        case APP_FIELD_SECRET_FILE:
            if (!json_object_is_type(value, json_type_string) ||
                json_object_get_string(value)[0] == '\0')
                return config_fail(err, err_len, "%s: expected the path of a file, got %s",
                                   field_where,
                                   json_object_is_type(value, json_type_string)
                                       ? "an empty string"
                                       : json_type_label(value));
            if (strlen(json_object_get_string(value)) !=
                (size_t)json_object_get_string_len(value))
                return config_fail(err, err_len, "%s: must not contain a NUL character",
                                   field_where);
            secret_file = json_object_get_string(value);
            rc = 0;
            break;
        case APP_FIELD_BOOL:
            if (!json_object_is_type(value, json_type_boolean))
                return config_fail(err, err_len, "%s: expected true or false, got %s",
                                   field_where, json_type_label(value));
            *(bool *)((char *)app + f->offset) = json_object_get_boolean(value);
            rc = 0;
            break;
        case APP_FIELD_ORIGINS:
            rc = parse_allowed_origins(value, app, field_where, err, err_len);
            break;
        case APP_FIELD_WEBHOOKS:
            rc = parse_webhooks(value, app, field_where, err, err_len);
            break;
        default:
            rc = store_app_int(app, f, value, field_where, err, err_len);
            break;
        }
        if (rc != 0)
            return -1;
    }

    if (!app->id)
        return config_fail(err, err_len, "%s: missing \"id\"", where);
    if (!app->key)
        return config_fail(err, err_len, "%s: missing \"key\"", where);
    if (app->secret && secret_file)
        return config_fail(err, err_len,
                           "%s: app \"%s\" sets both \"secret\" and \"secret_file\"; keep "
                           "one of them", where, app->id);
    if (secret_file) {
        format_where(field_where, sizeof field_where, "%s.secret_file of app \"%s\"", where,
                     app->id);
        app->secret = read_secret_file(secret_file, field_where, err, err_len);
        if (!app->secret)
            return -1;
    }
    if (!app->secret)
        return config_fail(err, err_len, "%s: missing \"secret\" (or \"secret_file\")", where);
    return 0;
}

/* Replaces cfg->apps with the apps of a JSON array. `name` is the array's
 * name in messages ("apps" or "HERALD_APPS"), and `label` goes before it
 * ("" or "FILE: "). */
static int parse_apps(struct herald_config *cfg, struct json_object *array, const char *label,
                      const char *name, char *err, size_t err_len)
{
    char base[CONFIG_WHERE_MAX];
    format_where(base, sizeof base, "%s%s", label, name);

    if (!json_object_is_type(array, json_type_array))
        return config_fail(err, err_len, "%s: expected an array of app objects, got %s", base,
                           json_type_label(array));

    /* An explicit empty list is almost always a mistake, and quietly
     * falling back to the development app and its public secret would
     * hide it. */
    size_t count = json_object_array_length(array);
    if (count == 0)
        return config_fail(err, err_len,
                           "%s: the list is empty; configure at least one app, or leave the "
                           "setting out to run with the development app", base);

    struct app_config *apps = config_calloc(count, sizeof *apps);
    char where[CONFIG_WHERE_MAX];
    for (size_t i = 0; i < count; i++) {
        set_app_defaults(&apps[i]);
        format_where(where, sizeof where, "%s[%zu]", base, i);
        if (parse_app(json_object_array_get_idx(array, i), &apps[i], where, err, err_len) != 0)
            goto fail;

        for (size_t j = 0; j < i; j++) {
            if (strcmp(apps[i].id, apps[j].id) == 0) {
                config_fail(err, err_len, "%s.id: duplicate id \"%s\" (also used by %s[%zu])",
                            where, apps[i].id, name, j);
                goto fail;
            }
            if (strcmp(apps[i].key, apps[j].key) == 0) {
                config_fail(err, err_len,
                            "%s.key: duplicate key \"%s\" (also used by %s[%zu])", where,
                            apps[i].key, name, j);
                goto fail;
            }
        }
    }

    free_apps(cfg->apps, cfg->app_count);
    cfg->apps = apps;
    cfg->app_count = count;
    return 0;

fail:
    free_apps(apps, count);
    return -1;
}

/* ------------------------------------------------------------------------
 * Sources: document, file, environment
 * ------------------------------------------------------------------------ */

static int apply_redis_url(struct herald_config *cfg, const char *url, const char *where,
                           char *err, size_t err_len)
{
    struct redis_config redis;
    if (parse_redis_url(url, where, &redis, err, err_len) != 0)
        return -1;
    free_redis(&cfg->redis);
    cfg->redis = redis;
    return 0;
}

/* Applies every key of a parsed document. `label` goes in front of each
 * setting name in messages: "" for a string, "FILE: " for a file. */
static int apply_document(struct herald_config *cfg, struct json_object *root, const char *label,
                          char *err, size_t err_len)
{
    if (!json_object_is_type(root, json_type_object))
        return config_fail(err, err_len, "%sthe top level must be a JSON object, got %s", label,
                           json_type_label(root));

    char where[CONFIG_WHERE_MAX];
    json_object_object_foreach(root, name, value) {
        format_where(where, sizeof where, "%s%s", label, name);

        if (strcmp(name, "redis_url") == 0) {
            if (!json_object_is_type(value, json_type_string))
                return config_fail(err, err_len, "%s: expected a string, got %s", where,
                                   json_type_label(value));
            if (apply_redis_url(cfg, json_object_get_string(value), where, err, err_len) != 0)
                return -1;
            continue;
        }

        if (strcmp(name, "apps") == 0) {
            if (parse_apps(cfg, value, label, name, err, err_len) != 0)
                return -1;
            continue;
        }

        const struct setting *s = find_setting(name);
        if (!s)
            return config_fail(err, err_len,
                               "%s: unknown setting (check the spelling; docs/configuration.md "
                               "lists every setting)", where);
        if (apply_json_setting(cfg, s, value, where, err, err_len) != 0)
            return -1;
    }
    return 0;
}

static int apply_string(struct herald_config *cfg, const char *json, const char *label,
                        const char *source, char *err, size_t err_len)
{
    struct json_object *root = parse_json_document(json, source, err, err_len);
    if (!root)
        return -1;
    int rc = apply_document(cfg, root, label, err, err_len);
    json_object_put(root);
    return rc;
}

/* Reads the whole file into a new NUL-terminated string. */
static char *read_config_file(const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        config_fail(err, err_len, "%s: cannot open the file: %s", path, strerror(errno));
        return NULL;
    }

    size_t cap = 4096, len = 0;
    char *text = config_calloc(cap, 1);
    for (;;) {
        if (len + 1 == cap) {
            if (cap > CONFIG_FILE_MAX_BYTES) {
                config_fail(err, err_len, "%s: the file is larger than %d bytes", path,
                            CONFIG_FILE_MAX_BYTES);
                goto fail;
            }
            char *grown = realloc(text, cap * 2);
            if (!grown) {
                fprintf(stderr, "herald: out of memory reading %s\n", path);
                abort();
            }
            text = grown;
            cap *= 2;
        }

        size_t n = fread(text + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                config_fail(err, err_len, "%s: cannot read the file: %s", path,
                            strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    text[len] = '\0';

    if (strlen(text) != len) {
        config_fail(err, err_len, "%s: the file contains a NUL byte; it must be JSON text",
                    path);
        free(text);
        return NULL;
    }
    return text;

fail:
    fclose(f);
    free(text);
    return NULL;
}

static int apply_file(struct herald_config *cfg, const char *path, char *err, size_t err_len)
{
    char *text = read_config_file(path, err, err_len);
    if (!text)
        return -1;

    char label[CONFIG_WHERE_MAX];
    format_where(label, sizeof label, "%s: ", path);
    int rc = apply_string(cfg, text, label, path, err, err_len);
    free(text);
    return rc;
}

/* An empty variable counts as unset, because container tools often pass
 * "NAME=" for a variable that the operator left blank. */
static const char *env_value(const char *name)
{
    const char *value = getenv(name);
    return value && value[0] ? value : NULL;
}

static int apply_environment(struct herald_config *cfg, char *err, size_t err_len)
{
    for (size_t i = 0; i < SETTING_COUNT; i++) {
        const char *value = env_value(settings[i].env);
        if (value && apply_env_setting(cfg, &settings[i], value, err, err_len) != 0)
            return -1;
    }

    const char *url = env_value("HERALD_REDIS_URL");
    if (url && apply_redis_url(cfg, url, "HERALD_REDIS_URL", err, err_len) != 0)
        return -1;

    /* A password in the environment also wins over the file's
     * redis_password_file. Both variables at once leave no clear winner. */
    const char *password = env_value("HERALD_REDIS_PASSWORD");
    if (password && env_value("HERALD_REDIS_PASSWORD_FILE"))
        return config_fail(err, err_len,
                           "HERALD_REDIS_PASSWORD and HERALD_REDIS_PASSWORD_FILE are both set; "
                           "unset one of them");
    if (password) {
        replace_string(&cfg->redis.password, password);
        replace_string(&cfg->redis_password_file, NULL);
    }

    const char *apps = env_value("HERALD_APPS");
    if (apps) {
        struct json_object *root = parse_json_document(apps, "HERALD_APPS", err, err_len);
        if (!root)
            return -1;
        int rc = parse_apps(cfg, root, "", "HERALD_APPS", err, err_len);
        json_object_put(root);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

/* Rejects a certificate without its key or a key without its certificate. */
static int check_tls_pair(const char *cert, const char *key, const char *cert_name,
                          const char *key_name, char *err, size_t err_len)
{
    bool has_cert = cert && cert[0];
    bool has_key = key && key[0];
    if (has_cert == has_key)
        return 0;
    return config_fail(err, err_len,
                       "%s is set but %s is not; TLS needs both the certificate and its key",
                       has_cert ? cert_name : key_name, has_cert ? key_name : cert_name);
}

static int finish_load(struct herald_config *cfg, int rc, char *err, size_t err_len)
{
    if (rc != 0) {
        config_free(cfg);
        return -1;
    }
    if (cfg->app_count == 0)
        add_development_app(cfg);

    /* Checked once every source is applied, because HERALD_APPS may
     * replace the apps of the file. */
    if (cfg->laravel_app_id && !config_find_app_by_id(cfg, cfg->laravel_app_id)) {
        config_fail(err, err_len,
                    "laravel_app_id: no configured app has the id \"%s\"; set it to the id of "
                    "the app that Laravel broadcasts for",
                    cfg->laravel_app_id);
        config_free(cfg);
        return -1;
    }

    if (check_tls_pair(cfg->tls_cert_file, cfg->tls_key_file, "tls_cert_file", "tls_key_file",
                       err, err_len) != 0 ||
        check_tls_pair(cfg->relay_tls_cert_file, cfg->relay_tls_key_file,
                       "relay_tls_cert_file", "relay_tls_key_file", err, err_len) != 0) {
        config_free(cfg);
        return -1;
    }
    return 0;
}

int config_load(struct herald_config *cfg, const char *path, char *err, size_t err_len)
{
    set_defaults(cfg);

    int rc = 0;
    if (path)
        rc = apply_file(cfg, path, err, err_len);
    if (rc == 0)
        rc = apply_environment(cfg, err, err_len);

    /* Read once every source is applied, so that the password replaces the
     * one in redis_url and HERALD_REDIS_URL, whichever key came first. */
    if (rc == 0) {
        char where[CONFIG_WHERE_MAX];
        if (env_value("HERALD_REDIS_PASSWORD_FILE"))
            format_where(where, sizeof where, "HERALD_REDIS_PASSWORD_FILE");
        else
            format_where(where, sizeof where, "%s: redis_password_file", path ? path : "");
        rc = apply_redis_password_file(cfg, where, err, err_len);
    }
    return finish_load(cfg, rc, err, err_len);
}

int config_load_string(struct herald_config *cfg, const char *json, char *err, size_t err_len)
{
    set_defaults(cfg);

    int rc = apply_string(cfg, json, "", "document", err, err_len);
    if (rc == 0)
        rc = apply_redis_password_file(cfg, "redis_password_file", err, err_len);
    return finish_load(cfg, rc, err, err_len);
}

const struct app_config *config_find_app_by_key(const struct herald_config *cfg, const char *key)
{
    if (!key)
        return NULL;
    for (size_t i = 0; i < cfg->app_count; i++) {
        if (strcmp(cfg->apps[i].key, key) == 0)
            return &cfg->apps[i];
    }
    return NULL;
}

const struct app_config *config_laravel_app(const struct herald_config *cfg)
{
    if (cfg->laravel_app_id)
        return config_find_app_by_id(cfg, cfg->laravel_app_id);
    return &cfg->apps[0];
}

const struct app_config *config_find_app_by_id(const struct herald_config *cfg, const char *id)
{
    if (!id)
        return NULL;
    for (size_t i = 0; i < cfg->app_count; i++) {
        if (strcmp(cfg->apps[i].id, id) == 0)
            return &cfg->apps[i];
    }
    return NULL;
}
