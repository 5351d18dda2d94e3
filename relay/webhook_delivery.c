/* Delivering held webhook jobs: batching the due jobs of each endpoint into
 * POSTs, retrying failures with exponential backoff, and acknowledging or
 * parking each job once every endpoint is done with it.
 *
 * Attempts are counted per job and endpoint. A job that one endpoint
 * accepted and another keeps rejecting is sent again only to the one that
 * rejects it, and is parked with that endpoint's URL and last error. */
#include "webhook_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "signature.h"

/* Repeated failures of one endpoint are logged at most once per interval. */
#define WEBHOOK_FAILURE_LOG_INTERVAL_MS 60000

/* Acknowledges the job, then copies it to the parked stream once per
 * endpoint that gave up on it. The XACK goes first, so a missing group
 * (Redis lost it) writes nothing and the caller drops the job.
 * KEYS[1] stream, KEYS[2] parked stream, ARGV[1] group, ARGV[2] job id,
 * ARGV[3] parked stream max length, ARGV[4] number of entries, then per
 * entry its field count and the fields. */
static const char park_script[] =
    "local acked = redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "if type(acked) == 'table' and acked.err then return acked end\n"
    "local at = 5\n"
    "for _ = 1, tonumber(ARGV[4]) do\n"
    "  local count = tonumber(ARGV[at])\n"
    "  local fields = {}\n"
    "  for i = 1, count do fields[i] = ARGV[at + i] end\n"
    "  at = at + count + 1\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))\n"
    "end\n"
    "return acked\n";

/* One POST in flight and the jobs it carries. */
struct webhook_delivery {
    struct webhook_dispatcher *dispatcher;
    struct webhook_delivery *prev;
    struct webhook_delivery *next;
    struct webhook_app *app;
    size_t endpoint_index;
    struct webhook_job **jobs;
    size_t job_count;
    struct webhook_post *post;
};

/* Jobs of one XACK or park command, until Redis replies. */
struct webhook_finish {
    struct webhook_app *app;
    bool park;
    size_t job_count;
    struct webhook_job *jobs[];
};

static uint64_t wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------------
 * Jobs
 * ------------------------------------------------------------------------ */

void webhook_delivery_prepare_job(struct webhook_job *job)
{
    const struct app_config *config = job->app->config;
    job->targets = calloc(config->webhook_count, sizeof *job->targets);
    if (!job->targets) {
        fprintf(stderr, "herald-relay: out of memory\n");
        abort();
    }

    for (size_t i = 0; i < config->webhook_count; i++) {
        struct webhook_target *target = &job->targets[i];
        if (!job->invalid && (config->webhooks[i].event_types & job->event.type)) {
            target->state = WEBHOOK_TARGET_WAITING;
            job->open_targets++;
        } else {
            target->state = WEBHOOK_TARGET_DONE;
        }
    }
    job->phase = job->open_targets > 0 ? WEBHOOK_JOB_DELIVERING : WEBHOOK_JOB_FINISHABLE;
}

void webhook_delivery_drop_lost(struct webhook_job *job)
{
    job->lost = true;
    if (job->sending == 0 && job->phase != WEBHOOK_JOB_FINISHING)
        webhook_job_free(job);
}

/* ------------------------------------------------------------------------
 * Acknowledging and parking
 * ------------------------------------------------------------------------ */

static bool job_needs_park(const struct webhook_job *job)
{
    if (job->invalid)
        return true;
    for (size_t i = 0; i < job->app->config->webhook_count; i++) {
        if (job->targets[i].state == WEBHOOK_TARGET_GAVE_UP)
            return true;
    }
    return false;
}

static void log_parked(const struct webhook_job *job)
{
    const struct webhook_app *app = job->app;
    const char *name = job->event.type ? config_webhook_event_name(job->event.type) : "-";
    const char *channel = job->event.channel ? job->event.channel : "-";

    if (job->invalid) {
        log_warn("webhook: parked job app=%s id=%s in %s: %s", app->config->id, job->id,
                 app->parked_key, job->invalid);
        return;
    }
    for (size_t i = 0; i < app->config->webhook_count; i++) {
        const struct webhook_target *target = &job->targets[i];
        if (target->state != WEBHOOK_TARGET_GAVE_UP)
            continue;
        log_warn("webhook: parked job app=%s id=%s name=%s channel=%s in %s after %d failed "
                 "attempts to url=%s, the last: %s",
                 app->config->id, job->id, name, channel, app->parked_key, target->attempts,
                 app->endpoints[i].endpoint.display_url ? app->endpoints[i].endpoint.display_url
                                                        : "(invalid URL)",
                 target->last_error ? target->last_error : "unknown error");
    }
}

