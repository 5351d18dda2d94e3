/* herald-relay-unit-tests: CUnit tests of relay/trigger.c, the parsing and
 * validation of trigger bodies and the rendering of their envelopes.
 *
 * Built with the relay when HERALD_TESTS is on, and run by ctest. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "channel_info.h"
#include "config.h"
#include "strbuf.h"
#include "trigger.h"

#define MESSAGE_MAX 512

static struct app_config test_app(void)
{
    struct app_config app;
    memset(&app, 0, sizeof app);
    app.id = "app-1";
    app.key = "app-key";
    app.secret = "app-secret";
    app.enabled = true;
    app.max_event_payload_bytes = 16;
    app.max_channels_per_trigger = 3;
    app.max_batch_size = 2;
    app.max_channel_name_length = 20;
    app.max_event_name_length = 10;
    return app;
}

/* Parses `body` as POST /events with the test app's limits and returns the
 * status; the list is freed unless `keep` is given. */
static int parse_event(const char *body, char *message, struct trigger_list *keep)
{
    struct app_config app = test_app();
    struct trigger_list list;
    message[0] = '\0';
    int status = trigger_parse_event(&list, &app, body, strlen(body), message, MESSAGE_MAX);
    if (status == 0) {
        if (keep)
            *keep = list;
        else
            trigger_list_free(&list);
    }
    return status;
}

static int parse_batch(const char *body, char *message, struct trigger_list *keep)
{
    struct app_config app = test_app();
    struct trigger_list list;
    message[0] = '\0';
    int status = trigger_parse_batch(&list, &app, body, strlen(body), message, MESSAGE_MAX);
    if (status == 0) {
        if (keep)
            *keep = list;
        else
            trigger_list_free(&list);
    }
    return status;
}

static void check_status(int actual, int expected, const char *body, const char *message)
{
    char text[1024];
    snprintf(text, sizeof text, "body %s: got %d (%s), expected %d", body, actual, message,
             expected);
    CU_assertImplementation(actual == expected, __LINE__, text, __FILE__, "", CU_FALSE);
}

static void check_message(const char *actual, const char *expected)
{
    char text[1200];
    snprintf(text, sizeof text, "message: got \"%s\", expected \"%s\"", actual, expected);
    CU_assertImplementation(strcmp(actual, expected) == 0, __LINE__, text, __FILE__, "",
                            CU_FALSE);
}

/* ------------------------------------------------------------------------
 * POST /events
 * ------------------------------------------------------------------------ */

static void test_event_single_channel(void)
{
    char message[MESSAGE_MAX];
    struct trigger_list list;
    int status = parse_event(
        "{\"name\":\"ev\",\"data\":\"{\\\"a\\\":1}\",\"channel\":\"news\",\"socket_id\":\"1.2\"}",
        message, &list);
    CU_ASSERT_EQUAL_FATAL(status, 0);

    CU_ASSERT_EQUAL(list.event_count, 1);
    CU_ASSERT_EQUAL(list.frame_count, 1);
    CU_ASSERT_STRING_EQUAL(list.events[0].name, "ev");
    CU_ASSERT_EQUAL(list.events[0].data_len, 7);
    CU_ASSERT_NSTRING_EQUAL(list.events[0].data, "{\"a\":1}", 7);
    CU_ASSERT_STRING_EQUAL(list.events[0].socket_id, "1.2");
    CU_ASSERT_EQUAL(list.events[0].channel_count, 1);
    CU_ASSERT_STRING_EQUAL(list.events[0].channels[0], "news");
    trigger_list_free(&list);
}

static void test_event_channels_deduplicated(void)
{
    char message[MESSAGE_MAX];
    struct trigger_list list;
    int status = parse_event("{\"name\":\"ev\",\"data\":\"d\",\"channels\":[\"a\",\"b\",\"a\"]}",
                             message, &list);
    CU_ASSERT_EQUAL_FATAL(status, 0);

    CU_ASSERT_EQUAL(list.events[0].channel_count, 2);
    CU_ASSERT_EQUAL(list.frame_count, 2);
    CU_ASSERT_STRING_EQUAL(list.events[0].channels[0], "a");
    CU_ASSERT_STRING_EQUAL(list.events[0].channels[1], "b");
    CU_ASSERT_PTR_NULL(list.events[0].socket_id);
    trigger_list_free(&list);
}

