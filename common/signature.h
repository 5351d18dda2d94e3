/* Pusher signatures: channel authorization, user sign-in and HTTP API
 * request signing. All comparisons of signatures run in constant time. */
#ifndef HERALD_SIGNATURE_H
#define HERALD_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "strbuf.h"

#define SIGNATURE_HEX_LEN 64

/* Lowercase hex HMAC-SHA256 of `msg` keyed with `secret`; `out` gets 64
 * characters and a NUL. */
void signature_hmac_sha256_hex(const char *secret, const void *msg, size_t msg_len,
                               char out[SIGNATURE_HEX_LEN + 1]);

/* Lowercase hex MD5 of `data`; `out` gets 32 characters and a NUL. */
void signature_md5_hex(const void *data, size_t len, char out[33]);

/* Constant-time equality of two byte strings (time depends only on the
 * lengths, never on where they differ). */
bool signature_equal(const char *a, size_t a_len, const char *b, size_t b_len);

enum signature_status {
    SIGNATURE_OK = 0,
    SIGNATURE_MALFORMED,   /* no "key:signature" shape */
    SIGNATURE_WRONG_KEY,   /* key part is not the app key */
    SIGNATURE_MISMATCH,    /* HMAC differs */
};

/* Checks `auth` ("<app key>:<hex hmac>") for a channel subscription.
 * The signed string is "<socket_id>:<channel>" or, when `channel_data` is
 * not NULL, "<socket_id>:<channel>:<channel_data>", over the exact bytes. */
enum signature_status signature_check_channel_auth(const struct app_config *app,
                                                   const char *auth, const char *socket_id,
                                                   const char *channel,
                                                   const char *channel_data);

/* Checks a pusher:signin `auth` over "<socket_id>::user::<user_data>". */
enum signature_status signature_check_user_auth(const struct app_config *app, const char *auth,
                                                const char *socket_id, const char *user_data);

/* One decoded query parameter of an HTTP API request. */
struct query_param {
    char *key;   /* lowercased */
    char *value; /* percent-decoded */
};

/* Most parameters one query string may carry. A signed Pusher request has
 * fewer than ten, and the duplicate check below is quadratic. */
#define SIGNATURE_MAX_QUERY_PARAMS 64

/* Decodes a raw query string the way PHP's parse_str does for flat keys
 * ('+' is a space, %XX escapes, keys lowercased). Returns the number of
 * parameters stored in a newly allocated array at *params, -1 on an
 * invalid escape, or -2 with more than SIGNATURE_MAX_QUERY_PARAMS
 * parameters. Free with signature_free_query. */
int signature_parse_query(const char *query, struct query_param **params);
void signature_free_query(struct query_param *params, int count);

/* Builds "METHOD\nPATH\nk1=v1&k2=v2…" from the parameters sorted by key,
 * without auth_signature. Exposed so tests can compare with the docs. */
void signature_request_string(struct strbuf *out, const char *method, const char *path,
                              const struct query_param *params, int count);

/* Verifies an HTTP API request: auth_key is the app's key, auth_version is
 * 1.0, |now - auth_timestamp| <= window, body_md5 matches a non-empty body,
 * and auth_signature is the HMAC of the request string. Returns 0 when
 * valid, else the HTTP status to respond with (400 or 401) with a message for the
 * client in `err`. The message never contains the app secret. */
int signature_check_request(const struct app_config *app, const char *method, const char *path,
                            const struct query_param *params, int count, const char *body,
                            size_t body_len, time_t now, int window, char *err, size_t err_len);

#endif
