#include "store.h"

#include <hiredis/async.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_link.h"

struct pending_reply {
    store_reply_fn callback;
    void *privdata;
};

static struct redis_link commands_link;
static void (*ready_callback)(void);
static uint64_t script_errors;

static void on_link_ready(struct redis_link *unused)
{
    (void)unused;
    ready_callback();
}

static void on_link_lost(struct redis_link *unused)
{
    (void)unused;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct pending_reply *pending = privdata;
    redisReply *reply = r;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        /* A script error is a bug or a Redis that refuses writes (OOM,
         * read-only replica); log the first and every 1000th. */
        if (script_errors++ % 1000 == 0)
            log_error("redis commands: command failed: %s (%llu errors so far)", reply->str,
                      (unsigned long long)script_errors);
    }
    if (pending->callback)
        pending->callback(reply, pending->privdata);
    free(pending);
}

void store_start(void (*ready)(void))
{
    ready_callback = ready;
    commands_link.name = "commands";
    commands_link.ready = on_link_ready;
    commands_link.lost = on_link_lost;
    redis_link_start(&commands_link);
}

void store_stop(void)
{
    redis_link_stop(&commands_link);
}

bool store_connected(void)
{
    return commands_link.connected;
}

uint64_t store_reconnects(void)
{
    return commands_link.reconnects;
}

int store_eval(const char *script, int argc, const char **argv, const size_t *lengths,
               store_reply_fn callback, void *privdata)
{
    if (!commands_link.connected)
        return -1;

    /* EVAL <script> 0 <argv...> */
    int total = argc + 3;
    const char **args = malloc((size_t)total * sizeof *args);
    size_t *lens = malloc((size_t)total * sizeof *lens);
    struct pending_reply *pending = malloc(sizeof *pending);
    if (!args || !lens || !pending) {
        log_error("out of memory queueing a Redis script");
        abort();
    }
    args[0] = "EVAL";
    lens[0] = 4;
    args[1] = script;
    lens[1] = strlen(script);
    args[2] = "0";
    lens[2] = 1;
    for (int i = 0; i < argc; i++) {
        args[i + 3] = argv[i];
        lens[i + 3] = lengths ? lengths[i] : strlen(argv[i]);
    }
    pending->callback = callback;
    pending->privdata = privdata;

    int status = redisAsyncCommandArgv(commands_link.context, on_reply, pending, total, args, lens);
    free(args);
    free(lens);
    if (status != REDIS_OK) {
        free(pending);
        return -1;
    }
    return 0;
}

int store_command(const char *format, ...)
{
    if (!commands_link.connected)
        return -1;

    struct pending_reply *pending = calloc(1, sizeof *pending);
    if (!pending) {
        log_error("out of memory queueing a Redis command");
        abort();
    }
    va_list ap;
    va_start(ap, format);
    int status = redisvAsyncCommand(commands_link.context, on_reply, pending, format, ap);
    va_end(ap);
    if (status != REDIS_OK) {
        free(pending);
        return -1;
    }
    return 0;
}