static void test_event_object_data_serialised(void)
{
    char message[MESSAGE_MAX];
    struct trigger_list list;
    int status = parse_event("{\"name\":\"ev\",\"data\":{\"p\":\"a/b\"},\"channel\":\"c\"}",
                             message, &list);
    CU_ASSERT_EQUAL_FATAL(status, 0);

    const char expected[] = "{\"p\":\"a/b\"}";
    CU_ASSERT_EQUAL(list.events[0].data_len, strlen(expected));
    CU_ASSERT_NSTRING_EQUAL(list.events[0].data, expected, strlen(expected));
    trigger_list_free(&list);
}

static void test_event_limits(void)
{
    static const struct {
        const char *body;
        int status;
    } cases[] = {
        /* name: 10 bytes allowed */
        { "{\"name\":\"0123456789\",\"data\":\"d\",\"channel\":\"c\"}", 0 },
        { "{\"name\":\"0123456789x\",\"data\":\"d\",\"channel\":\"c\"}", 400 },
        /* data: 16 bytes allowed, over is 413 */
        { "{\"name\":\"e\",\"data\":\"0123456789abcdef\",\"channel\":\"c\"}", 0 },
        { "{\"name\":\"e\",\"data\":\"0123456789abcdefX\",\"channel\":\"c\"}", 413 },
        { "{\"name\":\"e\",\"data\":{\"k\":\"0123456789abcdef\"},\"channel\":\"c\"}", 413 },
        /* channels: 3 allowed */
        { "{\"name\":\"e\",\"data\":\"d\",\"channels\":[\"a\",\"b\",\"c\"]}", 0 },
        { "{\"name\":\"e\",\"data\":\"d\",\"channels\":[\"a\",\"b\",\"c\",\"d\"]}", 400 },
        /* channel name: 20 bytes allowed */
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"01234567890123456789\"}", 0 },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"01234567890123456789x\"}", 400 },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX];
        check_status(parse_event(cases[i].body, message, NULL), cases[i].status, cases[i].body,
                     message);
    }
}

static void test_event_invalid_fields(void)
{
    static const struct {
        const char *body;
        const char *message;
    } cases[] = {
        { "{\"data\":\"d\",\"channel\":\"c\"}", "Missing required parameter: name" },
        { "{\"name\":null,\"data\":\"d\",\"channel\":\"c\"}", "Missing required parameter: name" },
        { "{\"name\":\"e\",\"channel\":\"c\"}", "Missing required parameter: data" },
        { "{\"name\":\"e\",\"data\":\"d\"}", "Missing required parameter: channel or channels" },
        { "{\"name\":7,\"data\":\"d\",\"channel\":\"c\"}",
          "Invalid name: expected a string, got a number" },
        { "{\"name\":\"\",\"data\":\"d\",\"channel\":\"c\"}", "Invalid name: the event name is empty" },
        { "{\"name\":\"a\\u0000b\",\"data\":\"d\",\"channel\":\"c\"}",
          "Invalid name: the event name contains \\u0000" },
        { "{\"name\":\"e\",\"data\":true,\"channel\":\"c\"}",
          "Invalid data: expected a string, got a boolean" },
        /* Overlong '/', a UTF-16 surrogate, and a code point above U+10FFFF. */
        { "{\"name\":\"\xC0\xAF\",\"data\":\"d\",\"channel\":\"c\"}",
          "Invalid JSON in request body at byte 9: invalid UTF-8" },
        { "{\"name\":\"e\",\"data\":\"\xED\xA0\x80\",\"channel\":\"c\"}",
          "Invalid JSON in request body at byte 20: invalid UTF-8" },
        { "{\"name\":\"e\",\"data\":\"\xF4\x90\x80\x80\",\"channel\":\"c\"}",
          "Invalid JSON in request body at byte 20: invalid UTF-8" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"channels\":[\"c\"]}",
          "Invalid parameters: give either channel or channels, not both" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channels\":\"c\"}",
          "Invalid channels: expected an array, got a string" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channels\":[]}", "Invalid channels: the array is empty" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channels\":[\"ok\",5]}",
          "Invalid channels[1]: expected a string, got a number" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"has space\"}",
          "Invalid channel \"has space\": a channel name uses only A-Z a-z 0-9 _ - = @ , . ; and "
          "may start with #" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"\"}",
          "Invalid channel \"\": a channel name uses only A-Z a-z 0-9 _ - = @ , . ; and may "
          "start with #" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"#secret\"}",
          "Invalid channel \"#secret\": names starting with # are reserved, except "
          "#server-to-user-<user id>" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"#server-to-user-\"}",
          "Invalid channel \"#server-to-user-\": names starting with # are reserved, except "
          "#server-to-user-<user id>" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"socket_id\":1.2}",
          "Invalid socket_id: expected a string, got a number" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channels\":[\"a\",\"b\",\"c\",\"d\"]}",
          "Too many channels: 4, the maximum is 3" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX];
        int status = parse_event(cases[i].body, message, NULL);
        check_status(status, 400, cases[i].body, message);
        check_message(message, cases[i].message);
    }
}

