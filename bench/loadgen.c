/* herald-loadgen: opens many Pusher-protocol WebSocket connections against
 * one or more gateways, subscribes them to channels, publishes timestamped
 * events at a set rate, and reports deliveries, loss, duplicates, latency
 * and the server's CPU time and memory. Run with --help for the options.
 *
 * The controller (this file) forks the connection workers, publishes the
 * events itself and prints one progress line a second to stderr and one
 * JSON line with the results to stdout. */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loadgen_presence.h"
#include "loadgen_publisher.h"
#include "procstat.h"

struct loadgen_options options;
struct loadgen_shared *shared;

/* One reading of everything the controller tracks. */
struct snapshot {
    uint64_t t_ns;
    struct worker_stats stats; /* sum over workers */
    struct publisher_counters publisher;
    struct procstat servers[LOADGEN_MAX_PIDS];
    struct procstat aux[LOADGEN_MAX_PIDS];
    double server_cpu_s;
    uint64_t server_rss_kb;
    double loadgen_cpu_s; /* the workers' and the controller's CPU time */
    struct machine_cpu machine;
};

struct step_result {
    double all_processes_start_s; /* procstat_sum_all_processes() */
    double all_processes_end_s;
    double rate;
    double duration_s;
    struct snapshot start;
    struct snapshot end;
    bool clean;
};

static pid_t worker_pids[LOADGEN_MAX_WORKERS];
static uint32_t *stable_subscribers; /* per channel, summed over workers */
static uint64_t stable_total;
static uint64_t started_ns;
static struct snapshot last_report;
static uint64_t next_report_ns;
static const char *status = "ok";
static char status_detail[256];
static int saved_argc;
static char **saved_argv;

/* Figures of the presence half of a churn run (--presence-channels). */
static struct {
    bool ran;
    bool settled;         /* every connection was subscribed again */
    double settle_s;      /* from the end of churn until it settled */
    struct presence_check at_end;      /* members once churn stopped */
    struct presence_check after_close; /* members after every connection closed */
} presence;

/* ---- clock and shared slots ------------------------------------------- */

uint64_t loadgen_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void worker_publish_stats(int index, const struct worker_stats *stats,
                          const uint32_t *channel_subscribers)
{
    struct worker_slot *slot = &shared->workers[index];
    uint64_t sequence = __atomic_load_n(&slot->sequence, __ATOMIC_RELAXED);

    __atomic_store_n(&slot->sequence, sequence + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    memcpy(&slot->stats, stats, sizeof *stats);
    memcpy(shared->channel_subscribers + (size_t)index * (size_t)options.channels,
           channel_subscribers, (size_t)options.channels * sizeof(uint32_t));
    __atomic_store_n(&slot->sequence, sequence + 2, __ATOMIC_RELEASE);
}

void loadgen_read_slot(int index, struct worker_stats *stats, uint32_t *channel_subscribers)
{
    struct worker_slot *slot = &shared->workers[index];
    for (;;) {
        uint64_t before = __atomic_load_n(&slot->sequence, __ATOMIC_ACQUIRE);
        if (before & 1)
            continue;
        memcpy(stats, &slot->stats, sizeof *stats);
        if (channel_subscribers)
            memcpy(channel_subscribers,
                   shared->channel_subscribers + (size_t)index * (size_t)options.channels,
                   (size_t)options.channels * sizeof(uint32_t));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&slot->sequence, __ATOMIC_RELAXED) == before)
            return;
    }
}

/* ---- presence slots --------------------------------------------------- */

bool loadgen_presence_slot(uint32_t index, uint32_t *channel)
{
    if (options.presence_channels <= 0 || index >= (uint32_t)options.churn_pool)
        return false;
    /* Connection i is a presence slot when floor((i + 1) * share) steps
     * past floor(i * share), which spreads the slots evenly. */
    uint32_t before = (uint32_t)floor((double)index * options.presence_share);
    uint32_t after = (uint32_t)floor((double)(index + 1) * options.presence_share);
    if (after == before)
        return false;
    *channel = before % (uint32_t)options.presence_channels;
    return true;
}

void loadgen_presence_user_id(uint32_t index, char *out, size_t size)
{
    snprintf(out, size, "user-%u", index);
}

/* ---- snapshots -------------------------------------------------------- */

static void add_stats(struct worker_stats *into, const struct worker_stats *from)
{
    /* Every field before the histograms is a uint64_t counter or gauge. */
    size_t counters = offsetof(struct worker_stats, latency_us) / sizeof(uint64_t);
    uint64_t *a = (uint64_t *)into;
    const uint64_t *b = (const uint64_t *)from;
    for (size_t i = 0; i < counters; i++)
        a[i] += b[i];
    histogram_add(&into->latency_us, &from->latency_us);
    histogram_add(&into->subscribe_us, &from->subscribe_us);
    histogram_add(&into->presence_join_us, &from->presence_join_us);
}

static void take_snapshot(struct snapshot *s)
{
    static struct worker_stats one;

    memset(s, 0, sizeof *s);
    s->t_ns = loadgen_now_ns();
    for (int w = 0; w < options.workers; w++) {
        loadgen_read_slot(w, &one, NULL);
        add_stats(&s->stats, &one);
    }
    s->publisher = publisher_counters;

    for (int i = 0; i < options.server_pid_count; i++) {
        if (procstat_read(options.server_pids[i].pid, &s->servers[i]) != 0)
            memset(&s->servers[i], 0, sizeof s->servers[i]);
        s->server_cpu_s += s->servers[i].cpu_seconds;
        s->server_rss_kb += s->servers[i].rss_kb;
    }
    for (int i = 0; i < options.aux_pid_count; i++) {
        if (procstat_read(options.aux_pids[i].pid, &s->aux[i]) != 0)
            memset(&s->aux[i], 0, sizeof s->aux[i]);
    }
    procstat_read_machine(&s->machine);
    struct procstat p;
    for (int w = 0; w < options.workers; w++) {
        if (worker_pids[w] > 0 && procstat_read(worker_pids[w], &p) == 0)
            s->loadgen_cpu_s += p.cpu_seconds;
    }
    if (procstat_read(getpid(), &p) == 0)
        s->loadgen_cpu_s += p.cpu_seconds;
}

