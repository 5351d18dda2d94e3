/* Pusher signatures: HMAC-SHA256 over the strings the protocol defines,
 * checked in constant time.
 *
 * Channel authorization and sign-in sign "<socket_id>:<channel>[:<channel_data>]"
 * and "<socket_id>::user::<user_data>" over the exact bytes the client sent.
 * HTTP API requests sign "METHOD\nPATH\n<sorted query>" (see
 * signature_check_request for the order of the checks). */
#include "signature.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SIGNATURE_MD5_HEX_LEN 32

/* ------------------------------------------------------------------------
 * Digests
 * ------------------------------------------------------------------------ */

static void hex_encode(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    out[2 * len] = '\0';
}

/* A failed digest means OpenSSL is broken, or its configuration disabled
 * SHA-256 or MD5. No signature could be checked after that, so the process
 * stops instead of rejecting every request with a misleading 401. */
static void digest_failed(const char *algorithm)
{
    fprintf(stderr, "herald: OpenSSL failed to compute %s\n", algorithm);
    abort();
}

void signature_hmac_sha256_hex(const char *secret, const void *msg, size_t msg_len,
                               char out[SIGNATURE_HEX_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    /* The one-shot HMAC() is not deprecated in OpenSSL 3, unlike HMAC_CTX. */
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, msg_len, mac, &mac_len) ||
        mac_len != SIGNATURE_HEX_LEN / 2)
        digest_failed("HMAC-SHA256");
    hex_encode(mac, mac_len, out);
}

void signature_md5_hex(const void *data, size_t len, char out[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!EVP_Digest(data, len, md, &md_len, EVP_md5(), NULL) ||
        md_len != SIGNATURE_MD5_HEX_LEN / 2)
        digest_failed("MD5");
    hex_encode(md, md_len, out);
}

bool signature_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    /* The lengths are not secret: every valid signature has 64 characters. */
    if (a_len != b_len)
        return false;
    if (a_len == 0)
        return true;
    return CRYPTO_memcmp(a, b, a_len) == 0;
}

/* ------------------------------------------------------------------------
 * Channel authorization and user sign-in
 * ------------------------------------------------------------------------ */

/* Splits `auth` at its first ':' and checks the key part and the HMAC of
 * `signed_string` against the signature part. */
static enum signature_status check_auth(const struct app_config *app, const char *auth,
                                        const struct strbuf *signed_string)
{
    if (!auth)
        return SIGNATURE_MALFORMED;

    const char *colon = strchr(auth, ':');
    if (!colon || colon == auth || colon[1] == '\0')
        return SIGNATURE_MALFORMED;

    size_t key_len = (size_t)(colon - auth);
    if (key_len != strlen(app->key) || memcmp(auth, app->key, key_len) != 0)
        return SIGNATURE_WRONG_KEY;

    char expected[SIGNATURE_HEX_LEN + 1];
    signature_hmac_sha256_hex(app->secret, signed_string->data, signed_string->len, expected);

    const char *signature = colon + 1;
    if (!signature_equal(signature, strlen(signature), expected, SIGNATURE_HEX_LEN))
        return SIGNATURE_MISMATCH;
    return SIGNATURE_OK;
}

enum signature_status signature_check_channel_auth(const struct app_config *app,
                                                   const char *auth, const char *socket_id,
                                                   const char *channel,
                                                   const char *channel_data)
{
    struct strbuf signed_string;
    strbuf_init(&signed_string);
    strbuf_append_str(&signed_string, socket_id);
    strbuf_append_char(&signed_string, ':');
    strbuf_append_str(&signed_string, channel);
    if (channel_data) {
        strbuf_append_char(&signed_string, ':');
        strbuf_append_str(&signed_string, channel_data);
    }

    enum signature_status status = check_auth(app, auth, &signed_string);
    strbuf_free(&signed_string);
    return status;
}

enum signature_status signature_check_user_auth(const struct app_config *app, const char *auth,
                                                const char *socket_id, const char *user_data)
{
    struct strbuf signed_string;
    strbuf_init(&signed_string);
    strbuf_append_str(&signed_string, socket_id);
    strbuf_append_str(&signed_string, "::user::");
    strbuf_append_str(&signed_string, user_data);

    enum signature_status status = check_auth(app, auth, &signed_string);
    strbuf_free(&signed_string);
    return status;
}

