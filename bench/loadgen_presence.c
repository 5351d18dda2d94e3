#include "loadgen_presence.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "loadgen.h"
#include "loadgen_publisher.h"

#define ROUND_INTERVAL_NS 200000000ull
#define IO_TIMEOUT_S 2
#define RESPONSE_MAX (1024 * 1024)
#define IDS_PRINTED_MAX 5

struct id_list {
    char **ids;
    size_t count;
    size_t capacity;
};

/* ---- id lists --------------------------------------------------------- */

static void id_list_add(struct id_list *list, const char *id, size_t len)
{
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? list->capacity * 2 : 64;
        list->ids = realloc(list->ids, list->capacity * sizeof *list->ids);
        if (!list->ids) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
    }
    char *copy = strndup(id, len);
    if (!copy) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    list->ids[list->count++] = copy;
}

static void id_list_clear(struct id_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->ids[i]);
    list->count = 0;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Counts the ids of `expected` missing from `reported` and the ids of
 * `reported` not in `expected`; both lists get sorted. With `channel` set,
 * prints the first few differences. */
static void id_list_compare(struct id_list *expected, struct id_list *reported, uint64_t *missing,
                            uint64_t *extra, const char *channel)
{
    qsort(expected->ids, expected->count, sizeof *expected->ids, compare_ids);
    qsort(reported->ids, reported->count, sizeof *reported->ids, compare_ids);

    int printed = 0;
    size_t i = 0, j = 0;
    while (i < expected->count || j < reported->count) {
        int order = i == expected->count   ? 1
                    : j == reported->count ? -1
                                           : strcmp(expected->ids[i], reported->ids[j]);
        if (order == 0) {
            i++;
            j++;
            continue;
        }
        const char *id = order < 0 ? expected->ids[i++] : reported->ids[j++];
        if (order < 0)
            (*missing)++;
        else
            (*extra)++;
        if (channel && printed++ < IDS_PRINTED_MAX)
            fprintf(stderr, "loadgen: %s: user %s is %s\n", channel, id,
                    order < 0 ? "a member but not listed by the relay"
                              : "listed by the relay but not a member");
    }
}

/* ---- the HTTP API ----------------------------------------------------- */

/* Reads the whole response of a request sent with "Connection: close".
 * Returns its length, or -1 with the reason in `error`. */
static ssize_t read_response(int fd, char *buf, size_t size, char *error, size_t error_size)
{
    size_t len = 0;
    for (;;) {
        if (len == size) {
            snprintf(error, error_size, "the response is longer than %zu bytes", size);
            return -1;
        }
        ssize_t n = read(fd, buf + len, size - len);
        if (n == 0)
            return (ssize_t)len;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(error, error_size, "reading the response failed: %s",
                     errno == EAGAIN ? "timed out" : strerror(errno));
            return -1;
        }
        len += (size_t)n;
    }
}

/* Sends the signed GET /apps/{app_id}/channels/{channel}/users and adds
 * the ids it lists to `ids`. Returns 0, or -1 with the reason in `error`. */