static double seconds_between(const struct snapshot *a, const struct snapshot *b)
{
    return (double)(b->t_ns - a->t_ns) / 1e9;
}

/* ---- progress lines --------------------------------------------------- */

static void print_progress(const char *phase)
{
    static struct snapshot now;
    static struct histogram interval;

    take_snapshot(&now);
    double dt = seconds_between(&last_report, &now);
    if (dt <= 0)
        dt = 1e-9;
    histogram_subtract(&interval, &now.stats.latency_us, &last_report.stats.latency_us);

    fprintf(stderr,
            "[%6.1fs] %-6s subscribed=%llu connecting=%llu open=%llu | published=%llu acked=%llu "
            "failed=%llu | deliveries/s=%.0f p50=%.2fms p99=%.2fms | dup=%llu closed=%llu "
            "errors=%llu | server cpu=%.0f%% rss=%.1fMB\n",
            (double)(now.t_ns - started_ns) / 1e9, phase,
            (unsigned long long)now.stats.subscribed, (unsigned long long)now.stats.connecting,
            (unsigned long long)now.stats.open, (unsigned long long)now.publisher.issued,
            (unsigned long long)now.publisher.acked, (unsigned long long)now.publisher.failed,
            (double)(now.stats.deliveries - last_report.stats.deliveries) / dt,
            (double)histogram_quantile(&interval, 0.50) / 1000.0,
            (double)histogram_quantile(&interval, 0.99) / 1000.0,
            (unsigned long long)now.stats.duplicates,
            (unsigned long long)now.stats.closed_by_server,
            (unsigned long long)(now.stats.pusher_errors + now.stats.protocol_errors),
            100.0 * (now.server_cpu_s - last_report.server_cpu_s) / dt,
            (double)now.server_rss_kb / 1024.0);
    last_report = now;
}

static void tick_progress(const char *phase)
{
    uint64_t now = loadgen_now_ns();
    if (now < next_report_ns)
        return;
    next_report_ns = now + (uint64_t)(options.report_interval_s * 1e9);
    print_progress(phase);
}

/* Returns false and sets the status when a worker died. */
static bool workers_alive(void)
{
    int wstatus;
    pid_t pid = waitpid(-1, &wstatus, WNOHANG);
    if (pid <= 0)
        return true;
    status = "worker_failed";
    snprintf(status_detail, sizeof status_detail, "worker pid %d exited (status 0x%x)", (int)pid,
             wstatus);
    fprintf(stderr, "loadgen: %s\n", status_detail);
    return false;
}

/* ---- phases ----------------------------------------------------------- */

static bool run_setup(void)
{
    uint64_t deadline = loadgen_now_ns() + (uint64_t)(options.setup_timeout_s * 1e9);
    struct snapshot s;

    for (;;) {
        usleep(20000);
        tick_progress("setup");
        if (!workers_alive())
            return false;

        take_snapshot(&s);
        if (s.stats.subscribed == (uint64_t)options.connections)
            return true;
        if (s.stats.gave_up > 0 &&
            s.stats.subscribed + s.stats.gave_up == (uint64_t)options.connections) {
            status = "connections_failed";
            snprintf(status_detail, sizeof status_detail,
                     "%llu connections failed every attempt",
                     (unsigned long long)s.stats.gave_up);
            return false;
        }
        if (loadgen_now_ns() > deadline) {
            status = "setup_timeout";
            snprintf(status_detail, sizeof status_detail,
                     "only %llu of %d connections subscribed after %.0f s "
                     "(%llu connecting, %llu waiting for subscription_succeeded)",
                     (unsigned long long)s.stats.subscribed, options.connections,
                     options.setup_timeout_s, (unsigned long long)s.stats.connecting,
                     (unsigned long long)s.stats.open);
            return false;
        }
    }
}

static void collect_stable_subscribers(void)
{
    static struct worker_stats ignored;
    uint32_t *one = calloc((size_t)options.channels, sizeof *one);
    stable_subscribers = calloc((size_t)options.channels, sizeof *stable_subscribers);
    if (!one || !stable_subscribers) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }

    /* Wait for every worker's slot to show its last change. */
    usleep(250000);
    for (int w = 0; w < options.workers; w++) {
        loadgen_read_slot(w, &ignored, one);
        for (int c = 0; c < options.channels; c++)
            stable_subscribers[c] += one[c];
    }
    stable_total = 0;
    for (int c = 0; c < options.channels; c++)
        stable_total += stable_subscribers[c];
    free(one);
}

static uint64_t step_expected(const struct step_result *r)
{
    return r->end.publisher.expected - r->start.publisher.expected;
}

static uint64_t step_unique(const struct step_result *r)
{
    return r->end.stats.stable_unique - r->start.stats.stable_unique;
}

/* Waits for the replies to every published event, then for the deliveries
 * the replies promise, at most options.drain_s seconds in all. */
static void drain(const struct snapshot *start)
{
    uint64_t deadline = loadgen_now_ns() + (uint64_t)(options.drain_s * 1e9);
    struct snapshot s;

    while (loadgen_now_ns() < deadline) {
        publisher_poll(1);
        tick_progress("drain");
        if (publisher_in_flight() > 0)
            continue;
        take_snapshot(&s);
        if (s.stats.stable_unique - start->stats.stable_unique >=
            s.publisher.expected - start->publisher.expected)
            break;
        usleep(5000);
    }

    /* Workers copy their counters out every 100 ms. */
    uint64_t settle = loadgen_now_ns() + 150000000ull;
    while (loadgen_now_ns() < settle)
        publisher_poll(5);
}

static void run_step(struct step_result *r)
{
    r->all_processes_start_s = procstat_sum_all_processes();
    take_snapshot(&r->start);
    uint64_t begin = r->start.t_ns;
    uint64_t end = begin + (uint64_t)(r->duration_s * 1e9);
    uint64_t issued = 0;

    for (uint64_t now = begin; now < end; now = loadgen_now_ns()) {
        uint64_t due = (uint64_t)(r->rate * (double)(now - begin) / 1e9);
        if (due > issued)
            issued += publisher_issue(due - issued);
        publisher_poll(1);
        tick_progress("run");
        if (!workers_alive())
            break;
    }

    drain(&r->start);
    take_snapshot(&r->end);
    r->all_processes_end_s = procstat_sum_all_processes();
}

