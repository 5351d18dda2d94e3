/* The webhook dispatcher's lifecycle and its side of Redis. It creates the
 * consumer group and reads jobs with XREADGROUP. It takes over the jobs of
 * dead relays with XAUTOCLAIM and renews its claim on the jobs it has in
 * memory. It also reads each app's queue depth for the metrics. */
#include "webhook_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "metrics.h"

/* How long one XREADGROUP waits for new jobs. It must stay well below the
 * publisher's 10 s reply timeout, which would otherwise drop the
 * connection, and it bounds how long an app that regained room waits to
 * be read again. */
#define WEBHOOK_READ_BLOCK_MS 2000
#define WEBHOOK_TICK_MAX_MS 1000
#define WEBHOOK_DEPTH_INTERVAL_MS 5000
/* A consumer of a relay that stopped stays in the group until it has no
 * pending jobs and has been idle this long. Live relays read every
 * WEBHOOK_READ_BLOCK_MS, so their consumers never get this idle. */
#define WEBHOOK_CONSUMER_IDLE_MAX_MS (60 * 60 * 1000)

/* Creates the consumer group, and the stream with it, unless it exists.
 * KEYS[1] stream, ARGV[1] group. */
static const char group_create_script[] =
    "local reply = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')\n"
    "if type(reply) == 'table' and reply.err and\n"
    "   not string.find(reply.err, 'BUSYGROUP', 1, true) then\n"
    "  return reply\n"
    "end\n"
    "return 1\n";

/* Resets the idle time of each listed job that is still pending for this
 * consumer, so no other relay claims it, and returns the ids that are not:
 * another relay claimed them, or they were acknowledged or trimmed.
 * KEYS[1] stream, ARGV[1] group, ARGV[2] consumer, ARGV[3...] ids. */
static const char renew_script[] =
    "local lost = {}\n"
    "for i = 3, #ARGV do\n"
    "  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "  if entry[1] and entry[1][2] == ARGV[2] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "  else\n"
    "    lost[#lost + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    "return lost\n";

/* Returns {pending, lag or -1 when Redis cannot compute it, stream length,
 * consumers removed}, after removing the group's consumers other than
 * ARGV[3] that have no pending job and were idle longer than ARGV[2] ms.
 * KEYS[1] stream, ARGV[1] group. */
static const char depth_script[] =
    "local function fields(list)\n"
    "  local map = {}\n"
    "  for i = 1, #list, 2 do map[list[i]] = list[i + 1] end\n"
    "  return map\n"
    "end\n"
    "local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])\n"
    "if type(groups) ~= 'table' or groups.err then return {0, -1, 0, 0} end\n"
    "local length = redis.call('XLEN', KEYS[1])\n"
    "local pending, lag = 0, -1\n"
    "local found = false\n"
    "for _, group in ipairs(groups) do\n"
    "  local info = fields(group)\n"
    "  if info['name'] == ARGV[1] then\n"
    "    found = true\n"
    "    pending = info['pending']\n"
    "    if type(info['lag']) == 'number' then lag = info['lag'] end\n"
    "  end\n"
    "end\n"
    "if not found then return {0, -1, length, 0} end\n"
    "local removed = 0\n"
    "for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
    "  local info = fields(consumer)\n"
    "  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) and\n"
    "     info['name'] ~= ARGV[3] then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])\n"
    "    removed = removed + 1\n"
    "  end\n"
    "end\n"
    "return {pending, lag, length, removed}\n";

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

uint64_t webhook_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t webhook_random(struct webhook_dispatcher *dispatcher)
{
    /* xorshift64*: enough to spread retries, not for secrets. */
    uint64_t x = dispatcher->random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    dispatcher->random_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void seed_random(struct webhook_dispatcher *dispatcher)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
    }
    dispatcher->random_state = seed ? seed : 0x9E3779B97F4A7C15ull;
}

char *webhook_format(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int len = vsnprintf(NULL, 0, fmt, args);
    va_end(args);

    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!text) {
        fprintf(stderr, "herald-relay: out of memory\n");
        abort();
    }
    va_start(args, fmt);
    vsnprintf(text, (size_t)len + 1, fmt, args);
    va_end(args);
    return text;
}

static struct webhook_job *find_job(struct webhook_app *app, const char *id, size_t id_len)
{
    for (struct webhook_job *job = app->jobs; job; job = job->next) {
        if (strlen(job->id) == id_len && memcmp(job->id, id, id_len) == 0)
            return job;
    }
    return NULL;
}

