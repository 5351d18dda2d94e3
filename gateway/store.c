#include "store.h"

#include <hiredis/async.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_link.h"
#include "scripts.h"

struct pending_reply {
    store_reply_fn callback;
    void *privdata;
};

static struct redis_link commands_link;
static void (*ready_callback)(void);
static uint64_t script_errors;

/* Scripts run by SHA1 (EVALSHA), so each call sends a few dozen bytes
 * instead of the script text. They are loaded again on every connect,
 * before any EVALSHA, because a restarted Redis has forgotten them. */
struct known_script {
    const char *text;
    char sha1[2 * SHA_DIGEST_LENGTH + 1];
};

static struct known_script known_scripts[] = {
    { scripts_presence_join, "" }, { scripts_presence_leave, "" }, { scripts_channel_count, "" },
    { scripts_node_sync, "" },     { scripts_node_reap, "" },     { scripts_app_connections, "" },
    { scripts_user_online, "" },   { scripts_user_offline, "" },
};

#define KNOWN_SCRIPT_COUNT (sizeof known_scripts / sizeof known_scripts[0])

static void compute_script_hashes(void)
{
    for (size_t i = 0; i < KNOWN_SCRIPT_COUNT; i++) {
        unsigned char digest[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)known_scripts[i].text, strlen(known_scripts[i].text), digest);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++)
            snprintf(known_scripts[i].sha1 + 2 * j, 3, "%02x", digest[j]);
    }
}

static const char *script_sha1(const char *script)
{
    for (size_t i = 0; i < KNOWN_SCRIPT_COUNT; i++) {
        if (known_scripts[i].text == script)
            return known_scripts[i].sha1;
    }
    return NULL;
}

static void on_link_ready(struct redis_link *unused)
{
    (void)unused;
    for (size_t i = 0; i < KNOWN_SCRIPT_COUNT; i++)
        store_command("SCRIPT LOAD %s", known_scripts[i].text);
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

    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* Someone flushed the script cache; reconnecting loads it again. */
        redis_link_reset(&commands_link, "Redis lost the loaded scripts");
    } else if (reply && reply->type == REDIS_REPLY_ERROR) {
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
    compute_script_hashes();
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
    const char *sha1 = script_sha1(script);
    if (sha1) {
        args[0] = "EVALSHA";
        args[1] = sha1;
    } else {
        args[0] = "EVAL";
        args[1] = script;
    }
    lens[0] = strlen(args[0]);
    lens[1] = strlen(args[1]);
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

static int store_vquery(store_reply_fn callback, void *privdata, const char *format, va_list ap)
{
    if (!commands_link.connected)
        return -1;

    struct pending_reply *pending = malloc(sizeof *pending);
    if (!pending) {
        log_error("out of memory queueing a Redis command");
        abort();
    }
    pending->callback = callback;
    pending->privdata = privdata;
    if (redisvAsyncCommand(commands_link.context, on_reply, pending, format, ap) != REDIS_OK) {
        free(pending);
        return -1;
    }
    return 0;
}

int store_command(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int status = store_vquery(NULL, NULL, format, ap);
    va_end(ap);
    return status;
}

int store_query(store_reply_fn callback, void *privdata, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int status = store_vquery(callback, privdata, format, ap);
    va_end(ap);
    return status;
}
