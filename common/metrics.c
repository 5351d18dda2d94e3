#include "metrics.h"

static const double latency_bounds[METRICS_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

void metrics_histogram_observe(struct metrics_histogram *h, double seconds)
{
    int i = 0;
    while (i < METRICS_LATENCY_BUCKETS && seconds > latency_bounds[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum += seconds;
}

static void write_header(struct strbuf *out, const char *name, const char *help, const char *type)
{
    strbuf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_write_counter(struct strbuf *out, const char *name, const char *help,
                           const char *labels, uint64_t value)
{
    /* Labelled series of one metric share a single header; callers pass
     * help=NULL for the second and later series. */
    if (help)
        write_header(out, name, help, "counter");
    if (labels)
        strbuf_appendf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        strbuf_appendf(out, "%s %llu\n", name, (unsigned long long)value);
}

void metrics_write_gauge(struct strbuf *out, const char *name, const char *help, double value)
{
    write_header(out, name, help, "gauge");
    strbuf_appendf(out, "%s %.17g\n", name, value);
}

void metrics_write_histogram(struct strbuf *out, const char *name, const char *help,
                             const struct metrics_histogram *h)
{
    write_header(out, name, help, "histogram");
    uint64_t cumulative = 0;
    for (int i = 0; i < METRICS_LATENCY_BUCKETS; i++) {
        cumulative += h->buckets[i];
        strbuf_appendf(out, "%s_bucket{le=\"%g\"} %llu\n", name, latency_bounds[i],
                       (unsigned long long)cumulative);
    }
    strbuf_appendf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    strbuf_appendf(out, "%s_sum %.9f\n%s_count %llu\n", name, h->sum, name,
                   (unsigned long long)h->count);
}
