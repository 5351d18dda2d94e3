/* Client text quoted back in error messages and logs. */
#ifndef HERALD_TEXT_H
#define HERALD_TEXT_H

#include <stddef.h>

/* Copies at most `max` bytes of `text` into `out`, writing '?' for every
 * byte outside printable ASCII, and appends "..." when `text` was cut.
 * Browsers fail a WebSocket connection on a message that is not valid
 * UTF-8, and raw control bytes would let input forge log lines, so client
 * input goes through this before it is quoted. `out_len` must be at least
 * max + 4. */
void text_printable(char *out, size_t out_len, const char *text, size_t text_len, size_t max);

#endif
