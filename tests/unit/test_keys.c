/* Unit tests of common/keys.c: Redis key and topic names. */
#include <string.h>

#include "keys.h"
#include "unit_tests.h"

static void test_channel_topic_name(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    keys_channel_topic(&sb, "herald:", "42", "private-orders.7");
    ASSERT_STR_EQ(sb.data, "herald:ch:{42:private-orders.7}");
    strbuf_free(&sb);
}

static void test_channel_topic_empty_prefix(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    keys_channel_topic(&sb, "", "app-1", "news");
    ASSERT_STR_EQ(sb.data, "ch:{app-1:news}");
    strbuf_free(&sb);
}

static void test_channel_topic_hash_tag(void)
{
    /* Redis Cluster hashes only the text between the first '{' and the
     * next '}', so the tag must be exactly app id and channel. */
    struct strbuf sb;
    strbuf_init(&sb);
    keys_channel_topic(&sb, "staging:", "7", "#server-to-user-12");
    const char *open = strchr(sb.data, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(close);
    ASSERT_MEM_EQ(open + 1, (size_t)(close - open - 1), LITERAL("7:#server-to-user-12"));
    strbuf_free(&sb);
}

static void test_channel_topic_appends(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_str(&sb, "SUBSCRIBE ");
    keys_channel_topic(&sb, "herald:", "42", "news");
    ASSERT_STR_EQ(sb.data, "SUBSCRIBE herald:ch:{42:news}");
    strbuf_free(&sb);
}

CU_ErrorCode test_keys_register(void)
{
    static const struct unit_test tests[] = {
        { "channel topic name", test_channel_topic_name },
        { "channel topic empty prefix", test_channel_topic_empty_prefix },
        { "channel topic hash tag", test_channel_topic_hash_tag },
        { "channel topic appends", test_channel_topic_appends },
        { NULL, NULL },
    };
    return unit_add_suite("keys", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
