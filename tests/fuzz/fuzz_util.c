#include "fuzz_util.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz check failed: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

bool fuzz_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }

        size_t extra;
        unsigned min, code;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
            min = 0x80;
            code = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
            min = 0x800;
            code = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
            min = 0x10000;
            code = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            code = (code << 6) | (s[i + k] & 0x3f);
        }
        if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return false;
        i += extra + 1;
    }
    return true;
}

struct json_object *fuzz_json_parse_object(const char *text, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        fuzz_fail("out of memory creating a JSON parser");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

    struct json_object *value = json_tokener_parse_ex(tok, text, (int)len);
    bool parsed = json_tokener_get_error(tok) == json_tokener_success;
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);

    while (parsed && end < len &&
           (text[end] == ' ' || text[end] == '\t' || text[end] == '\r' || text[end] == '\n'))
        end++;
    if (!parsed || end != len || !json_object_is_type(value, json_type_object)) {
        json_object_put(value);
        return NULL;
    }
    return value;
}

char *fuzz_strndup(const char *bytes, size_t len)
{
    char *copy = strndup(bytes, len);
    if (!copy)
        fuzz_fail("out of memory copying %zu bytes", len);
    return copy;
}
