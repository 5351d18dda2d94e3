/* libFuzzer harness: the envelope that carries a frame over a Redis
 * pub/sub topic, read by every gateway with envelope_decode.
 *
 * The input is one message as it arrives from Redis. When it decodes, the
 * fields must lie inside it, and encoding them again with envelope_encode
 * and envelope_encode_published must decode to the same values. The first
 * line of the input is also tried as the exclude of a new envelope:
 * envelope_encode must reject exactly the values its contract rules out,
 * and append nothing when it does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz_util.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct envelope *a, const struct envelope *b)
{
    FUZZ_CHECK(a->exclude_len == b->exclude_len &&
                   (a->exclude == NULL) == (b->exclude == NULL) &&
                   (!a->exclude || memcmp(a->exclude, b->exclude, a->exclude_len) == 0),
               "exclude changed in the round trip");
    FUZZ_CHECK(a->flags == b->flags, "flags %x became %x", a->flags, b->flags);
    FUZZ_CHECK(a->frame_len == b->frame_len && memcmp(a->frame, b->frame, a->frame_len) == 0,
               "frame changed in the round trip");
}

/* Checks that the decoded fields point inside the input. */
static void check_decoded(const char *buf, size_t len, const struct envelope *envelope)
{
    const char *end = buf + len;
    const char *newline = memchr(buf, '\n', len);
    FUZZ_CHECK(newline && envelope->frame == newline + 1 &&
                   envelope->frame_len == (size_t)(end - envelope->frame),
               "the frame does not start after the first newline");
    if (envelope->exclude) {
        FUZZ_CHECK(envelope->exclude > buf && envelope->exclude + envelope->exclude_len < newline,
                   "the exclude lies outside the header");
        FUZZ_CHECK(envelope->exclude_len > 0 && envelope->exclude_len <= ENVELOPE_SOCKET_ID_MAX,
                   "exclude of %zu bytes", envelope->exclude_len);
        FUZZ_CHECK(!memchr(envelope->exclude, ' ', envelope->exclude_len),
                   "the exclude contains a space");
    }
}

/* Encodes the decoded envelope again, both ways, and decodes the result. */
static void check_round_trip(const struct envelope *decoded)
{
    /* The encoder takes the exclude as a C string, and reads "-" as none. */
    char *exclude = NULL;
    if (decoded->exclude) {
        exclude = fuzz_strndup(decoded->exclude, decoded->exclude_len);
        if (strlen(exclude) != decoded->exclude_len || strcmp(exclude, "-") == 0) {
            free(exclude);
            return;
        }
    }

    struct strbuf out;
    struct envelope again;
    strbuf_init(&out);
    FUZZ_CHECK(envelope_encode(&out, exclude, decoded->flags, decoded->frame,
                               decoded->frame_len) == 0,
               "envelope_encode rejected a decoded exclude");
    FUZZ_CHECK(envelope_decode(out.data, out.len, &again) == 0,
               "an encoded envelope does not decode: %s", out.data);
    check_same(decoded, &again);
    FUZZ_CHECK(again.seq == 0 && again.published_us == 0, "envelope_encode wrote seq %llu",
               again.seq);

    strbuf_reset(&out);
    FUZZ_CHECK(envelope_encode_published(&out, exclude, decoded->flags, decoded->published_us,
                                         decoded->frame, decoded->frame_len) == 0,
               "envelope_encode_published rejected a decoded exclude");
    FUZZ_CHECK(envelope_decode(out.data, out.len, &again) == 0,
               "an encoded envelope does not decode: %s", out.data);
    check_same(decoded, &again);
    FUZZ_CHECK(again.seq == 0 && again.published_us == decoded->published_us,
               "published_us %llu became %llu", decoded->published_us, again.published_us);

    strbuf_free(&out);
    free(exclude);
}

/* Tries `candidate` as the exclude of a new envelope. */
static void check_encode(const char *candidate, const char *frame, size_t frame_len)
{
    size_t len = strlen(candidate);
    bool allowed = len == 0 || (len <= ENVELOPE_SOCKET_ID_MAX && !strpbrk(candidate, " \n"));

    struct strbuf out;
    strbuf_init(&out);
    strbuf_append_str(&out, "x");
    int rc = envelope_encode(&out, candidate, 3, frame, frame_len);
    FUZZ_CHECK((rc == 0) == allowed, "envelope_encode returned %d for an exclude of %zu bytes",
               rc, len);
    if (rc != 0) {
        FUZZ_CHECK(out.len == 1, "a rejected envelope appended %zu bytes", out.len - 1);
        strbuf_free(&out);
        return;
    }

    struct envelope decoded;
    FUZZ_CHECK(envelope_decode(out.data + 1, out.len - 1, &decoded) == 0,
               "an encoded envelope does not decode: %s", out.data + 1);
    bool none = len == 0 || strcmp(candidate, "-") == 0;
    FUZZ_CHECK(none ? !decoded.exclude
                    : decoded.exclude && decoded.exclude_len == len &&
                          memcmp(decoded.exclude, candidate, len) == 0,
               "exclude %s did not survive the round trip", candidate);
    FUZZ_CHECK(decoded.flags == 3 && decoded.frame_len == frame_len &&
                   memcmp(decoded.frame, frame, frame_len) == 0,
               "the new envelope decodes to other flags or another frame");
    strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;

    struct envelope envelope;
    if (envelope_decode(buf, size, &envelope) == 0) {
        check_decoded(buf, size, &envelope);
        check_round_trip(&envelope);
    }

    const char *newline = memchr(buf, '\n', size);
    size_t line_len = newline ? (size_t)(newline - buf) : size;
    char *candidate = fuzz_strndup(buf, line_len);
    const char *frame = newline ? newline + 1 : "";
    check_encode(candidate, frame, newline ? size - line_len - 1 : 0);
    free(candidate);
    return 0;
}