static size_t count_parked_entries(const struct webhook_job *job)
{
    if (job->invalid)
        return 1;
    size_t entries = 0;
    for (size_t i = 0; i < job->app->config->webhook_count; i++) {
        if (job->targets[i].state == WEBHOOK_TARGET_GAVE_UP)
            entries++;
    }
    return entries;
}

static void on_finished(void *arg, const redisReply *reply)
{
    struct webhook_finish *finish = arg;
    struct webhook_app *app = finish->app;
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    if (dispatcher->closing) {
        free(finish);
        return;
    }

    bool ok = reply && reply->type != REDIS_REPLY_ERROR;
    /* NOGROUP: Redis lost the stream's group, and with it the pending
     * entries, so there is nothing left to acknowledge. */
    bool group_lost = reply && reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "NOGROUP");
    if (group_lost)
        app->group = WEBHOOK_GROUP_UNKNOWN;

    for (size_t i = 0; i < finish->job_count; i++) {
        struct webhook_job *job = finish->jobs[i];
        if (ok && finish->park) {
            app->parked += count_parked_entries(job);
            log_parked(job);
        }
        if (ok || group_lost || job->lost) {
            webhook_job_free(job);
        } else {
            /* The next tick sends the command again. */
            job->phase = WEBHOOK_JOB_FINISHABLE;
        }
    }
    free(finish);
    webhook_read_next(dispatcher);
}

static struct webhook_finish *finish_create(struct webhook_app *app, bool park, size_t capacity)
{
    struct webhook_finish *finish =
        malloc(sizeof *finish + (capacity ? capacity : 1) * sizeof finish->jobs[0]);
    if (!finish)
        return NULL;
    finish->app = app;
    finish->park = park;
    finish->job_count = 0;
    return finish;
}

/* Appends one parked stream entry to `argv`: its field count, the job's
 * own fields, job_id, then `extra` (name and value pairs ending with NULL)
 * and parked_ms. `numbers` must have room for two formatted numbers.
 * Returns the new argument count. */
static size_t append_parked_entry(const struct webhook_job *job, const char **argv, size_t argc,
                                  const char *const *extra, char (*numbers)[24])
{
    char *count_text = numbers[0];
    char *parked_ms = numbers[1];
    argv[argc++] = count_text;
    size_t first = argc;

    for (size_t f = 0; f < job->string_count; f++)
        argv[argc++] = job->strings[f];
    argv[argc++] = "job_id";
    argv[argc++] = job->id;
    for (size_t i = 0; extra[i]; i++)
        argv[argc++] = extra[i];
    snprintf(parked_ms, 24, "%" PRIu64, wall_clock_ms());
    argv[argc++] = "parked_ms";
    argv[argc++] = parked_ms;

    snprintf(count_text, 24, "%zu", argc - first);
    return argc;
}

/* Appends the parked entries of `job`: one with its error when the job is
 * invalid, else one per endpoint that gave up, with url, error and
 * attempts. `numbers` must have room for three per entry. */
static size_t append_parked_entries(const struct webhook_job *job, const char **argv,
                                    size_t argc, char (*numbers)[24])
{
    if (job->invalid) {
        const char *extra[] = { "error", job->invalid, NULL };
        return append_parked_entry(job, argv, argc, extra, numbers);
    }

    const struct webhook_app *app = job->app;
    for (size_t i = 0; i < app->config->webhook_count; i++) {
        const struct webhook_target *target = &job->targets[i];
        if (target->state != WEBHOOK_TARGET_GAVE_UP)
            continue;

        char *attempts = numbers[2];
        snprintf(attempts, 24, "%d", target->attempts);
        const char *url = app->endpoints[i].endpoint.display_url
                              ? app->endpoints[i].endpoint.display_url
                              : "(invalid URL)";
        const char *extra[] = {
            "url", url,
            "error", target->last_error ? target->last_error : "unknown error",
            "attempts", attempts,
            NULL,
        };
        argc = append_parked_entry(job, argv, argc, extra, numbers);
        numbers += 3;
    }
    return argc;
}

