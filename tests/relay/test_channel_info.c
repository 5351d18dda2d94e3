/* herald-relay-channel-info-tests: CUnit tests of relay/channel_info.c, the
 * `info` attributes, the keys and the response bodies built from Redis
 * replies. The replies are built by hand in the shapes hiredis returns.
 *
 * Built with the relay when HERALD_TESTS is on, and run by ctest. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <hiredis/hiredis.h>

#include "channel_info.h"
#include "strbuf.h"

#define MESSAGE_MAX 512
#define REPLY_ELEMENTS_MAX 12

/* ------------------------------------------------------------------------
 * Hand-built replies
 * ------------------------------------------------------------------------ */

/* An array reply with its elements stored beside it. */
struct array_reply {
    redisReply reply;
    redisReply items[REPLY_ELEMENTS_MAX];
    redisReply *pointers[REPLY_ELEMENTS_MAX];
};

static void array_init(struct array_reply *array)
{
    memset(array, 0, sizeof *array);
    array->reply.type = REDIS_REPLY_ARRAY;
    array->reply.element = array->pointers;
}

static void array_add_integer(struct array_reply *array, long long value)
{
    redisReply *item = &array->items[array->reply.elements];
    item->type = REDIS_REPLY_INTEGER;
    item->integer = value;
    array->pointers[array->reply.elements++] = item;
}

static void array_add_string(struct array_reply *array, const char *text)
{
    redisReply *item = &array->items[array->reply.elements];
    item->type = REDIS_REPLY_STRING;
    item->str = (char *)text;
    item->len = strlen(text);
    array->pointers[array->reply.elements++] = item;
}

static void check_text(const char *actual, const char *expected, int line)
{
    char text[1200];
    snprintf(text, sizeof text, "got \"%s\", expected \"%s\"", actual, expected);
    CU_assertImplementation(strcmp(actual, expected) == 0, line, text, __FILE__, "", CU_FALSE);
}

#define CHECK_TEXT(actual, expected) check_text((actual), (expected), __LINE__)

/* ------------------------------------------------------------------------
 * info attributes
 * ------------------------------------------------------------------------ */

static void test_parse_valid_lists(void)
{
    static const struct {
        const char *text;
        unsigned expected;
    } cases[] = {
        { "", 0 },
        { "user_count", CHANNEL_INFO_USER_COUNT },
        { "subscription_count", CHANNEL_INFO_SUBSCRIPTION_COUNT },
        { "user_count,subscription_count",
          CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT },
        { "subscription_count,,user_count,", CHANNEL_INFO_USER_COUNT |
                                                   CHANNEL_INFO_SUBSCRIPTION_COUNT },
        { "cache", CHANNEL_INFO_CACHE },
        { ",", 0 },
    };
    const unsigned all = CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT |
                         CHANNEL_INFO_CACHE;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX] = "";
        unsigned attributes = 99;
        int status = channel_info_parse(cases[i].text, all, &attributes, message, sizeof message);
        CU_ASSERT_EQUAL(status, 0);
        CU_ASSERT_EQUAL(attributes, cases[i].expected);
    }
}

static void test_parse_rejects_unknown(void)
{
    char message[MESSAGE_MAX];
    unsigned attributes;
    unsigned trigger_allowed = CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT;

    CU_ASSERT_EQUAL(channel_info_parse("user_count,users", trigger_allowed, &attributes, message,
                                       sizeof message),
                    400);
    CHECK_TEXT(message,
               "Invalid info attribute \"users\": expected user_count or subscription_count");

    CU_ASSERT_EQUAL(channel_info_parse("cache", trigger_allowed, &attributes, message,
                                       sizeof message),
                    400);
    CHECK_TEXT(message,
               "Invalid info attribute \"cache\": expected user_count or subscription_count");

    unsigned all = trigger_allowed | CHANNEL_INFO_CACHE;
    CU_ASSERT_EQUAL(channel_info_parse("user_count ", all, &attributes, message, sizeof message),
                    400);
    CHECK_TEXT(message, "Invalid info attribute \"user_count \": expected user_count, "
                        "subscription_count or cache");

    CU_ASSERT_EQUAL(channel_info_parse("a\nb", all, &attributes, message, sizeof message), 400);
    CHECK_TEXT(message, "Invalid info attribute \"a?b\": expected user_count, "
                        "subscription_count or cache");
}