static void test_event_info(void)
{
    static const struct {
        const char *info; /* JSON value of the info field, NULL to leave it out */
        unsigned expected;
    } cases[] = {
        { NULL, 0 },
        { "null", 0 },
        { "\"\"", 0 },
        { "\"user_count\"", CHANNEL_INFO_USER_COUNT },
        { "\"subscription_count\"", CHANNEL_INFO_SUBSCRIPTION_COUNT },
        { "\"user_count,subscription_count\"",
          CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256];
        char message[MESSAGE_MAX];
        struct trigger_list list;
        if (cases[i].info)
            snprintf(body, sizeof body,
                     "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":%s}",
                     cases[i].info);
        else
            snprintf(body, sizeof body, "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\"}");

        int status = parse_event(body, message, &list);
        check_status(status, 0, body, message);
        if (status == 0) {
            CU_ASSERT_EQUAL(list.events[0].info, cases[i].expected);
            trigger_list_free(&list);
        }
    }
}

static void test_event_invalid_info(void)
{
    static const struct {
        const char *body;
        const char *message;
    } cases[] = {
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":7}",
          "Invalid info: expected a string such as \"user_count\", got a number" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":[\"user_count\"]}",
          "Invalid info: expected a string such as \"user_count\", got an array" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":\"members\"}",
          "Invalid info attribute \"members\": expected user_count or subscription_count" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":\"cache\"}",
          "Invalid info attribute \"cache\": expected user_count or subscription_count" },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"info\":\"a\\u0000b\"}",
          "Invalid info: the value contains \\u0000" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX];
        int status = parse_event(cases[i].body, message, NULL);
        check_status(status, 400, cases[i].body, message);
        check_message(message, cases[i].message);
    }
}

static void test_event_server_to_user_channel(void)
{
    char message[MESSAGE_MAX];
    int status =
        parse_event("{\"name\":\"e\",\"data\":\"d\",\"channel\":\"#server-to-user-7\"}", message, NULL);
    check_status(status, 0, "#server-to-user-7", message);
}

static void test_event_socket_ids(void)
{
    static const struct {
        const char *socket_id;
        int status;
    } cases[] = {
        { "1234.5678", 0 }, { "0.0", 0 },  { "1.2.3", 400 }, { "12", 400 },  { "1.", 400 },
        { ".1", 400 },      { "-1.2", 400 }, { "1.2 ", 400 }, { "a.b", 400 }, { "", 400 },
        /* 64 bytes is the envelope's limit for an excluded socket_id */
        { "1234567890123456789012345678901.12345678901234567890123456789012", 0 },
        { "1234567890123456789012345678901.123456789012345678901234567890123", 400 },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256];
        char message[MESSAGE_MAX];
        snprintf(body, sizeof body, "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"socket_id\":\"%s\"}",
                 cases[i].socket_id);
        check_status(parse_event(body, message, NULL), cases[i].status, body, message);
    }

    char message[MESSAGE_MAX];
    struct trigger_list list;
    int status = parse_event("{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\",\"socket_id\":null}",
                             message, &list);
    CU_ASSERT_EQUAL_FATAL(status, 0);
    CU_ASSERT_PTR_NULL(list.events[0].socket_id);
    trigger_list_free(&list);
}