static int query_users(const char *channel, struct id_list *ids, char *error, size_t error_size)
{
    char path[256], query[384], request[1024];
    snprintf(path, sizeof path, "/apps/%s/channels/%s/users", options.app_id, channel);
    publisher_signed_query("GET", path, NULL, query, sizeof query);
    int request_len = snprintf(request, sizeof request,
                               "GET %s?%s HTTP/1.1\r\n"
                               "Host: %s:%d\r\n"
                               "Connection: close\r\n"
                               "\r\n",
                               path, query, inet_ntoa(options.relay.sin_addr),
                               ntohs(options.relay.sin_port));

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(error, error_size, "socket() failed: %s", strerror(errno));
        return -1;
    }
    struct timeval timeout = { .tv_sec = IO_TIMEOUT_S };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (const struct sockaddr *)&options.relay, sizeof options.relay) != 0 ||
        write(fd, request, (size_t)request_len) != request_len) {
        snprintf(error, error_size, "sending the request to the relay failed: %s",
                 strerror(errno));
        close(fd);
        return -1;
    }

    static char response[RESPONSE_MAX + 1];
    ssize_t len = read_response(fd, response, RESPONSE_MAX, error, error_size);
    close(fd);
    if (len < 0)
        return -1;
    response[len] = '\0';

    int status = 0;
    char *body = strstr(response, "\r\n\r\n");
    if (sscanf(response, "HTTP/1.%*d %d", &status) != 1 || !body) {
        snprintf(error, error_size, "unparsable response: %.80s", response);
        return -1;
    }
    body += 4;
    if (status != 200) {
        snprintf(error, error_size, "HTTP %d: %.100s", status, body);
        return -1;
    }
    /* Only a Content-Length body can be scanned as it is. */
    if (strcasestr(response, "\r\nTransfer-Encoding: chunked")) {
        snprintf(error, error_size, "the relay sent a chunked response, which is not supported");
        return -1;
    }

    /* The body is {"users":[{"id":"…"},…]}. The load generator's ids have
     * no characters that JSON escapes, so an escape means a foreign id. */
    static const char users_key[] = "{\"users\":[";
    static const char id_key[] = "{\"id\":\"";
    if (strncmp(body, users_key, sizeof users_key - 1) != 0) {
        snprintf(error, error_size, "unexpected body: %.100s", body);
        return -1;
    }
    for (const char *at = strstr(body, id_key); at; at = strstr(at, id_key)) {
        at += sizeof id_key - 1;
        size_t id_len = strcspn(at, "\"\\");
        if (at[id_len] != '"') {
            snprintf(error, error_size, "unexpected user id: %.100s", at);
            return -1;
        }
        id_list_add(ids, at, id_len);
        at += id_len;
    }
    return 0;
}

/* ---- the check -------------------------------------------------------- */

void presence_check_members(const uint8_t *members, double timeout_s, struct presence_check *out)
{
    int channels = options.presence_channels;
    struct id_list *expected = calloc((size_t)channels, sizeof *expected);
    struct id_list *reported = calloc((size_t)channels, sizeof *reported);
    if (!expected || !reported) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }

    /* The expected ids are read once, so a member that changes during the
     * rounds (only when settling timed out) is compared with stale ids. */
    char user_id[64];
    for (uint32_t i = 0; i < (uint32_t)options.churn_pool; i++) {
        uint32_t channel;
        if (!loadgen_presence_slot(i, &channel) || !members ||
            !__atomic_load_n(&members[i], __ATOMIC_RELAXED))
            continue;
        loadgen_presence_user_id(i, user_id, sizeof user_id);
        id_list_add(&expected[channel], user_id, strlen(user_id));
    }

    memset(out, 0, sizeof *out);
    uint64_t started = loadgen_now_ns();
    uint64_t deadline = started + (uint64_t)(timeout_s * 1e9);
    char name[160];
    for (;;) {
        uint64_t round_started = loadgen_now_ns();
        out->rounds++;
        out->expected = out->reported = out->missing = out->extra = 0;
        out->error[0] = '\0';

        for (int k = 0; k < channels; k++) {
            snprintf(name, sizeof name, "presence-%s%d", options.channel_prefix, k);
            id_list_clear(&reported[k]);
            if (query_users(name, &reported[k], out->error, sizeof out->error) != 0)
                break;
            out->expected += expected[k].count;
            out->reported += reported[k].count;
            id_list_compare(&expected[k], &reported[k], &out->missing, &out->extra, NULL);
        }
        out->matched = !out->error[0] && out->missing == 0 && out->extra == 0;
        if (out->matched || loadgen_now_ns() >= deadline)
            break;

        uint64_t next = round_started + ROUND_INTERVAL_NS;
        uint64_t now = loadgen_now_ns();
        if (next > now)
            usleep((useconds_t)((next - now) / 1000));
    }
    out->seconds = (double)(loadgen_now_ns() - started) / 1e9;

    if (out->error[0]) {
        fprintf(stderr, "loadgen: querying the presence users failed: %s\n", out->error);
    } else if (!out->matched) {
        for (int k = 0; k < channels; k++) {
            uint64_t missing = 0, extra = 0;
            snprintf(name, sizeof name, "presence-%s%d", options.channel_prefix, k);
            id_list_compare(&expected[k], &reported[k], &missing, &extra, name);
        }
    }

    for (int k = 0; k < channels; k++) {
        id_list_clear(&expected[k]);
        id_list_clear(&reported[k]);
        free(expected[k].ids);
        free(reported[k].ids);
    }
    free(expected);
    free(reported);
}
