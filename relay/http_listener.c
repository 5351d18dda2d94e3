/* Failed accept() calls on the relay's listening socket.
 *
 * When the process runs out of file descriptors (EMFILE, ENFILE) or of
 * kernel memory (ENOBUFS, ENOMEM), accept() fails and the pending
 * connection stays in the backlog. The socket therefore stays readable, and
 * the event loop would call accept() again at once, forever. libevent's
 * default then writes one warning per call to stderr. Instead the relay
 * stops listening for HTTP_LISTENER_PAUSE_MS, which bounds both the CPU
 * and the log, and logs at most one line per HTTP_LISTENER_LOG_INTERVAL_S
 * with the number of failures. Connections already accepted are served
 * meanwhile, and as they close, descriptors become free again. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "http_internal.h"
#include "log.h"

#define HTTP_LISTENER_PAUSE_MS 100
#define HTTP_LISTENER_LOG_INTERVAL_S 10

/* evhttp makes its own server the listener's callback argument, so the
 * error callback finds the relay's state here. A process runs one server;
 * the spare slots are for tests that run several. */
#define HTTP_LISTENER_SERVERS_MAX 4
static struct http_api *http_listener_servers[HTTP_LISTENER_SERVERS_MAX];

static struct http_api *http_listener_find(const struct evhttp *http)
{
    for (size_t i = 0; i < HTTP_LISTENER_SERVERS_MAX; i++) {
        if (http_listener_servers[i] && http_listener_servers[i]->http == http)
            return http_listener_servers[i];
    }
    return NULL;
}

static uint64_t http_listener_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void http_listener_on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_api *api = arg;
    if (api->listener)
        evconnlistener_enable(evhttp_bound_socket_get_listener(api->listener));
}

/* Logs the first failure at once, then one line per interval with the
 * count, so a flood of connections cannot flood the log as well. */
static void http_listener_log_failure(struct http_api *api, int error)
{
    uint64_t now = http_listener_now_ns();
    uint64_t interval_ns = (uint64_t)HTTP_LISTENER_LOG_INTERVAL_S * 1000000000u;

    api->accept.unlogged++;
    if (api->accept.logged_ns != 0 && now - api->accept.logged_ns < interval_ns)
        return;

    if (api->accept.unlogged == 1)
        log_warn("http: accept() failed: %s; not accepting new connections for %d ms, "
                 "connections already open are still served",
                 strerror(error), HTTP_LISTENER_PAUSE_MS);
    else
        log_warn("http: accept() failed %llu times since the last report, last error: %s; "
                 "pausing new connections for %d ms after each failure",
                 (unsigned long long)api->accept.unlogged, strerror(error),
                 HTTP_LISTENER_PAUSE_MS);
    api->accept.unlogged = 0;
    api->accept.logged_ns = now;
}

static void http_listener_on_error(struct evconnlistener *listener, void *arg)
{
    int error = EVUTIL_SOCKET_ERROR();
    struct http_api *api = http_listener_find(arg);
    if (!api) {
        /* Not reachable: http_listener_watch registers before it installs
         * this callback. Pausing without a timer would stop the server. */
        log_error("http: accept() failed: %s", strerror(error));
        return;
    }

    api->accept.failures++;
    http_listener_log_failure(api, error);

    evconnlistener_disable(listener);
    struct timeval pause = { 0, HTTP_LISTENER_PAUSE_MS * 1000 };
    evtimer_add(api->accept.resume, &pause);
}

int http_listener_watch(struct http_api *api)
{
    size_t slot = 0;
    while (slot < HTTP_LISTENER_SERVERS_MAX && http_listener_servers[slot] &&
           http_listener_servers[slot] != api)
        slot++;
    if (slot == HTTP_LISTENER_SERVERS_MAX)
        return -1;

    if (!api->accept.resume) {
        api->accept.resume = evtimer_new(api->base, http_listener_on_resume, api);
        if (!api->accept.resume)
            return -1;
    }
    http_listener_servers[slot] = api;
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(api->listener),
                                http_listener_on_error);
    return 0;
}

void http_listener_stop(struct http_api *api)
{
    for (size_t i = 0; i < HTTP_LISTENER_SERVERS_MAX; i++) {
        if (http_listener_servers[i] == api)
            http_listener_servers[i] = NULL;
    }
    if (api->accept.resume) {
        event_free(api->accept.resume);
        api->accept.resume = NULL;
    }
}
