/* Unit tests of common/signature.c against the published Pusher vectors:
 * channel authorization, user sign-in, HTTP API request signing, query
 * decoding and every failure of signature_check_request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signature.h"
#include "unit_tests.h"

/* The app of the Pusher documentation's examples. */
static const struct app_config docs_app = {
    .id = (char *)"3",
    .key = (char *)"278d425bdf160c739803",
    .secret = (char *)"7ad3773142a6692b25b8",
};

/* The app of Herald's own vectors (the development app's key and secret). */
static const struct app_config dev_app = {
    .id = (char *)"42",
    .key = (char *)"app-key",
    .secret = (char *)"app-secret",
};

static const char order_body[] =
    "{\"name\":\"App\\\\Events\\\\OrderShipped\",\"data\":\"{\\\"order_id\\\":7}\","
    "\"channel\":\"private-orders.7\",\"socket_id\":\"1234.5678\"}";

static const char docs_body[] =
    "{\"name\":\"foo\",\"channels\":[\"project-3\"],\"data\":\"{\\\"some\\\":\\\"data\\\"}\"}";

/* ------------------------------------------------------------------------
 * Digests and comparison
 * ------------------------------------------------------------------------ */

static void test_hmac_sha256_vectors(void)
{
    char hex[SIGNATURE_HEX_LEN + 1];
    const char msg[] = "1234.1234:private-foobar";
    signature_hmac_sha256_hex(docs_app.secret, msg, strlen(msg), hex);
    ASSERT_STR_EQ(hex, "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4");

    /* The webhook signature is the HMAC of the raw body. */
    const char webhook[] = "{\"time_ms\":1700000000123,\"events\":[{\"name\":\"channel_occupied\","
                           "\"channel\":\"presence-room.7\"}]}";
    signature_hmac_sha256_hex("app-secret", webhook, strlen(webhook), hex);
    ASSERT_STR_EQ(hex, "c8e9e17cfff074d9fe659012a068c2e56218182701dfa1fd81bf9190d19af0b3");
}

static void test_hmac_covers_exact_bytes(void)
{
    /* msg_len, not a NUL, ends the message. */
    char with_nul[SIGNATURE_HEX_LEN + 1], without[SIGNATURE_HEX_LEN + 1];
    signature_hmac_sha256_hex("k", "ab\0c", 4, with_nul);
    signature_hmac_sha256_hex("k", "ab", 2, without);
    CU_ASSERT(strcmp(with_nul, without) != 0);
    ASSERT_INT_EQ(strlen(with_nul), SIGNATURE_HEX_LEN);
}

static void test_md5_vectors(void)
{
    char hex[33];
    signature_md5_hex("", 0, hex);
    ASSERT_STR_EQ(hex, "d41d8cd98f00b204e9800998ecf8427e");
    signature_md5_hex("{}", 2, hex);
    ASSERT_STR_EQ(hex, "99914b932bd37a50b983c5e7c90ae93b");
    signature_md5_hex(docs_body, strlen(docs_body), hex);
    ASSERT_STR_EQ(hex, "ec365a775a4cd0599faeb73354201b6f");
    signature_md5_hex(order_body, strlen(order_body), hex);
    ASSERT_STR_EQ(hex, "520415db33a12c09c66fc2c90bc0ab83");
}

static void test_equal_compares_bytes(void)
{
    CU_ASSERT_TRUE(signature_equal("abc", 3, "abc", 3));
    CU_ASSERT_TRUE(signature_equal("", 0, "", 0));
    CU_ASSERT_FALSE(signature_equal("abc", 3, "abd", 3));
    CU_ASSERT_FALSE(signature_equal("xbc", 3, "abc", 3));
    CU_ASSERT_FALSE(signature_equal("abc", 3, "ABC", 3));
    CU_ASSERT_TRUE(signature_equal("a\0b", 3, "a\0b", 3));
    CU_ASSERT_FALSE(signature_equal("a\0b", 3, "a\0c", 3));
}

