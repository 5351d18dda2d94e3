#include "envelope.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool exclude_valid(const char *exclude)
{
    if (!exclude || !exclude[0])
        return true;
    size_t len = strcspn(exclude, " \n");
    return !exclude[len] && len <= ENVELOPE_SOCKET_ID_MAX;
}

int envelope_encode(struct strbuf *out, const char *exclude, unsigned flags,
                    const char *frame, size_t frame_len)
{
    if (!exclude_valid(exclude))
        return -1;
    strbuf_appendf(out, ENVELOPE_VERSION " %s %x\n",
                   exclude && exclude[0] ? exclude : "-", flags);
    strbuf_append(out, frame, frame_len);
    return 0;
}

int envelope_encode_published(struct strbuf *out, const char *exclude, unsigned flags,
                              unsigned long long published_us, const char *frame,
                              size_t frame_len)
{
    if (!exclude_valid(exclude))
        return -1;
    strbuf_appendf(out, ENVELOPE_VERSION " %s %x 0 %llu\n",
                   exclude && exclude[0] ? exclude : "-", flags, published_us);
    strbuf_append(out, frame, frame_len);
    return 0;
}

static int parse_hex(const char *s, size_t len, unsigned *value)
{
    if (len == 0 || len > 8)
        return -1;

    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        unsigned digit;
        if (c >= '0' && c <= '9')
            digit = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = (unsigned)(c - 'A' + 10);
        else
            return -1;
        v = (v << 4) | digit;
    }
    *value = v;
    return 0;
}

static int parse_decimal(const char *s, size_t len, unsigned long long *value)
{
    if (len == 0 || len > 19)
        return -1;

    unsigned long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    *value = v;
    return 0;
}

int envelope_decode(const char *buf, size_t len, struct envelope *out)
{
    const char *end = buf + len;
    const char *newline = memchr(buf, '\n', len);
    if (!newline)
        return -1;

    /* Version. */
    size_t version_len = strlen(ENVELOPE_VERSION);
    if ((size_t)(newline - buf) < version_len + 1 ||
        memcmp(buf, ENVELOPE_VERSION, version_len) != 0 || buf[version_len] != ' ')
        return -1;

    /* Excluded socket_id, "-" for none. */
    const char *field = buf + version_len + 1;
    const char *space = memchr(field, ' ', (size_t)(newline - field));
    if (!space || space == field || (size_t)(space - field) > ENVELOPE_SOCKET_ID_MAX)
        return -1;
    if (space - field == 1 && field[0] == '-') {
        out->exclude = NULL;
        out->exclude_len = 0;
    } else {
        out->exclude = field;
        out->exclude_len = (size_t)(space - field);
    }

    /* Flags, then the optional sequence number. */
    const char *flags = space + 1;
    const char *flags_end = memchr(flags, ' ', (size_t)(newline - flags));
    if (!flags_end)
        flags_end = newline;
    if (parse_hex(flags, (size_t)(flags_end - flags), &out->flags) != 0)
        return -1;

    out->seq = 0;
    out->published_us = 0;
    if (flags_end < newline) {
        const char *seq = flags_end + 1;
        const char *seq_end = memchr(seq, ' ', (size_t)(newline - seq));
        if (!seq_end)
            seq_end = newline;
        if (parse_decimal(seq, (size_t)(seq_end - seq), &out->seq) != 0)
            return -1;

        if (seq_end < newline) {
            const char *stamp = seq_end + 1;
            const char *stamp_end = memchr(stamp, ' ', (size_t)(newline - stamp));
            if (!stamp_end)
                stamp_end = newline; /* later fields, if any, are ignored */
            if (parse_decimal(stamp, (size_t)(stamp_end - stamp), &out->published_us) != 0)
                return -1;
        }
    }

    out->frame = newline + 1;
    out->frame_len = (size_t)(end - out->frame);
    return 0;
}
