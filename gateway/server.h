/* The gateway's WebSocket server (libwebsockets on the gateway's loop). */
#ifndef HERALD_GATEWAY_SERVER_H
#define HERALD_GATEWAY_SERVER_H

/* Listens on gateway_host:gateway_port. Returns 0, or -1 after logging why. */
int server_start(void);

/* Closes every connection and the listener; runs on the loop. */
void server_stop(void);

/* Frees the server after the loop has finished. */
void server_free(void);

#endif
