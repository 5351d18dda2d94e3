/* libFuzzer harness: the signature checks of a Pusher HTTP API request and
 * the parsing of its `info` parameter.
 *
 * The checks run as relay/http_api.c runs them: signature_parse_query,
 * then signature_check_request. When that fails with 401 and the path has
 * a percent-escape, the check runs again over the decoded path. Each
 * `info` value then goes through relay/channel_info.c's
 * channel_info_parse.
 *
 * The input reads like the start of an HTTP request:
 *     METHOD SP PATH[?QUERY] LF BODY
 * The request line ends at the first LF, and everything after it is the
 * body. The relay's clock is fixed at 1700000000, the auth_timestamp of
 * the signed seeds in corpus/http_request. */
#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channel_info.h"
#include "config.h"
#include "fuzz_util.h"
#include "signature.h"

#define FUZZ_NOW ((time_t)1700000000)
#define FUZZ_APP_SECRET "app-secret"

/* Size of the message buffer of relay/http_api.c. */
#define FUZZ_MESSAGE_MAX 512

static const char config_json[] =
    "{\"apps\":[{\"id\":\"42\",\"key\":\"app-key\",\"secret\":\"" FUZZ_APP_SECRET "\"}]}";

static struct herald_config config;
static const struct app_config *app;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[CONFIG_ERROR_MAX];
    if (config_load_string(&config, config_json, err, sizeof err) != 0)
        fuzz_fail("the harness configuration is invalid: %s", err);
    app = config_find_app_by_id(&config, "42");
    return 0;
}

/* Checks the decoded parameters against the contract of
 * signature_parse_query: at most SIGNATURE_MAX_QUERY_PARAMS, names
 * lowercased, each name once. */
static void check_params(const char *query, const struct query_param *params, int count)
{
    FUZZ_CHECK((size_t)count <= strlen(query) / 2 + 1, "%d parameters from %zu bytes", count,
               strlen(query));
    FUZZ_CHECK(count <= SIGNATURE_MAX_QUERY_PARAMS, "%d parameters, over the maximum", count);
    for (int i = 0; i < count; i++) {
        FUZZ_CHECK(params[i].key && params[i].value, "parameter %d without name or value", i);
        FUZZ_CHECK(params[i].key[0], "parameter %d has an empty name", i);
        for (const char *c = params[i].key; *c; c++)
            FUZZ_CHECK(*c < 'A' || *c > 'Z', "parameter name %s is not lowercased",
                       params[i].key);
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(params[i].key, params[j].key) != 0,
                       "parameter %s is listed twice", params[i].key);
    }
}

/* True when the client itself sent the app secret, in the raw request or
 * in a decoded parameter or path: then the message may repeat it. */
static bool secret_sent(const char *input, size_t size, const char *decoded_path,
                        const struct query_param *params, int count)
{
    if (memmem(input, size, FUZZ_APP_SECRET, strlen(FUZZ_APP_SECRET)))
        return true;
    if (decoded_path && strstr(decoded_path, FUZZ_APP_SECRET))
        return true;
    for (int i = 0; i < count; i++) {
        if (strstr(params[i].key, FUZZ_APP_SECRET) || strstr(params[i].value, FUZZ_APP_SECRET))
            return true;
    }
    return false;
}

/* Runs signature_check_request and checks its result: a status the relay
 * can send, a message when it fails, and never the app secret in it
 * unless the client sent it. */
static int check_request(const char *method, const char *path, const struct query_param *params,
                         int count, const char *body, size_t body_len, bool secret_in_input)
{
    char err[FUZZ_MESSAGE_MAX] = "";
    int status = signature_check_request(app, method, path, params, count, body, body_len,
                                         FUZZ_NOW, config.auth_timestamp_window, err,
                                         sizeof err);
    FUZZ_CHECK(status == 0 || status == 400 || status == 401,
               "signature_check_request returned %d", status);
    if (status != 0) {
        FUZZ_CHECK(err[0], "status %d without a message", status);
        FUZZ_CHECK(secret_in_input || !strstr(err, FUZZ_APP_SECRET),
                   "the message shows the app secret: %s", err);
    }
    return status;
}

static void check_info(const char *info)
{
    static const unsigned allowed[] = {
        CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT | CHANNEL_INFO_CACHE,
        CHANNEL_INFO_USER_COUNT | CHANNEL_INFO_SUBSCRIPTION_COUNT,
        CHANNEL_INFO_USER_COUNT,
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        char err[FUZZ_MESSAGE_MAX] = "";
        unsigned attributes = 0;
        int status = channel_info_parse(info, allowed[i], &attributes, err, sizeof err);
        FUZZ_CHECK(status == 0 || status == 400, "channel_info_parse returned %d", status);
        if (status == 0)
            FUZZ_CHECK((attributes & ~allowed[i]) == 0, "info %s gave attributes %x over %x",
                       info, attributes, allowed[i]);
        else
            FUZZ_CHECK(err[0] && fuzz_utf8_valid(err, strlen(err)),
                       "info rejected without a UTF-8 message: %s", err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *input = (const char *)data;
    const char *newline = memchr(input, '\n', size);
    size_t line_len = newline ? (size_t)(newline - input) : size;
    const char *space = memchr(input, ' ', line_len);
    if (!space)
        return 0;

    /* evhttp hands over C strings, so a NUL ends each of them. */
    char *method = fuzz_strndup(input, (size_t)(space - input));
    char *target = fuzz_strndup(space + 1, line_len - (size_t)(space - input) - 1);
    const char *body = newline ? newline + 1 : "";
    size_t body_len = newline ? size - line_len - 1 : 0;

    char *question = strchr(target, '?');
    const char *query = question ? question + 1 : "";
    if (question)
        *question = '\0';
    const char *path = target[0] ? target : "/";

    struct query_param *params;
    int count = signature_parse_query(query, &params);
    if (count < 0) {
        FUZZ_CHECK(!params, "a rejected query left parameters behind");
        goto done;
    }
    check_params(query, params, count);

    char *decoded = strchr(path, '%') ? evhttp_uridecode(path, 0, NULL) : NULL;
    bool secret_in_input = secret_sent(input, size, decoded, params, count);
    int status = check_request(method, path, params, count, body, body_len, secret_in_input);
    if (status == 401 && decoded)
        check_request(method, decoded, params, count, body, body_len, secret_in_input);
    free(decoded);

    for (int i = 0; i < count; i++) {
        if (strcmp(params[i].key, "info") == 0)
            check_info(params[i].value);
    }
    signature_free_query(params, count);

done:
    free(method);
    free(target);
    return 0;
}