static void test_equal_different_lengths(void)
{
    CU_ASSERT_FALSE(signature_equal("abc", 3, "abcd", 4));
    CU_ASSERT_FALSE(signature_equal("abcd", 4, "abc", 3));
    CU_ASSERT_FALSE(signature_equal("", 0, "a", 1));
    /* A prefix of the right signature is not the signature. */
    CU_ASSERT_FALSE(signature_equal("58df", 4, "58df8b0c", 8));
}

static void test_equal_every_position(void)
{
    /* signature_equal compares with CRYPTO_memcmp, which OpenSSL documents
     * as taking time independent of the contents. Timing is too noisy to
     * assert here, so this checks the other half of the contract: a change
     * at any position of a full-length signature is a mismatch. */
    char expected[SIGNATURE_HEX_LEN + 1];
    signature_hmac_sha256_hex("secret", "data", 4, expected);
    for (size_t i = 0; i < SIGNATURE_HEX_LEN; i++) {
        char forged[SIGNATURE_HEX_LEN + 1];
        memcpy(forged, expected, sizeof forged);
        forged[i] = forged[i] == '0' ? '1' : '0';
        CU_ASSERT_FALSE(signature_equal(forged, SIGNATURE_HEX_LEN, expected, SIGNATURE_HEX_LEN));
    }
    CU_ASSERT_TRUE(signature_equal(expected, SIGNATURE_HEX_LEN, expected, SIGNATURE_HEX_LEN));
}

/* ------------------------------------------------------------------------
 * Channel authorization and user sign-in
 * ------------------------------------------------------------------------ */

static void test_channel_auth_docs_vectors(void)
{
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &docs_app,
                      "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
                      "1234.1234", "private-foobar", NULL),
                  SIGNATURE_OK);
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &docs_app,
                      "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
                      "1234.1234", "presence-foobar",
                      "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}"),
                  SIGNATURE_OK);
}

static void test_channel_auth_herald_vectors(void)
{
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &dev_app,
                      "app-key:dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470cf",
                      "1234.5678", "private-orders.7", NULL),
                  SIGNATURE_OK);
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &dev_app,
                      "app-key:704ca68302473e553f546f3ed38d68291ba67eb8d5c61fad53c24996e89ff419",
                      "1234.5678", "presence-room.7",
                      "{\"user_id\":7,\"user_info\":{\"name\":\"Alice\"}}"),
                  SIGNATURE_OK);
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &dev_app,
                      "app-key:6cae7aaa1078d32662b1225654e31b17a212e75f3e1a810ba09022d7d06c01ae",
                      "1234.5678", "presence-room.7",
                      "{\"user_id\":\"7\",\"user_info\":{\"name\":\"Alice\"}}"),
                  SIGNATURE_OK);
}

static void test_channel_auth_over_exact_channel_data(void)
{
    /* The same member, serialised with a space, is a different string. */
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &dev_app,
                      "app-key:704ca68302473e553f546f3ed38d68291ba67eb8d5c61fad53c24996e89ff419",
                      "1234.5678", "presence-room.7",
                      "{\"user_id\": 7,\"user_info\":{\"name\":\"Alice\"}}"),
                  SIGNATURE_MISMATCH);
    /* A presence signature does not authorize the subscription without
     * its channel_data. */
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &dev_app,
                      "app-key:704ca68302473e553f546f3ed38d68291ba67eb8d5c61fad53c24996e89ff419",
                      "1234.5678", "presence-room.7", NULL),
                  SIGNATURE_MISMATCH);
    /* The same signature with another user_info must not pass. */
    ASSERT_INT_EQ(signature_check_channel_auth(
                      &docs_app,
                      "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
                      "1234.1234", "presence-foobar",
                      "{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Pusher\"}}"),
                  SIGNATURE_MISMATCH);
}