void webhook_job_free(struct webhook_job *job)
{
    struct webhook_app *app = job->app;
    if (job->prev)
        job->prev->next = job->next;
    else
        app->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    else
        app->jobs_tail = job->prev;
    app->job_count--;

    for (size_t i = 0; i < job->string_count; i++)
        free(job->strings[i]);
    free(job->strings);
    free(job->lengths);
    if (job->targets) {
        for (size_t i = 0; i < app->config->webhook_count; i++)
            free(job->targets[i].last_error);
        free(job->targets);
    }
    free(job->invalid);
    free(job);
}

void webhook_ignore_reply(void *arg, const redisReply *reply)
{
    /* An error reply was logged by the publisher. */
    (void)arg;
    (void)reply;
}

/* Sends `argc` NUL-terminated arguments on `pub`. */
static int send_command(struct publisher *pub, int argc, const char **argv,
                        publisher_reply_fn *done, void *arg)
{
    size_t lengths[argc];
    for (int i = 0; i < argc; i++)
        lengths[i] = strlen(argv[i]);
    return publisher_command(pub, argc, argv, lengths, done, arg);
}

/* ------------------------------------------------------------------------
 * Jobs from stream entries
 * ------------------------------------------------------------------------ */

/* Creates a job from one [id, [field, value, ...]] entry and appends it to
 * the app. An entry whose fields cannot be sent becomes an invalid job,
 * which gets parked. Returns NULL only when out of memory. */
static struct webhook_job *job_create(struct webhook_app *app, const redisReply *id,
                                      const redisReply *fields)
{
    struct webhook_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->app = app;
    snprintf(job->id, sizeof job->id, "%.*s", (int)id->len, id->str);

    size_t count = fields->elements;
    job->strings = calloc(count ? count : 1, sizeof *job->strings);
    job->lengths = calloc(count ? count : 1, sizeof *job->lengths);
    if (!job->strings || !job->lengths) {
        free(job->strings);
        free(job->lengths);
        free(job);
        return NULL;
    }

    bool strings_only = true;
    for (size_t i = 0; i < count; i++) {
        const redisReply *item = fields->element[i];
        if (item->type != REDIS_REPLY_STRING) {
            strings_only = false;
            continue;
        }
        char *copy = malloc(item->len + 1);
        if (!copy) {
            fprintf(stderr, "herald-relay: out of memory\n");
            abort();
        }
        memcpy(copy, item->str, item->len);
        copy[item->len] = '\0';
        job->strings[job->string_count] = copy;
        job->lengths[job->string_count] = item->len;
        job->string_count++;
    }

    char reason[160];
    if (!strings_only || count % 2 != 0)
        job->invalid = webhook_format("invalid job: the entry's fields are not name and value "
                                      "strings");
    else if (webhook_job_event_parse(&job->event, job->strings, job->lengths, job->string_count,
                                     reason, sizeof reason) != 0)
        job->invalid = webhook_format("invalid job: %s", reason);

    job->prev = app->jobs_tail;
    if (app->jobs_tail)
        app->jobs_tail->next = job;
    else
        app->jobs = job;
    app->jobs_tail = job;
    app->job_count++;

    webhook_delivery_prepare_job(job);
    return job;
}

/* Acknowledges entries that were trimmed from the stream while pending:
 * their fields are gone, so nothing can be sent. */
static void ack_deleted(struct webhook_app *app, const char **ids, size_t count)
{
    if (count == 0)
        return;
    log_warn("webhook: app=%s: %zu pending jobs were trimmed from %s before delivery "
             "(raise webhook_stream_max_length); acknowledging them",
             app->config->id, count, app->stream_key);

    const char *argv[3 + count];
    argv[0] = "XACK";
    argv[1] = app->stream_key;
    argv[2] = WEBHOOK_GROUP;
    for (size_t i = 0; i < count; i++)
        argv[3 + i] = ids[i];
    send_command(app->dispatcher->writer, (int)(3 + count), argv, webhook_ignore_reply, NULL);
}

/* Adds the jobs of an XREADGROUP or XAUTOCLAIM entry list. Returns the
 * number added. */