static void test_applicable_by_channel_type(void)
{
    unsigned both = CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT;
    CU_ASSERT_EQUAL(channel_info_applicable("presence-room.7", both), CHANNEL_INFO_USER_COUNT);
    CU_ASSERT_EQUAL(channel_info_applicable("presence-cache-x", both), CHANNEL_INFO_USER_COUNT);
    CU_ASSERT_EQUAL(channel_info_applicable("news", both), CHANNEL_INFO_SUBSCRIPTION_COUNT);
    CU_ASSERT_EQUAL(channel_info_applicable("private-orders.7", both),
                    CHANNEL_INFO_SUBSCRIPTION_COUNT);
    CU_ASSERT_EQUAL(channel_info_applicable("chat.presence-x", both),
                    CHANNEL_INFO_SUBSCRIPTION_COUNT);
    CU_ASSERT_EQUAL(channel_info_applicable("news", CHANNEL_INFO_USER_COUNT), 0);
    CU_ASSERT_EQUAL(channel_info_applicable("presence-x", CHANNEL_INFO_SUBSCRIPTION_COUNT), 0);
}

static void test_channel_key(void)
{
    struct strbuf key;
    strbuf_init(&key);
    channel_info_channel_key(&key, "herald:", "members", "app-1", "presence-room.7");
    CHECK_TEXT(key.data, "herald:members:{app-1:presence-room.7}");
    strbuf_free(&key);
}

/* ------------------------------------------------------------------------
 * Replies of the counts script
 * ------------------------------------------------------------------------ */

static void test_parse_counts(void)
{
    struct array_reply array;
    array_init(&array);
    array_add_integer(&array, 3);
    array_add_integer(&array, 0);
    array_add_integer(&array, 2);
    array_add_integer(&array, 2);

    struct channel_counts counts[2];
    CU_ASSERT_EQUAL_FATAL(channel_info_parse_counts(&array.reply, counts, 2), 0);
    CU_ASSERT_EQUAL(counts[0].subscription_count, 3);
    CU_ASSERT_EQUAL(counts[0].user_count, 0);
    CU_ASSERT_EQUAL(counts[1].subscription_count, 2);
    CU_ASSERT_EQUAL(counts[1].user_count, 2);
}

static void test_parse_counts_rejects_shapes(void)
{
    struct channel_counts counts[2];
    struct array_reply array;

    CU_ASSERT_EQUAL(channel_info_parse_counts(NULL, counts, 1), -1);

    array_init(&array);
    array_add_integer(&array, 1);
    CU_ASSERT_EQUAL(channel_info_parse_counts(&array.reply, counts, 1), -1);

    array_init(&array);
    array_add_integer(&array, 1);
    array_add_string(&array, "1");
    CU_ASSERT_EQUAL(channel_info_parse_counts(&array.reply, counts, 1), -1);

    redisReply error;
    memset(&error, 0, sizeof error);
    error.type = REDIS_REPLY_ERROR;
    error.str = "ERR";
    error.len = 3;
    CU_ASSERT_EQUAL(channel_info_parse_counts(&error, counts, 1), -1);
}

/* ------------------------------------------------------------------------
 * Response bodies
 * ------------------------------------------------------------------------ */

static void test_render_attributes(void)
{
    struct channel_counts counts = { .subscription_count = 5, .user_count = 2 };
    struct strbuf out;
    strbuf_init(&out);

    channel_info_render_attributes(&out, 0, &counts);
    CHECK_TEXT(out.data, "{}");

    strbuf_reset(&out);
    channel_info_render_attributes(&out, CHANNEL_INFO_USER_COUNT, &counts);
    CHECK_TEXT(out.data, "{\"user_count\":2}");

    strbuf_reset(&out);
    channel_info_render_attributes(&out, CHANNEL_INFO_SUBSCRIPTION_COUNT, &counts);
    CHECK_TEXT(out.data, "{\"subscription_count\":5}");

    strbuf_reset(&out);
    channel_info_render_attributes(
        &out, CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT | CHANNEL_INFO_CACHE,
        &counts);
    CHECK_TEXT(out.data, "{\"user_count\":2,\"subscription_count\":5}");

    strbuf_free(&out);
}

static void test_render_channel(void)
{
    struct strbuf out;
    strbuf_init(&out);

    struct channel_counts empty = { 0, 0 };
    channel_info_render_channel(&out, CHANNEL_INFO_USER_COUNT, &empty);
    CHECK_TEXT(out.data, "{\"occupied\":false}");

    struct channel_counts presence = { .subscription_count = 3, .user_count = 2 };
    strbuf_reset(&out);
    channel_info_render_channel(&out, CHANNEL_INFO_USER_COUNT, &presence);
    CHECK_TEXT(out.data, "{\"occupied\":true,\"user_count\":2}");

    strbuf_reset(&out);
    channel_info_render_channel(&out, 0, &presence);
    CHECK_TEXT(out.data, "{\"occupied\":true}");

    struct channel_counts public_channel = { .subscription_count = 4, .user_count = 0 };
    strbuf_reset(&out);
    channel_info_render_channel(&out, CHANNEL_INFO_SUBSCRIPTION_COUNT, &public_channel);
    CHECK_TEXT(out.data, "{\"occupied\":true,\"subscription_count\":4}");

    strbuf_free(&out);
}

