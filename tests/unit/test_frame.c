/* Unit tests of common/frame.c: the exact bytes of every server-to-client
 * frame, and that each one parses back as the JSON a client expects. */
#include <string.h>

#include <json-c/json.h>

#include "frame.h"
#include "unit_tests.h"

/* Parses `text` and returns the string member `data`, or NULL. The caller
 * puts `*root`. */
static const char *parse_data_string(const char *text, struct json_object **root)
{
    *root = json_tokener_parse(text);
    struct json_object *data;
    if (!*root || !json_object_object_get_ex(*root, "data", &data) ||
        !json_object_is_type(data, json_type_string))
        return NULL;
    return json_object_get_string(data);
}

static void test_event_with_channel(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    const char data[] = "{\"order_id\":7}";
    frame_render_event(&sb, "App\\Events\\OrderShipped", "private-orders.7", data,
                       strlen(data), NULL);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"App\\\\Events\\\\OrderShipped\","
                           "\"channel\":\"private-orders.7\","
                           "\"data\":\"{\\\"order_id\\\":7}\"}");

    struct json_object *root;
    ASSERT_STR_EQ(parse_data_string(sb.data, &root), data);
    json_object_put(root);
    strbuf_free(&sb);
}

static void test_event_with_user_id(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_event(&sb, "client-typing", "presence-room.7", "{\"typing\":true}", 15, "7");
    ASSERT_STR_EQ(sb.data, "{\"event\":\"client-typing\",\"channel\":\"presence-room.7\","
                           "\"data\":\"{\\\"typing\\\":true}\",\"user_id\":\"7\"}");
    strbuf_free(&sb);
}

static void test_event_without_channel(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    const char data[] = "{\"events\":[{\"name\":\"online\",\"user_ids\":[\"8\"]}]}";
    frame_render_event(&sb, "pusher_internal:watchlist_events", NULL, data, strlen(data), NULL);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"pusher_internal:watchlist_events\","
                           "\"data\":\"{\\\"events\\\":[{\\\"name\\\":\\\"online\\\","
                           "\\\"user_ids\\\":[\\\"8\\\"]}]}\"}");
    strbuf_free(&sb);
}

static void test_event_presence_succeeded(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    const char data[] = "{\"presence\":{\"ids\":[\"7\",\"8\"],\"hash\":{\"7\":{\"name\":"
                        "\"Alice\"},\"8\":{\"name\":\"Bob\"}},\"count\":2}}";
    frame_render_event(&sb, "pusher_internal:subscription_succeeded", "presence-room.7", data,
                       strlen(data), NULL);
    ASSERT_STR_EQ(sb.data,
                  "{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":"
                  "\"presence-room.7\",\"data\":\"{\\\"presence\\\":{\\\"ids\\\":[\\\"7\\\","
                  "\\\"8\\\"],\\\"hash\\\":{\\\"7\\\":{\\\"name\\\":\\\"Alice\\\"},\\\"8\\\":"
                  "{\\\"name\\\":\\\"Bob\\\"}},\\\"count\\\":2}}\"}");
    strbuf_free(&sb);
}

static void test_event_escapes_data(void)
{
    /* PHP sends "\/" inside data and it must survive as those two bytes. */
    const char data[] = "{\"url\":\"http:\\/\\/x\",\"q\":\"say \\\"hi\\\"\"}\n\t\x01";
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_event(&sb, "e", "c", data, strlen(data), NULL);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"e\",\"channel\":\"c\",\"data\":\"{\\\"url\\\":"
                           "\\\"http:\\\\/\\\\/x\\\",\\\"q\\\":\\\"say \\\\\\\"hi\\\\\\\"\\\"}"
                           "\\n\\t\\u0001\"}");

    struct json_object *root;
    ASSERT_STR_EQ(parse_data_string(sb.data, &root), data);
    json_object_put(root);
    strbuf_free(&sb);
}

static void test_event_unicode_unchanged(void)
{
    const char data[] = "{\"name\":\"Zo\xc3\xab \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80\"}";
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_event(&sb, "greeting", "news", data, strlen(data), NULL);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"greeting\",\"channel\":\"news\",\"data\":\"{\\\"name"
                           "\\\":\\\"Zo\xc3\xab \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80\\\"}\"}");

    struct json_object *root;
    ASSERT_STR_EQ(parse_data_string(sb.data, &root), data);
    json_object_put(root);
    strbuf_free(&sb);
}

