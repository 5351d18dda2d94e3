/* herald-loadgen: shared definitions of the controller process and its
 * forked worker processes.
 *
 * The controller forks the workers, publishes the events and prints the
 * report. Each worker owns a share of the WebSocket connections and runs
 * its own epoll loop. They communicate through one MAP_SHARED region. The
 * controller writes `command`, and each worker copies its counters into its
 * own slot under a sequence lock about ten times a second. */
#ifndef HERALD_BENCH_LOADGEN_H
#define HERALD_BENCH_LOADGEN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "histogram.h"

#define LOADGEN_MAX_TARGETS 16
#define LOADGEN_MAX_WORKERS 16
#define LOADGEN_MAX_PIDS 16
#define LOADGEN_MAX_CONNECTIONS 200000
#define LOADGEN_MAX_CHANNELS 100000
#define LOADGEN_MAX_DURATION_S 600
#define LOADGEN_MAX_PAYLOAD 65536
#define LOADGEN_MAX_PRESENCE_CHANNELS 1000

/* Name of every event the load generator publishes. */
#define LOADGEN_EVENT_NAME "bench-event"

enum publish_mode {
    PUBLISH_NONE = 0, /* idle mode: connect, subscribe, hold */
    PUBLISH_REDIS,    /* PUBLISH envelopes straight to the channel topics */
    PUBLISH_HTTP,     /* POST /apps/{id}/events to the relay */
};

struct monitored_pid {
    pid_t pid;
    char label[32];
};

struct loadgen_options {
    struct sockaddr_in targets[LOADGEN_MAX_TARGETS];
    int target_count;
    const char *app_id;
    const char *app_key;
    const char *app_secret;
    const char *channel_prefix; /* channel c is "<prefix><c>" */
    const char *redis_prefix;   /* topic prefix of the gateways, "herald:" */
    const char *label;

    int connections;
    int channels;
    int workers;
    int connect_concurrency; /* handshakes in flight per worker */
    uint32_t source_base;    /* first source address, host byte order */
    int connections_per_source;

    enum publish_mode publish;
    struct sockaddr_in redis;
    struct sockaddr_in relay;
    int publishers; /* HTTP connections to the relay */
    double rate;    /* events per second in the first step */
    double duration_s;
    int payload_bytes;
    double ramp_factor;
    int ramp_steps;
    double drain_s;
    double clean_p99_ms; /* a step is clean only if its p99 is at or below this */

    double churn_rate; /* connections closed and reopened per second */
    int churn_pool;    /* connections 0 .. churn_pool-1 take part in churn */
    int presence_channels;  /* presence-<channel_prefix>0 .. N-1; 0 turns presence off */
    double presence_share;  /* share of the churn pool that also joins a presence channel */
    double presence_settle_s; /* bound on waiting for the member lists to match */
    bool relay_given;       /* --relay was set, so the member lists can be queried */

    double setup_timeout_s;
    double hard_timeout_s;
    double report_interval_s;

    struct monitored_pid server_pids[LOADGEN_MAX_PIDS];
    int server_pid_count;
    struct monitored_pid aux_pids[LOADGEN_MAX_PIDS];
    int aux_pid_count;
};

enum loadgen_command {
    COMMAND_SETUP = 0, /* connect and subscribe */
    COMMAND_RUN,       /* measured window: churn runs if enabled */
    COMMAND_SETTLE,    /* churn stops; reconnections in progress complete */
    COMMAND_STOP,      /* publish final counters and exit */
};

/* Counters of one worker. Everything is cumulative since the worker
 * started, so the controller gets an interval by subtracting snapshots. */
struct worker_stats {
    uint64_t connecting; /* gauge: TCP connect or handshake in progress */
    uint64_t open;       /* gauge: handshake done, not yet subscribed */
    uint64_t subscribed; /* gauge */
    uint64_t stable_subscribed; /* gauge: subscribed and outside the churn pool */

    uint64_t connect_failures;   /* connect() or the upgrade failed; retried */
    uint64_t gave_up;            /* connections that failed every attempt */
    uint64_t closed_by_server;   /* close frame, EOF or reset on an open connection */
    uint64_t pusher_errors;      /* pusher:error frames */
    uint64_t protocol_errors;    /* malformed frames or unexpected messages */

    uint64_t deliveries;          /* every bench event received */
    uint64_t stable_unique;       /* first receipt of an event on a stable connection */
    uint64_t churn_deliveries;    /* bench events received by churning connections */
    uint64_t duplicates;          /* second receipt of one event on one connection */
    uint64_t reordered;           /* received after a later event of the same channel */
    uint64_t too_late;            /* behind the duplicate window; neither counted unique nor dup */
    uint64_t misrouted;           /* event of another channel than the subscription */
    uint64_t bytes_received;

    uint64_t churn_closed;  /* churn closes done */
    uint64_t churn_skipped; /* churn ticks with no subscribed churner to close */
    uint64_t closed;        /* gauge: stable connections the server closed, not reopened */

    uint64_t presence_joins;   /* presence subscription_succeeded frames */
    uint64_t presence_errors;  /* pusher:subscription_error on a presence channel */
    uint64_t members_added;    /* pusher_internal:member_added frames */
    uint64_t members_removed;  /* pusher_internal:member_removed frames */

    struct histogram latency_us;   /* publish to receipt */
    struct histogram subscribe_us; /* connect() start to subscription_succeeded */
    struct histogram presence_join_us; /* presence pusher:subscribe sent to subscription_succeeded */
};

struct worker_slot {
    uint64_t sequence; /* odd while the worker is writing `stats` */
    struct worker_stats stats;
    pid_t pid;
    bool final; /* the stats are the last ones this worker writes */
    bool failed;
    char error[160];
};

struct loadgen_shared {
    volatile int command;
    /* Stable subscribers of each channel, per worker, at
     * channel_subscribers[worker * channels + channel]. Each worker writes
     * its row together with its stats. */
    uint32_t *channel_subscribers;
    /* One byte per connection, indexed by global connection index: 1 while
     * the connection is a member of its presence channel, that is from its
     * presence subscription_succeeded until it closes. Written by the
     * owning worker at once, outside the sequence lock. */
    uint8_t *presence_member;
    struct worker_slot workers[LOADGEN_MAX_WORKERS];
};

extern struct loadgen_options options;
extern struct loadgen_shared *shared;

/* Monotonic clock in nanoseconds. CLOCK_MONOTONIC is one clock for every
 * process on a Linux machine, so the publisher's timestamps can be compared
 * with the workers' receive times. */
uint64_t loadgen_now_ns(void);

/* Returns whether connection `index` joins a presence channel after each
 * connect, and stores that channel's number in *channel. The presence
 * members are spread evenly over the churn pool, presence_share of it. */
bool loadgen_presence_slot(uint32_t index, uint32_t *channel);

/* Writes the presence user_id of connection `index`, which stays the same
 * across its reconnections, as a browser user's id does. */
void loadgen_presence_user_id(uint32_t index, char *out, size_t size);

/* Runs worker `index` until the controller sends COMMAND_STOP; never
 * returns. */
void worker_main(int index) __attribute__((noreturn));

/* Copies a worker's counters into its shared slot under the sequence lock. */
void worker_publish_stats(int index, const struct worker_stats *stats,
                          const uint32_t *channel_subscribers);

/* Reads a consistent copy of worker `index`'s slot. */
void loadgen_read_slot(int index, struct worker_stats *stats, uint32_t *channel_subscribers);

#endif