static void test_event_invalid_json(void)
{
    static const struct {
        const char *body;
        const char *message;
    } cases[] = {
        { "", "Request body is empty; expected a JSON object" },
        { "{\"name\":", "Invalid JSON in request body: unexpected end of input" },
        { "[]", "Request body must be a JSON object, not an array" },
        { "null", "Request body must be a JSON object, not null" },
        { "12", "Request body must be a JSON object, not a number" },
        { "{\"name\":\"e\",\"data\":\"\xff\",\"channel\":\"c\"}", NULL },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\"} x", NULL },
        { "{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\"}{}", NULL },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX];
        check_status(parse_event(cases[i].body, message, NULL), 400, cases[i].body, message);
        if (cases[i].message) {
            check_message(message, cases[i].message);
        } else {
            CU_ASSERT_PTR_NOT_NULL(strstr(message, "Invalid JSON in request body"));
        }
    }

    char message[MESSAGE_MAX];
    const char *padded = " \r\n{\"name\":\"e\",\"data\":\"d\",\"channel\":\"c\"}\n\t ";
    check_status(parse_event(padded, message, NULL), 0, padded, message);
}

/* ------------------------------------------------------------------------
 * POST /batch_events
 * ------------------------------------------------------------------------ */

static void test_batch_items(void)
{
    char message[MESSAGE_MAX];
    struct trigger_list list;
    int status = parse_batch("{\"batch\":[{\"name\":\"a\",\"data\":\"1\",\"channel\":\"x\","
                             "\"socket_id\":\"1.2\"},{\"name\":\"b\",\"data\":\"2\",\"channel\":\"y\"}]}",
                             message, &list);
    CU_ASSERT_EQUAL_FATAL(status, 0);

    CU_ASSERT_EQUAL(list.event_count, 2);
    CU_ASSERT_EQUAL(list.frame_count, 2);
    CU_ASSERT_STRING_EQUAL(list.events[0].name, "a");
    CU_ASSERT_STRING_EQUAL(list.events[0].socket_id, "1.2");
    CU_ASSERT_STRING_EQUAL(list.events[0].channels[0], "x");
    CU_ASSERT_STRING_EQUAL(list.events[1].name, "b");
    CU_ASSERT_PTR_NULL(list.events[1].socket_id);
    CU_ASSERT_STRING_EQUAL(list.events[1].channels[0], "y");
    trigger_list_free(&list);
}

static void test_batch_item_info(void)
{
    char message[MESSAGE_MAX];
    struct trigger_list list;
    int status = parse_batch("{\"batch\":[{\"name\":\"a\",\"data\":\"1\",\"channel\":\"x\"},"
                             "{\"name\":\"b\",\"data\":\"2\",\"channel\":\"presence-y\","
                             "\"info\":\"user_count\"}]}",
                             message, &list);
    CU_ASSERT_EQUAL_FATAL(status, 0);
    CU_ASSERT_EQUAL(list.events[0].info, 0);
    CU_ASSERT_EQUAL(list.events[1].info, CHANNEL_INFO_USER_COUNT);
    trigger_list_free(&list);

    status = parse_batch("{\"batch\":[{\"name\":\"a\",\"data\":\"1\",\"channel\":\"x\","
                         "\"info\":\"users\"}]}",
                         message, NULL);
    check_status(status, 400, "batch with info users", message);
    check_message(message, "batch[0]: Invalid info attribute \"users\": expected user_count or "
                           "subscription_count");
}

static void test_batch_empty(void)
{
    char message[MESSAGE_MAX];
    struct trigger_list list;
    CU_ASSERT_EQUAL_FATAL(parse_batch("{\"batch\":[]}", message, &list), 0);
    CU_ASSERT_EQUAL(list.event_count, 0);
    CU_ASSERT_EQUAL(list.frame_count, 0);
    trigger_list_free(&list);
}

