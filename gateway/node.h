/* This gateway's membership in the cluster: its heartbeat in Redis, the
 * sync of its state after every (re)connect, and the removal of the state
 * of gateways whose heartbeat expired.
 *
 * A gateway that dies without cleaning up (kill -9, power loss) leaves its
 * members in Redis. Every gateway checks each heartbeat interval for nodes
 * whose heartbeat key expired and runs the reap script, which makes those
 * members leave and publishes their member_removed events. A dead node's
 * members are therefore gone within node_timeout plus one interval. */
#ifndef HERALD_GATEWAY_NODE_H
#define HERALD_GATEWAY_NODE_H

void node_start(void);

/* Removes this node's heartbeat and registration; call after every
 * connection has left, before the command connection closes. */
void node_stop(void);

#endif
