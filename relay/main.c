/* herald-relay: serves the Pusher HTTP API and publishes each triggered
 * event into Redis, where the gateways deliver it to their clients. It also
 * delivers the webhook jobs the gateways queue in Redis (webhook.h).
 *
 * This file contains the process: flags, configuration, the event loop and
 * the shutdown sequence. On SIGTERM or SIGINT the relay stops accepting
 * connections, waits for the requests whose PUBLISH replies are pending,
 * and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "http_api.h"
#include "ingest.h"
#include "log.h"
#include "publisher.h"
#include "webhook.h"

/* After this, requests still waiting for Redis get 503 so the process can
 * exit before the orchestrator's SIGKILL (30 s by default in Kubernetes). */
#define RELAY_DRAIN_TIMEOUT_S 10
/* After those 503 responses, time left for writing them to slow clients. */
#define RELAY_WRITE_TIMEOUT_S 2

struct relay {
    struct event_base *base;
    struct herald_config cfg;
    struct publisher *publisher;
    struct http_api *api;
    struct ingest *ingest; /* NULL unless laravel_ingest is on */
    struct webhook_dispatcher *webhooks;

    struct event *sigterm_event;
    struct event *sigint_event;
    struct event *drain_deadline;
    bool stopping;
    bool abandoned; /* Redis closed; only responses are still being written */
    bool http_drained;     /* no HTTP request is in flight any more */
    bool ingest_releasing; /* the ingest lease release awaits Redis */
    bool stopped;
};

/* ------------------------------------------------------------------------
 * Flags
 * ------------------------------------------------------------------------ */

struct relay_flags {
    const char *config_path; /* NULL: defaults and environment only */
    const char *host;        /* NULL: relay_host from the configuration */
    int port;                /* -1: relay_port from the configuration */
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: herald-relay [--config FILE] [--port N] [--host ADDR]\n"
            "\n"
            "Serves the Pusher HTTP API (triggers, channel queries and\n"
            "terminate_connections under /apps/{app_id}/, and /up, /ready and\n"
            "/metrics) and publishes the events into Redis. With laravel_ingest\n"
            "on, it also delivers what Laravel's redis broadcaster publishes.\n"
            "\n"
            "  --config FILE  JSON configuration file; HERALD_* environment\n"
            "                 variables override its settings\n"
            "  --port N       TCP port to listen on, 0 for any free port\n"
            "                 (default: relay_port, 6002)\n"
            "  --host ADDR    address to listen on (default: relay_host, 127.0.0.1)\n"
            "  --help         print this help and exit\n");
}

/* Returns 0, 1 when --help was given, or -1 after printing what is wrong. */
static int parse_flags(int argc, char **argv, struct relay_flags *flags)
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "port", required_argument, NULL, 'p' },
        { "host", required_argument, NULL, 'H' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };

    flags->config_path = NULL;
    flags->host = NULL;
    flags->port = -1;

    int option;
    while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            flags->config_path = optarg;
            break;
        case 'p': {
            char *end;
            errno = 0;
            long port = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "herald-relay: invalid --port \"%s\": expected 0 to 65535\n",
                        optarg);
                return -1;
            }
            flags->port = (int)port;
            break;
        }
        case 'H':
            if (optarg[0] == '\0') {
                fprintf(stderr, "herald-relay: invalid --host: the address is empty\n");
                return -1;
            }
            flags->host = optarg;
            break;
        case 'h':
            print_usage(stdout);
            return 1;
        default:
            print_usage(stderr);
            return -1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, "herald-relay: unexpected argument \"%s\"\n", argv[optind]);
        print_usage(stderr);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Shutdown
 * ------------------------------------------------------------------------ */

/* Closes every connection and the Redis connection and ends the loop. */
static void relay_stop(struct relay *relay)
{
    relay->stopped = true;
    evtimer_del(relay->drain_deadline);

    http_api_free(relay->api);
    relay->api = NULL;
    webhook_dispatcher_free(relay->webhooks);
    relay->webhooks = NULL;
    ingest_close(relay->ingest);
    publisher_free(relay->publisher);
    relay->publisher = NULL;
    ingest_free(relay->ingest);
    relay->ingest = NULL;

    event_base_loopexit(relay->base, NULL);
}