static size_t add_entries(struct webhook_app *app, const redisReply *entries)
{
    if (!entries || entries->type != REDIS_REPLY_ARRAY)
        return 0;

    size_t added = 0;
    const char *deleted[entries->elements ? entries->elements : 1];
    size_t deleted_count = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *entry = entries->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
            entry->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const redisReply *id = entry->element[0];
        const redisReply *fields = entry->element[1];
        if (find_job(app, id->str, id->len))
            continue;
        if (fields->type != REDIS_REPLY_ARRAY) {
            deleted[deleted_count++] = id->str;
            continue;
        }
        if (job_create(app, id, fields))
            added++;
    }
    ack_deleted(app, deleted, deleted_count);
    return added;
}

/* ------------------------------------------------------------------------
 * Consumer group
 * ------------------------------------------------------------------------ */

static void on_group_created(void *arg, const redisReply *reply)
{
    struct webhook_app *app = arg;
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    if (dispatcher->closing)
        return;

    /* An error reply was logged by the publisher; the next tick retries. */
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        app->group = WEBHOOK_GROUP_UNKNOWN;
        return;
    }
    app->group = WEBHOOK_GROUP_READY;
    log_debug("webhook: app=%s: consumer group %s ready on %s", app->config->id, WEBHOOK_GROUP,
              app->stream_key);
    webhook_read_next(dispatcher);
}

static void create_group(struct webhook_app *app)
{
    const char *argv[] = { "EVAL", group_create_script, "1", app->stream_key, WEBHOOK_GROUP };
    if (send_command(app->dispatcher->writer, 5, argv, on_group_created, app) == 0)
        app->group = WEBHOOK_GROUP_CREATING;
}

/* ------------------------------------------------------------------------
 * Reading new jobs
 * ------------------------------------------------------------------------ */

static struct webhook_app *find_app_by_stream(struct webhook_dispatcher *dispatcher,
                                              const redisReply *key)
{
    if (key->type != REDIS_REPLY_STRING)
        return NULL;
    for (size_t i = 0; i < dispatcher->app_count; i++) {
        struct webhook_app *app = &dispatcher->apps[i];
        if (strlen(app->stream_key) == key->len && memcmp(app->stream_key, key->str, key->len) == 0)
            return app;
    }
    return NULL;
}

static void on_read(void *arg, const redisReply *reply)
{
    struct webhook_dispatcher *dispatcher = arg;
    dispatcher->read_in_flight = false;
    /* A NULL reply means the connection is gone; the tick reads again once
     * it is back. Entries delivered to a lost read stay pending for this
     * consumer and are claimed after webhook_claim_idle. */
    if (dispatcher->closing || dispatcher->stopping || !reply)
        return;

    if (reply->type == REDIS_REPLY_ERROR) {
        /* NOGROUP: Redis lost the group (a restart without persistence),
         * so every app's group is created again. */
        if (strstr(reply->str, "NOGROUP")) {
            for (size_t i = 0; i < dispatcher->app_count; i++)
                dispatcher->apps[i].group = WEBHOOK_GROUP_UNKNOWN;
        }
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *stream = reply->element[i];
            if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2)
                continue;
            struct webhook_app *app = find_app_by_stream(dispatcher, stream->element[0]);
            if (!app)
                continue;
            size_t added = add_entries(app, stream->element[1]);
            if (added > 0)
                log_debug("webhook: app=%s: read %zu jobs", app->config->id, added);
            webhook_delivery_finish_jobs(app);
        }
        webhook_delivery_request_schedule(dispatcher);
    }
    webhook_read_next(dispatcher);
}

void webhook_read_next(struct webhook_dispatcher *dispatcher)
{
    if (dispatcher->stopping || dispatcher->closing || dispatcher->read_in_flight ||
        !publisher_ready(dispatcher->reader))
        return;

    size_t eligible = 0;
    for (size_t i = 0; i < dispatcher->app_count; i++) {
        const struct webhook_app *app = &dispatcher->apps[i];
        if (app->group == WEBHOOK_GROUP_READY && app->job_count < WEBHOOK_HELD_JOBS_MAX)
            eligible++;
    }
    if (eligible == 0)
        return;

    char count[16];
    char block[16];
    snprintf(count, sizeof count, "%d", dispatcher->cfg->webhook_batch_size);
    snprintf(block, sizeof block, "%d", WEBHOOK_READ_BLOCK_MS);

    const char *argv[9 + 2 * eligible];
    int argc = 0;
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = WEBHOOK_GROUP;
    argv[argc++] = dispatcher->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    argv[argc++] = "BLOCK";
    argv[argc++] = block;
    argv[argc++] = "STREAMS";
    for (size_t i = 0; i < dispatcher->app_count; i++) {
        const struct webhook_app *app = &dispatcher->apps[i];
        if (app->group == WEBHOOK_GROUP_READY && app->job_count < WEBHOOK_HELD_JOBS_MAX)
            argv[argc++] = app->stream_key;
    }
    for (size_t i = 0; i < eligible; i++)
        argv[argc++] = ">";

    if (send_command(dispatcher->reader, argc, argv, on_read, dispatcher) == 0)
        dispatcher->read_in_flight = true;
}

