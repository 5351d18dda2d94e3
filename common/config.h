/* Configuration shared by herald-gateway and herald-relay.
 *
 * Sources, later ones overriding earlier ones:
 *   1. built-in defaults (and, when no app is configured at all, the
 *      development app app-1 / app-key / app-secret);
 *   2. the JSON file given with --config FILE;
 *   3. environment variables (HERALD_*), see config.c for the full list;
 *   4. command-line flags such as --port.
 * docs/configuration.md documents every setting. */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

#define CONFIG_ERROR_MAX 256

/* Webhook event types, one bit each, as named in the Pusher webhook API. */
enum webhook_event {
    WEBHOOK_CHANNEL_OCCUPIED = 1u << 0,
    WEBHOOK_CHANNEL_VACATED = 1u << 1,
    WEBHOOK_MEMBER_ADDED = 1u << 2,
    WEBHOOK_MEMBER_REMOVED = 1u << 3,
    WEBHOOK_CLIENT_EVENT = 1u << 4,
    WEBHOOK_CACHE_MISS = 1u << 5,
    WEBHOOK_SUBSCRIPTION_COUNT = 1u << 6,
    WEBHOOK_ALL_EVENTS = (1u << 7) - 1,
};

struct webhook_header {
    char *name;
    char *value;
};

/* One webhook endpoint of an app. */
struct webhook_config {
    char *url;
    unsigned event_types; /* bits of enum webhook_event */
    struct webhook_header *headers;
    size_t header_count;
};

/* Returns the Pusher name of one webhook event bit ("channel_occupied"),
 * or NULL for anything else. */
const char *config_webhook_event_name(unsigned event);

/* Returns the bit for a Pusher webhook event name, or 0 when unknown. */
unsigned config_webhook_event_from_name(const char *name);

struct app_config {
    char *id;
    char *key;
    char *secret;
    bool enabled;
    bool enable_client_messages;
    bool enable_user_authentication; /* require pusher:signin within the timeout below */
    int user_authentication_timeout; /* seconds an unsigned connection may stay open */
    bool enable_subscription_count;  /* send pusher_internal:subscription_count */
    int subscription_count_interval_ms; /* minimum milliseconds between two of them per channel */

    /* Limits. A value below 0 means unlimited where the field's comment states it. */
    int max_connections;             /* per app across the cluster; -1 unlimited */
    int max_client_events_per_second; /* per connection */
    int max_presence_members;
    int max_presence_member_bytes;   /* size of one member's channel_data */
    int max_event_payload_bytes;     /* `data` of one event, HTTP API and client events */
    int max_channels_per_trigger;
    int max_batch_size;
    int max_channel_name_length;
    int max_event_name_length;
    int max_api_requests_per_second; /* HTTP API requests per relay process */

    /* Host patterns a browser's Origin must match ("*", "example.com" or
     * "*.example.com"); NULL means every origin is allowed. */
    char **allowed_origins;
    size_t allowed_origin_count;

    struct webhook_config *webhooks;
    size_t webhook_count;
    unsigned webhook_events; /* union of every webhook's event_types */
};

struct redis_config {
    char *host;
    int port;
    char *username; /* NULL unless an ACL user is configured */
    char *password; /* secret: never log */
    int database;
};

struct herald_config {
    struct redis_config redis;
    /* Path of the file that contains the Redis password, or NULL.
     * config_load has already read the file into redis.password. */
    char *redis_password_file;
    char *prefix; /* Redis key and topic prefix, default "herald:" */

    char *gateway_host;
    int gateway_port;
    char *tls_cert_file; /* PEM certificate chain; with tls_key_file the gateway serves wss:// */
    char *tls_key_file;  /* PEM private key */
    char *relay_host;
    int relay_port;
    char *relay_tls_cert_file; /* PEM certificate chain; with relay_tls_key_file the relay serves HTTPS */
    char *relay_tls_key_file;  /* PEM private key */
    int relay_request_timeout; /* seconds a client has to send a whole request */

    enum log_level log_level;

    int activity_timeout;      /* seconds, sent to clients and used for server pings */
    int pong_timeout;          /* seconds to wait for any frame after a server ping */
    int node_timeout;          /* seconds without heartbeat before a gateway's state is removed */
    int drain_seconds;         /* seconds over which a stopping gateway closes its clients */
    int cache_ttl;             /* seconds a cache channel's last event is kept */
    int webhook_timeout;       /* seconds a relay waits for a webhook endpoint */
    int webhook_max_attempts;  /* deliveries tried before a webhook job is parked */
    int webhook_stream_max_length; /* approximate cap of each app's webhook stream */
    int webhook_batch_size;    /* maximum webhook jobs in one POST */
    int webhook_retry_initial_ms; /* delay before the first retry; doubles per attempt */
    int webhook_retry_max_ms;  /* maximum delay between two retries */
    int webhook_claim_idle;    /* seconds a job may sit unacknowledged before a relay claims it */
    bool strict_protocol;      /* reject a missing ?protocol= with 4008 */
    int max_message_bytes;     /* largest inbound WebSocket message */
    int max_subscriptions_per_connection; /* channels one connection may subscribe to */
    int max_connections_per_ip; /* per gateway process; 0 turns the check off */
    /* Comma-separated addresses and CIDR blocks of load balancers whose
     * X-Forwarded-For names the client; NULL or "" trusts none. */
    char *trusted_proxies;
    int max_outbound_queue_bytes; /* per connection; a slower client is closed */
    int auth_timestamp_window; /* seconds of clock skew accepted on HTTP API requests */
    int max_request_body_bytes; /* HTTP API body cap */

    /* Ingest of Laravel's redis broadcaster by the relay that holds the lease. */
    bool laravel_ingest;
    char *laravel_redis_prefix; /* Laravel's Redis prefix, in front of each channel name */
    char *laravel_app_id;       /* app of the ingested events; NULL for the first app */
    int ingest_lease_ms;        /* lifetime of the ingest lease unless its holder renews it */

    struct app_config *apps;
    size_t app_count;
    bool using_development_app; /* true when the built-in app-1 is in use */
};

/* Fills `cfg` from defaults, the optional file at `path`, then the
 * environment. Returns 0, or -1 with a message in `err` naming the setting
 * or file that is wrong. On error `cfg` is left freed. */
int config_load(struct herald_config *cfg, const char *path, char *err, size_t err_len);

/* Parses a JSON config document (the file's content) over the defaults;
 * exposed for unit tests. Same return convention as config_load. */
int config_load_string(struct herald_config *cfg, const char *json, char *err, size_t err_len);

void config_free(struct herald_config *cfg);

/* Returns true when the Origin header `origin` (NULL when the client sent
 * none) may connect to `app`. Only the host part is compared; a missing
 * Origin is allowed, because native clients send none. */
bool config_origin_allowed(const struct app_config *app, const char *origin);

const struct app_config *config_find_app_by_key(const struct herald_config *cfg, const char *key);
const struct app_config *config_find_app_by_id(const struct herald_config *cfg, const char *id);

/* Returns the app that events ingested from Laravel's redis broadcaster
 * belong to: the one named by laravel_app_id, or else the first app.
 * config_load has checked that it exists. */
const struct app_config *config_laravel_app(const struct herald_config *cfg);

#endif
