/* Unit tests of common/channel.c: classification by prefix, auth rules and
 * name validation. */
#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "unit_tests.h"

struct classify_case {
    const char *name;
    enum channel_type type;
    bool cache;
};

static void check_classification(const struct classify_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct channel_kind kind = channel_classify(cases[i].name);
        char label[200];
        snprintf(label, sizeof label, "type of \"%s\"", cases[i].name);
        unit_assert_long_equal(kind.type, cases[i].type, label, __FILE__, __LINE__);
        snprintf(label, sizeof label, "cache flag of \"%s\"", cases[i].name);
        unit_assert_long_equal(kind.cache, cases[i].cache, label, __FILE__, __LINE__);
    }
}

static void test_classify_every_prefix(void)
{
    static const struct classify_case cases[] = {
        { "news", CHANNEL_PUBLIC, false },
        { "cache-ticker", CHANNEL_PUBLIC, true },
        { "private-orders.7", CHANNEL_PRIVATE, false },
        { "private-cache-orders.7", CHANNEL_PRIVATE, true },
        { "private-encrypted-vault.7", CHANNEL_PRIVATE_ENCRYPTED, false },
        { "private-encrypted-cache-vault.7", CHANNEL_PRIVATE_ENCRYPTED, true },
        { "presence-room.7", CHANNEL_PRESENCE, false },
        { "presence-cache-room.7", CHANNEL_PRESENCE, true },
        { "#server-to-user-7", CHANNEL_SERVER_TO_USER, false },
        { "#admin", CHANNEL_RESERVED, false },
        { "private-App.Models.User.7", CHANNEL_PRIVATE, false },
    };
    check_classification(cases, sizeof cases / sizeof cases[0]);
}

static void test_classify_anchored_at_start(void)
{
    /* Prefixes count only at position 0 (soketi's unanchored regexes got
     * these wrong). */
    static const struct classify_case cases[] = {
        { "chat.private-x", CHANNEL_PUBLIC, false },
        { "foo-cache-bar", CHANNEL_PUBLIC, false },
        { "my-presence-room", CHANNEL_PUBLIC, false },
        { "x#server-to-user-7", CHANNEL_PUBLIC, false },
        { "xprivate-encrypted-cache-x", CHANNEL_PUBLIC, false },
    };
    check_classification(cases, sizeof cases / sizeof cases[0]);
}

static void test_classify_needs_the_dash(void)
{
    /* Reverb tested startsWith('private') without the dash. */
    static const struct classify_case cases[] = {
        { "private", CHANNEL_PUBLIC, false },
        { "privateorders", CHANNEL_PUBLIC, false },
        { "presence", CHANNEL_PUBLIC, false },
        { "presenceroom", CHANNEL_PUBLIC, false },
        { "cache", CHANNEL_PUBLIC, false },
        { "cacheticker", CHANNEL_PUBLIC, false },
        { "Private-orders", CHANNEL_PUBLIC, false },
        { "PRESENCE-room", CHANNEL_PUBLIC, false },
        { "", CHANNEL_PUBLIC, false },
    };
    check_classification(cases, sizeof cases / sizeof cases[0]);
}

static void test_classify_longest_prefix_wins(void)
{
    static const struct classify_case cases[] = {
        /* Without the trailing dash the longer prefix does not apply. */
        { "private-encrypted", CHANNEL_PRIVATE, false },
        { "private-encryptedx", CHANNEL_PRIVATE, false },
        { "private-cache", CHANNEL_PRIVATE, false },
        { "presence-cache", CHANNEL_PRESENCE, false },
        { "private-encrypted-cache", CHANNEL_PRIVATE_ENCRYPTED, false },
        /* Exactly the prefix, with an empty remainder. */
        { "private-encrypted-cache-", CHANNEL_PRIVATE_ENCRYPTED, true },
        { "private-cache-", CHANNEL_PRIVATE, true },
        { "cache-", CHANNEL_PUBLIC, true },
        /* A later "cache-" inside the name is not a cache prefix. */
        { "private-orders-cache-1", CHANNEL_PRIVATE, false },
        { "presence-x-cache-y", CHANNEL_PRESENCE, false },
    };
    check_classification(cases, sizeof cases / sizeof cases[0]);
}

static void test_classify_hash_names(void)
{
    static const struct classify_case cases[] = {
        { "#server-to-user-user@example.com", CHANNEL_SERVER_TO_USER, false },
        { "#server-to-user", CHANNEL_RESERVED, false },
        { "#server-to-user-", CHANNEL_RESERVED, false },
        { "#server-to-users-7", CHANNEL_RESERVED, false },
        { "#Server-to-user-7", CHANNEL_RESERVED, false },
        { "#", CHANNEL_RESERVED, false },
        { "#private-x", CHANNEL_RESERVED, false },
        { "#cache-x", CHANNEL_RESERVED, false },
    };
    check_classification(cases, sizeof cases / sizeof cases[0]);
}