static void test_channel_auth_mismatch(void)
{
    const char *good = "app-key:dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470cf";
    /* Another socket, another channel. */
    ASSERT_INT_EQ(signature_check_channel_auth(&dev_app, good, "1234.5679", "private-orders.7",
                                               NULL),
                  SIGNATURE_MISMATCH);
    ASSERT_INT_EQ(signature_check_channel_auth(&dev_app, good, "1234.5678", "private-orders.8",
                                               NULL),
                  SIGNATURE_MISMATCH);

    static const char *const tampered[] = {
        /* last digit changed */
        "app-key:dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470ce",
        /* upper case hex */
        "app-key:DC19424A29B38517F4C6C1C59E921CE4A0CEE1D403B94033CB50B395052470CF",
        /* one digit short, one too many, trailing data */
        "app-key:dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470c",
        "app-key:dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470cf0",
        "app-key:dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470cf:x",
        "app-key:not-hex",
    };
    for (size_t i = 0; i < sizeof tampered / sizeof tampered[0]; i++) {
        enum signature_status status =
            signature_check_channel_auth(&dev_app, tampered[i], "1234.5678", "private-orders.7",
                                         NULL);
        unit_assert_long_equal(status, SIGNATURE_MISMATCH, tampered[i], __FILE__, __LINE__);
    }
}

static void test_channel_auth_wrong_key(void)
{
    const char *sig = "dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470cf";
    static const char *const keys[] = { "other-key", "app-ke", "app-key2", "APP-KEY", " app-key" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char auth[200];
        snprintf(auth, sizeof auth, "%s:%s", keys[i], sig);
        unit_assert_long_equal(signature_check_channel_auth(&dev_app, auth, "1234.5678",
                                                            "private-orders.7", NULL),
                               SIGNATURE_WRONG_KEY, auth, __FILE__, __LINE__);
    }
}

static void test_channel_auth_malformed(void)
{
    static const char *const values[] = {
        "", "app-key", "dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470cf",
        ":dc19424a29b38517f4c6c1c59e921ce4a0cee1d403b94033cb50b395052470cf", "app-key:", ":",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        unit_assert_long_equal(signature_check_channel_auth(&dev_app, values[i], "1234.5678",
                                                            "private-orders.7", NULL),
                               SIGNATURE_MALFORMED, values[i], __FILE__, __LINE__);
    }
    ASSERT_INT_EQ(signature_check_channel_auth(&dev_app, NULL, "1234.5678", "private-orders.7",
                                               NULL),
                  SIGNATURE_MALFORMED);
}

static void test_user_auth_vectors(void)
{
    ASSERT_INT_EQ(signature_check_user_auth(
                      &docs_app,
                      "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
                      "1234.1234", "{\"id\":\"12345\"}"),
                  SIGNATURE_OK);
    ASSERT_INT_EQ(signature_check_user_auth(
                      &dev_app,
                      "app-key:19b9b23e8f20c9ab90946b5675e967bc84d9b797b113d2a682180eb915933285",
                      "1234.5678", "{\"id\":\"7\",\"user_info\":{\"name\":\"Alice\"}}"),
                  SIGNATURE_OK);
    ASSERT_INT_EQ(signature_check_user_auth(
                      &dev_app,
                      "app-key:76c3148bfd2c578c6c66b820260a43ac46cfc78f12f0e273e157b91c40d0d735",
                      "1234.5678",
                      "{\"id\":\"7\",\"user_info\":{\"name\":\"Alice\"},\"watchlist\":[\"8\",\"9\"]}"),
                  SIGNATURE_OK);
}

static void test_user_auth_failures(void)
{
    const char *good = "app-key:19b9b23e8f20c9ab90946b5675e967bc84d9b797b113d2a682180eb915933285";
    const char *user_data = "{\"id\":\"7\",\"user_info\":{\"name\":\"Alice\"}}";
    ASSERT_INT_EQ(signature_check_user_auth(&dev_app, good, "1234.5678", "{\"id\":\"8\"}"),
                  SIGNATURE_MISMATCH);
    ASSERT_INT_EQ(signature_check_user_auth(&dev_app, good, "9.9", user_data),
                  SIGNATURE_MISMATCH);
    ASSERT_INT_EQ(signature_check_user_auth(
                      &dev_app,
                      "key:19b9b23e8f20c9ab90946b5675e967bc84d9b797b113d2a682180eb915933285",
                      "1234.5678", user_data),
                  SIGNATURE_WRONG_KEY);
    ASSERT_INT_EQ(signature_check_user_auth(&dev_app, "nocolon", "1234.5678", user_data),
                  SIGNATURE_MALFORMED);
}

/* ------------------------------------------------------------------------
 * Query strings
 * ------------------------------------------------------------------------ */

