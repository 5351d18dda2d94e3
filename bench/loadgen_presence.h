/* The load generator's presence member check, run by the controller. It
 * compares the members that the workers' connections joined as on each
 * presence channel with the users the relay's HTTP API lists for it. */
#ifndef HERALD_BENCH_LOADGEN_PRESENCE_H
#define HERALD_BENCH_LOADGEN_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>

struct presence_check {
    bool matched;      /* every channel listed exactly the expected ids */
    uint64_t expected; /* members the connections joined as, over all channels */
    uint64_t reported; /* users the relay listed, over all channels */
    uint64_t missing;  /* expected ids the relay did not list */
    uint64_t extra;    /* listed ids that no connection joined as */
    int rounds;        /* rounds of queries, one GET per channel each */
    double seconds;    /* from the first query to the last */
    char error[160];   /* why the last round failed to query, or "" */
};

/* Queries GET /apps/{app_id}/channels/presence-<prefix>K/users for every
 * presence channel and compares the ids with those of the connections
 * whose byte in `members` is 1 (NULL: no connection is a member). Repeats
 * the round every 200 ms until every list matches or `timeout_s` has
 * passed, because a gateway removes a closed connection's membership a
 * moment after the close. The figures are those of the last round. */
void presence_check_members(const uint8_t *members, double timeout_s, struct presence_check *out);

#endif
