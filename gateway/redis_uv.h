/* hiredis event adapter for libuv.
 *
 * Replaces the adapter shipped with hiredis 0.14 (adapters/libuv.h), which
 * ignores a poll error: a reconnect to a Redis that refuses the connection
 * then never reports back, and the link hangs forever. Here an error is
 * handed to hiredis as readiness, so hiredis reads the socket error and
 * runs the connect or disconnect callback. */
#ifndef HERALD_GATEWAY_REDIS_UV_H
#define HERALD_GATEWAY_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Returns 0, or -1 when the context already has an adapter or allocation
 * failed. `after_read`, when not NULL, runs after hiredis has handled each
 * batch of replies read from the socket. */
int redis_uv_attach(redisAsyncContext *context, uv_loop_t *loop, void (*after_read)(void));

#endif