static void test_parse_query_basic(void)
{
    struct query_param *params;
    int count = signature_parse_query("auth_key=app-key&auth_timestamp=1700000000&info=user_count",
                                      &params);
    ASSERT_INT_EQ(count, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params);
    ASSERT_STR_EQ(params[0].key, "auth_key");
    ASSERT_STR_EQ(params[0].value, "app-key");
    ASSERT_STR_EQ(params[1].key, "auth_timestamp");
    ASSERT_STR_EQ(params[1].value, "1700000000");
    ASSERT_STR_EQ(params[2].key, "info");
    ASSERT_STR_EQ(params[2].value, "user_count");
    signature_free_query(params, count);
}

static void test_parse_query_decoding(void)
{
    struct query_param *params;
    int count = signature_parse_query(
        "info=user_count%2Csubscription_count&filter_by_prefix=presence-room+7"
        "&name=%e6%9d%B1&pct=100%25&plus=%2B",
        &params);
    ASSERT_INT_EQ(count, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params);
    ASSERT_STR_EQ(params[0].value, "user_count,subscription_count");
    ASSERT_STR_EQ(params[1].value, "presence-room 7");
    ASSERT_STR_EQ(params[2].value, "\xe6\x9d\xb1");
    ASSERT_STR_EQ(params[3].value, "100%");
    ASSERT_STR_EQ(params[4].value, "+");
    signature_free_query(params, count);
}

static void test_parse_query_lowercases_keys_only(void)
{
    struct query_param *params;
    int count = signature_parse_query("AUTH_KEY=App-Key&Auth_%56ersion=1.0&x+Y=Z", &params);
    ASSERT_INT_EQ(count, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params);
    ASSERT_STR_EQ(params[0].key, "auth_key");
    ASSERT_STR_EQ(params[0].value, "App-Key");
    ASSERT_STR_EQ(params[1].key, "auth_version");
    ASSERT_STR_EQ(params[2].key, "x y");
    ASSERT_STR_EQ(params[2].value, "Z");
    signature_free_query(params, count);
}

static void test_parse_query_odd_pairs(void)
{
    struct query_param *params;
    /* Empty pairs and pairs without a name are skipped. A name without
     * '=' gets an empty value, and only the first '=' splits. */
    int count = signature_parse_query("&&a=1&&=skipped&flag&b=x=y&c=&", &params);
    ASSERT_INT_EQ(count, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params);
    ASSERT_STR_EQ(params[0].key, "a");
    ASSERT_STR_EQ(params[0].value, "1");
    ASSERT_STR_EQ(params[1].key, "flag");
    ASSERT_STR_EQ(params[1].value, "");
    ASSERT_STR_EQ(params[2].key, "b");
    ASSERT_STR_EQ(params[2].value, "x=y");
    ASSERT_STR_EQ(params[3].key, "c");
    ASSERT_STR_EQ(params[3].value, "");
    signature_free_query(params, count);
}

static void test_parse_query_last_value_wins(void)
{
    struct query_param *params;
    int count = signature_parse_query("a=1&b=2&A=3", &params);
    ASSERT_INT_EQ(count, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(params);
    ASSERT_STR_EQ(params[0].key, "a");
    ASSERT_STR_EQ(params[0].value, "3");
    ASSERT_STR_EQ(params[1].value, "2");
    signature_free_query(params, count);
}

static void test_parse_query_empty(void)
{
    struct query_param *params = (struct query_param *)&params;
    ASSERT_INT_EQ(signature_parse_query("", &params), 0);
    CU_ASSERT_PTR_NULL(params);
    ASSERT_INT_EQ(signature_parse_query(NULL, &params), 0);
    CU_ASSERT_PTR_NULL(params);
    ASSERT_INT_EQ(signature_parse_query("&&&", &params), 0);
    CU_ASSERT_PTR_NULL(params);
    signature_free_query(NULL, 0);
}

static void test_parse_query_invalid_escapes(void)
{
    static const char *const queries[] = {
        "a=%", "a=%4", "a=%zz", "a=%g1", "a=1&b=%2", "%=1", "k%4=1", "a=%00", "a%00b=1",
    };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        struct query_param *params = NULL;
        unit_assert_long_equal(signature_parse_query(queries[i], &params), -1, queries[i],
                               __FILE__, __LINE__);
        CU_ASSERT_PTR_NULL(params);
    }
}