static void test_render_list(void)
{
    struct array_reply array;
    array_init(&array);
    array_add_string(&array, "presence-b");
    array_add_integer(&array, 3);
    array_add_integer(&array, 2);
    array_add_string(&array, "news");
    array_add_integer(&array, 4);
    array_add_integer(&array, 0);
    array_add_string(&array, "presence-a");
    array_add_integer(&array, 1);
    array_add_integer(&array, 1);

    struct strbuf out;
    strbuf_init(&out);

    CU_ASSERT_EQUAL(channel_info_render_list(&out, &array.reply, 0), 0);
    CHECK_TEXT(out.data, "{\"channels\":{\"news\":{},\"presence-a\":{},\"presence-b\":{}}}");

    strbuf_reset(&out);
    CU_ASSERT_EQUAL(channel_info_render_list(&out, &array.reply, CHANNEL_INFO_SUBSCRIPTION_COUNT),
                    0);
    CHECK_TEXT(out.data, "{\"channels\":{\"news\":{\"subscription_count\":4},\"presence-a\":{},"
                         "\"presence-b\":{}}}");

    strbuf_reset(&out);
    CU_ASSERT_EQUAL(channel_info_render_list(&out, &array.reply, CHANNEL_INFO_USER_COUNT), 0);
    CHECK_TEXT(out.data, "{\"channels\":{\"news\":{},\"presence-a\":{\"user_count\":1},"
                         "\"presence-b\":{\"user_count\":2}}}");

    strbuf_free(&out);
}

static void test_render_list_empty_and_malformed(void)
{
    struct array_reply array;
    struct strbuf out;
    strbuf_init(&out);

    array_init(&array);
    CU_ASSERT_EQUAL(channel_info_render_list(&out, &array.reply, 0), 0);
    CHECK_TEXT(out.data, "{\"channels\":{}}");

    strbuf_reset(&out);
    array_add_string(&array, "news");
    array_add_integer(&array, 1);
    CU_ASSERT_EQUAL(channel_info_render_list(&out, &array.reply, 0), -1);
    CU_ASSERT_EQUAL(out.len, 0);

    array_init(&array);
    array_add_integer(&array, 1);
    array_add_integer(&array, 1);
    array_add_integer(&array, 1);
    CU_ASSERT_EQUAL(channel_info_render_list(&out, &array.reply, 0), -1);
    CU_ASSERT_EQUAL(out.len, 0);

    CU_ASSERT_EQUAL(channel_info_render_list(&out, NULL, 0), -1);
    strbuf_free(&out);
}

static void test_render_users(void)
{
    struct array_reply array;
    array_init(&array);
    array_add_string(&array, "8");
    array_add_string(&array, "7");
    array_add_string(&array, "say \"hi\"");

    struct strbuf out;
    strbuf_init(&out);
    CU_ASSERT_EQUAL(channel_info_render_users(&out, &array.reply), 0);
    CHECK_TEXT(out.data, "{\"users\":[{\"id\":\"7\"},{\"id\":\"8\"},{\"id\":\"say \\\"hi\\\"\"}]}");

    strbuf_reset(&out);
    array_init(&array);
    CU_ASSERT_EQUAL(channel_info_render_users(&out, &array.reply), 0);
    CHECK_TEXT(out.data, "{\"users\":[]}");

    strbuf_reset(&out);
    array_add_integer(&array, 7);
    CU_ASSERT_EQUAL(channel_info_render_users(&out, &array.reply), -1);
    CU_ASSERT_EQUAL(out.len, 0);

    strbuf_free(&out);
}

/* ------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------ */

int main(void)
{
    static const struct {
        const char *name;
        CU_TestFunc run;
    } tests[] = {
        { "parse valid lists", test_parse_valid_lists },
        { "parse rejects unknown", test_parse_rejects_unknown },
        { "applicable by channel type", test_applicable_by_channel_type },
        { "channel key", test_channel_key },
        { "parse counts", test_parse_counts },
        { "parse counts rejects shapes", test_parse_counts_rejects_shapes },
        { "render attributes", test_render_attributes },
        { "render channel", test_render_channel },
        { "render list", test_render_list },
        { "render list empty and malformed", test_render_list_empty_and_malformed },
        { "render users", test_render_users },
    };

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("channel_info", NULL, NULL);
    if (!suite) {
        CU_cleanup_registry();
        return 1;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (!CU_add_test(suite, tests[i].name, tests[i].run)) {
            CU_cleanup_registry();
            return 1;
        }
    }

    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    bool passed = CU_get_number_of_failures() == 0 && CU_get_number_of_tests_failed() == 0;
    CU_cleanup_registry();
    return passed ? 0 : 1;
}
