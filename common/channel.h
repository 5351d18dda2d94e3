/* Channel names: classification by prefix and validation.
 *
 * Prefixes are matched at position 0, longest first, so "chat.private-x" is a
 * public channel and "private-encrypted-cache-x" is an encrypted cache one. */
#ifndef HERALD_CHANNEL_H
#define HERALD_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

enum channel_type {
    CHANNEL_PUBLIC = 0,
    CHANNEL_PRIVATE,
    CHANNEL_PRIVATE_ENCRYPTED,
    CHANNEL_PRESENCE,
    CHANNEL_SERVER_TO_USER, /* "#server-to-user-<user id>" */
    CHANNEL_RESERVED,       /* any other name starting with '#' */
};

struct channel_kind {
    enum channel_type type;
    bool cache; /* cache-, private-cache-, private-encrypted-cache-, presence-cache- */
};

#define CHANNEL_SERVER_TO_USER_PREFIX "#server-to-user-"

struct channel_kind channel_classify(const char *name);

/* True when the channel needs a signed `auth` from the client. */
bool channel_requires_auth(enum channel_type type);

/* Checks length (1..max_len) and characters [A-Za-z0-9_\-=@,.;], with an
 * optional single leading '#'. Returns true when valid. */
bool channel_name_valid(const char *name, size_t len, size_t max_len);

#endif
