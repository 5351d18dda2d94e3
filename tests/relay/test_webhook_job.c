/* herald-relay-webhook-job-tests: CUnit tests of relay/webhook_job.c, the
 * parsing of webhook job fields from stream entries and the JSON body of a
 * webhook POST.
 *
 * Built with the relay when HERALD_TESTS is on, and run by ctest. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "config.h"
#include "signature.h"
#include "strbuf.h"
#include "webhook_job.h"

#define FIELDS_MAX 16
#define MESSAGE_MAX 256

/* A stream entry's fields as the dispatcher stores them. */
struct entry {
    char *strings[FIELDS_MAX];
    size_t lengths[FIELDS_MAX];
    size_t count;
};

/* Fills `entry` from NULL-terminated name and value pairs. */
static void entry_set(struct entry *entry, const char *const *pairs)
{
    entry->count = 0;
    for (size_t i = 0; pairs[i]; i++) {
        entry->strings[entry->count] = (char *)pairs[i];
        entry->lengths[entry->count] = strlen(pairs[i]);
        entry->count++;
    }
}

static int parse(const char *const *pairs, struct webhook_job_event *event, char *err)
{
    static struct entry entry; /* the event points into it */
    entry_set(&entry, pairs);
    err[0] = '\0';
    return webhook_job_event_parse(event, entry.strings, entry.lengths, entry.count, err,
                                   MESSAGE_MAX);
}

static void check_text(const char *actual, const char *expected, unsigned line)
{
    char text[1024];
    snprintf(text, sizeof text, "got %s, expected %s", actual ? actual : "(null)",
             expected ? expected : "(null)");
    bool equal = actual && expected ? strcmp(actual, expected) == 0 : actual == expected;
    CU_assertImplementation(equal, line, text, __FILE__, "", CU_FALSE);
}

#define CHECK_TEXT(actual, expected) check_text((actual), (expected), __LINE__)

/* Renders the body of one event sent at a fixed time. */
static void check_body(const struct webhook_job_event *event, const char *expected, unsigned line)
{
    struct strbuf body;
    strbuf_init(&body);
    const struct webhook_job_event *events[] = { event };
    webhook_job_render_body(&body, 1700000000123ull, events, 1);
    check_text(body.data, expected, line);
    strbuf_free(&body);
}

#define CHECK_BODY(event, expected) check_body((event), (expected), __LINE__)

/* ------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------ */

static void test_parse_channel_events(void)
{
    static const char *const names[] = { "channel_occupied", "channel_vacated", "cache_miss" };
    static const unsigned types[] = { WEBHOOK_CHANNEL_OCCUPIED, WEBHOOK_CHANNEL_VACATED,
                                      WEBHOOK_CACHE_MISS };
    for (size_t i = 0; i < 3; i++) {
        const char *const pairs[] = { "time_ms", "1", "name", names[i], "channel", "room-1",
                                      "user_id", "u1", NULL };
        struct webhook_job_event event;
        char err[MESSAGE_MAX];
        CU_ASSERT_EQUAL(parse(pairs, &event, err), 0);
        CU_ASSERT_EQUAL(event.type, types[i]);
        CHECK_TEXT(event.channel, "room-1");
        /* Fields that do not belong to the type are dropped. */
        CU_ASSERT_PTR_NULL(event.user_id);
        CU_ASSERT_PTR_NULL(event.event);
        CU_ASSERT_PTR_NULL(event.data);
        CU_ASSERT_PTR_NULL(event.socket_id);
    }
}

static void test_parse_member_events(void)
{
    const char *const added[] = { "time_ms", "1", "name", "member_added", "channel",
                                  "presence-room", "user_id", "42", NULL };
    struct webhook_job_event event;
    char err[MESSAGE_MAX];
    CU_ASSERT_EQUAL(parse(added, &event, err), 0);
    CU_ASSERT_EQUAL(event.type, WEBHOOK_MEMBER_ADDED);
    CHECK_TEXT(event.user_id, "42");

    const char *const removed[] = { "name", "member_removed", "channel", "presence-room",
                                    NULL };
    CU_ASSERT_EQUAL(parse(removed, &event, err), -1);
    CHECK_TEXT(err, "missing field user_id for member_removed");
}

static void test_parse_client_event(void)
{
    const char *const pairs[] = { "time_ms", "1", "name", "client_event", "channel",
                                  "private-chat", "event", "client-typing", "data",
                                  "{\"a\":1}", "socket_id", "1.2", "user_id", "", NULL };
    struct webhook_job_event event;
    char err[MESSAGE_MAX];
    CU_ASSERT_EQUAL(parse(pairs, &event, err), 0);
    CU_ASSERT_EQUAL(event.type, WEBHOOK_CLIENT_EVENT);
    CHECK_TEXT(event.event, "client-typing");
    CHECK_TEXT(event.data, "{\"a\":1}");
    CU_ASSERT_EQUAL(event.data_len, 7);
    CHECK_TEXT(event.socket_id, "1.2");
    /* The gateway writes an empty user_id outside presence channels. */
    CU_ASSERT_PTR_NULL(event.user_id);

    const char *const no_socket[] = { "name", "client_event", "channel", "private-chat",
                                      "event", "client-typing", "data", "{}", NULL };
    CU_ASSERT_EQUAL(parse(no_socket, &event, err), -1);
    CHECK_TEXT(err, "missing field socket_id for client_event");
}