static void park_job(struct webhook_app *app, struct webhook_job *job)
{
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    struct webhook_finish *finish = finish_create(app, true, 1);
    if (!finish)
        return;
    finish->jobs[finish->job_count++] = job;

    size_t entries = count_parked_entries(job);
    /* 9 arguments before the entries. Per entry: the field count, the
     * job's fields and at most 10 added strings (job_id, url, error,
     * attempts and parked_ms with their values). */
    size_t capacity = 9 + entries * (1 + job->string_count + 10);
    const char **argv = malloc(capacity * sizeof *argv);
    size_t *lengths = malloc(capacity * sizeof *lengths);
    char(*numbers)[24] = malloc(entries * 3 * sizeof *numbers);
    char maxlen[16];
    char entry_count[16];
    if (!argv || !lengths || !numbers) {
        free(argv);
        free(lengths);
        free(numbers);
        free(finish);
        return;
    }
    snprintf(maxlen, sizeof maxlen, "%d", dispatcher->cfg->webhook_stream_max_length);
    snprintf(entry_count, sizeof entry_count, "%zu", entries);

    size_t argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = park_script;
    argv[argc++] = "2";
    argv[argc++] = app->stream_key;
    argv[argc++] = app->parked_key;
    argv[argc++] = WEBHOOK_GROUP;
    argv[argc++] = job->id;
    argv[argc++] = maxlen;
    argv[argc++] = entry_count;
    argc = append_parked_entries(job, argv, argc, numbers);

    /* Field values may contain NUL bytes, so they keep their own lengths. */
    for (size_t i = 0; i < argc; i++) {
        lengths[i] = strlen(argv[i]);
        for (size_t f = 0; f < job->string_count; f++) {
            if (argv[i] == job->strings[f])
                lengths[i] = job->lengths[f];
        }
    }

    if (publisher_command(dispatcher->writer, (int)argc, argv, lengths, on_finished, finish) == 0)
        job->phase = WEBHOOK_JOB_FINISHING;
    else
        free(finish);
    free(argv);
    free(lengths);
    free(numbers);
}

static void ack_jobs(struct webhook_app *app, size_t count)
{
    struct webhook_finish *finish = finish_create(app, false, count);
    const char **argv = malloc((3 + count) * sizeof *argv);
    size_t *lengths = malloc((3 + count) * sizeof *lengths);
    if (!finish || !argv || !lengths) {
        free(finish);
        free(argv);
        free(lengths);
        return;
    }

    size_t argc = 0;
    argv[argc++] = "XACK";
    argv[argc++] = app->stream_key;
    argv[argc++] = WEBHOOK_GROUP;
    for (struct webhook_job *job = app->jobs; job && finish->job_count < count; job = job->next) {
        if (job->phase != WEBHOOK_JOB_FINISHABLE || job_needs_park(job))
            continue;
        finish->jobs[finish->job_count++] = job;
        argv[argc++] = job->id;
    }
    for (size_t i = 0; i < argc; i++)
        lengths[i] = strlen(argv[i]);

    if (publisher_command(app->dispatcher->writer, (int)argc, argv, lengths, on_finished,
                          finish) == 0) {
        for (size_t i = 0; i < finish->job_count; i++)
            finish->jobs[i]->phase = WEBHOOK_JOB_FINISHING;
    } else {
        free(finish);
    }
    free(argv);
    free(lengths);
}

void webhook_delivery_finish_jobs(struct webhook_app *app)
{
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    if (dispatcher->closing || !publisher_ready(dispatcher->writer))
        return;

    size_t to_ack = 0;
    struct webhook_job *next;
    for (struct webhook_job *job = app->jobs; job; job = next) {
        next = job->next;
        if (job->phase != WEBHOOK_JOB_FINISHABLE)
            continue;
        if (job->lost) {
            /* Another relay owns it now and finishes it. */
            webhook_job_free(job);
        } else if (job_needs_park(job)) {
            park_job(app, job);
        } else {
            to_ack++;
        }
    }
    if (to_ack > 0)
        ack_jobs(app, to_ack);
}

/* ------------------------------------------------------------------------
 * Outcome of a POST
 * ------------------------------------------------------------------------ */

static uint64_t retry_delay_ms(struct webhook_dispatcher *dispatcher, int attempts)
{
    uint64_t delay = (uint64_t)dispatcher->cfg->webhook_retry_initial_ms;
    uint64_t max = (uint64_t)dispatcher->cfg->webhook_retry_max_ms;
    for (int i = 1; i < attempts && delay < max; i++)
        delay *= 2;
    if (delay > max)
        delay = max;
    /* Up to a quarter less, so the retries of many jobs spread out. */
    return delay - webhook_random(dispatcher) % (delay / 4 + 1);
}

