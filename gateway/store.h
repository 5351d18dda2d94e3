/* The gateway's Redis command connection: presence and subscription-count
 * scripts, heartbeats. Pub/sub lives on its own connection (bus.h). */
#ifndef HERALD_GATEWAY_STORE_H
#define HERALD_GATEWAY_STORE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called with the reply, or with NULL when the command failed because the
 * connection dropped. The reply is freed after the callback returns. */
typedef void (*store_reply_fn)(redisReply *reply, void *privdata);

/* `ready` runs on every (re)connection, before any other command goes out. */
void store_start(void (*ready)(void));
void store_stop(void);
bool store_connected(void);
uint64_t store_reconnects(void);

/* Runs a Lua script with no KEYS and the given ARGV; the scripts of
 * scripts.h go by EVALSHA, anything else by EVAL. `callback` may be
 * NULL. Returns 0 when queued, -1 when Redis is not connected. */
int store_eval(const char *script, int argc, const char **argv, const size_t *lengths,
               store_reply_fn callback, void *privdata);

/* Sends a printf-style hiredis command and ignores the reply. */
int store_command(const char *format, ...);

/* Sends a printf-style hiredis command; `callback` gets the reply. */
int store_query(store_reply_fn callback, void *privdata, const char *format, ...);

#endif