/* Stops churn, waits at most options.presence_settle_s for every
 * connection to be subscribed again (or closed or failed for good), and
 * compares the member lists with the relay's. */
static void settle_and_check_members(void)
{
    shared->command = COMMAND_SETTLE;
    uint64_t begin = loadgen_now_ns();
    uint64_t deadline = begin + (uint64_t)(options.presence_settle_s * 1e9);
    /* Workers copy their gauges out every 100 ms, so a reading taken this
     * long after the command no longer shows churn from before it. */
    uint64_t first_reading = begin + 250000000ull;
    struct snapshot s;

    presence.ran = true;
    while (workers_alive()) {
        usleep(20000);
        tick_progress("settle");
        uint64_t now = loadgen_now_ns();
        if (now < first_reading)
            continue;
        take_snapshot(&s);
        if (s.stats.subscribed + s.stats.gave_up + s.stats.closed ==
            (uint64_t)options.connections) {
            presence.settled = true;
            break;
        }
        if (now > deadline)
            break;
    }
    presence.settle_s = (double)(loadgen_now_ns() - begin) / 1e9;
    fprintf(stderr, "loadgen: connections %s after %.1f s; comparing the member lists\n",
            presence.settled ? "settled" : "not settled", presence.settle_s);
    presence_check_members(shared->presence_member, options.presence_settle_s, &presence.at_end);
}

static void judge_step(struct step_result *r)
{
    static struct histogram latency;
    histogram_subtract(&latency, &r->end.stats.latency_us, &r->start.stats.latency_us);
    const struct worker_stats *a = &r->start.stats, *b = &r->end.stats;
    uint64_t issued = r->end.publisher.issued - r->start.publisher.issued;

    r->clean = step_unique(r) >= step_expected(r) && b->duplicates == a->duplicates &&
               b->misrouted == a->misrouted && b->too_late == a->too_late &&
               b->closed_by_server == a->closed_by_server &&
               r->end.publisher.failed == r->start.publisher.failed &&
               (double)issued >= 0.95 * r->rate * r->duration_s &&
               (double)histogram_quantile(&latency, 0.99) / 1000.0 <= options.clean_p99_ms;
}

/* ---- JSON report ------------------------------------------------------ */

static void print_latency_json(const char *name, const struct histogram *h)
{
    printf("\"%s\":{\"count\":%llu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
           "\"max\":%.3f}",
           name, (unsigned long long)h->total, (double)histogram_quantile(h, 0.5) / 1000.0,
           (double)histogram_quantile(h, 0.9) / 1000.0,
           (double)histogram_quantile(h, 0.99) / 1000.0,
           (double)histogram_quantile(h, 0.999) / 1000.0, (double)h->max / 1000.0);
}

