/* The envelope that carries one rendered frame over a Redis pub/sub topic.
 *
 * Wire format (text, binary-safe after the header):
 *
 *     h1 <exclude socket_id or -> <flags in hex>[ <seq>[ <published_us>]]\n<frame bytes>
 *
 * <seq> is the channel's member event sequence number, assigned in Redis by
 * the presence scripts; other envelopes carry 0. <published_us> is the
 * publisher's wall clock in microseconds since the epoch, for the gateway's
 * latency histogram.
 *
 * The gateway reads only the header line and writes the frame bytes to its
 * clients unchanged. New fields go into the header, never into the frame. */
#ifndef HERALD_ENVELOPE_H
#define HERALD_ENVELOPE_H

#include <stddef.h>

#include "strbuf.h"

#define ENVELOPE_VERSION "h1"
#define ENVELOPE_SOCKET_ID_MAX 64

/* Flag bits; unknown bits are ignored by readers. */
#define ENVELOPE_FLAG_CLIENT_EVENT 0x1u /* frame came from a client-* event */
#define ENVELOPE_FLAG_MEMBER_EVENT 0x2u /* presence member_added / member_removed */

struct envelope {
    const char *exclude; /* socket_id to skip, or NULL; not NUL-terminated */
    size_t exclude_len;
    unsigned flags;
    unsigned long long seq; /* 0 when the header has no sequence number */
    unsigned long long published_us; /* 0 when the header has no timestamp */
    const char *frame; /* points into the decoded buffer */
    size_t frame_len;
};

/* Appends the envelope for `frame` to `out`. `exclude` may be NULL or "";
 * otherwise it must be 1 to ENVELOPE_SOCKET_ID_MAX characters without
 * spaces or newlines. Returns 0, or -1 (appending nothing) when it is not. */
int envelope_encode(struct strbuf *out, const char *exclude, unsigned flags,
                    const char *frame, size_t frame_len);

/* Like envelope_encode, with the sequence number 0 and the publish time. */
int envelope_encode_published(struct strbuf *out, const char *exclude, unsigned flags,
                              unsigned long long published_us, const char *frame,
                              size_t frame_len);

/* Parses `buf` without copying: the result points into `buf`.
 * Returns 0, or -1 when the header is malformed or the version unknown. */
int envelope_decode(const char *buf, size_t len, struct envelope *out);

#endif
