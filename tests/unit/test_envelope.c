/* Unit tests of common/envelope.c: the "h1 <exclude> <flags>\n<frame>"
 * wrapper that carries a frame over a Redis topic. */
#include <string.h>

#include "envelope.h"
#include "unit_tests.h"

static const char frame[] =
    "{\"event\":\"typing\",\"channel\":\"presence-room.7\",\"data\":\"{\\\"x\\\":1}\"}";

static void test_encode_without_exclude(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    envelope_encode(&sb, NULL, 0, frame, strlen(frame));
    const char expected[] = "h1 - 0\n{\"event\":\"typing\",\"channel\":\"presence-room.7\","
                            "\"data\":\"{\\\"x\\\":1}\"}";
    ASSERT_MEM_EQ(sb.data, sb.len, LITERAL(expected));
    strbuf_free(&sb);
}

static void test_encode_empty_exclude_is_dash(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    envelope_encode(&sb, "", 0, "{}", 2);
    ASSERT_MEM_EQ(sb.data, sb.len, LITERAL("h1 - 0\n{}"));
    strbuf_free(&sb);
}

static void test_encode_exclude_and_flags(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    envelope_encode(&sb, "1234.5678", ENVELOPE_FLAG_CLIENT_EVENT | ENVELOPE_FLAG_MEMBER_EVENT,
                    "{}", 2);
    ASSERT_MEM_EQ(sb.data, sb.len, LITERAL("h1 1234.5678 3\n{}"));
    strbuf_reset(&sb);
    envelope_encode(&sb, NULL, 0xabcu, "{}", 2);
    ASSERT_MEM_EQ(sb.data, sb.len, LITERAL("h1 - abc\n{}"));
    strbuf_free(&sb);
}

static void test_encode_rejects_bad_exclude(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    char too_long[ENVELOPE_SOCKET_ID_MAX + 2];
    memset(too_long, '1', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';

    CU_ASSERT_EQUAL(envelope_encode(&sb, "12 34", 0, "{}", 2), -1);
    CU_ASSERT_EQUAL(envelope_encode(&sb, "12\n34", 0, "{}", 2), -1);
    CU_ASSERT_EQUAL(envelope_encode(&sb, too_long, 0, "{}", 2), -1);
    ASSERT_INT_EQ(sb.len, 0);
    strbuf_free(&sb);
}

static void test_round_trip(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    envelope_encode(&sb, "1234.5678", ENVELOPE_FLAG_CLIENT_EVENT, frame, strlen(frame));

    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(sb.data, sb.len, &env), 0);
    ASSERT_MEM_EQ(env.exclude, env.exclude_len, LITERAL("1234.5678"));
    ASSERT_INT_EQ(env.flags, ENVELOPE_FLAG_CLIENT_EVENT);
    ASSERT_MEM_EQ(env.frame, env.frame_len, frame, strlen(frame));
    /* Zero copy: the frame points into the buffer. */
    CU_ASSERT(env.frame > sb.data && env.frame < sb.data + sb.len);
    strbuf_free(&sb);
}

static void test_round_trip_dash_means_no_exclude(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    envelope_encode(&sb, NULL, 0, frame, strlen(frame));

    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(sb.data, sb.len, &env), 0);
    CU_ASSERT_PTR_NULL(env.exclude);
    ASSERT_INT_EQ(env.exclude_len, 0);
    ASSERT_INT_EQ(env.flags, 0);
    ASSERT_MEM_EQ(env.frame, env.frame_len, frame, strlen(frame));
    strbuf_free(&sb);
}

static void test_round_trip_binary_frame(void)
{
    /* Newlines, NUL and bytes >= 0x80 after the header pass unchanged. */
    const char binary[] = "line1\nline2\0\xff\xfe\r\n h1 - 0\n";
    size_t binary_len = sizeof binary - 1;
    struct strbuf sb;
    strbuf_init(&sb);
    envelope_encode(&sb, "1.2", 0, binary, binary_len);

    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(sb.data, sb.len, &env), 0);
    ASSERT_MEM_EQ(env.exclude, env.exclude_len, LITERAL("1.2"));
    ASSERT_MEM_EQ(env.frame, env.frame_len, binary, binary_len);
    strbuf_free(&sb);
}

static void test_decode_empty_frame(void)
{
    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(LITERAL("h1 - 0\n"), &env), 0);
    ASSERT_INT_EQ(env.frame_len, 0);
}

static void test_decode_uppercase_flags(void)
{
    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(LITERAL("h1 - FF\n{}"), &env), 0);
    ASSERT_INT_EQ(env.flags, 0xff);
}

static void test_decode_sequence_number(void)
{
    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(LITERAL("h1 9.9 2 17\n{}"), &env), 0);
    ASSERT_MEM_EQ(env.exclude, env.exclude_len, LITERAL("9.9"));
    ASSERT_INT_EQ(env.flags, ENVELOPE_FLAG_MEMBER_EVENT);
    ASSERT_INT_EQ(env.seq, 17);
    ASSERT_MEM_EQ(env.frame, env.frame_len, LITERAL("{}"));

    ASSERT_INT_EQ(envelope_decode(LITERAL("h1 - 2 9999999999999999999\n{}"), &env), 0);
    CU_ASSERT(env.seq == 9999999999999999999ull);
}

static void test_decode_without_sequence_is_zero(void)
{
    struct envelope env = { 0 };
    env.seq = 5;
    ASSERT_INT_EQ(envelope_decode(LITERAL("h1 - 2\n{}"), &env), 0);
    ASSERT_INT_EQ(env.seq, 0);
}