/* ------------------------------------------------------------------------
 * Taking over the jobs of dead relays
 * ------------------------------------------------------------------------ */

static void on_claimed(void *arg, const redisReply *reply)
{
    struct webhook_app *app = arg;
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    app->claim_in_flight = false;
    if (dispatcher->closing || dispatcher->stopping || !reply ||
        reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return;

    /* Reply: next start id ("0-0" when the scan is complete), the claimed
     * entries, and the ids of pending entries that no longer exist, which
     * XAUTOCLAIM has already removed from the pending list. */
    const redisReply *cursor = reply->element[0];
    if (cursor->type == REDIS_REPLY_STRING)
        snprintf(app->claim_cursor, sizeof app->claim_cursor, "%.*s", (int)cursor->len,
                 cursor->str);

    size_t added = add_entries(app, reply->element[1]);
    if (added > 0)
        log_info("webhook: app=%s: took over %zu jobs left unacknowledged for more than %d s "
                 "by a relay that stopped",
                 app->config->id, added, dispatcher->cfg->webhook_claim_idle);
    if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY &&
        reply->element[2]->elements > 0)
        log_warn("webhook: app=%s: %zu pending jobs were trimmed from %s before delivery "
                 "(raise webhook_stream_max_length)",
                 app->config->id, reply->element[2]->elements, app->stream_key);

    webhook_delivery_finish_jobs(app);
    webhook_delivery_request_schedule(dispatcher);
}

static void claim_jobs(struct webhook_app *app)
{
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    if (app->claim_in_flight || app->group != WEBHOOK_GROUP_READY ||
        app->job_count >= WEBHOOK_HELD_JOBS_MAX)
        return;

    size_t room = WEBHOOK_HELD_JOBS_MAX - app->job_count;
    size_t batch = (size_t)dispatcher->cfg->webhook_batch_size;
    char idle[24];
    char count[16];
    snprintf(idle, sizeof idle, "%lld", (long long)dispatcher->cfg->webhook_claim_idle * 1000);
    snprintf(count, sizeof count, "%zu", room < batch ? room : batch);

    const char *argv[] = {
        "XAUTOCLAIM", app->stream_key, WEBHOOK_GROUP, dispatcher->consumer, idle,
        app->claim_cursor, "COUNT", count,
    };
    if (send_command(dispatcher->writer, 8, argv, on_claimed, app) == 0)
        app->claim_in_flight = true;
}

/* ------------------------------------------------------------------------
 * Renewing the claim on held jobs
 * ------------------------------------------------------------------------ */

static void on_renewed(void *arg, const redisReply *reply)
{
    struct webhook_app *app = arg;
    struct webhook_dispatcher *dispatcher = app->dispatcher;
    app->renew_in_flight = false;
    if (dispatcher->closing || !reply || reply->type != REDIS_REPLY_ARRAY)
        return;

    size_t lost = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *id = reply->element[i];
        if (id->type != REDIS_REPLY_STRING)
            continue;
        struct webhook_job *job = find_job(app, id->str, id->len);
        /* A job being acknowledged right now is no longer pending either. */
        if (!job || job->phase == WEBHOOK_JOB_FINISHING)
            continue;
        lost++;
        webhook_delivery_drop_lost(job);
    }
    if (lost > 0)
        log_warn("webhook: app=%s: %zu held jobs are no longer pending for this relay (another "
                 "relay took them over after %d s without renewal, or they were trimmed); "
                 "dropping them",
                 app->config->id, lost, dispatcher->cfg->webhook_claim_idle);
    webhook_read_next(dispatcher);
}

