/* Checks shared by the libFuzzer harnesses of tests/fuzz.
 *
 * A failed check prints what was wrong and aborts, which libFuzzer reports
 * as a crash and saves the input for. */
#ifndef HERALD_FUZZ_UTIL_H
#define HERALD_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* Prints "fuzz check failed: <message>" to stderr and aborts. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define FUZZ_CHECK(condition, ...) \
    do {                           \
        if (!(condition))          \
            fuzz_fail(__VA_ARGS__); \
    } while (0)

/* True when `text` is well-formed UTF-8 as browsers decode WebSocket text:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
bool fuzz_utf8_valid(const char *text, size_t len);

/* Parses `len` bytes as one strict JSON object followed by nothing but
 * whitespace. Returns the object, or NULL when the bytes are anything else.
 * The caller releases it with json_object_put. */
struct json_object *fuzz_json_parse_object(const char *text, size_t len);

/* Returns a NUL-terminated copy of `len` bytes, cut at the first NUL as a
 * C string would be; never NULL. The caller frees it. */
char *fuzz_strndup(const char *bytes, size_t len);

#endif
