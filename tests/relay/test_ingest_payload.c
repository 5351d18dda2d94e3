/* herald-relay-ingest-tests: CUnit tests of relay/ingest_payload.c, the
 * checks and conversion of messages from Laravel's redis broadcaster, and
 * the PSUBSCRIBE pattern built from its prefix.
 *
 * Built with the relay when HERALD_TESTS is on, and run by ctest. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "config.h"
#include "ingest_payload.h"
#include "strbuf.h"

#define MESSAGE_MAX 512

static struct app_config test_app;

static int suite_init(void)
{
    memset(&test_app, 0, sizeof test_app);
    test_app.id = "app-1";
    test_app.enabled = true;
    test_app.max_event_payload_bytes = 64;
    test_app.max_channel_name_length = 40;
    test_app.max_event_name_length = 32;
    return 0;
}

/* Parses `payload` published to `topic` with the default prefixes. */
static enum ingest_skip parse(struct ingest_event *event, const char *topic, const char *payload,
                              char *message)
{
    return ingest_parse(event, topic, strlen(topic), payload, strlen(payload),
                        "laravel_database_", "herald:", &test_app, message, MESSAGE_MAX);
}

static void check_text(const char *actual, const char *expected, int line)
{
    char text[1200];
    snprintf(text, sizeof text, "got \"%s\", expected \"%s\"", actual ? actual : "(null)",
             expected ? expected : "(null)");
    bool equal = actual && expected ? strcmp(actual, expected) == 0 : actual == expected;
    CU_assertImplementation(equal, line, text, __FILE__, "", CU_FALSE);
}

#define CHECK_TEXT(actual, expected) check_text((actual), (expected), __LINE__)

/* ------------------------------------------------------------------------
 * Messages delivered
 * ------------------------------------------------------------------------ */

static void test_laravel_payload(void)
{
    char message[MESSAGE_MAX];
    struct ingest_event event;
    enum ingest_skip skip = parse(&event, "laravel_database_private-orders.7",
                                  "{\"event\":\"App\\\\Events\\\\OrderShipped\",\"data\":"
                                  "{\"order_id\":7,\"socket\":null},\"socket\":null}",
                                  message);
    CU_ASSERT_EQUAL_FATAL(skip, INGEST_DELIVER);
    CHECK_TEXT(event.channel, "private-orders.7");
    CHECK_TEXT(event.name, "App\\Events\\OrderShipped");
    CHECK_TEXT(event.data, "{\"order_id\":7}");
    CU_ASSERT_EQUAL(event.data_len, strlen("{\"order_id\":7}"));
    CU_ASSERT_PTR_NULL(event.exclude);
    ingest_event_free(&event);
}

static void test_socket_excluded(void)
{
    char message[MESSAGE_MAX];
    struct ingest_event event;
    enum ingest_skip skip = parse(&event, "laravel_database_news",
                                  "{\"event\":\"e\",\"data\":{\"socket\":\"1234.5678\",\"a\":\"x/y\"},"
                                  "\"socket\":\"1234.5678\"}",
                                  message);
    CU_ASSERT_EQUAL_FATAL(skip, INGEST_DELIVER);
    CHECK_TEXT(event.exclude, "1234.5678");
    CHECK_TEXT(event.data, "{\"a\":\"x/y\"}");
    ingest_event_free(&event);
}

static void test_socket_not_a_socket_id(void)
{
    static const char *const payloads[] = {
        "{\"event\":\"e\",\"data\":{},\"socket\":\"abc\"}",
        "{\"event\":\"e\",\"data\":{},\"socket\":\"1.2.3\"}",
        "{\"event\":\"e\",\"data\":{},\"socket\":\"\"}",
        "{\"event\":\"e\",\"data\":{},\"socket\":12.5}",
        "{\"event\":\"e\",\"data\":{}}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char message[MESSAGE_MAX];
        struct ingest_event event;
        CU_ASSERT_EQUAL_FATAL(parse(&event, "laravel_database_news", payloads[i], message),
                              INGEST_DELIVER);
        CU_ASSERT_PTR_NULL(event.exclude);
        CHECK_TEXT(event.data, "{}");
        ingest_event_free(&event);
    }
}