static void test_decode_ignores_fields_after_timestamp(void)
{
    /* A later header version may append fields, which this reader ignores. */
    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(LITERAL("h1 - 2 8 1700000000000001 future-field\n{}"), &env), 0);
    ASSERT_INT_EQ(env.seq, 8);
    CU_ASSERT_EQUAL(env.published_us, 1700000000000001ull);
    ASSERT_MEM_EQ(env.frame, env.frame_len, LITERAL("{}"));
}

static void test_decode_rejects_bad_timestamp(void)
{
    struct envelope env = { 0 };
    CU_ASSERT_EQUAL(envelope_decode(LITERAL("h1 - 2 8 soon\n{}"), &env), -1);
}

static void test_encode_published_round_trip(void)
{
    struct strbuf sb;
    strbuf_init(&sb);
    ASSERT_INT_EQ(envelope_encode_published(&sb, "1.2", 0, 1700000000123456ull, "{}", 2), 0);
    ASSERT_MEM_EQ(sb.data, sb.len, LITERAL("h1 1.2 0 0 1700000000123456\n{}"));

    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(sb.data, sb.len, &env), 0);
    ASSERT_MEM_EQ(env.exclude, env.exclude_len, LITERAL("1.2"));
    ASSERT_INT_EQ(env.seq, 0);
    CU_ASSERT_EQUAL(env.published_us, 1700000000123456ull);
    ASSERT_MEM_EQ(env.frame, env.frame_len, LITERAL("{}"));
    CU_ASSERT_EQUAL(envelope_encode_published(&sb, "1 2", 0, 1, "{}", 2), -1);
    strbuf_free(&sb);
}

static void test_decode_exclude_length_limit(void)
{
    char buf[200];
    memcpy(buf, "h1 ", 3);
    memset(buf + 3, '7', ENVELOPE_SOCKET_ID_MAX);
    memcpy(buf + 3 + ENVELOPE_SOCKET_ID_MAX, " 0\n{}", 5);
    size_t len = 3 + ENVELOPE_SOCKET_ID_MAX + 5;

    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(buf, len, &env), 0);
    ASSERT_INT_EQ(env.exclude_len, ENVELOPE_SOCKET_ID_MAX);

    memset(buf + 3, '7', ENVELOPE_SOCKET_ID_MAX + 1);
    memcpy(buf + 3 + ENVELOPE_SOCKET_ID_MAX + 1, " 0\n{}", 5);
    ASSERT_INT_EQ(envelope_decode(buf, len + 1, &env), -1);
}

static void test_decode_malformed_headers(void)
{
    static const struct {
        const char *label;
        const char *bytes;
    } cases[] = {
        { "empty buffer", "" },
        { "no newline", "h1 - 0 {}" },
        { "unknown version", "h2 - 0\n{}" },
        { "version only", "h1\n{}" },
        { "no space after version", "h1- 0\n{}" },
        { "missing exclude", "h1  0\n{}" },
        { "missing flags", "h1 -\n{}" },
        { "empty flags", "h1 - \n{}" },
        { "non-hex flags", "h1 - zz\n{}" },
        { "negative flags", "h1 - -1\n{}" },
        { "flags over 32 bits", "h1 - 123456789\n{}" },
        { "version prefix only", "h10 - 0\n{}" },
        { "frame before header", "{}\nh1 - 0\n" },
        { "non-decimal sequence", "h1 - 2 1a\n{}" },
        { "empty sequence", "h1 - 2 \n{}" },
        { "negative sequence", "h1 - 2 -1\n{}" },
        { "sequence over 19 digits", "h1 - 2 12345678901234567890\n{}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct envelope env = { 0 };
        int rc = envelope_decode(cases[i].bytes, strlen(cases[i].bytes), &env);
        unit_assert_long_equal(rc, -1, cases[i].label, __FILE__, __LINE__);
    }
}

static void test_decode_reads_only_len_bytes(void)
{
    /* The newline lies beyond `len`, so the header is incomplete. */
    const char buf[] = "h1 - 0\n{}";
    struct envelope env = { 0 };
    ASSERT_INT_EQ(envelope_decode(buf, 6, &env), -1);
}

CU_ErrorCode test_envelope_register(void)
{
    static const struct unit_test tests[] = {
        { "encode without exclude", test_encode_without_exclude },
        { "encode empty exclude is dash", test_encode_empty_exclude_is_dash },
        { "encode exclude and flags", test_encode_exclude_and_flags },
        { "encode rejects bad exclude", test_encode_rejects_bad_exclude },
        { "round trip", test_round_trip },
        { "round trip dash means no exclude", test_round_trip_dash_means_no_exclude },
        { "round trip binary frame", test_round_trip_binary_frame },
        { "decode empty frame", test_decode_empty_frame },
        { "decode uppercase flags", test_decode_uppercase_flags },
        { "decode sequence number", test_decode_sequence_number },
        { "decode without sequence is zero", test_decode_without_sequence_is_zero },
        { "decode ignores fields after timestamp", test_decode_ignores_fields_after_timestamp },
        { "decode rejects bad timestamp", test_decode_rejects_bad_timestamp },
        { "encode published round trip", test_encode_published_round_trip },
        { "decode exclude length limit", test_decode_exclude_length_limit },
        { "decode malformed headers", test_decode_malformed_headers },
        { "decode reads only len bytes", test_decode_reads_only_len_bytes },
        { NULL, NULL },
    };
    return unit_add_suite("envelope", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