static void print_step_json(const struct step_result *r)
{
    static struct histogram latency;
    const struct worker_stats *a = &r->start.stats, *b = &r->end.stats;
    histogram_subtract(&latency, &b->latency_us, &a->latency_us);
    /* The window's max is not recoverable from two cumulative maxima; use
     * the highest bucket that gained values instead. */
    latency.max = histogram_quantile(&latency, 1.0);
    if (b->latency_us.max > a->latency_us.max)
        latency.max = b->latency_us.max;

    uint64_t expected = step_expected(r);
    uint64_t unique = step_unique(r);
    uint64_t deliveries = b->deliveries - a->deliveries;
    double cpu = r->end.server_cpu_s - r->start.server_cpu_s;
    double window = seconds_between(&r->start, &r->end);

    printf("{\"rate\":%.1f,\"duration_s\":%.1f,\"window_s\":%.2f,\"published\":%llu,"
           "\"acked\":%llu,\"publish_failed\":%llu,\"achieved_rate\":%.1f,"
           "\"expected\":%llu,\"delivered\":%llu,\"lost\":%llu,\"excess\":%llu,"
           "\"deliveries\":%llu,\"deliveries_per_s\":%.0f,\"duplicates\":%llu,"
           "\"reordered\":%llu,\"too_late\":%llu,\"misrouted\":%llu,\"closed_by_server\":%llu,"
           "\"churn_closed\":%llu,\"churn_deliveries\":%llu,",
           r->rate, r->duration_s, window,
           (unsigned long long)(r->end.publisher.issued - r->start.publisher.issued),
           (unsigned long long)(r->end.publisher.acked - r->start.publisher.acked),
           (unsigned long long)(r->end.publisher.failed - r->start.publisher.failed),
           (double)(r->end.publisher.acked - r->start.publisher.acked) / r->duration_s,
           (unsigned long long)expected, (unsigned long long)unique,
           (unsigned long long)(expected > unique ? expected - unique : 0),
           (unsigned long long)(unique > expected ? unique - expected : 0),
           (unsigned long long)deliveries, (double)deliveries / r->duration_s,
           (unsigned long long)(b->duplicates - a->duplicates),
           (unsigned long long)(b->reordered - a->reordered),
           (unsigned long long)(b->too_late - a->too_late),
           (unsigned long long)(b->misrouted - a->misrouted),
           (unsigned long long)(b->closed_by_server - a->closed_by_server),
           (unsigned long long)(b->churn_closed - a->churn_closed),
           (unsigned long long)(b->churn_deliveries - a->churn_deliveries));
    print_latency_json("latency_ms", &latency);

    static struct histogram subscribe;
    histogram_subtract(&subscribe, &b->subscribe_us, &a->subscribe_us);
    printf(",");
    print_latency_json("resubscribe_ms", &subscribe);

    printf(",\"server_cpu_s\":%.2f,\"server_cpu_percent\":%.1f,"
           "\"server_cpu_s_per_million_deliveries\":%.3f,\"server_rss_kb\":%llu",
           cpu, 100.0 * cpu / window, deliveries ? cpu * 1e6 / (double)deliveries : 0.0,
           (unsigned long long)r->end.server_rss_kb);
    printf(",\"loadgen_cpu_s\":%.2f", r->end.loadgen_cpu_s - r->start.loadgen_cpu_s);
    /* CPU of processes outside the run: other programs on the machine,
     * which make every other figure of the step less reliable. */
    double machine_total = r->end.machine.total_seconds - r->start.machine.total_seconds;
    double machine_busy = r->end.machine.process_seconds - r->start.machine.process_seconds +
                          r->end.machine.interrupt_seconds - r->start.machine.interrupt_seconds;
    double measured = cpu + (r->end.loadgen_cpu_s - r->start.loadgen_cpu_s);
    for (int i = 0; i < options.aux_pid_count; i++)
        measured += r->end.aux[i].cpu_seconds - r->start.aux[i].cpu_seconds;
    double others = r->all_processes_end_s - r->all_processes_start_s - measured;
    printf(",\"machine_busy_percent\":%.1f,\"interrupt_cpu_s\":%.2f,\"other_processes_cpu_s\":%.2f",
           machine_total > 0 ? 100.0 * machine_busy / machine_total : 0.0,
           r->end.machine.interrupt_seconds - r->start.machine.interrupt_seconds,
           others > 0 ? others : 0.0);
    printf(",\"aux_cpu_s\":[");
    for (int i = 0; i < options.aux_pid_count; i++)
        printf("%s%.2f", i ? "," : "", r->end.aux[i].cpu_seconds - r->start.aux[i].cpu_seconds);
    printf("],\"clean\":%s}", r->clean ? "true" : "false");
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_check_json(const char *name, const struct presence_check *c)
{
    printf(",\"%s\":{\"matched\":%s,\"expected\":%llu,\"reported\":%llu,\"missing\":%llu,"
           "\"extra\":%llu,\"rounds\":%d,\"seconds\":%.2f,\"error\":",
           name, c->matched ? "true" : "false", (unsigned long long)c->expected,
           (unsigned long long)c->reported, (unsigned long long)c->missing,
           (unsigned long long)c->extra, c->rounds, c->seconds);
    print_json_string(c->error);
    printf("}");
}

/* The presence half: joins, member events and the two member checks.
 * join_ms covers the joins after setup, that is those of reconnections. */
static void print_presence_json(const struct snapshot *setup, const struct snapshot *end)
{
    static struct histogram joins;
    histogram_subtract(&joins, &end->stats.presence_join_us, &setup->stats.presence_join_us);
    uint32_t slots = 0, channel;
    for (uint32_t i = 0; i < (uint32_t)options.churn_pool; i++)
        slots += loadgen_presence_slot(i, &channel);

    const struct worker_stats *s = &end->stats;
    printf(",\"presence\":{\"channels\":%d,\"share\":%.3f,\"slots\":%u,\"ran\":%s,"
           "\"joins\":%llu,\"joins_after_setup\":%llu,\"join_errors\":%llu,"
           "\"members_added\":%llu,\"members_removed\":%llu,",
           options.presence_channels, options.presence_share, slots,
           presence.ran ? "true" : "false", (unsigned long long)s->presence_joins,
           (unsigned long long)(s->presence_joins - setup->stats.presence_joins),
           (unsigned long long)s->presence_errors, (unsigned long long)s->members_added,
           (unsigned long long)s->members_removed);
    print_latency_json("setup_join_ms", &setup->stats.presence_join_us);
    printf(",");
    print_latency_json("join_ms", &joins);
    printf(",\"settled\":%s,\"settle_s\":%.2f", presence.settled ? "true" : "false",
           presence.settle_s);
    print_check_json("at_end", &presence.at_end);
    print_check_json("after_close", &presence.after_close);
    printf("}");
}

static void print_pids_json(const char *name, const struct monitored_pid *pids, int count,
                            const struct procstat *before, const struct procstat *setup,
                            const struct procstat *end)
{
    printf(",\"%s\":[", name);
    for (int i = 0; i < count; i++) {
        printf("%s{\"pid\":%d,\"label\":", i ? "," : "", (int)pids[i].pid);
        print_json_string(pids[i].label);
        printf(",\"rss_kb_before_connect\":%llu,\"rss_kb_subscribed\":%llu,\"rss_kb_end\":%llu,"
               "\"cpu_s_total\":%.2f}",
               (unsigned long long)before[i].rss_kb, (unsigned long long)setup[i].rss_kb,
               (unsigned long long)end[i].rss_kb, end[i].cpu_seconds);
    }
    printf("]");
}

static void print_report(const struct snapshot *before, const struct snapshot *setup,
                         const struct snapshot *end, const struct step_result *steps,
                         int step_count, double setup_s)
{
    const char *mode = options.publish == PUBLISH_NONE ? "idle"
                       : options.churn_rate > 0     ? "churn"
                                                    : "run";
    const char *publish = options.publish == PUBLISH_REDIS ? "redis"
                          : options.publish == PUBLISH_HTTP ? "http"
                                                            : "none";

    printf("{\"label\":");
    print_json_string(options.label);
    printf(",\"status\":\"%s\",\"status_detail\":", status);
    print_json_string(status_detail);
    printf(",\"mode\":\"%s\",\"publish\":\"%s\",\"connections\":%d,\"channels\":%d,"
           "\"workers\":%d,\"payload_bytes\":%d,\"churn_rate\":%.1f,\"churn_pool\":%d,"
           "\"stable_subscribers\":%llu,\"targets\":[",
           mode, publish, options.connections, options.channels, options.workers,
           options.payload_bytes, options.churn_rate, options.churn_pool,
           (unsigned long long)stable_total);
    for (int i = 0; i < options.target_count; i++)
        printf("%s\"%s:%d\"", i ? "," : "", inet_ntoa(options.targets[i].sin_addr),
               ntohs(options.targets[i].sin_port));
    printf("],\"argv\":");
    {
        char joined[2048] = "";
        size_t used = 0;
        for (int i = 0; i < saved_argc && used < sizeof joined - 2; i++)
            used += (size_t)snprintf(joined + used, sizeof joined - used, "%s%s", i ? " " : "",
                                     saved_argv[i]);
        print_json_string(joined);
    }

    const struct worker_stats *s = &end->stats;
    printf(",\"setup\":{\"seconds\":%.2f,\"subscribed\":%llu,\"connect_failures\":%llu,"
           "\"gave_up\":%llu,",
           setup_s, (unsigned long long)setup->stats.subscribed,
           (unsigned long long)setup->stats.connect_failures,
           (unsigned long long)setup->stats.gave_up);
    print_latency_json("subscribe_ms", &setup->stats.subscribe_us);
    printf("}");

    printf(",\"totals\":{\"subscribed_at_end\":%llu,\"closed_by_server\":%llu,"
           "\"pusher_errors\":%llu,\"protocol_errors\":%llu,\"deliveries\":%llu,"
           "\"duplicates\":%llu,\"bytes_received\":%llu,\"churn_closed\":%llu,"
           "\"churn_skipped\":%llu,\"redis_receivers\":%llu}",
           (unsigned long long)s->subscribed, (unsigned long long)s->closed_by_server,
           (unsigned long long)s->pusher_errors, (unsigned long long)s->protocol_errors,
           (unsigned long long)s->deliveries, (unsigned long long)s->duplicates,
           (unsigned long long)s->bytes_received, (unsigned long long)s->churn_closed,
           (unsigned long long)s->churn_skipped,
           (unsigned long long)end->publisher.redis_receivers);

    if (options.presence_channels > 0)
        print_presence_json(setup, end);

    printf(",\"steps\":[");
    double best = 0;
    for (int i = 0; i < step_count; i++) {
        if (i)
            printf(",");
        print_step_json(&steps[i]);
        const struct step_result *r = &steps[i];
        double rate = (double)(r->end.stats.deliveries - r->start.stats.deliveries) / r->duration_s;
        if (r->clean && rate > best)
            best = rate;
    }
    printf("],\"max_clean_deliveries_per_s\":%.0f", best);

    /* Memory per connection: all of the servers' RSS, and the growth since
     * before the first connection, each divided by the connection count. */
    double n = (double)options.connections;
    printf(",\"server\":{\"rss_kb_before_connect\":%llu,\"rss_kb_subscribed\":%llu,"
           "\"rss_kb_end\":%llu,\"rss_bytes_per_connection\":%.0f,"
           "\"rss_growth_bytes_per_connection\":%.0f,\"cpu_s_setup\":%.2f",
           (unsigned long long)before->server_rss_kb, (unsigned long long)setup->server_rss_kb,
           (unsigned long long)end->server_rss_kb, (double)end->server_rss_kb * 1024.0 / n,
           ((double)end->server_rss_kb - (double)before->server_rss_kb) * 1024.0 / n,
           setup->server_cpu_s - before->server_cpu_s);
    print_pids_json("pids", options.server_pids, options.server_pid_count, before->servers,
                    setup->servers, end->servers);
    print_pids_json("aux_pids", options.aux_pids, options.aux_pid_count, before->aux, setup->aux,
                    end->aux);
    printf("}}\n");
    fflush(stdout);
}

/* ---- options ---------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: herald-loadgen [options]\n"
        "\n"
        "Connections:\n"
        "  --target HOST:PORT        gateway to connect to; repeat for several (default 127.0.0.1:6001)\n"
        "  --connections N           WebSocket connections (default 1000, at most %d)\n"
        "  --channels K              connection i subscribes to channel i %% K (default 10)\n"
        "  --workers W               worker processes (default: one per 15000 connections, at least 2)\n"
        "  --connect-concurrency C   upgrades in flight per worker (default 256)\n"
        "  --source-base ADDR        first source address (default 127.1.0.1)\n"
        "  --connections-per-source N  connections per source address (default 500)\n"
        "\n"
        "Events:\n"
        "  --publish MODE            redis, http (the relay's HTTP API) or none (idle mode)\n"
        "  --redis HOST:PORT         Redis for --publish redis (default 127.0.0.1:6379)\n"
        "  --relay HOST:PORT         relay for --publish http and the presence check (default 127.0.0.1:6002)\n"
        "  --publishers P            HTTP connections to the relay (default 4)\n"
        "  --rate R                  events per second, over all channels (default 100)\n"
        "  --duration S              seconds of publishing per step, or of holding in idle mode (default 10)\n"
        "  --payload B               bytes of each event's data string (default 100)\n"
        "  --ramp-steps N            steps, each at --ramp-factor times the rate of the one before;\n"
        "                            stops after the first step that is not clean (default 1)\n"
        "  --ramp-factor F           (default 2)\n"
        "  --drain S                 seconds to wait for late deliveries after each step (default 5)\n"
        "  --clean-p99-ms X          a step with a higher p99 latency is not clean (default 100)\n"
        "\n"
        "Churn:\n"
        "  --churn-rate R            connections closed and reopened per second during the run\n"
        "  --churn-pool P            connections 0..P-1 churn; loss is counted on the others\n"
        "                            (default: 5 s worth of churn, at most N/2)\n"
        "  --presence-channels K     part of the churn pool also joins presence-<prefix>0..K-1 after\n"
        "                            each connect, signed with the app secret; at the end the member\n"
        "                            lists are compared with the relay's (needs --relay; default 0, off)\n"
        "  --presence-share F        share of the churn pool that joins a presence channel (default 0.5)\n"
        "  --presence-settle S       seconds allowed for connections to settle after churn, and for\n"
        "                            each member list check to match (default 10)\n"
        "\n"
        "Measurement and limits:\n"
        "  --server-pid PID[:LABEL]  server process to measure (CPU, RSS); repeatable\n"
        "  --aux-pid PID[:LABEL]     other process to report separately (Redis); repeatable\n"
        "  --setup-timeout S         seconds allowed for connecting and subscribing (default 120)\n"
        "  --hard-timeout S          kill everything and exit 3 after S seconds (default: computed)\n"
        "  --report-interval S       seconds between progress lines (default 1)\n"
        "  --label NAME              name copied into the JSON report\n"
        "\n"
        "Pusher app: --app-id (app-1) --app-key (app-key) --app-secret (app-secret)\n"
        "            --channel-prefix (bench-) --redis-prefix (herald:)\n"
        "\n"
        "Every address must be on loopback (127.0.0.0/8).\n",
        LOADGEN_MAX_CONNECTIONS);
}

static void die(const char *fmt, const char *value)
{
    fprintf(stderr, "herald-loadgen: ");
    fprintf(stderr, fmt, value);
    fprintf(stderr, "\n");
    exit(2);
}

static void parse_address(const char *text, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host)
        die("invalid address %s: expected HOST:PORT", text);
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");

    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, host, &out->sin_addr) != 1)
        die("invalid address %s: expected an IPv4 HOST:PORT", text);
    if ((ntohl(out->sin_addr.s_addr) >> 24) != 127)
        die("address %s is not on loopback: only 127.0.0.0/8 may be targeted", text);
}

static double parse_number(const char *text, double min, double max, const char *name)
{
    char *end;
    double value = strtod(text, &end);
    if (!text[0] || *end || value < min || value > max || isnan(value)) {
        fprintf(stderr, "herald-loadgen: invalid %s %s: expected %g to %g\n", name, text, min,
                max);
        exit(2);
    }
    return value;
}

static void parse_pid(const char *text, struct monitored_pid *pids, int *count)
{
    if (*count >= LOADGEN_MAX_PIDS)
        die("too many PIDs at %s", text);
    struct monitored_pid *p = &pids[(*count)++];
    char *end;
    long pid = strtol(text, &end, 10);
    if (pid <= 0 || (*end && *end != ':'))
        die("invalid PID %s: expected PID or PID:LABEL", text);
    p->pid = (pid_t)pid;
    snprintf(p->label, sizeof p->label, "%s", *end == ':' ? end + 1 : "server");
}

static void parse_options(int argc, char **argv)
{
    enum {
        OPT_TARGET = 256, OPT_CONNECTIONS, OPT_CHANNELS, OPT_WORKERS, OPT_CONCURRENCY,
        OPT_SOURCE_BASE, OPT_PER_SOURCE, OPT_PUBLISH, OPT_REDIS, OPT_RELAY, OPT_PUBLISHERS,
        OPT_RATE, OPT_DURATION, OPT_PAYLOAD, OPT_RAMP_STEPS, OPT_RAMP_FACTOR, OPT_DRAIN,
        OPT_CLEAN_P99, OPT_CHURN_RATE, OPT_CHURN_POOL, OPT_SERVER_PID, OPT_AUX_PID,
        OPT_SETUP_TIMEOUT, OPT_HARD_TIMEOUT, OPT_REPORT_INTERVAL, OPT_LABEL, OPT_APP_ID,
        OPT_APP_KEY, OPT_APP_SECRET, OPT_CHANNEL_PREFIX, OPT_REDIS_PREFIX, OPT_PRESENCE_CHANNELS,
        OPT_PRESENCE_SHARE, OPT_PRESENCE_SETTLE, OPT_HELP,
    };
    static const struct option long_options[] = {
        { "target", required_argument, NULL, OPT_TARGET },
        { "connections", required_argument, NULL, OPT_CONNECTIONS },
        { "channels", required_argument, NULL, OPT_CHANNELS },
        { "workers", required_argument, NULL, OPT_WORKERS },
        { "connect-concurrency", required_argument, NULL, OPT_CONCURRENCY },
        { "source-base", required_argument, NULL, OPT_SOURCE_BASE },
        { "connections-per-source", required_argument, NULL, OPT_PER_SOURCE },
        { "publish", required_argument, NULL, OPT_PUBLISH },
        { "redis", required_argument, NULL, OPT_REDIS },
        { "relay", required_argument, NULL, OPT_RELAY },
        { "publishers", required_argument, NULL, OPT_PUBLISHERS },
        { "rate", required_argument, NULL, OPT_RATE },
        { "duration", required_argument, NULL, OPT_DURATION },
        { "payload", required_argument, NULL, OPT_PAYLOAD },
        { "ramp-steps", required_argument, NULL, OPT_RAMP_STEPS },
        { "ramp-factor", required_argument, NULL, OPT_RAMP_FACTOR },
        { "drain", required_argument, NULL, OPT_DRAIN },
        { "clean-p99-ms", required_argument, NULL, OPT_CLEAN_P99 },
        { "churn-rate", required_argument, NULL, OPT_CHURN_RATE },
        { "churn-pool", required_argument, NULL, OPT_CHURN_POOL },
        { "presence-channels", required_argument, NULL, OPT_PRESENCE_CHANNELS },
        { "presence-share", required_argument, NULL, OPT_PRESENCE_SHARE },
        { "presence-settle", required_argument, NULL, OPT_PRESENCE_SETTLE },
        { "server-pid", required_argument, NULL, OPT_SERVER_PID },
        { "aux-pid", required_argument, NULL, OPT_AUX_PID },
        { "setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT },
        { "hard-timeout", required_argument, NULL, OPT_HARD_TIMEOUT },
        { "report-interval", required_argument, NULL, OPT_REPORT_INTERVAL },
        { "label", required_argument, NULL, OPT_LABEL },
        { "app-id", required_argument, NULL, OPT_APP_ID },
        { "app-key", required_argument, NULL, OPT_APP_KEY },
        { "app-secret", required_argument, NULL, OPT_APP_SECRET },
        { "channel-prefix", required_argument, NULL, OPT_CHANNEL_PREFIX },
        { "redis-prefix", required_argument, NULL, OPT_REDIS_PREFIX },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };

    options.app_id = "app-1";
    options.app_key = "app-key";
    options.app_secret = "app-secret";
    options.channel_prefix = "bench-";
    options.redis_prefix = "herald:";
    options.label = "";
    options.connections = 1000;
    options.channels = 10;
    options.connect_concurrency = 256;
    options.source_base = (127u << 24) | (1u << 16) | 1u;
    options.connections_per_source = 500;
    options.publish = PUBLISH_REDIS;
    parse_address("127.0.0.1:6379", &options.redis);
    parse_address("127.0.0.1:6002", &options.relay);
    options.publishers = 4;
    options.rate = 100;
    options.duration_s = 10;
    options.payload_bytes = 100;
    options.ramp_steps = 1;
    options.ramp_factor = 2;
    options.drain_s = 5;
    options.clean_p99_ms = 100;
    options.churn_pool = -1;
    options.presence_share = 0.5;
    options.presence_settle_s = 10;
    options.setup_timeout_s = 120;
    options.report_interval_s = 1;

    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_TARGET:
            if (options.target_count >= LOADGEN_MAX_TARGETS)
                die("too many targets at %s", optarg);
            parse_address(optarg, &options.targets[options.target_count++]);
            break;
        case OPT_CONNECTIONS:
            options.connections = (int)parse_number(optarg, 1, LOADGEN_MAX_CONNECTIONS, "--connections");
            break;
        case OPT_CHANNELS:
            options.channels = (int)parse_number(optarg, 1, LOADGEN_MAX_CHANNELS, "--channels");
            break;
        case OPT_WORKERS:
            options.workers = (int)parse_number(optarg, 1, LOADGEN_MAX_WORKERS, "--workers");
            break;
        case OPT_CONCURRENCY:
            options.connect_concurrency = (int)parse_number(optarg, 1, 10000, "--connect-concurrency");
            break;
        case OPT_SOURCE_BASE: {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
                die("invalid --source-base %s: expected an address in 127.0.0.0/8", optarg);
            options.source_base = ntohl(a.s_addr);
            break;
        }
        case OPT_PER_SOURCE:
            options.connections_per_source = (int)parse_number(optarg, 1, 20000, "--connections-per-source");
            break;
        case OPT_PUBLISH:
            if (strcmp(optarg, "redis") == 0)
                options.publish = PUBLISH_REDIS;
            else if (strcmp(optarg, "http") == 0)
                options.publish = PUBLISH_HTTP;
            else if (strcmp(optarg, "none") == 0)
                options.publish = PUBLISH_NONE;
            else
                die("invalid --publish %s: expected redis, http or none", optarg);
            break;
        case OPT_REDIS:
            parse_address(optarg, &options.redis);
            break;
        case OPT_RELAY:
            parse_address(optarg, &options.relay);
            options.relay_given = true;
            break;
        case OPT_PUBLISHERS:
            options.publishers = (int)parse_number(optarg, 1, 64, "--publishers");
            break;
        case OPT_RATE:
            options.rate = parse_number(optarg, 0.1, 1e6, "--rate");
            break;
        case OPT_DURATION:
            options.duration_s = parse_number(optarg, 0.1, LOADGEN_MAX_DURATION_S, "--duration");
            break;
        case OPT_PAYLOAD:
            options.payload_bytes = (int)parse_number(optarg, 0, LOADGEN_MAX_PAYLOAD, "--payload");
            break;
        case OPT_RAMP_STEPS:
            options.ramp_steps = (int)parse_number(optarg, 1, 30, "--ramp-steps");
            break;
        case OPT_RAMP_FACTOR:
            options.ramp_factor = parse_number(optarg, 1, 100, "--ramp-factor");
            break;
        case OPT_DRAIN:
            options.drain_s = parse_number(optarg, 0, 120, "--drain");
            break;
        case OPT_CLEAN_P99:
            options.clean_p99_ms = parse_number(optarg, 0, 1e6, "--clean-p99-ms");
            break;
        case OPT_CHURN_RATE:
            options.churn_rate = parse_number(optarg, 0, 100000, "--churn-rate");
            break;
        case OPT_CHURN_POOL:
            options.churn_pool = (int)parse_number(optarg, 0, LOADGEN_MAX_CONNECTIONS, "--churn-pool");
            break;
        case OPT_PRESENCE_CHANNELS:
            options.presence_channels =
                (int)parse_number(optarg, 0, LOADGEN_MAX_PRESENCE_CHANNELS, "--presence-channels");
            break;
        case OPT_PRESENCE_SHARE:
            options.presence_share = parse_number(optarg, 0.01, 1, "--presence-share");
            break;
        case OPT_PRESENCE_SETTLE:
            options.presence_settle_s = parse_number(optarg, 1, 120, "--presence-settle");
            break;
        case OPT_SERVER_PID:
            parse_pid(optarg, options.server_pids, &options.server_pid_count);
            break;
        case OPT_AUX_PID:
            parse_pid(optarg, options.aux_pids, &options.aux_pid_count);
            break;
        case OPT_SETUP_TIMEOUT:
            options.setup_timeout_s = parse_number(optarg, 1, 1800, "--setup-timeout");
            break;
        case OPT_HARD_TIMEOUT:
            options.hard_timeout_s = parse_number(optarg, 1, 3600, "--hard-timeout");
            break;
        case OPT_REPORT_INTERVAL:
            options.report_interval_s = parse_number(optarg, 0.1, 60, "--report-interval");
            break;
        case OPT_LABEL:
            options.label = optarg;
            break;
        case OPT_APP_ID:
            options.app_id = optarg;
            break;
        case OPT_APP_KEY:
            options.app_key = optarg;
            break;
        case OPT_APP_SECRET:
            options.app_secret = optarg;
            break;
        case OPT_CHANNEL_PREFIX:
            options.channel_prefix = optarg;
            break;
        case OPT_REDIS_PREFIX:
            options.redis_prefix = optarg;
            break;
        case OPT_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument %s", argv[optind]);

    if (options.target_count == 0)
        parse_address("127.0.0.1:6001", &options.targets[options.target_count++]);
    if (options.workers == 0) {
        options.workers = (options.connections + 14999) / 15000;
        if (options.workers < 2)
            options.workers = options.connections >= 2 ? 2 : 1;
    }
    if (options.workers > options.connections)
        options.workers = options.connections;
    if ((options.connections + options.workers - 1) / options.workers > 19000)
        die("too many connections per worker: a process may hold 20000 descriptors here; "
            "raise --workers%s", "");
    if (options.channels > options.connections)
        die("more channels than connections: some channels would have no subscriber%s", "");

    uint64_t sources = (uint64_t)options.connections / (uint64_t)options.connections_per_source + 1;
    if ((uint64_t)(options.source_base & 0xffffff) + sources >= 0xffffff)
        die("--source-base leaves too few addresses in 127.0.0.0/8%s", "");

    if (options.churn_pool < 0) {
        double pool = options.churn_rate * 5;
        if (pool > options.connections / 2)
            pool = options.connections / 2;
        options.churn_pool = options.churn_rate > 0 ? (int)pool : 0;
    }
    if (options.churn_rate > 0 && options.churn_pool == 0)
        die("--churn-rate needs a --churn-pool of at least one connection%s", "");
    if (options.churn_pool > options.connections)
        options.churn_pool = options.connections;
    if (options.publish == PUBLISH_NONE)
        options.ramp_steps = 1;
    if (options.presence_channels > 0 && options.churn_pool == 0)
        die("--presence-channels needs a churn pool: presence members are churning "
            "connections%s", "");
    /* The default relay address may belong to another program. */
    if (options.presence_channels > 0 && !options.relay_given)
        die("--presence-channels needs --relay to read the member lists%s", "");

    if (options.hard_timeout_s == 0) {
        double steps = options.publish == PUBLISH_NONE ? 1 : options.ramp_steps;
        options.hard_timeout_s =
            options.setup_timeout_s + steps * (options.duration_s + options.drain_s + 2) + 30;
        /* Settling, then two member checks. Each check ends within its
         * bound plus one round of queries, and a query that hangs takes
         * at most 4 s (its send and receive timeouts). */
        if (options.presence_channels > 0)
            options.hard_timeout_s +=
                3 * options.presence_settle_s + 2 * 4.0 * options.presence_channels;
    }
}

