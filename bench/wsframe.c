#include "wsframe.h"

#include <openssl/evp.h>
#include <string.h>

/* The GUID that RFC 6455 section 1.3 appends to the key before hashing. */
static const char websocket_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

size_t ws_frame_write_header(uint8_t *out, uint8_t opcode, uint64_t payload_len,
                             const uint8_t mask[4])
{
    size_t n = 0;
    uint8_t mask_bit = mask ? 0x80 : 0;

    out[n++] = (uint8_t)(0x80 | opcode);
    if (payload_len < 126) {
        out[n++] = (uint8_t)(mask_bit | payload_len);
    } else if (payload_len <= 0xffff) {
        out[n++] = (uint8_t)(mask_bit | 126);
        out[n++] = (uint8_t)(payload_len >> 8);
        out[n++] = (uint8_t)payload_len;
    } else {
        out[n++] = (uint8_t)(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(payload_len >> shift);
    }

    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

int ws_frame_parse_header(const uint8_t *buf, size_t len, struct ws_frame *frame)
{
    if (len < 2)
        return 0;

    if (buf[0] & 0x70)
        return -1; /* RSV bits: no extension was negotiated */

    frame->fin = (buf[0] & 0x80) != 0;
    frame->opcode = buf[0] & 0x0f;
    frame->masked = (buf[1] & 0x80) != 0;

    uint64_t payload_len = buf[1] & 0x7f;
    size_t n = 2;
    if (payload_len == 126) {
        if (len < n + 2)
            return 0;
        payload_len = ((uint64_t)buf[2] << 8) | buf[3];
        n += 2;
    } else if (payload_len == 127) {
        if (len < n + 8)
            return 0;
        payload_len = 0;
        for (int i = 0; i < 8; i++)
            payload_len = (payload_len << 8) | buf[2 + i];
        if (payload_len >> 63)
            return -1;
        n += 8;
    }

    if (frame->opcode & 0x8) {
        if (payload_len > 125 || !frame->fin)
            return -1;
    }

    if (frame->masked) {
        if (len < n + 4)
            return 0;
        memcpy(frame->mask, buf + n, 4);
        n += 4;
    }

    frame->payload_len = payload_len;
    frame->header_len = n;
    return 1;
}

void ws_mask_payload(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        data[i] ^= mask[(offset + i) & 3];
}

void ws_accept_for_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;

    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    EVP_DigestUpdate(ctx, key, key_len);
    EVP_DigestUpdate(ctx, websocket_guid, sizeof websocket_guid - 1);
    EVP_DigestFinal_ex(ctx, digest, &digest_len);
    EVP_MD_CTX_free(ctx);

    EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);
    out[WS_ACCEPT_LEN] = '\0';
}