static void relay_on_drained(void *arg)
{
    struct relay *relay = arg;
    relay->http_drained = true;
    if (relay->ingest_releasing) {
        log_info("shutdown: no request in flight; waiting for Redis to confirm the ingest "
                 "lease release");
        return;
    }
    log_info("shutdown: no request in flight; closing connections");
    relay_stop(relay);
}

/* Runs from the event loop once Redis confirmed the release of the ingest
 * lease, or could not. */
static void relay_on_ingest_released(void *arg)
{
    struct relay *relay = arg;
    relay->ingest_releasing = false;
    if (relay->http_drained && !relay->stopped) {
        log_info("shutdown: ingest lease released and no request in flight; closing "
                 "connections");
        relay_stop(relay);
    }
}

/* Gives up on the Redis replies still awaited: closing the Redis
 * connection completes each of them, so their requests get a 503 and the
 * drain can finish. Called a second time, it stops waiting for responses
 * to be written and closes every connection. */
static void relay_abandon_in_flight(struct relay *relay, const char *why)
{
    if (!relay->api)
        return;

    size_t in_flight = http_api_in_flight(relay->api);
    if (relay->abandoned) {
        log_warn("shutdown: %s; closing %zu connections whose responses are not yet written",
                 why, in_flight);
        relay_stop(relay);
        return;
    }

    relay->abandoned = true;
    log_warn("shutdown: %s; closing the Redis connection, so the requests waiting for it get "
             "503 (%zu in flight)",
             why, in_flight);
    publisher_close(relay->publisher);

    struct timeval deadline = { RELAY_WRITE_TIMEOUT_S, 0 };
    evtimer_add(relay->drain_deadline, &deadline);
}

static void relay_on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct relay *relay = arg;
    char why[96];
    if (relay->abandoned)
        snprintf(why, sizeof why, "responses still being written after %d s",
                 RELAY_WRITE_TIMEOUT_S);
    else
        snprintf(why, sizeof why, "requests still in flight after %d s", RELAY_DRAIN_TIMEOUT_S);
    relay_abandon_in_flight(relay, why);
}

static void relay_on_signal(evutil_socket_t signal_number, short what, void *arg)
{
    (void)what;
    struct relay *relay = arg;
    const char *name = signal_number == SIGTERM ? "SIGTERM" : "SIGINT";

    if (relay->stopping) {
        relay_abandon_in_flight(relay, "second signal");
        return;
    }

    relay->stopping = true;
    log_info("shutdown: %s received; no longer accepting connections, %zu requests in flight",
             name, http_api_in_flight(relay->api));
    /* Another relay takes over Laravel's broadcasts as soon as the lease
     * is gone, instead of after it expires. */
    if (relay->ingest) {
        relay->ingest_releasing = true;
        ingest_release(relay->ingest, relay_on_ingest_released, relay);
    }
    http_api_drain(relay->api, relay_on_drained, relay);
    webhook_dispatcher_stop(relay->webhooks);

    struct timeval deadline = { RELAY_DRAIN_TIMEOUT_S, 0 };
    evtimer_add(relay->drain_deadline, &deadline);
}

/* ------------------------------------------------------------------------
 * Start
 * ------------------------------------------------------------------------ */

static int relay_apply_flags(struct relay *relay, const struct relay_flags *flags)
{
    if (flags->port >= 0)
        relay->cfg.relay_port = flags->port;

    if (flags->host) {
        char *host = strdup(flags->host);
        if (!host)
            return -1;
        free(relay->cfg.relay_host);
        relay->cfg.relay_host = host;
    }
    return 0;
}

static void relay_log_start(const struct relay *relay, const char *bound)
{
    const struct herald_config *cfg = &relay->cfg;

    log_info("listening on %s://%s (Pusher HTTP API), %zu apps",
             http_api_uses_tls(relay->api) ? "https" : "http", bound, cfg->app_count);
    log_info("redis at %s:%d database %d, key prefix \"%s\"", cfg->redis.host, cfg->redis.port,
             cfg->redis.database, cfg->prefix);
    if (cfg->using_development_app)
        log_warn("the built-in development app is in use (id app-1, key app-key; its secret "
                 "is published in the README): it is for development only, configure your own "
                 "apps before deploying");
}

