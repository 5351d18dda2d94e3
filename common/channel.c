#include "channel.h"

#include <string.h>

struct prefix_rule {
    const char *prefix;
    struct channel_kind kind;
};

/* Longest prefixes first: the first match wins. */
static const struct prefix_rule prefix_rules[] = {
    { "private-encrypted-cache-", { CHANNEL_PRIVATE_ENCRYPTED, true } },
    { "private-encrypted-",       { CHANNEL_PRIVATE_ENCRYPTED, false } },
    { "private-cache-",           { CHANNEL_PRIVATE, true } },
    { "private-",                 { CHANNEL_PRIVATE, false } },
    { "presence-cache-",          { CHANNEL_PRESENCE, true } },
    { "presence-",                { CHANNEL_PRESENCE, false } },
    { "cache-",                   { CHANNEL_PUBLIC, true } },
    { CHANNEL_SERVER_TO_USER_PREFIX, { CHANNEL_SERVER_TO_USER, false } },
    { "#",                        { CHANNEL_RESERVED, false } },
};

struct channel_kind channel_classify(const char *name)
{
    for (size_t i = 0; i < sizeof prefix_rules / sizeof prefix_rules[0]; i++) {
        const char *prefix = prefix_rules[i].prefix;
        size_t prefix_len = strlen(prefix);
        if (strncmp(name, prefix, prefix_len) != 0)
            continue;
        /* "#server-to-user-" alone names no user: it is just reserved. */
        if (prefix_rules[i].kind.type == CHANNEL_SERVER_TO_USER && !name[prefix_len])
            continue;
        return prefix_rules[i].kind;
    }
    return (struct channel_kind){ CHANNEL_PUBLIC, false };
}

bool channel_requires_auth(enum channel_type type)
{
    return type == CHANNEL_PRIVATE || type == CHANNEL_PRIVATE_ENCRYPTED ||
           type == CHANNEL_PRESENCE;
}

static bool channel_char_valid(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '=' || c == '@' || c == ',' || c == '.' || c == ';';
}

bool channel_name_valid(const char *name, size_t len, size_t max_len)
{
    if (len == 0 || len > max_len)
        return false;

    size_t i = 0;
    if (name[0] == '#') {
        if (len == 1)
            return false;
        i = 1;
    }
    for (; i < len; i++) {
        if (!channel_char_valid((unsigned char)name[i]))
            return false;
    }
    return true;
}