static void test_requires_auth(void)
{
    CU_ASSERT_FALSE(channel_requires_auth(CHANNEL_PUBLIC));
    CU_ASSERT_TRUE(channel_requires_auth(CHANNEL_PRIVATE));
    CU_ASSERT_TRUE(channel_requires_auth(CHANNEL_PRIVATE_ENCRYPTED));
    CU_ASSERT_TRUE(channel_requires_auth(CHANNEL_PRESENCE));
    /* The server-to-user channel is checked against the signed-in user,
     * not against a signature. */
    CU_ASSERT_FALSE(channel_requires_auth(CHANNEL_SERVER_TO_USER));
    CU_ASSERT_FALSE(channel_requires_auth(CHANNEL_RESERVED));
}

static bool valid(const char *name)
{
    return channel_name_valid(name, strlen(name), 164);
}

static void test_valid_names(void)
{
    CU_ASSERT_TRUE(valid("news"));
    CU_ASSERT_TRUE(valid("private-App.Models.User.7"));
    CU_ASSERT_TRUE(valid("presence-room.7"));
    CU_ASSERT_TRUE(valid("#server-to-user-7"));
    CU_ASSERT_TRUE(valid("a"));
    /* Every allowed character class: letters, digits and _ - = @ , . ; */
    CU_ASSERT_TRUE(valid("AZaz09_-=@,.;"));
    CU_ASSERT_TRUE(valid("-"));
}

static void test_invalid_characters(void)
{
    static const char *const names[] = {
        "with space", "slash/name", "colon:name", "star*", "brace{x}", "brace}",
        "percent%20", "plus+", "quote\"", "back\\slash", "tab\t", "newline\n",
        "question?", "amp&", "hash#inside", "caf\xc3\xa9", "!bang", "~tilde",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char label[100];
        snprintf(label, sizeof label, "channel_name_valid(\"%s\")", names[i]);
        unit_assert_long_equal(valid(names[i]), false, label, __FILE__, __LINE__);
    }
}

static void test_hash_only_leading(void)
{
    CU_ASSERT_FALSE(valid("#"));
    CU_ASSERT_FALSE(valid("##server-to-user-7"));
    CU_ASSERT_FALSE(valid("a#b"));
    CU_ASSERT_TRUE(valid("#x"));
}

static void test_empty_name_invalid(void)
{
    CU_ASSERT_FALSE(channel_name_valid("", 0, 164));
    CU_ASSERT_FALSE(channel_name_valid("news", 0, 164));
}

static void test_length_limit(void)
{
    char name[300];
    memset(name, 'a', sizeof name);
    CU_ASSERT_TRUE(channel_name_valid(name, 164, 164));
    CU_ASSERT_FALSE(channel_name_valid(name, 165, 164));
    CU_ASSERT_TRUE(channel_name_valid(name, 200, 200));
    CU_ASSERT_FALSE(channel_name_valid(name, 201, 200));
    CU_ASSERT_FALSE(channel_name_valid(name, 1, 0));
}

static void test_length_counts_prefix(void)
{
    /* Pusher's 164-character limit includes the prefix. */
    char name[200] = "presence-";
    memset(name + 9, 'r', 155);
    name[164] = '\0';
    CU_ASSERT_TRUE(valid(name));
    name[164] = 'r';
    name[165] = '\0';
    CU_ASSERT_FALSE(valid(name));
}

static void test_embedded_nul_invalid(void)
{
    /* The length comes from the frame, so a NUL inside is possible. */
    CU_ASSERT_FALSE(channel_name_valid("news\0evil", 9, 164));
}

CU_ErrorCode test_channel_register(void)
{
    static const struct unit_test tests[] = {
        { "classify every prefix", test_classify_every_prefix },
        { "classify anchored at start", test_classify_anchored_at_start },
        { "classify needs the dash", test_classify_needs_the_dash },
        { "classify longest prefix wins", test_classify_longest_prefix_wins },
        { "classify hash names", test_classify_hash_names },
        { "requires auth", test_requires_auth },
        { "valid names", test_valid_names },
        { "invalid characters", test_invalid_characters },
        { "hash only leading", test_hash_only_leading },
        { "empty name invalid", test_empty_name_invalid },
        { "length limit", test_length_limit },
        { "length counts prefix", test_length_counts_prefix },
        { "embedded NUL invalid", test_embedded_nul_invalid },
        { NULL, NULL },
    };
    return unit_add_suite("channel", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
