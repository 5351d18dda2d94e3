/* Checks Herald's signature code against vectors produced by the official
 * pusher Node SDK (tests/unit/sdk-vectors.mjs), when the runner gets
 * --sdk-vectors FILE. If the file cannot be read, the suite's init fails,
 * and that fails the run instead of skipping the checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "signature.h"
#include "unit_tests.h"

static const char *vectors_path;
static struct json_object *vectors;
static struct app_config vector_app;

static const char *member_string(struct json_object *obj, const char *name)
{
    struct json_object *value;
    if (!json_object_object_get_ex(obj, name, &value) ||
        !json_object_is_type(value, json_type_string))
        return NULL;
    return json_object_get_string(value);
}

/* Returns the array member `name` of the root, or NULL. */
static struct json_object *vector_list(const char *name)
{
    struct json_object *list;
    if (!vectors || !json_object_object_get_ex(vectors, name, &list) ||
        !json_object_is_type(list, json_type_array))
        return NULL;
    return list;
}

static int suite_init(void)
{
    vectors = json_object_from_file(vectors_path);
    if (!vectors) {
        fprintf(stderr, "herald-unit-tests: cannot read SDK vectors from %s: %s\n", vectors_path,
                json_util_get_last_err());
        return 1;
    }

    struct json_object *app;
    if (!json_object_object_get_ex(vectors, "app", &app) || !member_string(app, "id") ||
        !member_string(app, "key") || !member_string(app, "secret")) {
        fprintf(stderr, "herald-unit-tests: %s has no \"app\" object with id, key and secret\n",
                vectors_path);
        json_object_put(vectors);
        vectors = NULL;
        return 1;
    }
    vector_app.id = (char *)member_string(app, "id");
    vector_app.key = (char *)member_string(app, "key");
    vector_app.secret = (char *)member_string(app, "secret");
    vector_app.enabled = true;

    const char *sdk = member_string(vectors, "sdk");
    printf("\n  SDK vectors from %s (%s)\n", vectors_path, sdk ? sdk : "unknown SDK");
    return 0;
}

static int suite_cleanup(void)
{
    json_object_put(vectors);
    vectors = NULL;
    return 0;
}

static void test_sdk_channel_auth(void)
{
    struct json_object *list = vector_list("channel_auth");
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    size_t count = json_object_array_length(list);
    CU_ASSERT(count > 0);

    for (size_t i = 0; i < count; i++) {
        struct json_object *v = json_object_array_get_idx(list, i);
        const char *socket_id = member_string(v, "socket_id");
        const char *channel = member_string(v, "channel");
        const char *channel_data = member_string(v, "channel_data"); /* NULL when null */
        const char *auth = member_string(v, "auth");
        CU_ASSERT_FATAL(socket_id && channel && auth);

        char label[300];
        snprintf(label, sizeof label, "channel_auth[%zu] %s", i, channel);
        unit_assert_long_equal(signature_check_channel_auth(&vector_app, auth, socket_id,
                                                            channel, channel_data),
                               SIGNATURE_OK, label, __FILE__, __LINE__);

        /* The same auth must fail for any other socket. */
        unit_assert_long_equal(signature_check_channel_auth(&vector_app, auth, "0.0", channel,
                                                            channel_data),
                               SIGNATURE_MISMATCH, label, __FILE__, __LINE__);
    }
}

static void test_sdk_user_auth(void)
{
    struct json_object *list = vector_list("user_auth");
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    size_t count = json_object_array_length(list);
    CU_ASSERT(count > 0);

    for (size_t i = 0; i < count; i++) {
        struct json_object *v = json_object_array_get_idx(list, i);
        const char *socket_id = member_string(v, "socket_id");
        const char *user_data = member_string(v, "user_data");
        const char *auth = member_string(v, "auth");
        CU_ASSERT_FATAL(socket_id && user_data && auth);

        char label[300];
        snprintf(label, sizeof label, "user_auth[%zu] %.200s", i, user_data);
        unit_assert_long_equal(signature_check_user_auth(&vector_app, auth, socket_id, user_data),
                               SIGNATURE_OK, label, __FILE__, __LINE__);
    }
}

static void test_sdk_webhooks(void)
{
    struct json_object *list = vector_list("webhooks");
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    size_t count = json_object_array_length(list);
    CU_ASSERT(count > 0);

    for (size_t i = 0; i < count; i++) {
        struct json_object *v = json_object_array_get_idx(list, i);
        const char *body = member_string(v, "body");
        const char *signature = member_string(v, "signature");
        CU_ASSERT_FATAL(body && signature);

        char hex[SIGNATURE_HEX_LEN + 1];
        signature_hmac_sha256_hex(vector_app.secret, body, strlen(body), hex);
        ASSERT_STR_EQ(hex, signature);
    }
}

/* Returns the auth_timestamp of a parsed query, or -1. */
static long long query_timestamp(const struct query_param *params, int count)
{
    for (int i = 0; i < count; i++) {
        if (strcmp(params[i].key, "auth_timestamp") == 0)
            return strtoll(params[i].value, NULL, 10);
    }
    return -1;
}

static void test_sdk_requests(void)
{
    struct json_object *list = vector_list("requests");
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    size_t count = json_object_array_length(list);
    CU_ASSERT(count > 0);

    for (size_t i = 0; i < count; i++) {
        struct json_object *v = json_object_array_get_idx(list, i);
        const char *name = member_string(v, "name");
        const char *method = member_string(v, "method");
        const char *path = member_string(v, "path");
        const char *query = member_string(v, "query");
        const char *body = member_string(v, "body");
        CU_ASSERT_FATAL(name && method && path && query && body);

        struct query_param *params;
        int param_count = signature_parse_query(query, &params);
        unit_assert_long_equal(param_count > 0, 1, name, __FILE__, __LINE__);
        if (param_count <= 0)
            continue;

        /* The SDK stamps the request with its own clock, so the check runs
         * at that instant. */
        time_t now = (time_t)query_timestamp(params, param_count);
        size_t body_len = strlen(body);
        char err[1024] = "";
        int status = signature_check_request(&vector_app, method, path, params, param_count,
                                             body, body_len, now, 600, err, sizeof err);
        unit_assert_long_equal(status, 0, name, __FILE__, __LINE__);
        if (status != 0)
            unit_assert_str_equal(err, "", name, __FILE__, __LINE__);

        /* A body changed after signing must be caught. */
        if (body_len > 0) {
            char *changed = strdup(body);
            changed[body_len - 1] = changed[body_len - 1] == ' ' ? '\t' : ' ';
            status = signature_check_request(&vector_app, method, path, params, param_count,
                                             changed, body_len, now, 600, err, sizeof err);
            unit_assert_long_equal(status, 401, name, __FILE__, __LINE__);
            free(changed);
        }

        /* So must a request replayed after the window. */
        status = signature_check_request(&vector_app, method, path, params, param_count, body,
                                         body_len, now + 601, 600, err, sizeof err);
        unit_assert_long_equal(status, 401, name, __FILE__, __LINE__);

        signature_free_query(params, param_count);
    }
}

CU_ErrorCode test_sdk_vectors_register(const char *path)
{
    static const struct unit_test tests[] = {
        { "SDK channel auth", test_sdk_channel_auth },
        { "SDK user auth", test_sdk_user_auth },
        { "SDK webhooks", test_sdk_webhooks },
        { "SDK requests", test_sdk_requests },
        { NULL, NULL },
    };
    vectors_path = path;
    return unit_add_suite("sdk_vectors", suite_init, suite_cleanup, tests) ? CUE_SUCCESS
                                                                           : CU_get_error();
}
