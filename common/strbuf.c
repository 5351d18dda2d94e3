#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strbuf_init(struct strbuf *sb)
{
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
}

void strbuf_free(struct strbuf *sb)
{
    free(sb->data);
    strbuf_init(sb);
}

void strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->data)
        sb->data[0] = '\0';
}

void strbuf_reserve(struct strbuf *sb, size_t extra)
{
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return;

    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < need)
        cap *= 2;

    char *data = realloc(sb->data, cap);
    if (!data) {
        fprintf(stderr, "herald: out of memory growing a buffer to %zu bytes\n", cap);
        abort();
    }
    sb->data = data;
    sb->cap = cap;
    sb->data[sb->len] = '\0';
}

void strbuf_append(struct strbuf *sb, const void *bytes, size_t len)
{
    strbuf_reserve(sb, len);
    memcpy(sb->data + sb->len, bytes, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void strbuf_append_str(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void strbuf_append_char(struct strbuf *sb, char c)
{
    strbuf_reserve(sb, 1);
    sb->data[sb->len++] = c;
    sb->data[sb->len] = '\0';
}

void strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;

    strbuf_reserve(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void strbuf_append_json_string(struct strbuf *sb, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";

    /* Worst case every byte becomes \u00XX. */
    strbuf_reserve(sb, len * 6 + 2);
    char *out = sb->data + sb->len;
    *out++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':  *out++ = '\\'; *out++ = '"'; break;
        case '\\': *out++ = '\\'; *out++ = '\\'; break;
        case '\n': *out++ = '\\'; *out++ = 'n'; break;
        case '\r': *out++ = '\\'; *out++ = 'r'; break;
        case '\t': *out++ = '\\'; *out++ = 't'; break;
        case '\b': *out++ = '\\'; *out++ = 'b'; break;
        case '\f': *out++ = '\\'; *out++ = 'f'; break;
        default:
            if (c < 0x20) {
                *out++ = '\\'; *out++ = 'u'; *out++ = '0'; *out++ = '0';
                *out++ = hex[c >> 4]; *out++ = hex[c & 0xf];
            } else {
                *out++ = (char)c;
            }
        }
    }
    *out++ = '"';
    sb->len = (size_t)(out - sb->data);
    sb->data[sb->len] = '\0';
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
    if (!sb->data)
        strbuf_reserve(sb, 0);
    char *data = sb->data;
    if (len)
        *len = sb->len;
    strbuf_init(sb);
    return data;
}