/* ------------------------------------------------------------------------
 * Request strings
 * ------------------------------------------------------------------------ */

static void check_request_string(const char *method, const char *path, const char *query,
                                 const char *expected, unsigned line)
{
    struct query_param *params;
    int count = signature_parse_query(query, &params);
    unit_assert_long_equal(count >= 0, 1, query, __FILE__, line);

    struct strbuf sb;
    strbuf_init(&sb);
    signature_request_string(&sb, method, path, params, count);
    unit_assert_str_equal(sb.data, expected, query, __FILE__, line);
    strbuf_free(&sb);
    signature_free_query(params, count);
}

static void test_request_string_docs_example(void)
{
    check_request_string("POST", "/apps/3/events",
                         "auth_key=278d425bdf160c739803&auth_timestamp=1353088179"
                         "&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
                         "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp="
                         "1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
                         __LINE__);
}

static void test_request_string_sorts_and_drops_signature(void)
{
    check_request_string("GET", "/apps/42/channels",
                         "info=user_count&auth_signature=abc&filter_by_prefix=presence-"
                         "&auth_version=1.0&auth_timestamp=1700000000&auth_key=app-key",
                         "GET\n/apps/42/channels\nauth_key=app-key&auth_timestamp=1700000000"
                         "&auth_version=1.0&filter_by_prefix=presence-&info=user_count",
                         __LINE__);
}

static void test_request_string_byte_order(void)
{
    /* '_' (0x5f) sorts before 'b' (0x62), and a key before its extensions. */
    check_request_string("get", "/p", "ab=3&a_b=2&a=1&b=4",
                         "GET\n/p\na=1&a_b=2&ab=3&b=4", __LINE__);
}

static void test_request_string_values_unescaped(void)
{
    check_request_string("GET", "/apps/42/channels/presence-room.7",
                         "info=user_count%2Csubscription_count&q=a+b%26c",
                         "GET\n/apps/42/channels/presence-room.7\ninfo=user_count,"
                         "subscription_count&q=a b&c", __LINE__);
}

static void test_request_string_without_params(void)
{
    check_request_string("POST", "/apps/42/events", "", "POST\n/apps/42/events\n", __LINE__);
    check_request_string("POST", "/apps/42/events", "auth_signature=x",
                         "POST\n/apps/42/events\n", __LINE__);
}

/* ------------------------------------------------------------------------
 * Request verification
 * ------------------------------------------------------------------------ */

/* Parses `query` and runs signature_check_request. Returns the status and
 * leaves the message in `err`. */
static int check_request(const struct app_config *app, const char *method, const char *path,
                         const char *query, const char *body, time_t now, int window,
                         char *err, size_t err_len)
{
    struct query_param *params;
    int count = signature_parse_query(query, &params);
    CU_ASSERT_FATAL(count >= 0);
    err[0] = '\0';
    int status = signature_check_request(app, method, path, params, count, body,
                                         body ? strlen(body) : 0, now, window, err, err_len);
    signature_free_query(params, count);
    return status;
}

#define DOCS_QUERY                                                                       \
    "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0"          \
    "&body_md5=ec365a775a4cd0599faeb73354201b6f"                                         \
    "&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"

#define ORDER_QUERY                                                                      \
    "auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0"                        \
    "&body_md5=520415db33a12c09c66fc2c90bc0ab83"                                         \
    "&auth_signature=bc921257c484d6065dbcb75e581e1405554258177cf9a5c931a708b3b347029d"

static void test_request_docs_worked_example(void)
{
    char err[512];
    ASSERT_INT_EQ(check_request(&docs_app, "POST", "/apps/3/events", DOCS_QUERY, docs_body,
                                1353088179, 600, err, sizeof err),
                  0);
    ASSERT_STR_EQ(err, "");
}

