#include "liveness.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "gateway.h"
#include "log.h"

#define LIVENESS_TICK_MS 1000

struct liveness_fifo {
    struct connection *head;
    struct connection *tail;
};

static struct liveness_fifo idle_fifo;   /* LIVENESS_IDLE */
static struct liveness_fifo pinged_fifo; /* LIVENESS_PINGED */
static uv_timer_t tick_timer;
static struct message *ping_frame;

static struct liveness_fifo *fifo_of(uint8_t list)
{
    return list == LIVENESS_IDLE ? &idle_fifo : &pinged_fifo;
}

static void fifo_remove(struct connection *conn)
{
    if (conn->liveness_list == LIVENESS_NONE)
        return;

    struct liveness_fifo *fifo = fifo_of(conn->liveness_list);
    if (conn->liveness_prev)
        conn->liveness_prev->liveness_next = conn->liveness_next;
    else
        fifo->head = conn->liveness_next;
    if (conn->liveness_next)
        conn->liveness_next->liveness_prev = conn->liveness_prev;
    else
        fifo->tail = conn->liveness_prev;

    conn->liveness_prev = conn->liveness_next = NULL;
    conn->liveness_list = LIVENESS_NONE;
}

static void fifo_append(struct connection *conn, uint8_t list)
{
    struct liveness_fifo *fifo = fifo_of(list);
    conn->liveness_list = list;
    conn->liveness_since = gateway_now_ms();
    conn->liveness_prev = fifo->tail;
    conn->liveness_next = NULL;
    if (fifo->tail)
        fifo->tail->liveness_next = conn;
    else
        fifo->head = conn;
    fifo->tail = conn;
}

void liveness_track(struct connection *conn)
{
    fifo_append(conn, LIVENESS_IDLE);
}

void liveness_touch(struct connection *conn)
{
    if (conn->liveness_list == LIVENESS_NONE)
        return;
    fifo_remove(conn);
    fifo_append(conn, LIVENESS_IDLE);
}

void liveness_untrack(struct connection *conn)
{
    fifo_remove(conn);
}

struct connection *liveness_any(void)
{
    return pinged_fifo.head ? pinged_fifo.head : idle_fifo.head;
}

size_t liveness_find(bool (*match)(struct connection *conn, void *arg), void *arg,
                     struct connection **out, size_t max)
{
    size_t found = 0;
    struct connection *lists[] = { idle_fifo.head, pinged_fifo.head };
    for (size_t l = 0; l < 2; l++) {
        for (struct connection *conn = lists[l]; conn && found < max; conn = conn->liveness_next) {
            if (match(conn, arg))
                out[found++] = conn;
        }
    }
    return found;
}

/* Returns how many milliseconds ago the kernel last received data on the
 * connection's socket, or UINT64_MAX when it cannot tell. libwebsockets
 * replies to a client's ping frame itself without a callback, so only this
 * shows that a client sending ping frames is alive. */
static uint64_t ms_since_last_receive(const struct connection *conn)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    int fd = lws_get_socket_fd(conn->wsi);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return UINT64_MAX;
    return info.tcpi_last_data_recv;
}

static void on_tick(uv_timer_t *timer)
{
    (void)timer;
    uint64_t now = gateway_now_ms();
    uint64_t idle_ms = (uint64_t)gateway.config.activity_timeout * 1000;
    uint64_t pong_ms = (uint64_t)gateway.config.pong_timeout * 1000;

    /* Close the ones that were pinged and stayed silent. */
    while (pinged_fifo.head && now - pinged_fifo.head->liveness_since >= pong_ms) {
        struct connection *conn = pinged_fifo.head;
        fifo_remove(conn);
        if (ms_since_last_receive(conn) < now - conn->liveness_since) {
            fifo_append(conn, LIVENESS_IDLE);
            continue;
        }
        log_debug("closing silent connection socket_id=%s app=%s", conn->socket_id,
                  conn->app ? conn->app->id : "-");
        connection_close_with_error(conn, 4201, "Pong reply not received");
    }

    /* Ping the ones that have been quiet for activity_timeout. Both a
     * pusher:ping (answered by pusher-js) and a protocol ping frame
     * (answered by every WebSocket stack) go out. */
    while (idle_fifo.head && now - idle_fifo.head->liveness_since >= idle_ms) {
        struct connection *conn = idle_fifo.head;
        fifo_remove(conn);
        /* Appending sets liveness_since to now. That keeps the list in
         * order and ends this loop, and the next check comes idle_ms later. */
        if (ms_since_last_receive(conn) < idle_ms) {
            fifo_append(conn, LIVENESS_IDLE);
            continue;
        }
        fifo_append(conn, LIVENESS_PINGED);
        conn->send_protocol_ping = true;
        connection_send(conn, ping_frame);
    }
}

void liveness_start(void)
{
    ping_frame = message_new_static("{\"event\":\"pusher:ping\",\"data\":\"{}\"}");
    uv_timer_init(gateway.loop, &tick_timer);
    uv_timer_start(&tick_timer, on_tick, LIVENESS_TICK_MS, LIVENESS_TICK_MS);
}

void liveness_stop(void)
{
    uv_timer_stop(&tick_timer);
    uv_close((uv_handle_t *)&tick_timer, NULL);
}