/* ---- main ------------------------------------------------------------- */

static void on_hard_timeout(int signum)
{
    (void)signum;
    for (int w = 0; w < options.workers; w++) {
        if (worker_pids[w] > 0)
            kill(worker_pids[w], SIGKILL);
    }
    static const char line[] =
        "{\"status\":\"hard_timeout\",\"status_detail\":\"the run exceeded --hard-timeout\"}\n";
    ssize_t ignored = write(STDOUT_FILENO, line, sizeof line - 1);
    (void)ignored;
    _exit(3);
}

static void start_workers(void)
{
    size_t size = sizeof *shared;
    shared = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint32_t *subscribers = mmap(NULL, (size_t)options.workers * (size_t)options.channels *
                                           sizeof(uint32_t),
                                 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint8_t *presence_member = mmap(NULL, (size_t)options.connections, PROT_READ | PROT_WRITE,
                                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED || subscribers == MAP_FAILED || presence_member == MAP_FAILED) {
        perror("herald-loadgen: mmap");
        exit(1);
    }
    memset(shared, 0, size);
    shared->channel_subscribers = subscribers;
    shared->presence_member = presence_member;
    shared->command = COMMAND_SETUP;

    fflush(NULL);
    for (int w = 0; w < options.workers; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("herald-loadgen: fork");
            exit(1);
        }
        if (pid == 0)
            worker_main(w);
        worker_pids[w] = pid;
        shared->workers[w].pid = pid;
    }
}