static void test_request_herald_vectors(void)
{
    char err[512];
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY, order_body,
                                1700000000, 600, err, sizeof err),
                  0);
    ASSERT_INT_EQ(check_request(&dev_app, "GET", "/apps/42/channels",
                                "filter_by_prefix=presence-&info=user_count&auth_key=app-key"
                                "&auth_timestamp=1700000000&auth_version=1.0&auth_signature="
                                "ced4e340c46a2dc4868aa0be839b12e569720471c83f712f7ca592ba74b13d12",
                                NULL, 1700000000, 600, err, sizeof err),
                  0);
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/users/7/terminate_connections",
                                "auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0"
                                "&body_md5=99914b932bd37a50b983c5e7c90ae93b&auth_signature="
                                "a28a191b5b3a92a4dbe84402857e60d5725f7aeb20504c36bd937db7dde11000",
                                "{}", 1700000000, 600, err, sizeof err),
                  0);
}

static void test_request_decoded_query_signed(void)
{
    /* Expected signatures computed with Python's hmac module over the
     * decoded strings "...&info=user_count,subscription_count" and
     * "...&filter_by_prefix=presence-room &info=user_count". */
    char err[512];
    ASSERT_INT_EQ(check_request(&dev_app, "GET", "/apps/42/channels/presence-room.7",
                                "auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0"
                                "&info=user_count%2Csubscription_count&auth_signature="
                                "cb69ed59e52e02d9d84ae98831da9decc7978ebb57a4ef5a6b29c9d785439a8e",
                                NULL, 1700000000, 600, err, sizeof err),
                  0);
    ASSERT_STR_EQ(err, "");
    ASSERT_INT_EQ(check_request(&dev_app, "GET", "/apps/42/channels",
                                "AUTH_KEY=app-key&auth_timestamp=1700000000&auth_version=1.0"
                                "&filter_by_prefix=presence-room+&info=user_count&auth_signature="
                                "952bb8dc1c227329189fb6bdf5768128aef02d6be809678b8ac966a0f9ce033c",
                                NULL, 1700000000, 600, err, sizeof err),
                  0);
    ASSERT_STR_EQ(err, "");
}

static void test_request_missing_parameters(void)
{
    static const struct {
        const char *query;
        const char *missing;
    } cases[] = {
        { "auth_timestamp=1700000000&auth_version=1.0&auth_signature=x", "auth_key" },
        { "auth_key=app-key&auth_version=1.0&auth_signature=x", "auth_timestamp" },
        { "auth_key=app-key&auth_timestamp=1700000000&auth_signature=x", "auth_version" },
        { "auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0", "auth_signature" },
        { "", "auth_key" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512], expected[100];
        int status = check_request(&dev_app, "GET", "/apps/42/channels", cases[i].query, NULL,
                                   1700000000, 600, err, sizeof err);
        unit_assert_long_equal(status, 401, cases[i].missing, __FILE__, __LINE__);
        snprintf(expected, sizeof expected, "Missing required parameter: %s", cases[i].missing);
        ASSERT_STR_EQ(err, expected);
    }
}

static void test_request_wrong_auth_version(void)
{
    char err[512];
    ASSERT_INT_EQ(check_request(&dev_app, "GET", "/apps/42/channels",
                                "auth_key=app-key&auth_timestamp=1700000000&auth_version=2.0"
                                "&auth_signature=x",
                                NULL, 1700000000, 600, err, sizeof err),
                  400);
    ASSERT_STR_EQ(err, "Unsupported auth_version \"2.0\": only 1.0 is supported");
}

static void test_request_wrong_auth_key(void)
{
    char err[512];
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events",
                                "auth_key=other-key&auth_timestamp=1700000000&auth_version=1.0"
                                "&body_md5=520415db33a12c09c66fc2c90bc0ab83"
                                "&auth_signature=bc921257c484d6065dbcb75e581e1405554258177cf9a5c931a708b3b347029d",
                                order_body, 1700000000, 600, err, sizeof err),
                  401);
    ASSERT_STR_EQ(err, "Unknown auth_key \"other-key\": it is not the key of app 42");
}