static void test_batch_invalid(void)
{
    static const struct {
        const char *body;
        int status;
        const char *message;
    } cases[] = {
        { "{}", 400, "Missing required parameter: batch" },
        { "{\"batch\":{}}", 400, "Invalid batch: expected an array, got an object" },
        { "{\"batch\":[{\"name\":\"a\",\"data\":\"1\",\"channel\":\"x\"},{\"name\":\"a\",\"data\":\"1\","
          "\"channel\":\"x\"},{\"name\":\"a\",\"data\":\"1\",\"channel\":\"x\"}]}",
          400, "Batch too large: 3 events, the maximum is 2" },
        { "{\"batch\":[{\"name\":\"a\",\"data\":\"1\",\"channel\":\"x\"},{\"name\":\"b\",\"data\":\"1\"}]}",
          400, "batch[1]: Missing required parameter: channel" },
        { "{\"batch\":[{\"name\":\"a\",\"data\":\"1\",\"channels\":[\"x\"]}]}", 400,
          "batch[0]: Invalid parameter channels: a batch event takes a single channel" },
        { "{\"batch\":[{\"name\":\"a\",\"data\":\"1\",\"channel\":\"x\"},7]}", 400,
          "Invalid batch[1]: expected an object, got a number" },
        { "{\"batch\":[{\"name\":\"a\",\"data\":\"0123456789abcdefX\",\"channel\":\"x\"}]}", 413,
          "batch[0]: Event data too large: 17 bytes, the maximum is 16" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char message[MESSAGE_MAX];
        check_status(parse_batch(cases[i].body, message, NULL), cases[i].status, cases[i].body,
                     message);
        check_message(message, cases[i].message);
    }
}

/* ------------------------------------------------------------------------
 * Rendering and messages
 * ------------------------------------------------------------------------ */

static void test_render_envelope_and_topic(void)
{
    char message[MESSAGE_MAX];
    struct trigger_list list;
    int status = parse_event("{\"name\":\"App\\\\Ev\",\"data\":\"{\\\"a\\\":\\\"x\\\\\\\"y\\\"}\","
                             "\"channels\":[\"p-1\",\"#server-to-user-7\"],\"socket_id\":\"3.4\"}",
                             message, &list);
    CU_ASSERT_EQUAL_FATAL(status, 0);

    struct strbuf topic;
    struct strbuf envelope;
    strbuf_init(&topic);
    strbuf_init(&envelope);

    trigger_render(&list.events[0], "p-1", "herald:", "app-1", 1700000000123456ULL, &topic,
                   &envelope);
    CU_ASSERT_STRING_EQUAL(topic.data, "herald:ch:{app-1:p-1}");
    CU_ASSERT_STRING_EQUAL(envelope.data,
                           "h1 3.4 0 0 1700000000123456\n{\"event\":\"App\\\\Ev\",\"channel\":\"p-1\",\"data\":"
                           "\"{\\\"a\\\":\\\"x\\\\\\\"y\\\"}\"}");

    strbuf_reset(&topic);
    strbuf_reset(&envelope);
    list.events[0].socket_id = NULL;
    trigger_render(&list.events[0], "#server-to-user-7", "p:", "9", 1, &topic, &envelope);
    CU_ASSERT_STRING_EQUAL(topic.data, "p:ch:{9:#server-to-user-7}");
    CU_ASSERT_PTR_NOT_NULL(strstr(envelope.data, "h1 - 0 0 1\n{\"event\":"));

    strbuf_free(&topic);
    strbuf_free(&envelope);
    trigger_list_free(&list);
}

static void test_printable(void)
{
    char out[68];
    trigger_printable(out, sizeof out, "a\nb\xff", 4);
    CU_ASSERT_STRING_EQUAL(out, "a?b?");

    char long_text[100];
    memset(long_text, 'x', sizeof long_text);
    trigger_printable(out, sizeof out, long_text, sizeof long_text);
    CU_ASSERT_EQUAL(strlen(out), 67);
    CU_ASSERT_STRING_EQUAL(out + 64, "...");
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
        { "event with one channel", test_event_single_channel },
        { "event channels deduplicated", test_event_channels_deduplicated },
        { "event object data serialised", test_event_object_data_serialised },
        { "event limits", test_event_limits },
        { "event invalid fields", test_event_invalid_fields },
        { "event server-to-user channel", test_event_server_to_user_channel },
        { "event socket_ids", test_event_socket_ids },
        { "event invalid JSON", test_event_invalid_json },
        { "event info", test_event_info },
        { "event invalid info", test_event_invalid_info },
        { "batch item info", test_batch_item_info },
        { "batch items", test_batch_items },
        { "batch empty", test_batch_empty },
        { "batch invalid", test_batch_invalid },
        { "render envelope and topic", test_render_envelope_and_topic },
        { "printable text", test_printable },
    };

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("trigger", NULL, NULL);
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
