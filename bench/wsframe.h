/* The parts of RFC 6455 that the load generator and the baseline server
 * need: frame headers in both directions, masking and the handshake's
 * Sec-WebSocket-Accept value. */
#ifndef HERALD_BENCH_WSFRAME_H
#define HERALD_BENCH_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_OPCODE_CONTINUATION 0x0
#define WS_OPCODE_TEXT 0x1
#define WS_OPCODE_BINARY 0x2
#define WS_OPCODE_CLOSE 0x8
#define WS_OPCODE_PING 0x9
#define WS_OPCODE_PONG 0xA

/* Maximum header size: 2 bytes, 8 bytes of extended length, 4 of mask. */
#define WS_HEADER_MAX 14

/* Length of a Sec-WebSocket-Accept value: base64 of a SHA-1 digest. */
#define WS_ACCEPT_LEN 28

struct ws_frame {
    bool fin;
    uint8_t opcode;
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len;
};

/* Writes the header of a final frame with `opcode` and `payload_len` to
 * `out` (at least WS_HEADER_MAX bytes) and returns its length. A non-NULL
 * `mask` sets the mask bit and appends the key, as a client must. */
size_t ws_frame_write_header(uint8_t *out, uint8_t opcode, uint64_t payload_len,
                             const uint8_t mask[4]);

/* Parses the frame header at the start of `buf`. Returns 1 when the header
 * is complete, though the payload may still be partial, and 0 when more
 * bytes are needed. Returns -1 on a header no peer may send: reserved bits
 * set, a 64-bit length with the top bit set, or a control frame that is
 * fragmented or longer than 125 bytes. */
int ws_frame_parse_header(const uint8_t *buf, size_t len, struct ws_frame *frame);

/* XORs `data` with `mask`, starting `offset` bytes into the masked payload.
 * Masking and unmasking are the same operation. */
void ws_mask_payload(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Computes the Sec-WebSocket-Accept value for a Sec-WebSocket-Key into
 * `out`, which gets WS_ACCEPT_LEN characters and a NUL. */
void ws_accept_for_key(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

#endif