static int relay_start(struct relay *relay)
{
    relay->base = event_base_new();
    if (!relay->base) {
        log_error("cannot create the event loop");
        return -1;
    }

    relay->sigterm_event = evsignal_new(relay->base, SIGTERM, relay_on_signal, relay);
    relay->sigint_event = evsignal_new(relay->base, SIGINT, relay_on_signal, relay);
    relay->drain_deadline = evtimer_new(relay->base, relay_on_drain_deadline, relay);
    if (!relay->sigterm_event || !relay->sigint_event || !relay->drain_deadline ||
        evsignal_add(relay->sigterm_event, NULL) != 0 ||
        evsignal_add(relay->sigint_event, NULL) != 0) {
        log_error("cannot install the signal handlers");
        return -1;
    }

    relay->publisher = publisher_create(relay->base, &relay->cfg.redis);
    relay->api = relay->publisher ? http_api_create(relay->base, &relay->cfg, relay->publisher)
                                  : NULL;
    if (!relay->api) {
        log_error("cannot create the HTTP server: out of memory");
        return -1;
    }

    relay->webhooks = webhook_dispatcher_create(relay->base, &relay->cfg);
    if (!relay->webhooks)
        return -1;
    if (http_api_add_metrics(relay->api, webhook_write_metrics, relay->webhooks) != 0) {
        log_error("cannot register the webhook metrics: too many metrics writers");
        return -1;
    }

    if (relay->cfg.laravel_ingest) {
        relay->ingest = ingest_create(relay->base, &relay->cfg, relay->publisher);
        if (!relay->ingest ||
            http_api_add_metrics(relay->api, ingest_write_metrics, relay->ingest) != 0) {
            log_error("cannot start the Laravel ingest: out of memory");
            return -1;
        }
    }

    char bound[80]; /* "[IPv6 address]:port" at most */
    char err[256];
    if (http_api_listen(relay->api, relay->cfg.relay_host, relay->cfg.relay_port, bound,
                        sizeof bound, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }

    relay_log_start(relay, bound);
    return 0;
}

static void relay_free(struct relay *relay)
{
    http_api_free(relay->api);
    webhook_dispatcher_free(relay->webhooks);
    ingest_close(relay->ingest);
    publisher_free(relay->publisher);
    ingest_free(relay->ingest);
    if (relay->sigterm_event)
        event_free(relay->sigterm_event);
    if (relay->sigint_event)
        event_free(relay->sigint_event);
    if (relay->drain_deadline)
        event_free(relay->drain_deadline);
    if (relay->base)
        event_base_free(relay->base);
    config_free(&relay->cfg);
}

int main(int argc, char **argv)
{
    struct relay_flags flags;
    int parsed = parse_flags(argc, argv, &flags);
    if (parsed != 0)
        return parsed > 0 ? 0 : 2;

    log_init("relay", LOG_LEVEL_INFO);

    struct relay relay;
    memset(&relay, 0, sizeof relay);

    char err[CONFIG_ERROR_MAX];
    if (config_load(&relay.cfg, flags.config_path, err, sizeof err) != 0) {
        log_error("%s", err);
        return 1;
    }
    log_set_level(relay.cfg.log_level);

    if (relay_apply_flags(&relay, &flags) != 0) {
        log_error("out of memory");
        config_free(&relay.cfg);
        return 1;
    }

    /* A client or Redis closing its socket while we write must not kill the
     * process; the write then fails with EPIPE and is handled. */
    signal(SIGPIPE, SIG_IGN);

    int status = 0;
    if (relay_start(&relay) == 0) {
        event_base_dispatch(relay.base);
        log_info("shutdown complete");
    } else {
        status = 1;
    }

    relay_free(&relay);
    libevent_global_shutdown();
    return status;
}