static void test_request_timestamp_window(void)
{
    char err[512];
    /* Exactly the window away, either side, is accepted. */
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY, order_body,
                                1700000600, 600, err, sizeof err),
                  0);
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY, order_body,
                                1699999400, 600, err, sizeof err),
                  0);

    /* One second more is not. */
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY, order_body,
                                1700000601, 600, err, sizeof err),
                  401);
    ASSERT_STR_EQ(err, "auth_timestamp 1700000000 is outside the allowed window of 600 seconds "
                       "around the server clock (server time 1700000601, 601 seconds apart); "
                       "check the client's clock");
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY, order_body,
                                1699999399, 600, err, sizeof err),
                  401);
    ASSERT_CONTAINS(err, "outside the allowed window of 600 seconds");

    /* The window is the caller's setting. */
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY, order_body,
                                1700000031, 30, err, sizeof err),
                  401);
    ASSERT_CONTAINS(err, "allowed window of 30 seconds");
}

static void test_request_invalid_timestamp(void)
{
    static const char *const values[] = { "abc", "-5", "", "1700000000.5", " 1700000000",
                                          "99999999999999999999" };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char query[200], err[512];
        snprintf(query, sizeof query,
                 "auth_key=app-key&auth_timestamp=%s&auth_version=1.0&auth_signature=x",
                 values[i]);
        unit_assert_long_equal(check_request(&dev_app, "GET", "/apps/42/channels", query, NULL,
                                             1700000000, 600, err, sizeof err),
                               400, values[i], __FILE__, __LINE__);
        ASSERT_CONTAINS(err, "Invalid auth_timestamp");
    }
}

static void test_request_body_md5_missing(void)
{
    char err[512];
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events",
                                "auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0"
                                "&auth_signature=bc921257c484d6065dbcb75e581e1405554258177cf9a5c931a708b3b347029d",
                                order_body, 1700000000, 600, err, sizeof err),
                  401);
    ASSERT_STR_EQ(err, "Missing required parameter: body_md5 (required when the request has a "
                       "body)");
}

static void test_request_body_md5_mismatch(void)
{
    /* The query is intact but the body changed in transit. */
    char body[sizeof order_body];
    memcpy(body, order_body, sizeof body);
    body[strlen(body) - 3] = '9';
    char err[512];
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY, body,
                                1700000000, 600, err, sizeof err),
                  401);
    ASSERT_STR_EQ(err, "body_md5 does not match the MD5 of the request body");
}

static void test_request_body_md5_any_case(void)
{
    /* The signed string keeps body_md5 as sent, so upper case hex passes
     * the MD5 check and then fails only if it was not what was signed. */
    char err[512];
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events",
                                "auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0"
                                "&body_md5=520415DB33A12C09C66FC2C90BC0AB83"
                                "&auth_signature=bc921257c484d6065dbcb75e581e1405554258177cf9a5c931a708b3b347029d",
                                order_body, 1700000000, 600, err, sizeof err),
                  401);
    ASSERT_CONTAINS(err, "Invalid signature");
}

static void test_request_signature_mismatch(void)
{
    char err[1024];
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events",
                                "auth_key=app-key&auth_timestamp=1700000000&auth_version=1.0"
                                "&body_md5=520415db33a12c09c66fc2c90bc0ab83"
                                "&auth_signature=bc921257c484d6065dbcb75e581e1405554258177cf9a5c931a708b3b3470290",
                                order_body, 1700000000, 600, err, sizeof err),
                  401);
    ASSERT_STR_EQ(err, "Invalid signature: expected the lowercase hex HMAC-SHA256, keyed with "
                       "the app secret, of \"POST\\n/apps/42/events\\nauth_key=app-key&"
                       "auth_timestamp=1700000000&auth_version=1.0&body_md5="
                       "520415db33a12c09c66fc2c90bc0ab83\"");
    ASSERT_NOT_CONTAINS(err, "app-secret");
    /* The right signature must not leak either. */
    ASSERT_NOT_CONTAINS(err, "bc921257c484d6065dbcb75e581e1405554258177cf9a5c931a708b3b347029d");
}