static void log_outcome(struct webhook_app *app, struct webhook_endpoint_state *state,
                        size_t job_count, const char *error)
{
    const char *url = state->endpoint.display_url ? state->endpoint.display_url : "(invalid URL)";
    uint64_t now = webhook_monotonic_ms();

    if (!error) {
        if (state->failing)
            log_info("webhook: app=%s url=%s: delivering again after %lu failed POSTs",
                     app->config->id, url, state->failures);
        state->failing = false;
        state->failures = 0;
        state->failures_not_logged = 0;
        return;
    }

    state->failures++;
    if (state->failing && now - state->failure_logged_ms < WEBHOOK_FAILURE_LOG_INTERVAL_MS) {
        state->failures_not_logged++;
        return;
    }
    const struct herald_config *cfg = app->dispatcher->cfg;
    if (state->failures_not_logged > 0)
        log_warn("webhook: app=%s url=%s: POST of %zu events failed: %s (%lu more failed POSTs "
                 "since the last report); each event is retried with backoff up to %d ms and "
                 "parked after %d attempts",
                 app->config->id, url, job_count, error, state->failures_not_logged,
                 cfg->webhook_retry_max_ms, cfg->webhook_max_attempts);
    else
        log_warn("webhook: app=%s url=%s: POST of %zu events failed: %s; each event is retried "
                 "with backoff up to %d ms and parked after %d attempts",
                 app->config->id, url, job_count, error, cfg->webhook_retry_max_ms,
                 cfg->webhook_max_attempts);
    state->failing = true;
    state->failure_logged_ms = now;
    state->failures_not_logged = 0;
}

static void delivery_free(struct webhook_delivery *delivery)
{
    struct webhook_dispatcher *dispatcher = delivery->dispatcher;
    if (delivery->prev)
        delivery->prev->next = delivery->next;
    else
        dispatcher->deliveries = delivery->next;
    if (delivery->next)
        delivery->next->prev = delivery->prev;
    free(delivery->jobs);
    free(delivery);
}

static void delivery_complete(struct webhook_delivery *delivery, const char *error)
{
    struct webhook_app *app = delivery->app;
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    struct webhook_endpoint_state *state = &app->endpoints[delivery->endpoint_index];
    uint64_t now = webhook_monotonic_ms();
    state->posts_in_flight--;
    log_outcome(app, state, delivery->job_count, error);

    for (size_t i = 0; i < delivery->job_count; i++) {
        struct webhook_job *job = delivery->jobs[i];
        struct webhook_target *target = &job->targets[delivery->endpoint_index];
        job->sending--;

        if (job->lost) {
            target->state = WEBHOOK_TARGET_DONE;
            if (job->sending == 0)
                webhook_job_free(job);
            continue;
        }

        if (!error) {
            target->state = WEBHOOK_TARGET_DONE;
            job->open_targets--;
            app->delivered++;
        } else {
            app->failed++;
            free(target->last_error);
            target->last_error = webhook_format("%s", error);
            if (target->attempts >= dispatcher->cfg->webhook_max_attempts) {
                target->state = WEBHOOK_TARGET_GAVE_UP;
                job->open_targets--;
            } else {
                target->state = WEBHOOK_TARGET_WAITING;
                target->due_ms = now + retry_delay_ms(dispatcher, target->attempts);
                app->retries++;
            }
        }
        if (job->open_targets == 0 && job->phase == WEBHOOK_JOB_DELIVERING)
            job->phase = WEBHOOK_JOB_FINISHABLE;
    }

    delivery_free(delivery);
    webhook_delivery_finish_jobs(app);
    webhook_delivery_request_schedule(dispatcher);
}

static void on_post_done(void *arg, const struct webhook_post_result *result)
{
    struct webhook_delivery *delivery = arg;
    delivery->post = NULL;
    delivery_complete(delivery, result->error);
}

/* ------------------------------------------------------------------------
 * Starting POSTs
 * ------------------------------------------------------------------------ */

static void delivery_start(struct webhook_app *app, size_t endpoint_index,
                           struct webhook_job **jobs, size_t job_count)
{
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    struct webhook_endpoint_state *state = &app->endpoints[endpoint_index];
    struct webhook_delivery *delivery = calloc(1, sizeof *delivery);
    if (!delivery) {
        free(jobs);
        return;
    }
    delivery->dispatcher = dispatcher;
    delivery->app = app;
    delivery->endpoint_index = endpoint_index;
    delivery->jobs = jobs;
    delivery->job_count = job_count;
    delivery->next = dispatcher->deliveries;
    if (dispatcher->deliveries)
        dispatcher->deliveries->prev = delivery;
    dispatcher->deliveries = delivery;

