/* herald-gateway: serves client WebSocket connections, speaks the Pusher
 * protocol and relays each channel's events from Redis to its local
 * subscribers. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "admission.h"
#include "bus.h"
#include "channels.h"
#include "gateway.h"
#include "liveness.h"
#include "log.h"
#include "node.h"
#include "server.h"
#include "store.h"
#include "users.h"

struct gateway gateway;

static uv_signal_t sigterm_handle;
static uv_signal_t sigint_handle;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: herald-gateway [--config FILE] [--host ADDR] [--port N]\n"
            "\n"
            "  --config FILE  JSON configuration file (see docs/configuration.md)\n"
            "  --host ADDR    address to listen on (overrides gateway_host)\n"
            "  --port N       WebSocket port (overrides gateway_port, default 6001)\n"
            "  --help         show this help\n"
            "\n"
            "Every setting can also come from an environment variable (HERALD_*).\n");
}

static int parse_port(const char *text, int *port)
{
    char *end;
    long value = strtol(text, &end, 10);
    if (!text[0] || *end || value < 1 || value > 65535)
        return -1;
    *port = (int)value;
    return 0;
}

/* ---- graceful stop ---------------------------------------------------- */

#define DRAIN_TICK_MS 100

/* Extra time after the drain window for closing handshakes to finish. */
#define DRAIN_GRACE_MS 3000

static uv_timer_t drain_timer;
static uint64_t drain_started_ms;
static uint64_t drain_ms;
static uint64_t drain_initial_connections;
static uint64_t drain_closed;

bool gateway_ready(void)
{
    return !gateway.draining && bus_connected() && store_connected();
}

static void stop_everything(void)
{
    gateway.stopping = true;
    uv_timer_stop(&drain_timer);
    uv_close((uv_handle_t *)&drain_timer, NULL);
    uv_signal_stop(&sigterm_handle);
    uv_signal_stop(&sigint_handle);
    uv_close((uv_handle_t *)&sigterm_handle, NULL);
    uv_close((uv_handle_t *)&sigint_handle, NULL);

    /* Closing the connections queues their leave scripts; the command
     * connection sends them before it closes. */
    liveness_stop();
    users_stop();
    server_stop();
    node_stop();
    channels_shutdown();
}

/* Closes a slice of the clients on each tick so they reconnect to other
 * gateways spread over the drain window: pusher-js reconnects at once
 * after 4200, with no jitter of its own. */
static void on_drain_tick(uv_timer_t *timer)
{
    (void)timer;
    uint64_t elapsed = gateway_now_ms() - drain_started_ms;

    /* By now this share of the connections present at the start should be
     * closed; connections opened since are closed on arrival. */
    uint64_t due = elapsed >= drain_ms ? UINT64_MAX
                                       : drain_initial_connections * (elapsed + DRAIN_TICK_MS) /
                                             drain_ms;
    while (drain_closed < due) {
        struct connection *conn = liveness_any();
        if (!conn)
            break;
        connection_close_with_error(conn, 4200, "Server is restarting; reconnect");
        drain_closed++;
    }

    if (gateway.connection_count == 0 || elapsed >= drain_ms + DRAIN_GRACE_MS) {
        log_info("drain finished with %llu connections left; stopping",
                 (unsigned long long)gateway.connection_count);
        stop_everything();
    }
}

static void on_stop_signal(uv_signal_t *handle, int signum)
{
    (void)handle;
    if (gateway.draining)
        return;
    gateway.draining = true;

    /* SIGINT is an operator at a terminal who wants it gone now. */
    drain_ms = signum == SIGINT ? 0 : (uint64_t)gateway.config.drain_seconds * 1000;
    drain_started_ms = gateway_now_ms();
    drain_initial_connections = gateway.connection_count;
    log_info("received signal %d; draining %llu connections over %llu ms", signum,
             (unsigned long long)gateway.connection_count, (unsigned long long)drain_ms);

    /* The others should see this node's users leave now, not when each
     * connection closes or the heartbeat expires. */
    channels_leave_presence();

    uv_timer_start(&drain_timer, on_drain_tick, 0, DRAIN_TICK_MS);
}