static void test_event_data_length_respected(void)
{
    /* `data_len` bounds the data, which may contain a NUL. */
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_event(&sb, "e", NULL, "ab\0cd-not-sent", 5, NULL);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"e\",\"data\":\"ab\\u0000cd\"}");
    strbuf_free(&sb);
}

static void test_event_appends(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_str(&sb, "h1 - 0\n");
    frame_render_event(&sb, "e", "c", "", 0, NULL);
    ASSERT_STR_EQ(sb.data, "h1 - 0\n{\"event\":\"e\",\"channel\":\"c\",\"data\":\"\"}");
    strbuf_free(&sb);
}

static void test_error_with_code(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_error(&sb, 4001, "App key app-x not in this cluster");
    ASSERT_STR_EQ(sb.data, "{\"event\":\"pusher:error\",\"data\":{\"code\":4001,"
                           "\"message\":\"App key app-x not in this cluster\"}}");

    /* data is an object here, as Pusher sends it. */
    struct json_object *root = json_tokener_parse(sb.data);
    struct json_object *data, *code;
    CU_ASSERT_FATAL(root && json_object_object_get_ex(root, "data", &data));
    CU_ASSERT(json_object_is_type(data, json_type_object));
    CU_ASSERT_FATAL(json_object_object_get_ex(data, "code", &code));
    ASSERT_INT_EQ(json_object_get_int(code), 4001);
    json_object_put(root);
    strbuf_free(&sb);
}

static void test_error_null_code(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_error(&sb, -1, "Existing subscription to channel news");
    ASSERT_STR_EQ(sb.data, "{\"event\":\"pusher:error\",\"data\":{\"code\":null,"
                           "\"message\":\"Existing subscription to channel news\"}}");
    strbuf_free(&sb);
}

static void test_error_escapes_message(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_error(&sb, 4301, "bad \"name\" \\ here\n");
    ASSERT_STR_EQ(sb.data, "{\"event\":\"pusher:error\",\"data\":{\"code\":4301,"
                           "\"message\":\"bad \\\"name\\\" \\\\ here\\n\"}}");
    strbuf_free(&sb);
}

static void test_connection_established(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_connection_established(&sb, "1234.5678", 120);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"pusher:connection_established\",\"data\":"
                           "\"{\\\"socket_id\\\":\\\"1234.5678\\\",\\\"activity_timeout\\\":120}\"}");

    struct json_object *root;
    ASSERT_STR_EQ(parse_data_string(sb.data, &root),
                  "{\"socket_id\":\"1234.5678\",\"activity_timeout\":120}");
    json_object_put(root);
    strbuf_free(&sb);
}

static void test_subscription_error(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_subscription_error(&sb, "private-orders.7", "AuthError",
                                    "The connection is unauthorized.", 401);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"pusher:subscription_error\",\"channel\":"
                           "\"private-orders.7\",\"data\":{\"type\":\"AuthError\","
                           "\"error\":\"The connection is unauthorized.\",\"status\":401}}");
    strbuf_free(&sb);
}

static void test_subscription_error_escapes(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    frame_render_subscription_error(&sb, "presence-x", "LimitReached", "over \"100\"", 4100);
    ASSERT_STR_EQ(sb.data, "{\"event\":\"pusher:subscription_error\",\"channel\":"
                           "\"presence-x\",\"data\":{\"type\":\"LimitReached\","
                           "\"error\":\"over \\\"100\\\"\",\"status\":4100}}");
    struct json_object *root = json_tokener_parse(sb.data);
    CU_ASSERT_PTR_NOT_NULL(root);
    json_object_put(root);
    strbuf_free(&sb);
}

CU_ErrorCode test_frame_register(void)
{
    static const struct unit_test tests[] = {
        { "event with channel", test_event_with_channel },
        { "event with user_id", test_event_with_user_id },
        { "event without channel", test_event_without_channel },
        { "event presence succeeded", test_event_presence_succeeded },
        { "event escapes data", test_event_escapes_data },
        { "event unicode unchanged", test_event_unicode_unchanged },
        { "event data length respected", test_event_data_length_respected },
        { "event appends", test_event_appends },
        { "error with code", test_error_with_code },
        { "error null code", test_error_null_code },
        { "error escapes message", test_error_escapes_message },
        { "connection established", test_connection_established },
        { "subscription error", test_subscription_error },
        { "subscription error escapes", test_subscription_error_escapes },
        { NULL, NULL },
    };
    return unit_add_suite("frame", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
