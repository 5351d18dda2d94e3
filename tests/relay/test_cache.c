/* herald-relay-cache-tests: CUnit tests of relay/cache.c, the "cache"
 * attribute rendered from the reply of the cached event read. The replies
 * are built by hand in the shapes hiredis returns.
 *
 * Built with the relay when HERALD_TESTS is on, and run by ctest. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <hiredis/hiredis.h>

#include "cache.h"
#include "strbuf.h"

/* The reply of the read script: the stored frame and its TTL. */
struct cache_reply {
    redisReply reply;
    redisReply frame;
    redisReply ttl;
    redisReply *elements[2];
};

static void cache_reply_init(struct cache_reply *stored, const char *frame, long long ttl)
{
    memset(stored, 0, sizeof *stored);
    stored->frame.type = REDIS_REPLY_STRING;
    stored->frame.str = (char *)frame;
    stored->frame.len = strlen(frame);
    stored->ttl.type = REDIS_REPLY_INTEGER;
    stored->ttl.integer = ttl;
    stored->elements[0] = &stored->frame;
    stored->elements[1] = &stored->ttl;
    stored->reply.type = REDIS_REPLY_ARRAY;
    stored->reply.elements = 2;
    stored->reply.element = stored->elements;
}

static void check_text(const char *actual, const char *expected, int line)
{
    char text[1200];
    snprintf(text, sizeof text, "got \"%s\", expected \"%s\"", actual, expected);
    CU_assertImplementation(strcmp(actual, expected) == 0, line, text, __FILE__, "", CU_FALSE);
}

#define CHECK_TEXT(actual, expected) check_text((actual), (expected), __LINE__)

static void test_channel_types(void)
{
    CU_ASSERT_TRUE(cache_channel("cache-ticker"));
    CU_ASSERT_TRUE(cache_channel("private-cache-orders.7"));
    CU_ASSERT_TRUE(cache_channel("private-encrypted-cache-vault"));
    CU_ASSERT_TRUE(cache_channel("presence-cache-room"));
    CU_ASSERT_FALSE(cache_channel("news"));
    CU_ASSERT_FALSE(cache_channel("private-orders.7"));
    CU_ASSERT_FALSE(cache_channel("presence-room"));
    CU_ASSERT_FALSE(cache_channel("ticker-cache-x"));
}

static void test_render_stored_event(void)
{
    struct cache_reply stored;
    cache_reply_init(&stored,
                     "{\"event\":\"price-updated\",\"channel\":\"cache-ticker\","
                     "\"data\":\"{\\\"p\\\":101,\\\"s\\\":\\\"a/b\\\"}\"}",
                     60);

    struct strbuf out;
    strbuf_init(&out);
    CU_ASSERT_EQUAL(cache_render_attribute(&out, &stored.reply), 0);
    CHECK_TEXT(out.data, "\"cache\":{\"data\":\"{\\\"p\\\":101,\\\"s\\\":\\\"a/b\\\"}\",\"ttl\":60}");
    strbuf_free(&out);
}

static void test_render_empty_cache(void)
{
    redisReply nil;
    memset(&nil, 0, sizeof nil);
    nil.type = REDIS_REPLY_NIL;

    struct strbuf out;
    strbuf_init(&out);
    CU_ASSERT_EQUAL(cache_render_attribute(&out, &nil), 0);
    CU_ASSERT_EQUAL(out.len, 0);
    strbuf_free(&out);
}

static void test_render_rejects_shapes(void)
{
    static const char *const broken_frames[] = {
        "not json",
        "[1,2]",
        "{\"event\":\"e\",\"channel\":\"cache-x\"}",
        "{\"event\":\"e\",\"channel\":\"cache-x\",\"data\":{\"p\":1}}",
        "{\"event\":\"e\",\"data\":\"x\"",
    };

    struct strbuf out;
    strbuf_init(&out);
    for (size_t i = 0; i < sizeof broken_frames / sizeof broken_frames[0]; i++) {
        struct cache_reply stored;
        cache_reply_init(&stored, broken_frames[i], 10);
        CU_ASSERT_EQUAL(cache_render_attribute(&out, &stored.reply), -1);
        CU_ASSERT_EQUAL(out.len, 0);
    }

    CU_ASSERT_EQUAL(cache_render_attribute(&out, NULL), -1);

    struct cache_reply short_reply;
    cache_reply_init(&short_reply, "{\"data\":\"x\"}", 10);
    short_reply.reply.elements = 1;
    CU_ASSERT_EQUAL(cache_render_attribute(&out, &short_reply.reply), -1);

    struct cache_reply string_ttl;
    cache_reply_init(&string_ttl, "{\"data\":\"x\"}", 10);
    string_ttl.ttl.type = REDIS_REPLY_STRING;
    string_ttl.ttl.str = "10";
    string_ttl.ttl.len = 2;
    CU_ASSERT_EQUAL(cache_render_attribute(&out, &string_ttl.reply), -1);

    CU_ASSERT_EQUAL(out.len, 0);
    strbuf_free(&out);
}

int main(void)
{
    static const struct {
        const char *name;
        CU_TestFunc run;
    } tests[] = {
        { "channel types", test_channel_types },
        { "render stored event", test_render_stored_event },
        { "render empty cache", test_render_empty_cache },
        { "render rejects shapes", test_render_rejects_shapes },
    };

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("cache", NULL, NULL);
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