static void renew_claims(struct webhook_app *app)
{
    if (app->renew_in_flight || app->job_count == 0)
        return;

    size_t argc = 6 + app->job_count;
    const char **argv = malloc(argc * sizeof *argv);
    if (!argv)
        return;
    argv[0] = "EVAL";
    argv[1] = renew_script;
    argv[2] = "1";
    argv[3] = app->stream_key;
    argv[4] = WEBHOOK_GROUP;
    argv[5] = app->dispatcher->consumer;
    size_t i = 6;
    for (struct webhook_job *job = app->jobs; job; job = job->next)
        argv[i++] = job->id;

    if (send_command(app->dispatcher->writer, (int)argc, argv, on_renewed, app) == 0)
        app->renew_in_flight = true;
    free(argv);
}

/* ------------------------------------------------------------------------
 * Queue depth
 * ------------------------------------------------------------------------ */

static long long integer_element(const redisReply *reply, size_t index)
{
    const redisReply *item = reply->element[index];
    return item->type == REDIS_REPLY_INTEGER ? item->integer : 0;
}

static void on_depth(void *arg, const redisReply *reply)
{
    struct webhook_app *app = arg;
    app->depth_in_flight = false;
    if (app->dispatcher->closing || !reply || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 4)
        return;

    long long pending = integer_element(reply, 0);
    long long lag = integer_element(reply, 1);
    long long length = integer_element(reply, 2);
    long long removed = integer_element(reply, 3);
    if (reply->element[1]->type == REDIS_REPLY_INTEGER && lag >= 0)
        app->queue_depth = pending + lag;
    else
        app->queue_depth = length;

    if (removed > 0)
        log_info("webhook: app=%s: removed %lld consumers of stopped relays from group %s "
                 "(no pending jobs, idle over %d minutes)",
                 app->config->id, removed, WEBHOOK_GROUP, WEBHOOK_CONSUMER_IDLE_MAX_MS / 60000);
}

static void read_depth(struct webhook_app *app)
{
    if (app->depth_in_flight)
        return;
    char idle[24];
    snprintf(idle, sizeof idle, "%d", WEBHOOK_CONSUMER_IDLE_MAX_MS);
    const char *argv[] = {
        "EVAL", depth_script, "1", app->stream_key, WEBHOOK_GROUP, idle,
        app->dispatcher->consumer,
    };
    if (send_command(app->dispatcher->writer, 7, argv, on_depth, app) == 0)
        app->depth_in_flight = true;
}

/* ------------------------------------------------------------------------
 * Periodic work
 * ------------------------------------------------------------------------ */

static uint64_t renew_interval_ms(const struct webhook_dispatcher *dispatcher)
{
    /* Three renewals per claim period, so one delayed renewal never lets
     * another relay claim a job this relay is still working on. */
    return (uint64_t)dispatcher->cfg->webhook_claim_idle * 1000u / 3u;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct webhook_dispatcher *dispatcher = arg;
    uint64_t now = webhook_monotonic_ms();

    if (!dispatcher->stopping && publisher_ready(dispatcher->writer)) {
        for (size_t i = 0; i < dispatcher->app_count; i++) {
            if (dispatcher->apps[i].group == WEBHOOK_GROUP_UNKNOWN)
                create_group(&dispatcher->apps[i]);
        }
    }
    webhook_read_next(dispatcher);

    if (now >= dispatcher->next_renew_ms) {
        dispatcher->next_renew_ms = now + renew_interval_ms(dispatcher);
        for (size_t i = 0; i < dispatcher->app_count; i++)
            renew_claims(&dispatcher->apps[i]);
    }

    if (!dispatcher->stopping) {
        bool period = now >= dispatcher->next_claim_ms;
        if (period)
            dispatcher->next_claim_ms = now + (uint64_t)dispatcher->cfg->webhook_claim_idle * 500u;
        for (size_t i = 0; i < dispatcher->app_count; i++) {
            struct webhook_app *app = &dispatcher->apps[i];
            /* A scan that stopped midway goes on at the next tick. */
            if (period || strcmp(app->claim_cursor, "0-0") != 0)
                claim_jobs(app);
        }
    }

    if (now >= dispatcher->next_depth_ms) {
        dispatcher->next_depth_ms = now + WEBHOOK_DEPTH_INTERVAL_MS;
        for (size_t i = 0; i < dispatcher->app_count; i++)
            read_depth(&dispatcher->apps[i]);
    }

    /* XACK and park commands that failed are sent again. */
    for (size_t i = 0; i < dispatcher->app_count; i++)
        webhook_delivery_finish_jobs(&dispatcher->apps[i]);
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * ------------------------------------------------------------------------ */

static void set_consumer_name(struct webhook_dispatcher *dispatcher)
{
    char host[64];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "relay");
    host[sizeof host - 1] = '\0';
    snprintf(dispatcher->consumer, sizeof dispatcher->consumer, "%s-%ld-%08x", host,
             (long)getpid(), (unsigned)(webhook_random(dispatcher) & 0xffffffffu));
}