static void test_request_signature_covers_method_and_path(void)
{
    char err[1024];
    ASSERT_INT_EQ(check_request(&dev_app, "PUT", "/apps/42/events", ORDER_QUERY, order_body,
                                1700000000, 600, err, sizeof err),
                  401);
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events/", ORDER_QUERY, order_body,
                                1700000000, 600, err, sizeof err),
                  401);
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/prefix/apps/42/events", ORDER_QUERY,
                                order_body, 1700000000, 600, err, sizeof err),
                  401);
    /* The method is compared in upper case, as clients sign it. */
    ASSERT_INT_EQ(check_request(&dev_app, "post", "/apps/42/events", ORDER_QUERY, order_body,
                                1700000000, 600, err, sizeof err),
                  0);
}

static void test_request_extra_parameter_signed(void)
{
    /* A parameter added after signing changes the string to sign. */
    char err[1024];
    ASSERT_INT_EQ(check_request(&dev_app, "POST", "/apps/42/events", ORDER_QUERY "&x=1",
                                order_body, 1700000000, 600, err, sizeof err),
                  401);
    ASSERT_CONTAINS(err, "body_md5=520415db33a12c09c66fc2c90bc0ab83&x=1\"");
}

static void test_request_small_error_buffer(void)
{
    struct query_param *params;
    int count = signature_parse_query("auth_key=app-key", &params);
    char err[8];
    ASSERT_INT_EQ(signature_check_request(&dev_app, "GET", "/", params, count, NULL, 0,
                                          1700000000, 600, err, sizeof err),
                  401);
    ASSERT_STR_EQ(err, "Missing");
    signature_free_query(params, count);
}

CU_ErrorCode test_signature_register(void)
{
    static const struct unit_test tests[] = {
        { "HMAC-SHA256 vectors", test_hmac_sha256_vectors },
        { "HMAC covers exact bytes", test_hmac_covers_exact_bytes },
        { "MD5 vectors", test_md5_vectors },
        { "equal compares bytes", test_equal_compares_bytes },
        { "equal different lengths", test_equal_different_lengths },
        { "equal every position", test_equal_every_position },
        { "channel auth docs vectors", test_channel_auth_docs_vectors },
        { "channel auth Herald vectors", test_channel_auth_herald_vectors },
        { "channel auth over exact channel_data", test_channel_auth_over_exact_channel_data },
        { "channel auth mismatch", test_channel_auth_mismatch },
        { "channel auth wrong key", test_channel_auth_wrong_key },
        { "channel auth malformed", test_channel_auth_malformed },
        { "user auth vectors", test_user_auth_vectors },
        { "user auth failures", test_user_auth_failures },
        { "parse query basic", test_parse_query_basic },
        { "parse query decoding", test_parse_query_decoding },
        { "parse query lowercases keys only", test_parse_query_lowercases_keys_only },
        { "parse query odd pairs", test_parse_query_odd_pairs },
        { "parse query last value wins", test_parse_query_last_value_wins },
        { "parse query empty", test_parse_query_empty },
        { "parse query invalid escapes", test_parse_query_invalid_escapes },
        { "request string docs example", test_request_string_docs_example },
        { "request string sorts and drops signature",
          test_request_string_sorts_and_drops_signature },
        { "request string byte order", test_request_string_byte_order },
        { "request string values unescaped", test_request_string_values_unescaped },
        { "request string without params", test_request_string_without_params },
        { "request docs worked example", test_request_docs_worked_example },
        { "request Herald vectors", test_request_herald_vectors },
        { "request decoded query signed", test_request_decoded_query_signed },
        { "request missing parameters", test_request_missing_parameters },
        { "request wrong auth_version", test_request_wrong_auth_version },
        { "request wrong auth_key", test_request_wrong_auth_key },
        { "request timestamp window", test_request_timestamp_window },
        { "request invalid timestamp", test_request_invalid_timestamp },
        { "request body_md5 missing", test_request_body_md5_missing },
        { "request body_md5 mismatch", test_request_body_md5_mismatch },
        { "request body_md5 any case", test_request_body_md5_any_case },
        { "request signature mismatch", test_request_signature_mismatch },
        { "request signature covers method and path",
          test_request_signature_covers_method_and_path },
        { "request extra parameter signed", test_request_extra_parameter_signed },
        { "request small error buffer", test_request_small_error_buffer },
        { NULL, NULL },
    };
    return unit_add_suite("signature", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
