#include "redis_uv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>

/* hiredis reads at most 16 KiB per call. Under load the adapter reads on,
 * up to this many times (256 KiB), while FIONREAD shows more bytes. The
 * after-read hook (the gateway's flush) then sends each client more frames
 * per writev. With little traffic the first read takes everything. */
#define READS_PER_WAKE 16

/* Returns whether the socket of `context` has unread bytes. */
static bool bytes_pending(redisAsyncContext *context)
{
    int pending = 0;
    return ioctl(context->c.fd, FIONREAD, &pending) == 0 && pending > 0;
}

struct redis_uv {
    redisAsyncContext *context; /* NULL once hiredis has cleaned up */
    uv_poll_t poll;
    int events;
    void (*after_read)(void);
};

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct redis_uv *adapter = handle->data;

    /* A failed connect or a reset shows up as an error status; let hiredis
     * find out which by trying both directions. */
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE;

    if (adapter->context && (events & UV_READABLE)) {
        void (*after_read)(void) = adapter->after_read;
        int reads = 0;
        do {
            redisAsyncHandleRead(adapter->context);
        } while (++reads < READS_PER_WAKE && adapter->context && bytes_pending(adapter->context));
        /* Called even when the read freed the context and the adapter's
         * fields are about to go: the hook does not touch the adapter. */
        if (after_read)
            after_read();
    }
    /* Reading may have freed the context, which clears adapter->context. */
    if (adapter->context && (events & UV_WRITABLE))
        redisAsyncHandleWrite(adapter->context);
}

static void update_events(struct redis_uv *adapter, int events)
{
    adapter->events = events;
    if (events)
        uv_poll_start(&adapter->poll, events, on_poll);
    else
        uv_poll_stop(&adapter->poll);
}

static void add_read(void *data)
{
    struct redis_uv *adapter = data;
    update_events(adapter, adapter->events | UV_READABLE);
}

static void del_read(void *data)
{
    struct redis_uv *adapter = data;
    update_events(adapter, adapter->events & ~UV_READABLE);
}

static void add_write(void *data)
{
    struct redis_uv *adapter = data;
    update_events(adapter, adapter->events | UV_WRITABLE);
}

static void del_write(void *data)
{
    struct redis_uv *adapter = data;
    update_events(adapter, adapter->events & ~UV_WRITABLE);
}

static void on_poll_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void cleanup(void *data)
{
    struct redis_uv *adapter = data;
    adapter->context = NULL;
    uv_poll_stop(&adapter->poll);
    uv_close((uv_handle_t *)&adapter->poll, on_poll_closed);
}

int redis_uv_attach(redisAsyncContext *context, uv_loop_t *loop, void (*after_read)(void))
{
    if (context->ev.data)
        return -1;

    struct redis_uv *adapter = calloc(1, sizeof *adapter);
    if (!adapter)
        return -1;
    if (uv_poll_init_socket(loop, &adapter->poll, context->c.fd) != 0) {
        free(adapter);
        return -1;
    }
    adapter->context = context;
    adapter->after_read = after_read;
    adapter->poll.data = adapter;

    context->ev.data = adapter;
    context->ev.addRead = add_read;
    context->ev.delRead = del_read;
    context->ev.addWrite = add_write;
    context->ev.delWrite = del_write;
    context->ev.cleanup = cleanup;
    return 0;
}