/* ------------------------------------------------------------------------
 * Query strings
 * ------------------------------------------------------------------------ */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes `len` bytes of a form-encoded name or value into a new string.
 * Returns NULL on '%' without two hex digits, and on %00, because the
 * decoded string is a C string and a NUL would cut it short. */
static char *form_decode(const char *text, size_t len, bool lowercase)
{
    char *out = malloc(len + 1);
    if (!out) {
        fprintf(stderr, "herald: out of memory decoding a query string\n");
        abort();
    }

    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int high = i + 1 < len ? hex_value(text[i + 1]) : -1;
            int low = i + 2 < len ? hex_value(text[i + 2]) : -1;
            if (high < 0 || low < 0 || (high == 0 && low == 0)) {
                free(out);
                return NULL;
            }
            c = (char)(high * 16 + low);
            i += 2;
        }
        out[n++] = lowercase ? (char)tolower((unsigned char)c) : c;
    }
    out[n] = '\0';
    return out;
}

void signature_free_query(struct query_param *params, int count)
{
    if (!params)
        return;
    for (int i = 0; i < count; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
}

int signature_parse_query(const char *query, struct query_param **params)
{
    *params = NULL;
    if (!query || query[0] == '\0')
        return 0;

    /* Every parameter but the last takes at least two bytes (a name byte
     * and '&'), so this bounds the count. */
    size_t max_count = strlen(query) / 2 + 1;
    struct query_param *list = calloc(max_count, sizeof *list);
    if (!list) {
        fprintf(stderr, "herald: out of memory parsing a query string\n");
        abort();
    }

    int count = 0;
    const char *p = query;
    while (*p) {
        size_t pair_len = strcspn(p, "&");
        const char *equals = memchr(p, '=', pair_len);
        size_t key_len = equals ? (size_t)(equals - p) : pair_len;

        /* parse_str skips empty pairs ("a=1&&b=2") and pairs without a
         * name ("=x"). */
        if (key_len > 0) {
            char *key = form_decode(p, key_len, true);
            char *value = equals ? form_decode(equals + 1, pair_len - key_len - 1, false)
                                 : form_decode("", 0, false);
            if (!key || !value) {
                free(key);
                free(value);
                signature_free_query(list, count);
                return -1;
            }

            /* A repeated name keeps its last value, as parse_str does. */
            int existing = -1;
            for (int i = 0; i < count; i++) {
                if (strcmp(list[i].key, key) == 0) {
                    existing = i;
                    break;
                }
            }
            if (existing >= 0) {
                free(key);
                free(list[existing].value);
                list[existing].value = value;
            } else if (count == SIGNATURE_MAX_QUERY_PARAMS) {
                free(key);
                free(value);
                signature_free_query(list, count);
                return -2;
            } else {
                list[count].key = key;
                list[count].value = value;
                count++;
            }
        }

        p += pair_len;
        if (*p == '&')
            p++;
    }

    if (count == 0) {
        free(list);
        return 0;
    }
    *params = list;
    return count;
}

/* ------------------------------------------------------------------------
 * HTTP API request signatures
 * ------------------------------------------------------------------------ */

static int compare_params_by_key(const void *a, const void *b)
{
    const struct query_param *const *pa = a;
    const struct query_param *const *pb = b;
    int order = strcmp((*pa)->key, (*pb)->key);
    if (order != 0)
        return order;
    /* Equal keys keep their input order, so the result never depends on
     * the qsort implementation. */
    return *pa < *pb ? -1 : (*pa > *pb ? 1 : 0);
}

void signature_request_string(struct strbuf *out, const char *method, const char *path,
                              const struct query_param *params, int count)
{
    for (const char *m = method; *m; m++)
        strbuf_append_char(out, (char)toupper((unsigned char)*m));
    strbuf_append_char(out, '\n');
    strbuf_append_str(out, path);
    strbuf_append_char(out, '\n');

    if (count <= 0)
        return;

    const struct query_param **sorted = calloc((size_t)count, sizeof *sorted);
    if (!sorted) {
        fprintf(stderr, "herald: out of memory sorting query parameters\n");
        abort();
    }
    int n = 0;
    for (int i = 0; i < count; i++) {
        if (strcmp(params[i].key, "auth_signature") != 0)
            sorted[n++] = &params[i];
    }
    qsort(sorted, (size_t)n, sizeof *sorted, compare_params_by_key);

    for (int i = 0; i < n; i++) {
        if (i > 0)
            strbuf_append_char(out, '&');
        strbuf_append_str(out, sorted[i]->key);
        strbuf_append_char(out, '=');
        strbuf_append_str(out, sorted[i]->value);
    }
    free(sorted);
}

static const char *find_param(const struct query_param *params, int count, const char *key)
{
    for (int i = 0; i < count; i++) {
        if (strcmp(params[i].key, key) == 0)
            return params[i].value;
    }
    return NULL;
}

/* Appends `s` with newlines shown as \n, so the string to sign fits on the
 * one line of an error message. */
static void append_escaped_newlines(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            strbuf_append_str(out, "\\n");
        else
            strbuf_append_char(out, *s);
    }
}

