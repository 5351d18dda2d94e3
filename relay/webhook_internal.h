/* Internals shared by the files of the webhook dispatcher:
 *
 *   webhook.c           lifecycle, the Redis side (reading, claiming,
 *                       renewing claims, queue depth) and metrics
 *   webhook_delivery.c  batching jobs into POSTs, retries, XACK and parking
 *   webhook_job.c       job fields and the JSON body
 *   webhook_http.c      the HTTP(S) client
 *
 * Everything runs on the dispatcher's event loop. */
#ifndef HERALD_RELAY_WEBHOOK_INTERNAL_H
#define HERALD_RELAY_WEBHOOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "publisher.h"
#include "webhook.h"
#include "webhook_http.h"
#include "webhook_job.h"

#define WEBHOOK_GROUP "herald-relays"

/* A relay stops reading an app's stream while it has this many of the
 * app's jobs in memory, so an endpoint that is down cannot pull the whole stream into
 * memory. NOTE: an estimate. With the default 10 KiB client event limit,
 * 1000 jobs are at most about 10 MiB per app. */
#define WEBHOOK_HELD_JOBS_MAX 1000

/* POSTs to one endpoint that may run at the same time, per relay. */
#define WEBHOOK_POSTS_PER_ENDPOINT 4

/* State of one job towards one endpoint. */
enum webhook_target_state {
    WEBHOOK_TARGET_DONE,     /* responded 2xx, or the endpoint does not want the event */
    WEBHOOK_TARGET_WAITING,  /* to be sent when due_ms has passed */
    WEBHOOK_TARGET_SENDING,  /* part of a POST in flight */
    WEBHOOK_TARGET_GAVE_UP,  /* webhook_max_attempts POSTs failed; the job gets parked */
};

struct webhook_target {
    enum webhook_target_state state;
    int attempts;       /* POSTs of this job to the endpoint started so far */
    uint64_t due_ms;    /* monotonic time of the next attempt */
    char *last_error;   /* of the last failed attempt */
};

enum webhook_job_phase {
    WEBHOOK_JOB_DELIVERING,
    WEBHOOK_JOB_FINISHABLE, /* every target is done or gave up; XACK or park next */
    WEBHOOK_JOB_FINISHING,  /* XACK or park command sent, waiting for its reply */
};

struct webhook_app;

/* One stream entry held by this relay, from reading or claiming it until
 * Redis acknowledged its XACK. */
struct webhook_job {
    struct webhook_app *app;
    struct webhook_job *prev;
    struct webhook_job *next;
    char id[48]; /* stream entry id, "<ms>-<seq>" */

    /* The entry's fields, alternating name and value, each NUL-terminated. */
    char **strings;
    size_t *lengths;
    size_t string_count;

    struct webhook_job_event event; /* points into `strings` */
    char *invalid;                  /* why the entry cannot be sent; NULL when valid */

    struct webhook_target *targets; /* one per endpoint of the app */
    size_t open_targets;            /* targets WAITING or SENDING */
    size_t sending;                 /* targets SENDING */
    enum webhook_job_phase phase;
    bool lost; /* another relay claimed it, or it left the pending list */
};

/* Per-endpoint state on this relay. */
struct webhook_endpoint_state {
    struct webhook_endpoint endpoint;
    char *unusable; /* why the URL cannot be used; every delivery then fails */
    int posts_in_flight;

    /* Failure logging: the first failure of an outage is logged, later
     * ones at most once per interval with a count. */
    bool failing;
    unsigned long failures; /* failed POSTs since the last success */
    unsigned long failures_not_logged;
    uint64_t failure_logged_ms;
};

enum webhook_group_state {
    WEBHOOK_GROUP_UNKNOWN,  /* to be created (XGROUP CREATE ... MKSTREAM) */
    WEBHOOK_GROUP_CREATING,
    WEBHOOK_GROUP_READY,
};

struct webhook_dispatcher;

struct webhook_app {
    struct webhook_dispatcher *dispatcher;
    const struct app_config *config;
    char *stream_key; /* <prefix>webhooks:{<app id>} */
    char *parked_key; /* <prefix>webhooks-parked:{<app id>} */

    struct webhook_endpoint_state *endpoints; /* config->webhook_count of them */

    struct webhook_job *jobs; /* in the order read or claimed */
    struct webhook_job *jobs_tail;
    size_t job_count;

    enum webhook_group_state group;
    bool claim_in_flight;
    bool renew_in_flight;
    bool depth_in_flight;
    char claim_cursor[48]; /* XAUTOCLAIM start id; "0-0" starts a new scan */

    /* herald_relay_webhook_queue_depth; -1 until first read */
    long long queue_depth;

    /* Counters, in deliveries of one job to one endpoint. */
    uint64_t delivered;
    uint64_t failed;
    uint64_t retries;
    uint64_t parked;
};

struct webhook_delivery;

struct webhook_dispatcher {
    struct event_base *base;
    const struct herald_config *cfg;
    struct publisher *reader; /* XREADGROUP BLOCK only */
    struct publisher *writer; /* every other command */
    struct webhook_client *client;
    char consumer[128];

    struct webhook_app *apps;
    size_t app_count;

    bool read_in_flight;
    bool stopping; /* no new reads, claims or POSTs */
    bool closing;  /* being freed: replies only free their contexts */

    struct event *tick;     /* periodic: groups, reads, claims, renewals, depth */
    struct event *schedule; /* activated whenever deliveries may start */
    struct event *due_timer; /* the next retry that becomes due */
    uint64_t next_renew_ms;
    uint64_t next_claim_ms;
    uint64_t next_depth_ms;

    struct webhook_delivery *deliveries; /* POSTs in flight */
    uint64_t random_state;
};

/* ---- webhook.c ---------------------------------------------------------- */

uint64_t webhook_monotonic_ms(void);

/* Returns a new string formatted like printf; aborts when out of memory. */
char *webhook_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reply callback of commands whose reply needs no handling. */
void webhook_ignore_reply(void *arg, const struct redisReply *reply);

/* Returns a pseudo-random number for retry jitter. */
uint64_t webhook_random(struct webhook_dispatcher *dispatcher);

/* Frees a job that is not part of any POST and unlinks it from its app. */
void webhook_job_free(struct webhook_job *job);

/* Starts the next XREADGROUP if none is running and an app has room. */
void webhook_read_next(struct webhook_dispatcher *dispatcher);

/* ---- webhook_delivery.c --------------------------------------------------- */

/* Creates the dispatcher's scheduling events. Returns 0, or -1 when out of
 * memory. */
int webhook_delivery_init(struct webhook_dispatcher *dispatcher);

/* Sets up the targets of a new job: waiting for each endpoint that wants
 * its event type, done for the others. A job that is invalid or wanted by
 * no endpoint becomes finishable at once. */
void webhook_delivery_prepare_job(struct webhook_job *job);

/* Runs the scheduler from the event loop soon, never from inside this
 * call. */
void webhook_delivery_request_schedule(struct webhook_dispatcher *dispatcher);

/* Starts every POST that is due and has an endpoint with room. */
void webhook_delivery_schedule(struct webhook_dispatcher *dispatcher);

/* Sends XACK, or the park script, for every finishable job of `app`. */
void webhook_delivery_finish_jobs(struct webhook_app *app);

/* Cancels every POST in flight without touching the jobs' state in Redis. */
void webhook_delivery_abandon_all(struct webhook_dispatcher *dispatcher);

/* Marks `job` lost (another relay owns it) and frees it unless a POST or a
 * finishing command still refers to it. */
void webhook_delivery_drop_lost(struct webhook_job *job);

#endif