static int app_init(struct webhook_dispatcher *dispatcher, struct webhook_app *app,
                    const struct app_config *config)
{
    const char *prefix = dispatcher->cfg->prefix;
    app->dispatcher = dispatcher;
    app->config = config;
    app->stream_key = webhook_format("%swebhooks:{%s}", prefix, config->id);
    app->parked_key = webhook_format("%swebhooks-parked:{%s}", prefix, config->id);
    app->queue_depth = -1;
    snprintf(app->claim_cursor, sizeof app->claim_cursor, "0-0");

    app->endpoints = calloc(config->webhook_count, sizeof *app->endpoints);
    if (!app->endpoints)
        return -1;
    for (size_t i = 0; i < config->webhook_count; i++) {
        struct webhook_endpoint_state *state = &app->endpoints[i];
        char err[160];
        if (webhook_endpoint_init(&state->endpoint, &config->webhooks[i], err, sizeof err) != 0) {
            state->unusable = webhook_format("%s", err);
            log_error("webhook: app=%s webhooks[%zu]: %s; every delivery to it fails, so its "
                      "jobs end up parked",
                      config->id, i, err);
        }
    }
    return 0;
}

static void app_clear(struct webhook_app *app)
{
    while (app->jobs)
        webhook_job_free(app->jobs);
    if (app->endpoints) {
        for (size_t i = 0; i < app->config->webhook_count; i++) {
            webhook_endpoint_clear(&app->endpoints[i].endpoint);
            free(app->endpoints[i].unusable);
        }
        free(app->endpoints);
    }
    free(app->stream_key);
    free(app->parked_key);
}

struct webhook_dispatcher *webhook_dispatcher_create(struct event_base *base,
                                                     const struct herald_config *cfg)
{
    struct webhook_dispatcher *dispatcher = calloc(1, sizeof *dispatcher);
    if (!dispatcher) {
        log_error("webhook: out of memory");
        return NULL;
    }
    dispatcher->base = base;
    dispatcher->cfg = cfg;
    seed_random(dispatcher);
    set_consumer_name(dispatcher);

    size_t with_webhooks = 0;
    for (size_t i = 0; i < cfg->app_count; i++) {
        if (cfg->apps[i].webhook_count > 0)
            with_webhooks++;
    }
    if (with_webhooks == 0)
        return dispatcher;

    dispatcher->apps = calloc(with_webhooks, sizeof *dispatcher->apps);
    if (!dispatcher->apps) {
        log_error("webhook: out of memory");
        webhook_dispatcher_free(dispatcher);
        return NULL;
    }
    for (size_t i = 0; i < cfg->app_count; i++) {
        if (cfg->apps[i].webhook_count == 0)
            continue;
        if (app_init(dispatcher, &dispatcher->apps[dispatcher->app_count++], &cfg->apps[i]) != 0) {
            log_error("webhook: out of memory");
            webhook_dispatcher_free(dispatcher);
            return NULL;
        }
    }

    char err[160];
    dispatcher->client = webhook_client_create(base, err, sizeof err);
    if (!dispatcher->client) {
        log_error("webhook: cannot create the HTTP client: %s", err);
        webhook_dispatcher_free(dispatcher);
        return NULL;
    }
    dispatcher->reader = publisher_create(base, &cfg->redis);
    dispatcher->writer = publisher_create(base, &cfg->redis);
    dispatcher->tick = event_new(base, -1, EV_PERSIST, on_tick, dispatcher);
    if (!dispatcher->reader || !dispatcher->writer || !dispatcher->tick ||
        webhook_delivery_init(dispatcher) != 0) {
        log_error("webhook: out of memory");
        webhook_dispatcher_free(dispatcher);
        return NULL;
    }

    uint64_t tick_ms = renew_interval_ms(dispatcher);
    if (tick_ms > WEBHOOK_TICK_MAX_MS)
        tick_ms = WEBHOOK_TICK_MAX_MS;
    struct timeval interval = { .tv_sec = (time_t)(tick_ms / 1000),
                                .tv_usec = (suseconds_t)(tick_ms % 1000) * 1000 };
    event_add(dispatcher->tick, &interval);

    log_info("webhook: delivering the jobs of %zu apps as consumer %s of group %s",
             dispatcher->app_count, dispatcher->consumer, WEBHOOK_GROUP);
    return dispatcher;
}