/* Parses auth_timestamp as non-negative decimal Unix seconds. */
static int parse_timestamp(const char *text, long long *value)
{
    if (!isdigit((unsigned char)text[0]))
        return -1;

    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *value = v;
    return 0;
}

int signature_check_request(const struct app_config *app, const char *method, const char *path,
                            const struct query_param *params, int count, const char *body,
                            size_t body_len, time_t now, int window, char *err, size_t err_len)
{
    static const char *const required[] = {
        "auth_key", "auth_timestamp", "auth_version", "auth_signature",
    };

    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (!find_param(params, count, required[i])) {
            snprintf(err, err_len, "Missing required parameter: %s", required[i]);
            return 401;
        }
    }

    const char *version = find_param(params, count, "auth_version");
    if (strcmp(version, "1.0") != 0) {
        snprintf(err, err_len, "Unsupported auth_version \"%.32s\": only 1.0 is supported",
                 version);
        return 400;
    }

    const char *key = find_param(params, count, "auth_key");
    if (strcmp(key, app->key) != 0) {
        snprintf(err, err_len, "Unknown auth_key \"%.64s\": it is not the key of app %s", key,
                 app->id);
        return 401;
    }

    /* The window is checked against this server's clock, so a client whose
     * clock is off by more than the window is rejected however correct its
     * signature is. */
    const char *timestamp_text = find_param(params, count, "auth_timestamp");
    long long timestamp;
    if (parse_timestamp(timestamp_text, &timestamp) != 0) {
        snprintf(err, err_len,
                 "Invalid auth_timestamp \"%.32s\": expected Unix time in whole seconds",
                 timestamp_text);
        return 400;
    }
    long long skew = timestamp > (long long)now ? timestamp - (long long)now
                                                : (long long)now - timestamp;
    if (skew > window) {
        snprintf(err, err_len,
                 "auth_timestamp %lld is outside the allowed window of %d seconds around the "
                 "server clock (server time %lld, %lld seconds apart); check the client's clock",
                 timestamp, window, (long long)now, skew);
        return 401;
    }

    if (body_len > 0) {
        const char *body_md5 = find_param(params, count, "body_md5");
        if (!body_md5) {
            snprintf(err, err_len,
                     "Missing required parameter: body_md5 (required when the request has a "
                     "body)");
            return 401;
        }
        char actual[SIGNATURE_MD5_HEX_LEN + 1];
        signature_md5_hex(body, body_len, actual);
        if (strcasecmp(body_md5, actual) != 0) {
            snprintf(err, err_len, "body_md5 does not match the MD5 of the request body");
            return 401;
        }
    }

    struct strbuf string_to_sign;
    strbuf_init(&string_to_sign);
    signature_request_string(&string_to_sign, method, path, params, count);

    char expected[SIGNATURE_HEX_LEN + 1];
    signature_hmac_sha256_hex(app->secret, string_to_sign.data, string_to_sign.len, expected);

    const char *signature = find_param(params, count, "auth_signature");
    int status = 0;
    if (!signature_equal(signature, strlen(signature), expected, SIGNATURE_HEX_LEN)) {
        /* Like Pusher, show the string to sign: it contains only what the
         * client sent, and it is the fastest way to find a client bug. */
        struct strbuf message;
        strbuf_init(&message);
        strbuf_append_str(&message,
                          "Invalid signature: expected the lowercase hex HMAC-SHA256, keyed "
                          "with the app secret, of \"");
        append_escaped_newlines(&message, string_to_sign.data);
        strbuf_append_str(&message, "\"");
        snprintf(err, err_len, "%s", message.data);
        strbuf_free(&message);
        status = 401;
    }

    strbuf_free(&string_to_sign);
    return status;
}
