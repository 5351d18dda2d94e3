/* Unit tests of common/strbuf.c: growth, NUL termination, formatting and
 * JSON string escaping. */
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "unit_tests.h"

static void test_init_is_empty(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    CU_ASSERT_PTR_NULL(sb.data);
    ASSERT_INT_EQ(sb.len, 0);
    ASSERT_INT_EQ(sb.cap, 0);
    strbuf_free(&sb);
}

static void test_append_keeps_nul_terminator(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_str(&sb, "hello");
    strbuf_append_char(&sb, ' ');
    strbuf_append(&sb, "world!!", 5);
    ASSERT_STR_EQ(sb.data, "hello world");
    ASSERT_INT_EQ(sb.len, 11);
    CU_ASSERT(sb.cap > sb.len);
    ASSERT_INT_EQ(sb.data[sb.len], '\0');
    strbuf_free(&sb);
}

static void test_append_binary_bytes(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append(&sb, "a\0b\xff", 4);
    ASSERT_MEM_EQ(sb.data, sb.len, LITERAL("a\0b\xff"));
    ASSERT_INT_EQ(sb.data[4], '\0');
    strbuf_free(&sb);
}

static void test_growth_past_many_doublings(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    char block[1000];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < 100; i++)
        strbuf_append(&sb, block, sizeof block);
    ASSERT_INT_EQ(sb.len, 100000);
    CU_ASSERT(sb.cap >= sb.len + 1);
    ASSERT_INT_EQ(sb.data[99999], 'x');
    ASSERT_INT_EQ(sb.data[100000], '\0');
    strbuf_free(&sb);
}

static void test_reserve_guarantees_room(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_str(&sb, "abc");
    strbuf_reserve(&sb, 500);
    CU_ASSERT(sb.cap >= 3 + 500 + 1);
    ASSERT_STR_EQ(sb.data, "abc");
    size_t cap = sb.cap;
    strbuf_reserve(&sb, 10);
    ASSERT_INT_EQ(sb.cap, cap);
    strbuf_free(&sb);
}

static void test_reset_keeps_capacity(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_str(&sb, "some text");
    size_t cap = sb.cap;
    strbuf_reset(&sb);
    ASSERT_INT_EQ(sb.len, 0);
    ASSERT_STR_EQ(sb.data, "");
    ASSERT_INT_EQ(sb.cap, cap);
    strbuf_append_str(&sb, "new");
    ASSERT_STR_EQ(sb.data, "new");
    strbuf_free(&sb);

    /* Resetting a buffer that never allocated must not touch memory. */
    strbuf_init(&sb);
    strbuf_reset(&sb);
    CU_ASSERT_PTR_NULL(sb.data);
}

static void test_appendf_formats(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_appendf(&sb, "%s=%d", "count", 42);
    strbuf_appendf(&sb, ",%05.1f", 3.14159);
    ASSERT_STR_EQ(sb.data, "count=42,003.1");
    ASSERT_INT_EQ(sb.len, strlen("count=42,003.1"));
    strbuf_free(&sb);
}

static void test_appendf_long_output(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_str(&sb, ">");
    strbuf_appendf(&sb, "%0300d", 7);
    ASSERT_INT_EQ(sb.len, 301);
    ASSERT_INT_EQ(sb.data[299], '0');
    ASSERT_INT_EQ(sb.data[300], '7');
    ASSERT_INT_EQ(sb.data[301], '\0');
    strbuf_free(&sb);
}

static void test_appendf_empty_result(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_appendf(&sb, "%s", "");
    ASSERT_INT_EQ(sb.len, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sb.data);
    ASSERT_STR_EQ(sb.data, "");
    strbuf_free(&sb);
}

static void check_json_string(const char *input, size_t len, const char *expected)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_json_string(&sb, input, len);
    ASSERT_MEM_EQ(sb.data, sb.len, expected, strlen(expected));
    strbuf_free(&sb);
}

static void test_json_string_plain(void)
{
    check_json_string("", 0, "\"\"");
    check_json_string("news", 4, "\"news\"");
    /* '/' needs no escape in JSON and the frames leave it alone. */
    check_json_string("a/b", 3, "\"a/b\"");
}

static void test_json_string_quotes_and_backslashes(void)
{
    check_json_string("say \"hi\"", 8, "\"say \\\"hi\\\"\"");
    check_json_string("App\\Events\\OrderShipped", 23, "\"App\\\\Events\\\\OrderShipped\"");
    check_json_string("{\"order_id\":7}", 14, "\"{\\\"order_id\\\":7}\"");
}

static void test_json_string_control_characters(void)
{
    check_json_string("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    check_json_string("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    check_json_string("a\0b", 3, "\"a\\u0000b\"");
    /* DEL is not a JSON control character. */
    check_json_string("\x7f", 1, "\"\x7f\"");
}

static void test_json_string_utf8_unchanged(void)
{
    check_json_string("Zo\xc3\xab \xe6\x9d\xb1 \xf0\x9f\x98\x80", 13,
                      "\"Zo\xc3\xab \xe6\x9d\xb1 \xf0\x9f\x98\x80\"");
}

static void test_json_string_worst_case_growth(void)
{
    /* Every byte expands to six; the reserve must cover that at once. */
    char input[300];
    memset(input, 0x01, sizeof input);
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_json_string(&sb, input, sizeof input);
    ASSERT_INT_EQ(sb.len, 300 * 6 + 2);
    ASSERT_INT_EQ(sb.data[sb.len], '\0');
    strbuf_free(&sb);
}

static void test_detach_transfers_ownership(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_append_str(&sb, "frame");
    size_t len = 0;
    char *data = strbuf_detach(&sb, &len);
    ASSERT_STR_EQ(data, "frame");
    ASSERT_INT_EQ(len, 5);
    CU_ASSERT_PTR_NULL(sb.data);
    ASSERT_INT_EQ(sb.len, 0);
    free(data);

    /* An empty buffer still detaches a terminated allocation. */
    data = strbuf_detach(&sb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    ASSERT_STR_EQ(data, "");
    free(data);

    /* A buffer that was used and reset detaches "". */
    strbuf_append_str(&sb, "x");
    strbuf_reset(&sb);
    data = strbuf_detach(&sb, &len);
    ASSERT_STR_EQ(data, "");
    ASSERT_INT_EQ(len, 0);
    free(data);
}

CU_ErrorCode test_strbuf_register(void)
{
    static const struct unit_test tests[] = {
        { "init is empty", test_init_is_empty },
        { "append keeps NUL terminator", test_append_keeps_nul_terminator },
        { "append binary bytes", test_append_binary_bytes },
        { "growth past many doublings", test_growth_past_many_doublings },
        { "reserve guarantees room", test_reserve_guarantees_room },
        { "reset keeps capacity", test_reset_keeps_capacity },
        { "appendf formats", test_appendf_formats },
        { "appendf long output", test_appendf_long_output },
        { "appendf empty result", test_appendf_empty_result },
        { "json string plain", test_json_string_plain },
        { "json string quotes and backslashes", test_json_string_quotes_and_backslashes },
        { "json string control characters", test_json_string_control_characters },
        { "json string UTF-8 unchanged", test_json_string_utf8_unchanged },
        { "json string worst-case growth", test_json_string_worst_case_growth },
        { "detach transfers ownership", test_detach_transfers_ownership },
        { NULL, NULL },
    };
    return unit_add_suite("strbuf", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