void webhook_dispatcher_stop(struct webhook_dispatcher *dispatcher)
{
    if (!dispatcher || dispatcher->stopping)
        return;
    dispatcher->stopping = true;
    if (dispatcher->reader)
        publisher_close(dispatcher->reader);
    if (dispatcher->due_timer)
        evtimer_del(dispatcher->due_timer);
}

void webhook_dispatcher_free(struct webhook_dispatcher *dispatcher)
{
    if (!dispatcher)
        return;

    size_t held = 0;
    for (size_t i = 0; i < dispatcher->app_count; i++)
        held += dispatcher->apps[i].job_count;
    if (held > 0)
        log_info("webhook: leaving %zu jobs unacknowledged; another relay delivers them after "
                 "%d s (webhook_claim_idle)",
                 held, dispatcher->cfg->webhook_claim_idle);

    /* Replies still awaited arrive as NULL while the publishers close, and
     * find `closing` set. */
    dispatcher->closing = true;
    dispatcher->stopping = true;
    publisher_free(dispatcher->reader);
    publisher_free(dispatcher->writer);
    webhook_delivery_abandon_all(dispatcher);
    webhook_client_free(dispatcher->client);

    if (dispatcher->tick)
        event_free(dispatcher->tick);
    if (dispatcher->schedule)
        event_free(dispatcher->schedule);
    if (dispatcher->due_timer)
        event_free(dispatcher->due_timer);
    for (size_t i = 0; i < dispatcher->app_count; i++)
        app_clear(&dispatcher->apps[i]);
    free(dispatcher->apps);
    free(dispatcher);
}

/* ------------------------------------------------------------------------
 * Metrics
 * ------------------------------------------------------------------------ */

static void write_app_counters(struct strbuf *out, const struct webhook_dispatcher *dispatcher,
                               const char *name, const char *help, size_t offset)
{
    for (size_t i = 0; i < dispatcher->app_count; i++) {
        const struct webhook_app *app = &dispatcher->apps[i];
        char labels[160];
        snprintf(labels, sizeof labels, "app=\"%s\"", app->config->id);
        uint64_t value = *(const uint64_t *)((const char *)app + offset);
        metrics_write_counter(out, name, i == 0 ? help : NULL, labels, value);
    }
}

void webhook_write_metrics(struct strbuf *out, void *arg)
{
    const struct webhook_dispatcher *dispatcher = arg;
    if (dispatcher->app_count == 0)
        return;

    strbuf_append_str(out,
                      "# HELP herald_relay_webhook_queue_depth Webhook jobs of the app not yet "
                      "acknowledged: pending in the consumer group plus not yet read, or the "
                      "stream length when Redis cannot compute the lag. Read every 5 s.\n"
                      "# TYPE herald_relay_webhook_queue_depth gauge\n");
    for (size_t i = 0; i < dispatcher->app_count; i++) {
        const struct webhook_app *app = &dispatcher->apps[i];
        if (app->queue_depth >= 0)
            strbuf_appendf(out, "herald_relay_webhook_queue_depth{app=\"%s\"} %lld\n",
                           app->config->id, app->queue_depth);
    }

    write_app_counters(out, dispatcher, "herald_relay_webhooks_delivered_total",
                       "Webhook events this relay delivered to an endpoint that answered 2xx, "
                       "counted once per endpoint.",
                       offsetof(struct webhook_app, delivered));
    write_app_counters(out, dispatcher, "herald_relay_webhooks_failed_total",
                       "Webhook events in POSTs that failed (non-2xx status, timeout or "
                       "connection error), counted once per endpoint and attempt.",
                       offsetof(struct webhook_app, failed));
    write_app_counters(out, dispatcher, "herald_relay_webhooks_retries_total",
                       "Retries scheduled after a failed attempt, one per event and endpoint.",
                       offsetof(struct webhook_app, retries));
    write_app_counters(out, dispatcher, "herald_relay_webhooks_parked_total",
                       "Entries this relay wrote to the parked stream: one per event and "
                       "endpoint that failed webhook_max_attempts times, or per invalid job.",
                       offsetof(struct webhook_app, parked));
}
