/* Operations endpoints on the relay's port, for orchestrators and
 * Prometheus: GET /up, GET /ready and GET /metrics. They need no app and
 * no signature, so keep the relay's port off the public network or route
 * only /apps/ to it. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "metrics.h"
#include "strbuf.h"

#define HTTP_OPS_CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define HTTP_OPS_CONTENT_TYPE_METRICS "text/plain; version=0.0.4"

static const char *const http_status_class_names[HTTP_STATUS_CLASS_COUNT] = {
    [HTTP_STATUS_CLASS_2XX] = "2xx",
    [HTTP_STATUS_CLASS_4XX] = "4xx",
    [HTTP_STATUS_CLASS_5XX] = "5xx",
};

static void http_ops_render_metrics(struct strbuf *out, const struct http_api *api)
{
    const struct http_metrics *metrics = &api->metrics;

    const char *help = "HTTP responses sent, by endpoint and status class.";
    for (int endpoint = 0; endpoint < HTTP_ENDPOINT_COUNT; endpoint++) {
        for (int class = 0; class < HTTP_STATUS_CLASS_COUNT; class++) {
            char labels[96];
            snprintf(labels, sizeof labels, "endpoint=\"%s\",status=\"%s\"",
                     http_endpoint_name((enum http_endpoint)endpoint),
                     http_status_class_names[class]);
            metrics_write_counter(out, "herald_relay_http_requests_total", help, labels,
                                  metrics->requests[endpoint][class]);
            help = NULL;
        }
    }

    metrics_write_gauge(out, "herald_relay_http_requests_in_flight",
                        "Requests received whose response is not yet written, this one "
                        "included.",
                        (double)api->in_flight);
    metrics_write_histogram(out, "herald_relay_http_request_duration_seconds",
                            "Time from receiving a complete request to queueing its response.",
                            &metrics->request_duration);

    metrics_write_counter(out, "herald_relay_events_published_total",
                          "Event frames Redis acknowledged, one per channel of each event.", NULL,
                          metrics->events_published);
    metrics_write_counter(out, "herald_relay_publish_failures_total",
                          "PUBLISH commands of triggers and terminations that failed: Redis "
                          "was not connected, the connection was lost before the reply, or "
                          "Redis replied with an error.",
                          "reason=\"unavailable\"", metrics->publish_unavailable);
    metrics_write_counter(out, "herald_relay_publish_failures_total", NULL, "reason=\"lost\"",
                          metrics->publish_lost);
    metrics_write_counter(out, "herald_relay_publish_failures_total", NULL,
                          "reason=\"rejected\"", metrics->publish_rejected);

    metrics_write_counter(out, "herald_relay_cache_stores_total",
                          "SET commands that stored the last event of a cache channel for a "
                          "trigger of the HTTP API, by result.",
                          "result=\"stored\"", metrics->cache_stored);
    metrics_write_counter(out, "herald_relay_cache_stores_total", NULL, "result=\"failed\"",
                          metrics->cache_store_failures);

    help = "HTTP API requests rejected with 429 because the app went over "
           "max_api_requests_per_second on this relay.";
    for (size_t i = 0; i < api->cfg->app_count; i++) {
        /* App ids contain only URL-safe characters, so they need no
         * escaping in a label, but they have no length limit. */
        struct strbuf labels;
        strbuf_init(&labels);
        strbuf_appendf(&labels, "app=\"%s\"", api->cfg->apps[i].id);
        metrics_write_counter(out, "herald_relay_http_rate_limited_total", help, labels.data,
                              api->rate_buckets[i].rejected);
        strbuf_free(&labels);
        help = NULL;
    }

    metrics_write_counter(out, "herald_relay_http_request_timeouts_total",
                          "Connections closed because a request was not received completely "
                          "within relay_request_timeout.",
                          NULL, metrics->request_timeouts);

    metrics_write_counter(out, "herald_relay_http_accept_failures_total",
                          "accept() calls on the HTTP port that failed, for example with "
                          "EMFILE when the process is out of file descriptors; each one "
                          "pauses new connections briefly.",
                          NULL, api->accept.failures);

    metrics_write_counter(out, "herald_relay_redis_reconnects_total",
                          "Completed reconnects to Redis after a lost connection.", NULL,
                          publisher_reconnects(api->publisher));
    metrics_write_gauge(out, "herald_relay_ready",
                        "1 when Redis is connected and the relay is not draining.",
                        publisher_ready(api->publisher) && !api->draining ? 1 : 0);

    for (size_t i = 0; i < api->metrics_writer_count; i++)
        api->metrics_writers[i].write(out, api->metrics_writers[i].arg);
}

void http_ops_handle(struct http_exchange *exchange)
{
    const struct http_api *api = exchange->api;

    switch (exchange->endpoint) {
    case HTTP_ENDPOINT_UP:
        http_exchange_send(exchange, 200, HTTP_OPS_CONTENT_TYPE_TEXT, "OK\n", 3);
        break;

    case HTTP_ENDPOINT_READY: {
        const char *body = "ready\n";
        int status = 200;
        if (api->draining) {
            status = 503;
            body = "draining\n";
        } else if (!publisher_ready(api->publisher)) {
            status = 503;
            body = "redis unavailable\n";
        }
        http_exchange_send(exchange, status, HTTP_OPS_CONTENT_TYPE_TEXT, body, strlen(body));
        break;
    }

    default: {
        struct strbuf body;
        strbuf_init(&body);
        http_ops_render_metrics(&body, api);
        http_exchange_send(exchange, 200, HTTP_OPS_CONTENT_TYPE_METRICS, body.data, body.len);
        strbuf_free(&body);
        break;
    }
    }
}

int http_api_add_metrics(struct http_api *api, http_metrics_writer_fn *write, void *arg)
{
    if (api->metrics_writer_count == HTTP_API_METRICS_WRITERS_MAX)
        return -1;
    api->metrics_writers[api->metrics_writer_count].write = write;
    api->metrics_writers[api->metrics_writer_count].arg = arg;
    api->metrics_writer_count++;
    return 0;
}
