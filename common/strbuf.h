/* Growable byte buffer used to render JSON frames and HTTP bodies.
 *
 * The buffer is always NUL-terminated after `len` bytes. Allocation failure
 * aborts the process: a server that cannot allocate a few hundred bytes has
 * no useful way to go on. */
#ifndef HERALD_STRBUF_H
#define HERALD_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

void strbuf_init(struct strbuf *sb);
void strbuf_free(struct strbuf *sb);
void strbuf_reset(struct strbuf *sb);

/* Ensures room for `extra` more bytes plus the terminating NUL. */
void strbuf_reserve(struct strbuf *sb, size_t extra);

void strbuf_append(struct strbuf *sb, const void *bytes, size_t len);
void strbuf_append_str(struct strbuf *sb, const char *s);
void strbuf_append_char(struct strbuf *sb, char c);
void strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends `s` as a quoted JSON string, escaping quotes, backslashes and
 * control characters. UTF-8 bytes pass through unchanged. */
void strbuf_append_json_string(struct strbuf *sb, const char *s, size_t len);

/* Detaches and returns the data; the buffer is left empty. */
char *strbuf_detach(struct strbuf *sb, size_t *len);

#endif