static void test_data_shapes(void)
{
    static const struct {
        const char *payload;
        const char *data;
    } cases[] = {
        { "{\"event\":\"e\",\"data\":[1,\"a\\/b\"]}", "[1,\"a/b\"]" },
        { "{\"event\":\"e\",\"data\":\"already a string\"}", "already a string" },
        { "{\"event\":\"e\",\"data\":{\"nested\":{\"socket\":\"kept\"}}}",
          "{\"nested\":{\"socket\":\"kept\"}}" },
        { "{\"event\":\"e\",\"data\":{\"t\":\"caf\\u00e9\"}}", "{\"t\":\"caf\xc3\xa9\"}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX];
        struct ingest_event event;
        CU_ASSERT_EQUAL_FATAL(parse(&event, "laravel_database_news", cases[i].payload, message),
                              INGEST_DELIVER);
        CHECK_TEXT(event.data, cases[i].data);
        ingest_event_free(&event);
    }
}

static void test_laravel_13_prefix(void)
{
    char message[MESSAGE_MAX];
    struct ingest_event event;
    const char *topic = "laravel-database-presence-room.7";
    enum ingest_skip skip = ingest_parse(&event, topic, strlen(topic),
                                         "{\"event\":\"e\",\"data\":{}}", 23,
                                         "laravel-database-", "herald:", &test_app, message,
                                         sizeof message);
    CU_ASSERT_EQUAL_FATAL(skip, INGEST_DELIVER);
    CHECK_TEXT(event.channel, "presence-room.7");
    ingest_event_free(&event);
}

/* ------------------------------------------------------------------------
 * Messages skipped
 * ------------------------------------------------------------------------ */

static void test_skipped_messages(void)
{
    static const struct {
        const char *topic;
        const char *payload;
        enum ingest_skip skip;
        const char *message;
    } cases[] = {
        { "other_prefix_news", "{\"event\":\"e\",\"data\":{}}", INGEST_SKIP_FOREIGN_TOPIC,
          "topic \"other_prefix_news\" does not start with the Laravel prefix" },
        { "laravel_database_bad channel", "{\"event\":\"e\",\"data\":{}}", INGEST_SKIP_CHANNEL,
          NULL },
        { "laravel_database_", "{\"event\":\"e\",\"data\":{}}", INGEST_SKIP_CHANNEL, NULL },
        { "laravel_database_#secret", "{\"event\":\"e\",\"data\":{}}", INGEST_SKIP_CHANNEL,
          NULL },
        { "laravel_database_news", "not json", INGEST_SKIP_PAYLOAD, NULL },
        { "laravel_database_news", "[1,2]", INGEST_SKIP_PAYLOAD, NULL },
        { "laravel_database_news", "\"text\"", INGEST_SKIP_PAYLOAD, NULL },
        { "laravel_database_news", "{\"event\":\"e\",\"data\":{}} trailing", INGEST_SKIP_PAYLOAD,
          NULL },
        { "laravel_database_news", "{\"data\":{}}", INGEST_SKIP_EVENT,
          "channel news: \"event\" is missing or not a string" },
        { "laravel_database_news", "{\"event\":7,\"data\":{}}", INGEST_SKIP_EVENT,
          "channel news: \"event\" is missing or not a string" },
        { "laravel_database_news", "{\"event\":\"\",\"data\":{}}", INGEST_SKIP_EVENT,
          "channel news: \"event\" is empty" },
        { "laravel_database_news",
          "{\"event\":\"0123456789012345678901234567890123\",\"data\":{}}", INGEST_SKIP_EVENT,
          "channel news: \"event\" is 34 bytes, the maximum is 32" },
        { "laravel_database_news", "{\"event\":\"a\\u0000b\",\"data\":{}}", INGEST_SKIP_EVENT,
          "channel news: \"event\" contains \\u0000" },
        { "laravel_database_news", "{\"event\":\"e\"}", INGEST_SKIP_DATA,
          "channel news: \"data\" is missing or null" },
        { "laravel_database_news", "{\"event\":\"e\",\"data\":null}", INGEST_SKIP_DATA,
          "channel news: \"data\" is missing or null" },
        { "laravel_database_news", "{\"event\":\"e\",\"data\":5}", INGEST_SKIP_DATA,
          "channel news: \"data\" is not an object, an array or a string" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX] = "";
        struct ingest_event event;
        enum ingest_skip skip = parse(&event, cases[i].topic, cases[i].payload, message);
        char what[256];
        snprintf(what, sizeof what, "case %zu (%s): skip %d, expected %d", i, cases[i].payload,
                 (int)skip, (int)cases[i].skip);
        CU_assertImplementation(skip == cases[i].skip, __LINE__, what, __FILE__, "", CU_FALSE);
        CU_ASSERT_PTR_NULL(event.root);
        if (cases[i].message)
            CHECK_TEXT(message, cases[i].message);
        else
            CU_ASSERT_NOT_EQUAL(message[0], '\0');
    }
}

static void test_data_over_limit(void)
{
    char message[MESSAGE_MAX];
    struct ingest_event event;
    /* {"text":"…"} with 54 characters of text is 65 bytes. */
    enum ingest_skip skip = parse(&event, "laravel_database_news",
                                  "{\"event\":\"e\",\"data\":{\"text\":\"012345678901234567890123456789012345678901234567890123\"}}",
                                  message);
    CU_ASSERT_EQUAL(skip, INGEST_SKIP_DATA_TOO_LARGE);
    CHECK_TEXT(message, "channel news: \"data\" is 65 bytes, the maximum is 64");
}

static void test_herald_topics_skipped(void)
{
    char message[MESSAGE_MAX];
    struct ingest_event event;
    const char *topic = "herald:ch:{app-1:news}";
    enum ingest_skip skip = ingest_parse(&event, topic, strlen(topic), "h1 - 0\n{}", 9, "",
                                         "herald:", &test_app, message, sizeof message);
    CU_ASSERT_EQUAL(skip, INGEST_SKIP_FOREIGN_TOPIC);
    CHECK_TEXT(message, "topic \"herald:ch:{app-1:news}\" is one of Herald's own (prefix "
                        "\"herald:\")");

    /* With an empty Herald prefix, the topic's braces fail the channel check. */
    skip = ingest_parse(&event, "ch:{app-1:news}", 15, "{\"event\":\"e\",\"data\":{}}", 23, "",
                        "", &test_app, message, sizeof message);
    CU_ASSERT_EQUAL(skip, INGEST_SKIP_CHANNEL);
}

static void test_channel_with_nul(void)
{
    char message[MESSAGE_MAX];
    struct ingest_event event;
    static const char topic[] = "laravel_database_ne\0ws";
    enum ingest_skip skip = ingest_parse(&event, topic, sizeof topic - 1,
                                         "{\"event\":\"e\",\"data\":{}}", 23, "laravel_database_",
                                         "herald:", &test_app, message, sizeof message);
    CU_ASSERT_EQUAL(skip, INGEST_SKIP_CHANNEL);
}

static void test_skip_names(void)
{
    CHECK_TEXT(ingest_skip_name(INGEST_SKIP_PAYLOAD), "invalid_payload");
    CHECK_TEXT(ingest_skip_name(INGEST_SKIP_DATA_TOO_LARGE), "data_too_large");
    CHECK_TEXT(ingest_skip_name(INGEST_SKIP_COUNT), "unknown");
}

/* ------------------------------------------------------------------------
 * Pattern
 * ------------------------------------------------------------------------ */

static void test_pattern_escapes_glob(void)
{
    static const struct {
        const char *prefix;
        const char *pattern;
    } cases[] = {
        { "laravel_database_", "laravel_database_*" },
        { "laravel-database-", "laravel-database-*" },
        { "", "*" },
        { "a*b?c[d]e\\f", "a\\*b\\?c\\[d\\]e\\\\f*" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct strbuf out;
        strbuf_init(&out);
        ingest_pattern(&out, cases[i].prefix);
        CHECK_TEXT(out.data, cases[i].pattern);
        strbuf_free(&out);
    }
}

int main(void)
{
    static const struct {
        const char *name;
        CU_TestFunc run;
    } tests[] = {
        { "laravel payload", test_laravel_payload },
        { "socket excluded", test_socket_excluded },
        { "socket not a socket_id", test_socket_not_a_socket_id },
        { "data shapes", test_data_shapes },
        { "laravel 13 prefix", test_laravel_13_prefix },
        { "skipped messages", test_skipped_messages },
        { "data over limit", test_data_over_limit },
        { "herald topics skipped", test_herald_topics_skipped },
        { "channel with NUL", test_channel_with_nul },
        { "skip names", test_skip_names },
        { "pattern escapes glob", test_pattern_escapes_glob },
    };

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("ingest_payload", suite_init, NULL);
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