    const struct webhook_job_event *events[job_count];
    for (size_t i = 0; i < job_count; i++) {
        struct webhook_target *target = &jobs[i]->targets[endpoint_index];
        target->state = WEBHOOK_TARGET_SENDING;
        target->attempts++;
        jobs[i]->sending++;
        events[i] = &jobs[i]->event;
    }
    state->posts_in_flight++;

    if (state->unusable) {
        delivery_complete(delivery, state->unusable);
        return;
    }

    struct strbuf body;
    strbuf_init(&body);
    webhook_job_render_body(&body, wall_clock_ms(), events, job_count);
    char signature[SIGNATURE_HEX_LEN + 1];
    signature_hmac_sha256_hex(app->config->secret, body.data, body.len, signature);

    char err[160];
    delivery->post = webhook_post_start(dispatcher->client, &state->endpoint, app->config->key,
                                        signature, body.data, body.len,
                                        dispatcher->cfg->webhook_timeout, on_post_done, delivery,
                                        err, sizeof err);
    strbuf_free(&body);
    if (!delivery->post)
        delivery_complete(delivery, err);
}

/* Collects up to the batch size of `app`'s jobs that are due for endpoint
 * `endpoint_index`, and lowers `next_due_ms` to the earliest one not yet
 * due. Returns the number collected into a new array at *jobs. */
static size_t collect_due_jobs(struct webhook_app *app, size_t endpoint_index, uint64_t now,
                               uint64_t *next_due_ms, struct webhook_job ***jobs)
{
    size_t batch = (size_t)app->dispatcher->cfg->webhook_batch_size;
    size_t count = 0;
    *jobs = NULL;

    for (struct webhook_job *job = app->jobs; job; job = job->next) {
        if (job->phase != WEBHOOK_JOB_DELIVERING || job->lost)
            continue;
        const struct webhook_target *target = &job->targets[endpoint_index];
        if (target->state != WEBHOOK_TARGET_WAITING)
            continue;
        if (target->due_ms > now) {
            if (target->due_ms < *next_due_ms)
                *next_due_ms = target->due_ms;
            continue;
        }
        if (!*jobs) {
            *jobs = malloc(batch * sizeof **jobs);
            if (!*jobs)
                return 0;
        }
        (*jobs)[count++] = job;
        if (count == batch)
            break;
    }
    return count;
}

void webhook_delivery_schedule(struct webhook_dispatcher *dispatcher)
{
    if (dispatcher->stopping || dispatcher->closing)
        return;

    uint64_t now = webhook_monotonic_ms();
    uint64_t next_due_ms = UINT64_MAX;
    for (size_t a = 0; a < dispatcher->app_count; a++) {
        struct webhook_app *app = &dispatcher->apps[a];
        for (size_t e = 0; e < app->config->webhook_count; e++) {
            while (app->endpoints[e].posts_in_flight < WEBHOOK_POSTS_PER_ENDPOINT) {
                struct webhook_job **jobs;
                size_t count = collect_due_jobs(app, e, now, &next_due_ms, &jobs);
                if (count == 0) {
                    free(jobs);
                    break;
                }
                delivery_start(app, e, jobs, count);
            }
        }
    }

    evtimer_del(dispatcher->due_timer);
    if (next_due_ms != UINT64_MAX) {
        uint64_t wait_ms = next_due_ms > now ? next_due_ms - now : 0;
        struct timeval delay = { .tv_sec = (time_t)(wait_ms / 1000),
                                 .tv_usec = (suseconds_t)(wait_ms % 1000) * 1000 };
        evtimer_add(dispatcher->due_timer, &delay);
    }
}

static void on_schedule(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    webhook_delivery_schedule(arg);
}

void webhook_delivery_request_schedule(struct webhook_dispatcher *dispatcher)
{
    if (!dispatcher->stopping && !dispatcher->closing)
        event_active(dispatcher->schedule, EV_TIMEOUT, 0);
}

int webhook_delivery_init(struct webhook_dispatcher *dispatcher)
{
    dispatcher->schedule = event_new(dispatcher->base, -1, 0, on_schedule, dispatcher);
    dispatcher->due_timer = evtimer_new(dispatcher->base, on_schedule, dispatcher);
    return dispatcher->schedule && dispatcher->due_timer ? 0 : -1;
}

void webhook_delivery_abandon_all(struct webhook_dispatcher *dispatcher)
{
    while (dispatcher->deliveries) {
        struct webhook_delivery *delivery = dispatcher->deliveries;
        webhook_post_cancel(delivery->post);
        for (size_t i = 0; i < delivery->job_count; i++)
            delivery->jobs[i]->sending--;
        delivery_free(delivery);
    }
}