static void test_parse_subscription_count(void)
{
    const char *const pairs[] = { "name", "subscription_count", "channel", "news",
                                  "subscription_count", "12", NULL };
    struct webhook_job_event event;
    char err[MESSAGE_MAX];
    CU_ASSERT_EQUAL(parse(pairs, &event, err), 0);
    CU_ASSERT_EQUAL(event.type, WEBHOOK_SUBSCRIPTION_COUNT);
    CU_ASSERT_EQUAL(event.subscription_count, 12);

    const char *const negative[] = { "name", "subscription_count", "channel", "news",
                                     "subscription_count", "-1", NULL };
    CU_ASSERT_EQUAL(parse(negative, &event, err), -1);
    CHECK_TEXT(err, "invalid subscription_count \"-1\": expected a non-negative integer");

    const char *const trailing[] = { "name", "subscription_count", "channel", "news",
                                     "subscription_count", "3x", NULL };
    CU_ASSERT_EQUAL(parse(trailing, &event, err), -1);
}

static void test_parse_rejects_invalid(void)
{
    struct webhook_job_event event;
    char err[MESSAGE_MAX];

    const char *const no_name[] = { "channel", "room", NULL };
    CU_ASSERT_EQUAL(parse(no_name, &event, err), -1);
    CHECK_TEXT(err, "missing field name");

    const char *const unknown[] = { "name", "channel_exploded", "channel", "room", NULL };
    CU_ASSERT_EQUAL(parse(unknown, &event, err), -1);
    CHECK_TEXT(err, "unknown event name \"channel_exploded\"");

    const char *const no_channel[] = { "name", "channel_occupied", NULL };
    CU_ASSERT_EQUAL(parse(no_channel, &event, err), -1);
    CHECK_TEXT(err, "missing field channel for channel_occupied");

    const char *const empty_channel[] = { "name", "channel_occupied", "channel", "", NULL };
    CU_ASSERT_EQUAL(parse(empty_channel, &event, err), -1);
}

/* ------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------ */

static void test_render_signed_example(void)
{
    struct webhook_job_event event = { .type = WEBHOOK_CHANNEL_OCCUPIED,
                                       .channel = "presence-room.7" };
    CHECK_BODY(&event, "{\"time_ms\":1700000000123,\"events\":[{\"name\":\"channel_occupied\","
                       "\"channel\":\"presence-room.7\"}]}");

    /* X-Pusher-Signature of that body with secret app-secret, as Node's
     * crypto.createHmac('sha256', 'app-secret') computes it. */
    struct strbuf body;
    strbuf_init(&body);
    const struct webhook_job_event *events[] = { &event };
    webhook_job_render_body(&body, 1700000000123ull, events, 1);
    char signature[SIGNATURE_HEX_LEN + 1];
    signature_hmac_sha256_hex("app-secret", body.data, body.len, signature);
    CHECK_TEXT(signature, "c8e9e17cfff074d9fe659012a068c2e56218182701dfa1fd81bf9190d19af0b3");
    strbuf_free(&body);
}

static void test_render_each_type(void)
{
    struct webhook_job_event member = { .type = WEBHOOK_MEMBER_REMOVED,
                                        .channel = "presence-a",
                                        .user_id = "7" };
    CHECK_BODY(&member, "{\"time_ms\":1700000000123,\"events\":[{\"name\":\"member_removed\","
                        "\"channel\":\"presence-a\",\"user_id\":\"7\"}]}");

    struct webhook_job_event client = { .type = WEBHOOK_CLIENT_EVENT,
                                        .channel = "presence-a",
                                        .user_id = "7",
                                        .event = "client-x",
                                        .data = "{\"t\":\"a\\\"b\"}",
                                        .data_len = 12,
                                        .socket_id = "1.2" };
    CHECK_BODY(&client, "{\"time_ms\":1700000000123,\"events\":[{\"name\":\"client_event\","
                        "\"channel\":\"presence-a\",\"user_id\":\"7\",\"event\":\"client-x\","
                        "\"data\":\"{\\\"t\\\":\\\"a\\\\\\\"b\\\"}\",\"socket_id\":\"1.2\"}]}");

    struct webhook_job_event count = { .type = WEBHOOK_SUBSCRIPTION_COUNT,
                                       .channel = "news",
                                       .subscription_count = 3 };
    CHECK_BODY(&count, "{\"time_ms\":1700000000123,\"events\":[{\"name\":\"subscription_count\","
                       "\"channel\":\"news\",\"subscription_count\":3}]}");
}

static void test_render_batch(void)
{
    struct webhook_job_event occupied = { .type = WEBHOOK_CHANNEL_OCCUPIED, .channel = "a" };
    struct webhook_job_event vacated = { .type = WEBHOOK_CHANNEL_VACATED, .channel = "a" };
    const struct webhook_job_event *events[] = { &occupied, &vacated };

    struct strbuf body;
    strbuf_init(&body);
    webhook_job_render_body(&body, 5, events, 2);
    CHECK_TEXT(body.data, "{\"time_ms\":5,\"events\":[{\"name\":\"channel_occupied\","
                          "\"channel\":\"a\"},{\"name\":\"channel_vacated\",\"channel\":\"a\"}]}");
    strbuf_free(&body);
}

static void test_render_escapes_channel(void)
{
    struct webhook_job_event event = { .type = WEBHOOK_CACHE_MISS,
                                       .channel = "cache-\"q\"\\\n" };
    CHECK_BODY(&event, "{\"time_ms\":1700000000123,\"events\":[{\"name\":\"cache_miss\","
                       "\"channel\":\"cache-\\\"q\\\"\\\\\\n\"}]}");
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
        { "parse channel events", test_parse_channel_events },
        { "parse member events", test_parse_member_events },
        { "parse client event", test_parse_client_event },
        { "parse subscription count", test_parse_subscription_count },
        { "parse rejects invalid", test_parse_rejects_invalid },
        { "render signed example", test_render_signed_example },
        { "render each type", test_render_each_type },
        { "render batch", test_render_batch },
        { "render escapes channel", test_render_escapes_channel },
    };

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("webhook_job", NULL, NULL);
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
