#include "stats.h"

#include "bus.h"
#include "channels.h"
#include "gateway.h"
#include "store.h"

struct gateway_stats stats;

void stats_observe_delivery(uint64_t published_us)
{
    uint64_t now_us = gateway_wall_clock_us();
    /* Clocks of different machines may disagree; a negative delay is skew,
     * not a delivery from the future, and is counted as zero. */
    double seconds = now_us > published_us ? (double)(now_us - published_us) / 1e6 : 0.0;
    metrics_histogram_observe(&stats.event_latency, seconds);
}

void stats_render(struct strbuf *out)
{
    metrics_write_gauge(out, "herald_gateway_connections", "Open client connections.",
                        (double)gateway.connection_count);
    metrics_write_counter(out, "herald_gateway_connections_opened_total",
                          "Client connections accepted since start.", NULL,
                          stats.connections_opened);
    metrics_write_gauge(out, "herald_gateway_channels", "Channels with local subscribers.",
                        (double)channels_count());
    metrics_write_gauge(out, "herald_gateway_subscriptions", "Local channel subscriptions.",
                        (double)stats.subscriptions);
    metrics_write_counter(out, "herald_gateway_messages_received_total",
                          "WebSocket messages received from clients.", NULL,
                          stats.messages_received);
    metrics_write_counter(out, "herald_gateway_messages_sent_total",
                          "Frames written to clients.", NULL, stats.messages_sent);
    metrics_write_counter(out, "herald_gateway_bytes_sent_total",
                          "Payload bytes of the frames written to clients.", NULL,
                          stats.bytes_sent);
    metrics_write_counter(out, "herald_gateway_events_received_total",
                          "Events received from Redis for channels with local subscribers.",
                          NULL, stats.events_received);
    metrics_write_counter(out, "herald_gateway_redis_reconnects_total",
                          "Completed reconnects to Redis after an outage.",
                          "connection=\"pubsub\"", bus_reconnects());
    metrics_write_counter(out, "herald_gateway_redis_reconnects_total", NULL,
                          "connection=\"commands\"", store_reconnects());
    metrics_write_counter(out, "herald_gateway_slow_consumers_closed_total",
                          "Clients closed with 4100 because they did not read in time.", NULL,
                          stats.slow_consumers_closed);
    metrics_write_counter(out, "herald_gateway_connections_rejected_total",
                          "Client connections closed with 4100 because their IP address had "
                          "max_connections_per_ip connections.",
                          "reason=\"per_ip\"", stats.connections_rejected_per_ip);
    metrics_write_counter(out, "herald_gateway_connections_rejected_total", NULL,
                          "reason=\"per_ip_sockets\"", stats.sockets_rejected_per_ip);
    metrics_write_counter(out, "herald_gateway_accept_pauses_total",
                          "Times the gateway stopped accepting connections at its open-file "
                          "limit.",
                          NULL, stats.accept_pauses);
    metrics_write_gauge(out, "herald_gateway_ready",
                        "1 when Redis is connected and the gateway is not draining.",
                        gateway_ready() ? 1 : 0);
    metrics_write_histogram(out, "herald_gateway_event_latency_seconds",
                            "Time from the relay publishing an event to the gateway writing it "
                            "to a client.",
                            &stats.event_latency);
}
