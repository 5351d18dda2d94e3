/* The gateway's Redis pub/sub connection.
 *
 * hiredis 0.14 on the gateway's libuv loop. While connected, the channel
 * index asks for topics with bus_subscribe / bus_unsubscribe and hears back
 * through the callbacks below; when the connection drops, every topic is
 * forgotten and the index subscribes again after the reconnect. */
#ifndef HERALD_GATEWAY_BUS_H
#define HERALD_GATEWAY_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus_callbacks {
    void (*connected)(void);
    void (*disconnected)(void);
    void (*subscribed)(const char *topic, size_t topic_len);
    void (*unsubscribed)(const char *topic, size_t topic_len);
    void (*message)(const char *topic, size_t topic_len, const char *payload, size_t len);
    /* Runs after each batch of messages read from Redis, so frames queued
     * by `message` go out in one write per connection. */
    void (*batch_done)(void);
};

void bus_start(const struct bus_callbacks *callbacks);
void bus_stop(void);
bool bus_connected(void);
uint64_t bus_reconnects(void);

/* Both return 0 when the command was queued, -1 when not connected. */
int bus_subscribe(const char *topic, size_t len);
int bus_unsubscribe(const char *topic, size_t len);

#endif