static void stop_workers(void)
{
    shared->command = COMMAND_STOP;
    for (int w = 0; w < options.workers; w++) {
        int wstatus;
        /* Each worker exits within one loop turn; kill it after 5 s. */
        for (int i = 0; i < 500 && waitpid(worker_pids[w], &wstatus, WNOHANG) == 0; i++)
            usleep(10000);
        if (waitpid(worker_pids[w], &wstatus, WNOHANG) == 0) {
            kill(worker_pids[w], SIGKILL);
            waitpid(worker_pids[w], &wstatus, 0);
        }
        worker_pids[w] = 0;
    }
}

int main(int argc, char **argv)
{
    saved_argc = argc;
    saved_argv = argv;
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_hard_timeout);
    alarm((unsigned)ceil(options.hard_timeout_s));

    static struct snapshot before, setup, end;
    static struct step_result steps[30];
    int step_count = 0;

    started_ns = loadgen_now_ns();
    start_workers();
    take_snapshot(&before);
    last_report = before;
    next_report_ns = started_ns + (uint64_t)(options.report_interval_s * 1e9);

    bool ready = run_setup();
    double setup_s = (double)(loadgen_now_ns() - started_ns) / 1e9;
    if (ready)
        collect_stable_subscribers();
    take_snapshot(&setup);
    fprintf(stderr, "loadgen: setup %s after %.1f s: %llu subscribed\n",
            ready ? "done" : "failed", setup_s, (unsigned long long)setup.stats.subscribed);

    if (ready && options.publish == PUBLISH_NONE) {
        shared->command = COMMAND_RUN;
        uint64_t until = loadgen_now_ns() + (uint64_t)(options.duration_s * 1e9);
        while (loadgen_now_ns() < until && workers_alive()) {
            usleep(20000);
            tick_progress("idle");
        }
    } else if (ready) {
        if (publisher_start(stable_subscribers) != 0) {
            status = "publisher_failed";
            snprintf(status_detail, sizeof status_detail, "could not connect the publisher");
        } else {
            shared->command = COMMAND_RUN;
            double rate = options.rate;
            for (int i = 0; i < options.ramp_steps; i++) {
                struct step_result *r = &steps[step_count++];
                r->rate = rate;
                r->duration_s = options.duration_s;
                fprintf(stderr, "loadgen: step %d: %.1f events/s for %.1f s\n", i + 1, rate,
                        options.duration_s);
                run_step(r);
                judge_step(r);
                if (strcmp(status, "ok") != 0 || (!r->clean && options.ramp_steps > 1))
                    break;
                rate *= options.ramp_factor;
            }
        }
    }

    if (ready && options.presence_channels > 0 && strcmp(status, "ok") == 0)
        settle_and_check_members();
    take_snapshot(&end);
    stop_workers();
    if (presence.ran) {
        fprintf(stderr, "loadgen: every connection closed; checking that the member lists are empty\n");
        presence_check_members(NULL, options.presence_settle_s, &presence.after_close);
    }
    print_report(&before, &setup, &end, steps, step_count, setup_s);
    return strcmp(status, "ok") == 0 ? 0 : 1;
}