static void init_node_identity(void)
{
    uint32_t random_number = 0;
    if (getrandom(&random_number, sizeof random_number, 0) != (ssize_t)sizeof random_number)
        random_number = (uint32_t)getpid() ^ (uint32_t)time(NULL);
    /* Nonzero and at most 10 digits, like the socket_ids of other servers. */
    gateway.node_number = random_number % 2000000000u + 1;
    srand(random_number);

    char host[64];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "gateway");
    host[sizeof host - 1] = '\0';
    snprintf(gateway.node_id, sizeof gateway.node_id, "%.16s-%d-%u", host, (int)getpid(),
             gateway.node_number);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    const char *host = NULL;
    int port = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            if (parse_port(argv[++i], &port) != 0) {
                fprintf(stderr, "herald-gateway: invalid --port %s: expected 1 to 65535\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "herald-gateway: unknown or incomplete option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    char err[CONFIG_ERROR_MAX];
    if (config_load(&gateway.config, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "herald-gateway: %s\n", err);
        return 1;
    }
    if (port)
        gateway.config.gateway_port = port;
    if (host) {
        free(gateway.config.gateway_host);
        gateway.config.gateway_host = strdup(host);
    }

    log_init("gateway", gateway.config.log_level);
    signal(SIGPIPE, SIG_IGN);
    init_node_identity();

    if (gateway.config.using_development_app)
        log_warn("no apps configured: using the development app id=app-1 key=app-key, whose "
                 "secret is published in the README; configure real apps before exposing "
                 "this server");

    if (admission_start() != 0) {
        admission_free();
        config_free(&gateway.config);
        return 1;
    }

    gateway.loop = uv_default_loop();
    if (server_start() != 0) {
        /* Let libwebsockets close what it opened on the loop, then free it. */
        server_stop();
        uv_run(gateway.loop, UV_RUN_DEFAULT);
        server_free();
        uv_run(gateway.loop, UV_RUN_DEFAULT);
        uv_loop_close(gateway.loop);
        admission_free();
        config_free(&gateway.config);
        return 1;
    }
    channels_init();
    node_start();
    liveness_start();
    users_start();

    uv_timer_init(gateway.loop, &drain_timer);
    uv_signal_init(gateway.loop, &sigterm_handle);
    uv_signal_start(&sigterm_handle, on_stop_signal, SIGTERM);
    uv_signal_init(gateway.loop, &sigint_handle);
    uv_signal_start(&sigint_handle, on_stop_signal, SIGINT);

    log_info("listening on %s://%s:%d/app/{key} node=%s redis=%s:%d prefix=%s apps=%zu "
             "max_connections_per_ip=%d trusted_proxies=%s",
             gateway.config.tls_cert_file && gateway.config.tls_cert_file[0] ? "wss" : "ws",
             gateway.config.gateway_host, gateway.config.gateway_port, gateway.node_id,
             gateway.config.redis.host, gateway.config.redis.port, gateway.config.prefix,
             gateway.config.app_count, gateway.config.max_connections_per_ip,
             gateway.config.trusted_proxies && gateway.config.trusted_proxies[0]
                 ? gateway.config.trusted_proxies
                 : "none");

    uv_run(gateway.loop, UV_RUN_DEFAULT);
    server_free();
    uv_run(gateway.loop, UV_RUN_DEFAULT);

    if (uv_loop_close(gateway.loop) != 0)
        log_warn("event loop closed with handles still open");
    admission_free();
    free(gateway.app_connections);
    free(gateway.app_connections_reported);
    free(gateway.app_connections_cluster);
    config_free(&gateway.config);
    log_info("stopped");
    return 0;
}
